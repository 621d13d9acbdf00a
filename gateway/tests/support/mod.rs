//! Test support shared by the contract suites: a deployment (embedded in-process, or the
//! distributed processes), users with real tokens and sessions, and the WebSocket client.

#![allow(dead_code)]

pub mod client;
pub mod distributed;
pub mod presence;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chat_shared::auth::JwtVerifier;
use chat_shared::protocol::identity::{Role, UserInfo};
use chat_shared::store::{Session, SessionStore};
use client::{Client, Connect, Refusal};
use gateway::{Deps, GatewayConfig, Node};

/// The secret every test deployment verifies tokens with.
pub const SECRET: &str = "test-secret-0123456789abcdef-32by";
/// The one browser origin test deployments allow.
pub const ALLOWED_ORIGIN: &str = "http://allowed.test";

/// Something running the chat: one or more gateways sharing a session store.
pub trait Deployment: Send + Sync {
    /// Base URL (http://host:port) of gateway `i` (modulo the count).
    fn gateway(&self, i: usize) -> String;
    fn gateway_count(&self) -> usize;
    /// Base URL of gateway `i`'s ops listener (`/metrics`, `/healthz`, `/readyz`).
    fn ops(&self, i: usize) -> String;
    fn store(&self) -> Arc<dyn SessionStore>;
}

/// Unique names per test, so tests can share a deployment.
pub struct Scope(String);

impl Scope {
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Scope(format!("t{}x{n}", std::process::id()))
    }

    /// A guild id unique to this test.
    pub fn guild(&self, name: &str) -> String {
        format!("{}-{name}", self.0)
    }

    /// A user id unique to this test.
    pub fn user_id(&self, name: &str) -> String {
        format!("{}-{name}", self.0)
    }
}

/// A user with a session and a valid token.
pub struct TestUser {
    pub info: UserInfo,
    pub token: String,
}

/// Mints a token for `info` valid for `ttl` seconds.
pub fn mint(info: &UserInfo, ttl: u64) -> String {
    JwtVerifier::hs256(SECRET.as_bytes())
        .mint(info, ttl)
        .expect("mint")
}

/// Creates a user: the session in the store, and a token.
pub async fn user(d: &impl Deployment, id: &str, role: Role, guilds: &[&str]) -> TestUser {
    let info = UserInfo::new(id, id, role);
    if !guilds.is_empty() {
        d.store()
            .put(id, &Session::with_guilds(guilds.iter().copied()))
            .await
            .expect("put session");
    }
    TestUser {
        token: mint(&info, 3600),
        info,
    }
}

impl TestUser {
    /// Connects to gateway `i` with a Bearer token, JSON encoding.
    pub async fn connect(&self, d: &impl Deployment, i: usize) -> Client {
        self.try_connect(d, i, Connect::default())
            .await
            .expect("handshake accepted")
    }

    pub async fn try_connect(
        &self,
        d: &impl Deployment,
        i: usize,
        mut how: Connect<'_>,
    ) -> Result<Client, Refusal> {
        how.token = Some(&self.token);
        Client::open(&d.gateway(i), how).await
    }
}

/// The embedded mode, in this test's process.
pub struct Embedded {
    node: Node,
}

impl Embedded {
    pub async fn start() -> Self {
        Self::start_with(|_| {}, true).await
    }

    /// Starts with a tweaked configuration; `workers: false` runs no router or bot.
    pub async fn start_with(tweak: impl FnOnce(&mut GatewayConfig), workers: bool) -> Self {
        let mut deps = test_deps();
        if !workers {
            deps.bus = chat_shared::bus::MemoryBus::new(chat_shared::bus::MemoryBusConfig {
                submit_timeout: std::time::Duration::from_millis(300),
                ..Default::default()
            });
            deps.in_process_workers = false;
        }
        Self::start_on(tweak, deps).await
    }

    /// Starts on the given dependencies (from [`test_deps`], e.g. with another bus).
    pub async fn start_on(tweak: impl FnOnce(&mut GatewayConfig), deps: Deps) -> Self {
        let mut config = GatewayConfig::for_tests();
        config.allowed_origins = vec![ALLOWED_ORIGIN.to_owned()];
        tweak(&mut config);
        let node = Node::start(config, deps).await.expect("gateway starts");
        Embedded { node }
    }
}

/// The embedded dependencies, verifying tokens signed with [`SECRET`].
pub fn test_deps() -> Deps {
    Node::embedded_deps(JwtVerifier::hs256(SECRET.as_bytes()))
}

impl Embedded {
    /// The running gateway, for tests that look at its state.
    pub fn node(&self) -> &Node {
        &self.node
    }
}

impl Deployment for Embedded {
    fn gateway(&self, _i: usize) -> String {
        format!("http://{}", self.node.addr)
    }

    fn gateway_count(&self) -> usize {
        1
    }

    fn ops(&self, _i: usize) -> String {
        format!("http://{}", self.node.ops_addr)
    }

    fn store(&self) -> Arc<dyn SessionStore> {
        self.node.state.store.clone()
    }
}

/// A small HTTP client for the API.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().build().expect("http client")
}
