//! Slowloris and exposure over real sockets (issue #14, item 6): a client that never finishes
//! its request headers is disconnected after `HEADER_READ_TIMEOUT_MS`, and the page is served
//! with conservative security headers (CSP with `frame-ancestors 'none'`, nosniff, referrer).

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
