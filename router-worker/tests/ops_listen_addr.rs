//! The ops listener's address (`LISTEN_ADDR`) as a started router-worker process sees it: one
//! another process holds fails the start with one clear line (before, the worker ran on
//! without `/healthz` and `/metrics`), and port 0 binds a free port and prints the one it got,
//! so a test harness never picks a port that could be handed to someone else before the bind.

use std::net::TcpListener;
use std::time::Duration;

use testkit::{ChildService, NatsServer, cargo_bin, wait_for_http_ok};

/// How long a router may take to start (or to give up).
const READY: Duration = Duration::from_secs(60);
/// What the worker prints once its ops listener is bound.
const SERVING: &str = "router-worker serving (ops on ";

fn router(nats: &NatsServer, listen_addr: &str) -> ChildService {
    let vars = [
        ("NATS_URL", nats.url()),
        ("LISTEN_ADDR", listen_addr.to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    ChildService::spawn(cargo_bin("router-worker"), Vec::<String>::new(), vars)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_listen_addr_fails_the_start() {
    let nats = NatsServer::start();
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = holder.local_addr().expect("addr").to_string();
    let mut service = router(&nats, &taken);
    let status = service.wait_exit(READY).await;
    let log = service.log_tail(20);
    assert!(
        status.is_some_and(|s| !s.success()),
        "still running with its ops address taken:\n{log}"
    );
    assert!(log.contains(&format!("cannot listen on {taken}")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_zero_prints_the_port_it_got() {
    let nats = NatsServer::start();
    let mut service = router(&nats, "127.0.0.1:0");
    let printed = service.wait_for_line(SERVING, READY).await;
    let addr = (printed.as_deref().and_then(|rest| rest.strip_suffix(')')))
        .unwrap_or_else(|| panic!("not serving:\n{}", service.log_tail(20)))
        .to_owned();
    assert!(!addr.ends_with(":0"), "printed {addr}");
    wait_for_http_ok(&format!("http://{addr}/healthz"), READY)
        .await
        .unwrap_or_else(|e| panic!("no /healthz on {addr}: {e}"));
}
