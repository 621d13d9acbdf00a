//! Connection limits over real sockets: the node's connection cap and handshake rate (503
//! `unavailable` with Retry-After), and the per-user cap (429 `too_many_connections`) in
//! embedded mode and across two gateway processes sharing a real Redis, including the leases
//! of a killed gateway coming back after their lifetime.

mod support;

use std::time::Duration;

use chat_shared::protocol::identity::Role;
use futures::StreamExt;
use futures::future::join_all;
use support::distributed::{Distributed, Topology};
use support::{Deployment, Embedded, Scope, TestUser, http, user};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for a slot to come back.
const WAIT: Duration = Duration::from_secs(20);

/// A refused handshake as a client sees it.
#[derive(Debug)]
struct Refused {
    status: u16,
    error: String,
    retry_after: Option<u64>,
}

/// Opens `/ws` on `base` with `token` (if any) and reads the first frame (`hello`).
async fn open(base: &str, token: Option<&str>) -> Result<Socket, Refused> {
    let url = format!("{}/ws", base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("request");
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("header");
        request.headers_mut().insert("authorization", value);
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut socket, _)) => {
            let hello = socket.next().await.expect("a first frame").expect("read");
            assert!(hello.to_text().expect("text").contains("\"hello\""));
            Ok(socket)
        }
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            Err(Refused {
                status: response.status().as_u16(),
                error: json["error"].as_str().unwrap_or_default().to_owned(),
                retry_after: response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok()),
            })
        }
        Err(other) => panic!("connect failed: {other}"),
    }
}

/// Opens for `u` on gateway `i`, expecting to be accepted.
async fn accepted(d: &impl Deployment, i: usize, u: &TestUser) -> Socket {
    open(&d.gateway(i), Some(&u.token))
        .await
        .unwrap_or_else(|r| panic!("refused: {r:?}"))
}

/// Opens for `u` on gateway `i`, expecting a refusal.
async fn refused(d: &impl Deployment, i: usize, u: &TestUser) -> Refused {
    match open(&d.gateway(i), Some(&u.token)).await {
        Ok(_) => panic!("accepted beyond the limit"),
        Err(refusal) => refusal,
    }
}

