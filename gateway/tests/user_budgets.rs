//! The per-user handshake and history budgets over real sockets and HTTP (issue #14, the soak's
//! finding: an abuser's reconnect loop and history flood were never refused). Over budget:
//! 429 `rate_limited` with Retry-After; another user is unaffected; a user's refused
//! handshakes spend none of the node's shared handshake rate; and over two gateway processes
//! on a real Redis each budget is still one.

mod support;

use chat_shared::protocol::identity::Role;
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

#[tokio::test]
async fn both_budgets_hold_across_two_gateways() {
    let env = [
        ("USER_HANDSHAKES_PER_MIN", "3"),
        ("USER_HISTORY_REQUESTS_PER_MIN", "4"),
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
}
