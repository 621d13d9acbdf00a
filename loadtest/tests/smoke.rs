//! Smoke tests of every scenario at a small scale: the ceiling against its in-process bare
//! server, and idle / fanout / storm against a real embedded gateway started as a child
//! process on a free loopback port.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chat_shared::protocol::codec::Encoding;
use loadtest::{CeilingMode, LoadShape, Report, RunConfig, Scenario, UserSource};

const JWT_SECRET: &str = "loadtest-smoke-secret-0123456789";

fn small_shape() -> LoadShape {
    LoadShape {
        clients: 20,
        guilds: 4,
        guilds_per_client: 2,
        senders: 4,
        rate: 20.0,
        message_bytes: 100,
        drain: Duration::from_secs(10),
    }
}

fn timed(scenario: Scenario) -> RunConfig {
    RunConfig {
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(2),
        ..RunConfig::new(scenario)
    }
}

fn assert_clean_delivery(report: &Report) {
    let delivery = report.delivery.as_ref().expect("a delivery section");
    assert!(delivery.received > 0, "{}", report.render());
    assert_eq!(delivery.received, delivery.expected, "{}", report.render());
    assert_eq!(delivery.delivery_ratio, 1.0, "{}", report.render());
    assert_eq!(delivery.duplicates, 0, "{}", report.render());
    assert_eq!(delivery.refused, 0, "{}", report.render());
    assert_eq!(delivery.foreign, 0, "{}", report.render());
}

