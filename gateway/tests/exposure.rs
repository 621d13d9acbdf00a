//! Slowloris and exposure over real sockets (issue #14, item 6): a client that never finishes
//! its request headers is disconnected after `HEADER_READ_TIMEOUT_MS`, and the page is served
//! with conservative security headers (CSP with `frame-ancestors 'none'`, nosniff, referrer).
//! `/metrics` is served on the ops listener (`OPS_LISTEN_ADDR`) only, never on the public port.

mod support;

use std::time::{Duration, Instant};

use support::{Deployment, Embedded, http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_disconnected() {
    let d = Embedded::start_with(|c| c.header_read_timeout_ms = 500, true).await;
    let addr = d.gateway(0).trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let started = Instant::now();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    // The headers never end: the server must hang up on its own (EOF, or a 408 then EOF).
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the half-sent request was kept open for 10 s"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "not before the timeout"
    );
    // A client that sends its request in time is served as before.
    let page = http().get(d.gateway(0)).send().await.expect("page");
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn the_page_carries_conservative_security_headers() {
    let d = Embedded::start().await;
    for path in ["/", "/static/app.js", "/api/me"] {
        let response = http()
            .get(format!("{}{path}", d.gateway(0)))
            .send()
            .await
            .expect("get");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp:?}");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp:?}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp:?}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    }
}

#[tokio::test]
async fn metrics_are_served_on_the_ops_listener_only() {
    let d = Embedded::start().await;
    let get = |url: String| async move { http().get(url).send().await.expect("get") };
    let public = get(format!("{}/metrics", d.gateway(0))).await;
    assert_eq!(public.status(), 404, "the public port serves /metrics");
    let body: serde_json::Value = public.json().await.expect("json error");
    assert_eq!(body["error"], "not_found");
    let ops = get(format!("{}/metrics", d.ops(0))).await;
    assert_eq!(ops.status(), 200);
    let text = ops.text().await.expect("text");
    assert!(text.contains("chat_gateway_connections"), "{text}");
    for path in ["/healthz", "/readyz"] {
        for base in [d.gateway(0), d.ops(0)] {
            let response = get(format!("{base}{path}")).await;
            assert_eq!(response.status(), 200, "{base}{path}");
        }
    }
    // The ops listener serves nothing else: no page, no API, no WebSocket.
    for path in ["/", "/ws", "/api/me", "/socket.io/"] {
        let response = get(format!("{}{path}", d.ops(0))).await;
        assert_eq!(response.status(), 404, "ops listener serves {path}");
    }
}

#[tokio::test]
async fn the_default_ops_address_falls_back_when_taken_and_a_configured_one_must_bind() {
    // Hold 9090 (or find it already held by something else): the default must still bind.
    let _held = tokio::net::TcpListener::bind(gateway::ops_listener::DEFAULT_OPS_ADDR).await;
    let fallback = gateway::ops_listener::bind(None)
        .await
        .expect("the default falls back to a free loopback port");
    let addr = fallback.local_addr().expect("addr");
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_ne!(addr.port(), 9090);
    assert!(
        gateway::ops_listener::bind(Some(addr)).await.is_err(),
        "a configured address that is taken must stop the start"
    );
}
