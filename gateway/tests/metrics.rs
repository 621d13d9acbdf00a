//! `/metrics` scraped over HTTP from running parts: an embedded gateway (which also serves its
//! in-process router's and bot's metrics) and a distributed deployment of real processes, where
//! a NATS restart must show as reconnects on every binary. Also checks that every metric the
//! Grafana dashboard (`docs/grafana-dashboard.json`) queries is one the binaries expose.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chat_shared::protocol::identity::Role;
use serde_json::json;
use support::distributed::{Distributed, Topology};
use support::{Deployment, Embedded, Scope, http, user};
use testkit::{ChildService, cargo_bin, free_port};

/// How long a metric may take to show a change that already happened elsewhere (a reconnect).
const BOUND: Duration = Duration::from_secs(30);

/// One scrape of a `/metrics` page.
struct Scrape(String);

impl Scrape {
    async fn of(base: &str) -> Scrape {
        let response = http()
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics answers");
        assert!(response.status().is_success());
        Scrape(response.text().await.expect("metrics text"))
    }

    /// The sum of the samples of `name` whose labels include every one of `labels`
    /// (`key="value"` strings); `None` when there is no such sample.
    fn value(&self, name: &str, labels: &[&str]) -> Option<f64> {
        let mut found = None;
        for line in self.0.lines().filter(|l| !l.starts_with('#')) {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            let (label_part, value) = match rest.strip_prefix('{') {
                Some(inner) => match inner.split_once("} ") {
                    Some((labels, value)) => (labels, value),
                    None => continue,
                },
                None => match rest.strip_prefix(' ') {
                    Some(value) => ("", value),
                    None => continue,
                },
            };
            if labels
                .iter()
                .all(|l| label_part.split(',').any(|p| p == *l))
            {
                let value: f64 = value.split(' ').next().and_then(|v| v.parse().ok())?;
                found = Some(found.unwrap_or(0.0) + value);
            }
        }
        found
    }