#[tokio::test(flavor = "multi_thread")]
async fn ceiling_in_process_delivers_everything_once_in_order() {
    for encoding in [Encoding::Json, Encoding::MsgPack] {
        let config = RunConfig {
            encoding,
            users: UserSource::Open,
            ..timed(Scenario::Ceiling {
                shape: small_shape(),
                mode: CeilingMode::InProcess,
            })
        };
        let report = loadtest::run(&config).await.expect("ceiling run");
        assert_eq!(report.connections.connected, 20, "{}", report.render());
        assert_clean_delivery(&report);
        let delivery = report.delivery.as_ref().expect("delivery");
        assert_eq!(delivery.out_of_order, 0, "{}", report.render());
        assert!(report.failures.is_empty(), "{}", report.render());
        assert!(!report.timeline.is_empty() && !report.cdf.is_empty());
        let server = report
            .server
            .as_ref()
            .expect("the ceiling's threads are watched");
        assert!(server.cpu_us_per_delivery.is_some(), "{}", report.render());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_connections_are_counted_not_fatal() {
    let closed_port = free_port();
    let config = RunConfig {
        targets: vec![format!("ws://127.0.0.1:{closed_port}/ws")],
        users: UserSource::Open,
        connect_timeout: Duration::from_secs(2),
        ..timed(Scenario::Ceiling {
            shape: small_shape(),
            mode: CeilingMode::External,
        })
    };
    let report = loadtest::run(&config).await.expect("the run completes");
    assert_eq!(report.connections.connected, 0);
    assert_eq!(
        report.failures.get("io connection refused"),
        Some(&20),
        "{}",
        report.render()
    );
    assert!(
        report
            .failures
            .keys()
            .any(|k| k.starts_with("senders missing"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_the_handshake_times_out_cleanly() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            sockets.push(socket);
        }
    });
    let config = RunConfig {
        targets: vec![format!("ws://127.0.0.1:{port}/ws")],
        users: UserSource::Open,
        connect_timeout: Duration::from_millis(500),
        ..timed(Scenario::Ceiling {
            shape: LoadShape {
                clients: 5,
                senders: 1,
                ..small_shape()
            },
            mode: CeilingMode::External,
        })
    };
    let report = loadtest::run(&config).await.expect("the run completes");
    held.abort();
    assert_eq!(
        report.failures.get("connect timeout"),
        Some(&5),
        "{}",
        report.render()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn report_writes_json_and_svg() {
    let config = RunConfig {
        users: UserSource::Open,
        ..timed(Scenario::Ceiling {
            shape: LoadShape {
                clients: 10,
                guilds: 2,
                guilds_per_client: 1,
                senders: 2,
                ..small_shape()
            },
            mode: CeilingMode::InProcess,
        })
    };
    let report = loadtest::run(&config).await.expect("ceiling run");
    let dir = tempfile::tempdir().expect("temp dir");
    let svg = dir.path().join("plot.svg");
    loadtest::plot::write_svg(&report, svg.to_str().expect("utf-8 path")).expect("plot");
    let drawn = std::fs::read_to_string(&svg).expect("svg written");
    assert!(drawn.contains("<svg") && drawn.contains("latency CDF"));
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["run"]["scenario"], "ceiling");
    assert_eq!(json["delivery"]["delivery_ratio"], 1.0);
}

/// An embedded gateway child process, killed on drop.
struct Gateway {
    child: Child,
    url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `target/debug/gateway`, next to this test's `deps/` directory; built when missing.
fn gateway_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile_dir.join("gateway");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "gateway", "--bin", "gateway"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p gateway failed");
    }
    binary
}

async fn start_gateway() -> Gateway {
    let port = free_port();
    let child = Command::new(gateway_binary())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DEV_LOGIN", "true")
        .env("JWT_SECRET", JWT_SECRET)
        .env("RUST_LOG", "warn")
        .env_remove("NATS_URL")
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the gateway");
    let mut gateway = Gateway {
        child,
        url: format!("ws://127.0.0.1:{port}/ws"),
    };
    wait_healthy(&mut gateway, port).await;
    gateway
}

async fn wait_healthy(gateway: &mut Gateway, port: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = gateway.child.try_wait() {
            panic!("the gateway exited early: {status}");
        }
        let health = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn against(gateway: &Gateway, scenario: Scenario) -> RunConfig {
    RunConfig {
        targets: vec![gateway.url.clone()],
        users: UserSource::DevLogin,
        watch: vec![loadtest::watch::WatchTarget::Pid(gateway.child.id())],
        ..timed(scenario)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_holds_every_connection_against_a_gateway() {
    let gateway = start_gateway().await;
    let shape = LoadShape {
        clients: 30,
        ..small_shape()
    };
    let config = RunConfig {
        duration: Duration::from_secs(1),
        ..against(&gateway, Scenario::Idle(shape))
    };
    let report = loadtest::run(&config).await.expect("idle run");
    assert_eq!(report.connections.connected, 30, "{}", report.render());
    assert_eq!(report.connections.handshake.count, 30);
    assert!(report.failures.is_empty(), "{}", report.render());
    let server = report.server.as_ref().expect("the gateway is watched");
    assert!(server.rss_kib_after_connect.is_some_and(|r| r > 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn fanout_against_a_gateway_delivers_every_message_once() {
    let gateway = start_gateway().await;
    let config = against(&gateway, Scenario::Fanout(small_shape()));
    let report = loadtest::run(&config).await.expect("fanout run");
    assert_eq!(report.connections.connected, 20, "{}", report.render());
    assert_clean_delivery(&report);
    let delivery = report.delivery.as_ref().expect("delivery");
    assert_eq!(delivery.out_of_order, 0, "{}", report.render());
    assert!(
        report
            .server
            .as_ref()
            .is_some_and(|s| s.cpu_us_per_delivery.is_some())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn storm_against_a_gateway_resumes_everyone_without_loss() {
    let gateway = start_gateway().await;
    let config = RunConfig {
        encoding: Encoding::MsgPack,
        ..against(&gateway, Scenario::Storm(small_shape()))
    };
    let report = loadtest::run(&config).await.expect("storm run");
    let storm = report.storm.as_ref().expect("a storm section");
    assert_eq!(storm.clients_dropped, 20, "{}", report.render());
    assert_eq!(storm.clients_resumed, 20, "{}", report.render());
    assert!(storm.all_resumed_ms.is_some(), "{}", report.render());
    assert_eq!(storm.lost, 0, "{}", report.render());
    assert_eq!(storm.duplicates, 0, "{}", report.render());
    assert!(storm.handshakes_per_s.is_some(), "{}", report.render());
    // Every resumed connection gets its guild's presence snapshot again (issue #13).
    assert!(
        storm.presence_per_client.snapshots >= 1.0,
        "{}",
        report.render()
    );
    assert_clean_delivery(&report);
}