/// Retries until `u` is accepted on gateway `i`: waiting for a slot to come back.
async fn accepted_eventually(d: &impl Deployment, i: usize, u: &TestUser) -> Socket {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match open(&d.gateway(i), Some(&u.token)).await {
            Ok(socket) => return socket,
            Err(refusal) => assert!(
                tokio::time::Instant::now() < deadline,
                "still refused: {refusal:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_unavailable(refusal: &Refused) {
    assert_eq!(refusal.status, 503, "{refusal:?}");
    assert_eq!(refusal.error, "unavailable");
    assert!(refusal.retry_after.is_some_and(|s| s >= 1), "{refusal:?}");
}

fn assert_too_many(refusal: &Refused) {
    assert_eq!(refusal.status, 429, "{refusal:?}");
    assert_eq!(refusal.error, "too_many_connections");
    assert!(refusal.retry_after.is_some_and(|s| s >= 1), "{refusal:?}");
}

/// Closes a socket and waits for the server's close (the connection task then ends).
async fn close(mut socket: Socket) {
    socket.close(None).await.expect("close");
    while let Some(Ok(_)) = socket.next().await {}
}

/// Whether `/metrics` of `base` counts a handshake refusal with `reason`.
async fn refusal_counted(base: &str, reason: &str) -> bool {
    let text = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines().any(|line| {
        line.contains("handshake_refusals")
            && line.contains(&format!("reason=\"{reason}\""))
            && !line.ends_with(" 0")
    })
}

/// Waits until exactly `n` connections hold node slots of the embedded gateway.
async fn wait_for_node_connections(d: &Embedded, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while d.node().state.admission.node_connections() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slots never settled at {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_node_cap_refuses_with_503_until_a_connection_closes() {
    let d = Embedded::start_with(
        |c| {
            c.connection_limits.max_connections = 2;
            c.connection_limits.max_connections_per_user = 0;
        },
        true,
    )
    .await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;

    let first = accepted(&d, 0, &ann).await;
    let _second = accepted(&d, 0, &bob).await;
    let third = refused(&d, 0, &ann).await;
    assert_unavailable(&third);
    let tokenless = open(&d.gateway(0), None).await.expect_err("refused");
    assert_eq!(
        tokenless.status, 401,
        "cheap refusals come first: {tokenless:?}"
    );
    assert!(refusal_counted(&d.ops(0), "node_full").await);

    close(first).await;
    wait_for_node_connections(&d, 1).await;
    let _again = accepted(&d, 0, &ann).await;
    assert_eq!(d.node().state.admission.node_connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_cap_is_exact_under_concurrent_handshakes() {
    let d = Embedded::start_with(
        |c| {
            c.connection_limits.max_connections = 5;
            c.connection_limits.max_connections_per_user = 0;
            // 30 handshakes of one user at once: only the node cap may answer them.
            c.user_budgets.user_handshakes_per_min = 0;
        },
        true,
    )
    .await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let base = d.gateway(0);

    let attempts = (0..30).map(|_| open(&base, Some(&ann.token)));
    let outcomes = join_all(attempts).await;

    let open_sockets: Vec<&Socket> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(open_sockets.len(), 5);
    for refusal in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_unavailable(refusal);
    }
    assert_eq!(d.node().state.admission.node_connections(), 5);
    drop(outcomes);
    wait_for_node_connections(&d, 0).await;
}

#[tokio::test]
async fn the_handshake_rate_refuses_with_503_after_the_cheap_checks() {
    let d = Embedded::start_with(
        |c| {
            c.connection_limits.max_handshakes_per_sec = 1;
            c.connection_limits.handshake_burst = 2;
        },
        true,
    )
    .await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;

    let tokenless = open(&d.gateway(0), None).await.expect_err("refused");
    assert_eq!(
        tokenless.status, 401,
        "a missing token is refused before the rate, spending none of it: {tokenless:?}"
    );
    let _a = accepted(&d, 0, &ann).await;
    let _b = accepted(&d, 0, &ann).await;
    let over = refused(&d, 0, &ann).await;
    assert_unavailable(&over);
    assert!(refusal_counted(&d.ops(0), "handshake_rate").await);

    let _later = accepted_eventually(&d, 0, &ann).await;
}

#[tokio::test]
async fn the_per_user_cap_refuses_with_429_in_embedded_mode() {
    let d = Embedded::start_with(|c| c.connection_limits.max_connections_per_user = 2, true).await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;

    let first = accepted(&d, 0, &ann).await;
    let _second = accepted(&d, 0, &ann).await;
    assert_too_many(&refused(&d, 0, &ann).await);
    let _bobs = accepted(&d, 0, &bob).await;
    assert!(refusal_counted(&d.ops(0), "too_many_connections").await);
    assert_eq!(d.node().state.admission.live_leases(), 3);

    close(first).await;
    let _again = accepted_eventually(&d, 0, &ann).await;
    assert_too_many(&refused(&d, 0, &ann).await);
}

fn limited(extra: &[(&str, &str)]) -> Topology {
    // These tests retry one user's handshakes every 50 ms while its cap is full: the per-user
    // handshake budget (user_budgets.rs tests it) is off so only the cap answers.
    let mut env = vec![
        ("MAX_CONNECTIONS_PER_USER".to_owned(), "2".to_owned()),
        ("USER_HANDSHAKES_PER_MIN".to_owned(), "0".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Topology {
        gateways: 2,
        routers: 0,
        bots: 0,
        nats_nodes: 1,
        env,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_cap_holds_across_gateways() {
    let d = Distributed::start_with(limited(&[])).await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;

    let on_first = accepted(&d, 0, &ann).await;
    let _on_second = accepted(&d, 1, &ann).await;
    assert_too_many(&refused(&d, 0, &ann).await);
    assert_too_many(&refused(&d, 1, &ann).await);
    let _bobs = accepted(&d, 1, &bob).await;

    close(on_first).await;
    let _again = accepted_eventually(&d, 1, &ann).await;
    assert_too_many(&refused(&d, 0, &ann).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateways_slots_come_back_after_the_lease() {
    let lease = Duration::from_millis(3_000);
    let mut d = Distributed::start_with(limited(&[("CONNECTION_LEASE_MS", "3000")])).await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;

    let _a = accepted(&d, 0, &ann).await;
    let _b = accepted(&d, 0, &ann).await;
    // Renewal keeps live connections counted well past one lease lifetime.
    tokio::time::sleep(lease * 2).await;
    assert_too_many(&refused(&d, 1, &ann).await);

    d.gateways[0].service.kill();
    let _c = accepted_eventually(&d, 1, &ann).await;
    let _d = accepted_eventually(&d, 1, &ann).await;
    assert_too_many(&refused(&d, 1, &ann).await);
}
