//! The handshake budget over real sockets (issue #14, item 4): cheap failures (not an upgrade,
//! no token, a bad signature) are refused without spending the gateway's shared handshake rate
//! or in-flight slots, so one host flooding garbage does not block a legitimate client; and a
//! per-client-address handshake limit that honours `X-Forwarded-For` only from trusted proxies.

mod support;

use std::time::Duration;

use chat_shared::protocol::identity::Role;
use futures::future::join_all;
use support::{Deployment, Embedded, Scope, TestUser, http, user};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Opens `/ws` with `token` and optional `X-Forwarded-For`; the status of a refusal (and its
/// `error`), or `Ok` once `hello` arrived.
async fn open(
    base: &str,
    token: Option<&str>,
    forwarded: Option<&str>,
) -> Result<(), (u16, String)> {
    let url = format!("{}/ws", base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("request");
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("header");
        request.headers_mut().insert("authorization", value);
    }
    if let Some(forwarded) = forwarded {
        request
            .headers_mut()
            .insert("x-forwarded-for", forwarded.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let error = json["error"].as_str().unwrap_or_default().to_owned();
            Err((response.status().as_u16(), error))
        }
        Err(other) => panic!("connect failed: {other}"),
    }
}

/// One host's garbage: plain GETs of /ws, upgrades without a token, and forged tokens.
async fn garbage(base: &str, rounds: usize) {
    let forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4IiwiZXhwIjo5OTk5OTk5OTk5fQ.forged";
    for _ in 0..rounds {
        let plain = http().get(format!("{base}/ws")).send().await.expect("get");
        assert!(plain.status().is_client_error(), "{}", plain.status());
        assert_eq!(open(base, None, None).await.expect_err("no token").0, 401);
        assert_eq!(
            open(base, Some(forged), None).await.expect_err("forged").0,
            401
        );
    }
}

#[tokio::test]
async fn one_host_flooding_garbage_does_not_block_a_legitimate_client() {
    let d = Embedded::start_with(
        |c| {
            c.connection_limits.max_handshakes_per_sec = 1;
            c.connection_limits.handshake_burst = 2;
            c.connection_limits.max_handshakes_in_flight = 2;
        },
        true,
    )
    .await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    // Four flooders at once, 30 rounds of three kinds of garbage each.
    let base = d.gateway(0);
    join_all((0..4).map(|_| garbage(&base, 30))).await;
    for _ in 0..2 {
        open(&d.gateway(0), Some(&ann.token), None)
            .await
            .expect("garbage spent none of the handshake budget");
    }
}

async fn ip_limited(tweak: impl FnOnce(&mut gateway::GatewayConfig)) -> (Embedded, TestUser) {
    let d = Embedded::start_with(
        |c| {
            c.connection_limits.max_handshakes_per_ip_per_sec = 1;
            c.connection_limits.handshake_burst_per_ip = 2;
            tweak(c);
        },
        true,
    )
    .await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    (d, ann)
}

#[tokio::test]
async fn the_per_address_limit_counts_forwarded_clients_of_a_trusted_proxy() {
    let (d, ann) = ip_limited(|c| {
        c.connection_limits.trusted_proxies = vec!["127.0.0.0/8".parse().expect("net")];
    })
    .await;
    let (base, token) = (d.gateway(0), Some(ann.token.as_str()));
    let first = Some("203.0.113.7");
    open(&base, token, first).await.expect("first");
    open(&base, token, first).await.expect("second");
    let refusal = open(&base, token, first)
        .await
        .expect_err("over the address's burst");
    assert_eq!(refusal, (429, "rate_limited".to_owned()));
    open(&base, token, Some("203.0.113.8"))
        .await
        .expect("another client behind the same proxy");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    open(&base, token, first).await.expect("refilled");
}

#[tokio::test]
async fn forwarded_addresses_from_an_untrusted_peer_are_ignored() {
    let (d, ann) = ip_limited(|_| {}).await;
    let (base, token) = (d.gateway(0), Some(ann.token.as_str()));
    open(&base, token, Some("198.51.100.1"))
        .await
        .expect("first");
    open(&base, token, Some("198.51.100.2"))
        .await
        .expect("second");
    let refusal = open(&base, token, Some("198.51.100.3"))
        .await
        .expect_err("a made-up address does not escape the peer's limit");
    assert_eq!(refusal.0, 429);
}
