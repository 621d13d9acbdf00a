//! The per-user handshake, resume and history budgets over real sockets and HTTP (issue #14,
//! the soak's finding: an abuser's reconnect loop and history flood were never refused, and
//! each new connection brought a fresh resume allowance). Over budget: 429 `rate_limited` with
//! Retry-After (a resume: an `error` `rate_limited`); another user is unaffected; a user's
//! refused handshakes spend none of the node's shared handshake rate; and over two gateway
//! processes on a real Redis each budget is still one.

mod support;

use chat_shared::protocol::ServerFrame;
use chat_shared::protocol::identity::Role;
use serde_json::json;
use support::client::Client;
use support::distributed::{Distributed, Topology};
use support::{Deployment, Embedded, Scope, TestUser, http, user};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A refusal: status, `error` code, Retry-After seconds.
type Refused = (u16, String, Option<u64>);

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Opens `/ws` on gateway `i` as `u`; the open socket, or the refusal.
async fn open(
    d: &impl Deployment,
    i: usize,
    u: &TestUser,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Refused,
> {
    let url = format!("{}/ws", d.gateway(i).replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("request");
    let value = format!("Bearer {}", u.token).parse().expect("header");
    request.headers_mut().insert("authorization", value);
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let error = json["error"].as_str().unwrap_or_default().to_owned();
            Err((
                response.status().as_u16(),
                error,
                retry_after(response.headers()),
            ))
        }
        Err(other) => panic!("connect failed: {other}"),
    }
}

/// One history page on gateway `i` (`legacy`: the original system's path); status and
/// Retry-After.
async fn history(
    d: &impl Deployment,
    i: usize,
    u: &TestUser,
    guild: &str,
    legacy: bool,
) -> (u16, Option<u64>) {
    let path = if legacy {
        format!("/api/chat/{guild}/history?limit=10")
    } else {
        format!("/api/guilds/{guild}/messages?limit=10")
    };
    let response = http()
        .get(format!("{}{path}", d.gateway(i)))
        .bearer_auth(&u.token)
        .send()
        .await
        .expect("history request");
    let retry = retry_after(response.headers());
    let status = response.status().as_u16();
    if status == 429 {
        let body: serde_json::Value = response.json().await.expect("json body");
        assert_eq!(body["error"], "rate_limited");
    }
    (status, retry)
}

fn assert_rate_limited(refused: &Refused) {
    assert_eq!((refused.0, refused.1.as_str()), (429, "rate_limited"));
    assert!(
        refused.2.is_some_and(|s| s >= 1),
        "429 without Retry-After: {refused:?}"
    );
}

#[tokio::test]
async fn a_users_reconnect_loop_is_refused_and_spends_none_of_the_nodes_handshake_rate() {
    let d = Embedded::start_with(
        |c| {
            c.user_budgets.user_handshakes_per_min = 2;
            c.user_budgets.user_handshake_burst = 2;
            c.connection_limits.max_handshakes_per_sec = 1;
            c.connection_limits.handshake_burst = 4;
        },
        true,
    )
    .await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;
    for _ in 0..2 {
        drop(open(&d, 0, &ann).await.expect("within the user's budget"));
    }
    for _ in 0..20 {
        let refused = open(&d, 0, &ann).await.expect_err("over the budget");
        assert_rate_limited(&refused);
    }
    // The node's burst of 4 minus ann's 2: bob still gets in from the same address, so the
    // 20 refusals spent none of it (they would have, checked after the node's rate).
    open(&d, 0, &bob)
        .await
        .expect("another user is not refused");
}

#[tokio::test]
async fn history_pages_are_refused_over_the_users_budget_on_both_paths() {
    let d = Embedded::start_with(|c| c.user_budgets.user_history_requests_per_min = 3, true).await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;
    for legacy in [false, true, false] {
        assert_eq!(history(&d, 0, &ann, &g, legacy).await.0, 200);
    }
    for legacy in [false, true] {
        let (status, retry) = history(&d, 0, &ann, &g, legacy).await;
        assert_eq!(status, 429, "legacy path: {legacy}");
        assert!(retry.is_some_and(|s| s >= 1), "429 without Retry-After");
    }
    assert_eq!(history(&d, 0, &bob, &g, false).await.0, 200, "another user");
}

/// Sends one `resume` of `guild` from 0 and reads its answer: true when it ran (`resumed`),
/// false when the frame was refused `rate_limited`.
async fn resume(client: &mut Client, guild: &str) -> bool {
    client
        .send_value(json!({"type": "resume", "positions": {guild: 0}}))
        .await;
    loop {
        match client.recv().await {
            ServerFrame::Resumed(_) => return true,
            ServerFrame::Error(e) => {
                assert_eq!(e.code.as_str(), "rate_limited");
                return false;
            }
            ServerFrame::Message(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn resumes_are_counted_per_user_not_per_connection() {
    let d = Embedded::start_with(|c| c.user_budgets.user_resumes_per_min = 3, true).await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;
    // Each new connection has its own allowance of 4 at once (RESUME_FRAMES_PER_MIN's burst);
    // the user's budget of 3 holds over all of them.
    let mut ran = 0;
    for _ in 0..3 {
        let mut a = ann.connect(&d, 0).await;
        for _ in 0..2 {
            ran += usize::from(resume(&mut a, &g).await);
        }
    }
    assert_eq!(ran, 3, "3 of 6 resumes over three connections ran");
    let mut b = bob.connect(&d, 0).await;
    assert!(resume(&mut b, &g).await, "another user's resume runs");
}

#[tokio::test]
async fn both_budgets_hold_across_two_gateways() {
    let env = [
        ("USER_HANDSHAKES_PER_MIN", "3"),
        ("USER_HANDSHAKE_BURST", "3"),
        ("USER_HISTORY_REQUESTS_PER_MIN", "4"),
        ("USER_RESUMES_PER_MIN", "2"),
    ];
    let d = Distributed::start_with(Topology {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Topology::default()
    })
    .await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    // Handshakes: 3 in all, over both gateways; a budget per gateway would allow 6.
    let mut held = Vec::new();
    for i in [0, 1, 0] {
        held.push(open(&d, i, &ann).await.expect("within the budget"));
    }
    for i in [1, 0] {
        let refused = open(&d, i, &ann).await.expect_err("over the shared budget");
        assert_rate_limited(&refused);
    }
    // History: 4 in all, over both gateways.
    for i in [0, 1, 0, 1] {
        assert_eq!(history(&d, i, &ann, &g, false).await.0, 200);
    }
    for i in [0, 1] {
        assert_eq!(history(&d, i, &ann, &g, false).await.0, 429, "gateway {i}");
    }
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;
    open(&d, 1, &bob).await.expect("another user");
    assert_eq!(history(&d, 1, &bob, &g, false).await.0, 200);
    // Resumes: 2 in all, over a connection on each gateway.
    let cat = user(&d, &s.user_id("cat"), Role::Member, &[&g]).await;
    let (mut on_first, mut on_second) = (cat.connect(&d, 0).await, cat.connect(&d, 1).await);
    assert!(resume(&mut on_first, &g).await);
    assert!(resume(&mut on_second, &g).await);
    assert!(!resume(&mut on_second, &g).await, "over the shared budget");
    assert!(!resume(&mut on_first, &g).await, "over the shared budget");
}