    fn get(&self, name: &str, labels: &[&str]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| {
            panic!("no sample {name}{labels:?} in:\n{}", self.0);
        })
    }

    /// Every series name the page declares: from `# TYPE` lines, with the suffixes its
    /// samples take (`_total`, `_bucket`/`_sum`/`_count`), so families without samples yet
    /// count too.
    fn series_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for line in self.0.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let mut parts = rest.split(' ');
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        }
        names
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_send_moves_frames_latency_and_dependency_metrics() {
    let d = Embedded::start().await;
    let base = d.ops(0);
    let before = Scrape::of(&base).await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut client = ann.connect(&d, 0).await;
    let reference = client.send(json!({"guildId": g, "text": "hi"})).await;
    client.answer(&reference).await.expect("ack");
    client.message().await;
    let after = Scrape::of(&base).await;

    let grew = |name: &str, labels: &[&str]| {
        let old = before.value(name, labels).unwrap_or(0.0);
        let new = after.get(name, labels);
        assert!(new > old, "{name}{labels:?} did not grow: {old} -> {new}");
    };
    grew("chat_gateway_frames_out_total", &[r#"type="hello""#]);
    grew("chat_gateway_frames_out_total", &[r#"type="ack""#]);
    grew("chat_gateway_frames_out_total", &[r#"type="message""#]);
    grew("chat_gateway_frames_in_total", &[r#"type="send""#]);
    grew("chat_gateway_sends_total", &[r#"outcome="ack""#]);
    grew("chat_gateway_delivery_latency_seconds_count", &[]);
    grew("chat_gateway_fanout_size_count", &[]);
    grew("chat_gateway_connections_opened_total", &[]);
    grew("chat_bus_call_duration_seconds_count", &[r#"op="submit""#]);
    grew("chat_bus_call_duration_seconds_count", &[r#"op="append""#]);
    grew("chat_store_call_duration_seconds_count", &[r#"op="get""#]);
    grew("chat_router_sends_total", &[r#"outcome="ack""#]);
    grew("chat_router_route_duration_seconds_count", &[]);
    assert_eq!(after.get("chat_gateway_connections", &[]), 1.0);
    assert_eq!(
        after.get("chat_bus_call_errors_total", &[r#"op="submit""#]),
        0.0
    );
    after.get("chat_nats_reconnects_total", &[]);
    after.get("chat_bot_jobs_total", &[r#"outcome="answered""#]);
    let latency_sum = after.get("chat_gateway_delivery_latency_seconds_sum", &[]);
    assert!(
        (0.0..60.0).contains(&latency_sum),
        "latency is measured from the message's ts: {latency_sum}"
    );
}

/// The metric names a PromQL expression refers to (`chat_…` identifiers).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("chat_") {
        let preceded_by_ident = rest[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded_by_ident {
            names.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// Every `expr` of every panel target in the dashboard.
fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    let mut exprs = Vec::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        let nested = panel["panels"].as_array().cloned().unwrap_or_default();
        for p in std::iter::once(panel).chain(nested.iter()) {
            for target in p["targets"].as_array().cloned().unwrap_or_default() {
                if let Some(expr) = target["expr"].as_str() {
                    exprs.push(expr.to_owned());
                }
            }
        }
    }
    exprs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_only_metrics_the_binaries_expose() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/grafana-dashboard.json"
    );
    let text = std::fs::read_to_string(path).expect("dashboard file");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    assert!(dashboard["schemaVersion"].as_u64().expect("schemaVersion") >= 36);
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "a Prometheus datasource variable"
    );

    // Embedded mode serves every family in one process (gateway, router, bot, bus, store,
    // NATS); an LLM backend registers the model-request histogram (no request is made).
    let d = Embedded::start_with(
        |c| c.bot.bot_llm_base_url = Some("http://127.0.0.1:9/v1".to_owned()),
        true,
    )
    .await;
    // Families with labels show once they have a series: refuse a handshake, send, close.
    let refused = http()
        .get(format!("{}/ws", d.gateway(0)))
        .send()
        .await
        .expect("refusal");
    // A plain GET is refused before any other check (cost order): 400, counted as a refusal.
    assert_eq!(refused.status().as_u16(), 400);
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut client = ann.connect(&d, 0).await;
    client.post(&g, "hi").await.expect("ack");
    client.drop_connection().await;
    wait_for_metric(&d.ops(0), "chat_gateway_connections_closed_total", &[], 1.0).await;
    let known = Scrape::of(&d.ops(0)).await.series_names();
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 12, "panels with queries: {}", exprs.len());
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr}");
        for name in names {
            assert!(
                known.contains(&name),
                "dashboard queries {name}, which no binary exposes (expr: {expr})\nknown: {known:#?}"
            );
        }
    }
}

/// Starts a worker binary of the deployment with its ops server on a known port.
async fn worker(d: &Distributed, name: &str, ready_line: &str) -> (ChildService, String) {
    let port = free_port();
    let env = vec![
        ("NATS_URL".to_owned(), d.nats.url()),
        ("REDIS_URL".to_owned(), d.redis.url()),
        ("LISTEN_ADDR".to_owned(), format!("127.0.0.1:{port}")),
        ("RUST_LOG".to_owned(), "info".to_owned()),
    ];
    let service = ChildService::spawn(cargo_bin(name), Vec::<String>::new(), env);
    assert!(
        service
            .wait_for_output(ready_line, Duration::from_secs(30))
            .await,
        "{name} did not start:\n{}",
        service.log_tail(30)
    );
    (service, format!("http://127.0.0.1:{port}"))
}

/// Waits until `name` at `base` reaches `at_least`.
async fn wait_for_metric(base: &str, name: &str, labels: &[&str], at_least: f64) {
    let deadline = Instant::now() + BOUND;
    loop {
        let value = Scrape::of(base).await.value(name, labels).unwrap_or(0.0);
        if value >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} at {base} stayed at {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_binaries_expose_their_metrics_and_count_nats_reconnects() {
    let d = Distributed::start_with(Topology {
        gateways: 1,
        routers: 0,
        bots: 0,
        nats_nodes: 1,
        env: Vec::new(),
    })
    .await;
    let (_router, router) = worker(&d, "router-worker", "router worker serving").await;
    let (_bot, bot) = worker(&d, "bot-worker", "bot worker taking jobs").await;
    let gateway = d.ops(0);

    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut client = ann.connect(&d, 0).await;
    let reference = client
        .send(json!({"guildId": g, "text": "/help", "requestBot": true}))
        .await;
    client.answer(&reference).await.expect("ack");
    let reply = loop {
        let m = client.message().await;
        if m.message.from.id == "bot" {
            break m;
        }
    };
    assert!(reply.message.message_id.ends_with("-bot"));

    let gateway_page = Scrape::of(&gateway).await;
    assert!(gateway_page.get("chat_gateway_frames_out_total", &[r#"type="ack""#]) >= 1.0);
    assert!(gateway_page.get("chat_gateway_delivery_latency_seconds_count", &[]) >= 2.0);
    assert!(gateway_page.get("chat_bus_call_duration_seconds_count", &[r#"op="submit""#]) >= 1.0);
    assert!(gateway_page.get("chat_store_call_duration_seconds_count", &[r#"op="get""#]) >= 1.0);
    wait_for_metric(
        &router,
        "chat_router_sends_total",
        &[r#"outcome="ack""#],
        2.0,
    )
    .await;
    let router_page = Scrape::of(&router).await;
    assert!(router_page.get("chat_bus_call_duration_seconds_count", &[r#"op="append""#]) >= 2.0);
    assert!(router_page.get("chat_bus_call_duration_seconds_count", &[r#"op="publish""#]) >= 2.0);
    wait_for_metric(&bot, "chat_bot_jobs_total", &[r#"outcome="answered""#], 1.0).await;
    let bot_page = Scrape::of(&bot).await;
    assert!(bot_page.get("chat_bus_call_duration_seconds_count", &[r#"op="job_ack""#]) >= 1.0);
    assert!(bot_page.get("chat_bot_answer_duration_seconds_count", &[]) >= 1.0);

    let reconnects_before = [
        gateway_page.get("chat_nats_reconnects_total", &[]),
        router_page.get("chat_nats_reconnects_total", &[]),
        bot_page.get("chat_nats_reconnects_total", &[]),
    ];
    d.nats.stop();
    d.nats.start_again();
    for (base, before) in [&gateway, &router, &bot].into_iter().zip(reconnects_before) {
        wait_for_metric(base, "chat_nats_reconnects_total", &[], before + 1.0).await;
        let page = Scrape::of(base).await;
        assert!(
            page.get(
                "chat_nats_connection_events_total",
                &[r#"event="disconnected""#]
            ) >= 1.0
        );
    }
}
