//! The harness itself: servers start, stop keeping their port, and start again.

use std::time::Duration;

use testkit::{ChildService, NatsServer, RedisServer, free_port, wait_for_http_ok, wait_for_tcp};

#[tokio::test]
async fn nats_server_stops_and_starts_again_on_its_port() {
    let nats = NatsServer::start();
    let addr = format!("127.0.0.1:{}", nats.port());
    assert!(nats.url().ends_with(&addr));
    wait_for_tcp(&addr, Duration::from_secs(1)).await.unwrap();
    nats.stop();
    assert!(wait_for_tcp(&addr, Duration::ZERO).await.is_err());
    nats.start_again();
    wait_for_tcp(&addr, Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn redis_server_stops_and_starts_again_on_its_port() {
    let redis = RedisServer::start();
    let addr = format!("127.0.0.1:{}", redis.port());
    redis.stop();
    assert!(wait_for_tcp(&addr, Duration::ZERO).await.is_err());
    redis.start_again();
    wait_for_tcp(&addr, Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn child_service_captures_output_and_stops_on_sigterm() {
    let mut child = ChildService::spawn("sh", ["-c", "echo ready; exec sleep 30"], [("X", "1")]);
    assert!(
        child
            .wait_for_output("ready", Duration::from_secs(10))
            .await
    );
    assert!(child.is_running());
    child.terminate();
    let status = child.wait_exit(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| !s.success()));
    assert_eq!(child.log_tail(5), "ready");
}

#[tokio::test]
async fn http_wait_reports_a_timeout_when_nothing_listens() {
    let url = format!("http://127.0.0.1:{}/healthz", free_port());
    let error = wait_for_http_ok(&url, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
}

#[tokio::test]
async fn wait_for_line_reads_a_printed_address_or_gives_up_when_the_child_ends() {
    // (script, prefix, expected rest of the line)
    let cases = [
        (
            "echo 'noise'; echo 'on http://127.0.0.1:4321'; sleep 5",
            "on http://",
            Some("127.0.0.1:4321"),
        ),
        ("echo 'cannot listen'; exit 2", "on http://", None),
    ];
    for (script, prefix, expected) in cases {
        let mut child =
            ChildService::spawn("/bin/sh", ["-c", script], Vec::<(String, String)>::new());
        let started = std::time::Instant::now();
        let got = child.wait_for_line(prefix, Duration::from_secs(20)).await;
        assert_eq!(got.as_deref(), expected, "{script}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{script}: gave up only at the timeout"
        );
    }
}
