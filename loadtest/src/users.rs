//! Creating the run's users. Embedded gateways: `POST /api/dev/login` per user returns the
//! token. Distributed gateways: the session document `session:{userId}` is written to Redis
//! and an HS256 token is minted with the shared secret. The ceiling server needs no users.

use chat_shared::telemetry::error_chain;
use std::time::Duration;

use chat_shared::auth::JwtVerifier;
use chat_shared::protocol::identity::{Role, UserInfo};
use chat_shared::store::{Session, session_key};
use fred::prelude::*;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use tracing::Instrument;

use crate::config::UserSource;
use crate::error::LoadTestError;

/// Requests in flight while creating users.
const PROVISION_CONCURRENCY: usize = 32;
/// Lifetime of minted tokens and written sessions.
const CREDENTIAL_TTL: Duration = Duration::from_secs(24 * 3600);

/// How a client proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    Bearer(String),
    /// No credentials; guilds go in the query string (ceiling server only).
    Open,
}

/// A user the load generator connects as.
#[derive(Debug, Clone)]
pub struct VirtualUser {
    pub id: String,
    pub guilds: Vec<String>,
    pub auth: ClientAuth,
}

/// Who to create: an id and the guilds to put in the session.
#[derive(Debug, Clone)]
pub struct UserSpec {
    pub id: String,
    pub guilds: Vec<String>,
}

/// Creates every user of `specs`, in order. `http_base` is the gateway's `http://host:port`.
pub async fn provision(
    source: &UserSource,
    http_base: &str,
    specs: Vec<UserSpec>,
) -> Result<Vec<VirtualUser>, LoadTestError> {
    match source {
        UserSource::Open => Ok(specs
            .into_iter()
            .map(|s| VirtualUser {
                id: s.id,
                guilds: s.guilds,
                auth: ClientAuth::Open,
            })
            .collect()),
        UserSource::DevLogin => dev_login_all(http_base, specs).await,
        UserSource::Minted {
            redis_url,
            jwt_secret,
        } => mint_all(redis_url, jwt_secret, specs).await,
    }
}

#[derive(Deserialize)]
struct DevLoginReply {
    token: String,
}

async fn dev_login_all(
    http_base: &str,
    specs: Vec<UserSpec>,
) -> Result<Vec<VirtualUser>, LoadTestError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| LoadTestError::Users(e.to_string()))?;
    let url = format!("{http_base}/api/dev/login");
    futures::stream::iter(specs)
        .map(|spec| {
            let span = tracing::debug_span!("dev_login", user = %spec.id);
            dev_login(&client, &url, spec).instrument(span)
        })
        .buffered(PROVISION_CONCURRENCY)
        .try_collect()
        .await
}

async fn dev_login(
    client: &reqwest::Client,
    url: &str,
    spec: UserSpec,
) -> Result<VirtualUser, LoadTestError> {
    let body = serde_json::json!({
        "id": spec.id, "name": spec.id, "role": "member", "guilds": spec.guilds,
    });
    let response = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| LoadTestError::Users(format!("POST {url}: {}", error_chain(&e))))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(LoadTestError::Users(format!(
            "POST {url} answered {status} {text} (is DEV_LOGIN enabled on the gateway?)"
        )));
    }
    let reply: DevLoginReply = response
        .json()
        .await
        .map_err(|e| LoadTestError::Users(format!("POST {url}: unreadable reply: {e}")))?;
    Ok(VirtualUser {
        id: spec.id,
        guilds: spec.guilds,
        auth: ClientAuth::Bearer(reply.token),
    })
}

async fn mint_all(
    redis_url: &str,
    secret: &str,
    specs: Vec<UserSpec>,
) -> Result<Vec<VirtualUser>, LoadTestError> {
    let fail =
        |what: &str, e: Error| LoadTestError::Users(format!("redis {redis_url}: {what}: {e}"));
    let config = Config::from_url(redis_url).map_err(|e| fail("bad URL", e))?;
    let redis = Builder::from_config(config)
        .build()
        .map_err(|e| fail("client", e))?;
    redis.init().await.map_err(|e| fail("connect", e))?;
    let verifier = JwtVerifier::hs256(secret.as_bytes());
    let users = futures::stream::iter(specs)
        .map(|spec| mint_one(&redis, &verifier, spec))
        .buffered(PROVISION_CONCURRENCY * 2)
        .try_collect()
        .await;
    let _ = redis.quit().await;
    users
}

async fn mint_one(
    redis: &Client,
    verifier: &JwtVerifier,
    spec: UserSpec,
) -> Result<VirtualUser, LoadTestError> {
    let session = serde_json::to_string(&Session::with_guilds(spec.guilds.iter().cloned()))
        .map_err(|e| LoadTestError::Users(e.to_string()))?;
    let ttl = i64::try_from(CREDENTIAL_TTL.as_secs()).unwrap_or(i64::MAX);
    redis
        .set::<(), _, _>(
            session_key(&spec.id),
            session,
            Some(Expiration::EX(ttl)),
            None,
            false,
        )
        .await
        .map_err(|e| LoadTestError::Users(format!("redis SET session:{}: {e}", spec.id)))?;
    let token = verifier
        .mint(
            &UserInfo::new(spec.id.clone(), spec.id.clone(), Role::Member),
            CREDENTIAL_TTL.as_secs(),
        )
        .map_err(|e| LoadTestError::Users(e.to_string()))?;
    Ok(VirtualUser {
        id: spec.id,
        guilds: spec.guilds,
        auth: ClientAuth::Bearer(token),
    })
}
