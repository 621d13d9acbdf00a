//! Small defects found in the abuse review (issue #14, item 8), over real sockets: a token with
//! a huge `exp` must not crash the connection's writer, and a handshake whose upgrade never
//! completes must not leave its connection registered in the hub.

mod support;

use std::time::Duration;

use chat_shared::protocol::identity::Role;
use jsonwebtoken::{EncodingKey, Header};
use support::client::{Client, Connect};
use support::{Deployment, Embedded, SECRET, Scope, user};
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_token_with_a_huge_exp_keeps_its_connection() {
    // Heartbeat ticks every 100 ms: the writer compares the expiry on each tick.
    let d = Embedded::start_with(|c| c.heartbeat_ms = 100, true).await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let claims =
        serde_json::json!({"sub": ann.info.id, "name": "Ann", "role": "member", "exp": u64::MAX});
    let token = jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encode");
    let how = Connect {
        token: Some(&token),
        ..Connect::default()
    };
    let mut client = Client::open(&d.gateway(0), how).await.expect("accepted");
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.round_trip().await;
    }
    client
        .post(&g, "still here")
        .await
        .expect("the connection works");
}

/// Sends a valid upgrade request and resets the TCP connection at once, so the gateway's 101
/// cannot be written and the upgrade never completes.
async fn abandoned_upgrade(base: &str, token: &str) {
    let addr = base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    #[allow(deprecated)]
    tcp.set_linger(Some(Duration::ZERO)).expect("linger");
    drop(tcp);
}

#[tokio::test]
async fn a_handshake_whose_upgrade_never_completes_leaves_the_hub() {
    let d = Embedded::start().await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    for _ in 0..20 {
        abandoned_upgrade(&d.gateway(0), &ann.token).await;
    }
    let hub = &d.node().state.hub;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !hub.connections().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} abandoned handshakes are still registered in the hub",
            hub.connections().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The user's connection slots came back too: a normal connection is accepted.
    let mut client = ann.connect(&d, 0).await;
    client.round_trip().await;
}
