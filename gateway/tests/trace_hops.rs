//! One trace across the hops: the real binaries export to a small OTLP/HTTP receiver, and a
//! bot request shows as one trace — gateway receive → router → log append → each gateway's
//! fan-out → bot job → bot reply → router → fan-out — with the right parent links. Run over
//! real NATS (distributed processes) and in embedded mode (one gateway process, memory bus).

mod support;
mod trace_hops {
    pub mod receiver;
}

use std::collections::HashMap;
use std::time::Duration;

use chat_shared::protocol::identity::Role;
use serde_json::{Value, json};
use support::client::{Client, Connect};
use support::distributed::{Distributed, Topology};
use support::{SECRET, Scope, user};
use testkit::{ChildService, cargo_bin, free_port, wait_for_http_ok};
use trace_hops::receiver::{Receiver, SpanRecord, describe};

/// Bound on waiting for the spans of one exchange (they are exported every 100 ms).
const SPANS_WAIT: Duration = Duration::from_secs(30);

fn traced_env(receiver: &Receiver) -> Vec<(String, String)> {
    vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            receiver.endpoint.clone(),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
    ]
}

/// What a bot request produced: the ids of the request and of the reply, with their seqs.
struct Exchange {
    ask_id: String,
    ask_seq: u64,
    reply_id: String,
    reply_seq: u64,
}

/// `asker` asks the bot; every client sees the request, then the reply.
async fn ask_the_bot(asker: &mut Client, others: &mut [Client], guild: &str) -> Exchange {
    let ask = asker.post(guild, "hey @slimy /ping").await.expect("ack");
    let reply_id = format!("{}-bot", ask.message_id);
    let mut reply_seq = 0;
    for client in std::iter::once(asker).chain(others.iter_mut()) {
        assert_eq!(client.message().await.message.message_id, ask.message_id);
        let reply = client.message().await;
        assert_eq!(reply.message.message_id, reply_id);
        reply_seq = reply.seq;
    }
    Exchange {
        ask_id: ask.message_id,
        ask_seq: ask.seq,
        reply_id,
        reply_seq,
    }
}

/// The received spans, indexed by span id.
struct Spans<'a> {
    all: &'a [SpanRecord],
    by_id: HashMap<&'a [u8], &'a SpanRecord>,
}

impl<'a> Spans<'a> {
    fn new(all: &'a [SpanRecord]) -> Self {
        let by_id = all.iter().map(|s| (s.span_id.as_slice(), s)).collect();
        Spans { all, by_id }
    }

    fn named(&self, name: &str) -> impl Iterator<Item = &'a SpanRecord> {
        let name = name.to_owned();
        self.all.iter().filter(move |s| s.name == name)
    }

    fn with_attr(&self, name: &str, key: &str, value: &str) -> Vec<&'a SpanRecord> {
        self.named(name)
            .filter(|s| s.attr(key) == Some(value))
            .collect()
    }

    /// The only span `name` with `key = value`.
    fn one(&self, name: &str, key: &str, value: &str) -> &'a SpanRecord {
        let found = self.with_attr(name, key, value);
        assert_eq!(
            found.len(),
            1,
            "one {name} with {key}={value}; spans:\n{}",
            describe(self.all)
        );
        found[0]
    }

    fn parent(&self, span: &SpanRecord) -> Option<&'a SpanRecord> {
        self.by_id.get(span.parent_span_id.as_slice()).copied()
    }

    /// Whether `ancestor` is reached from `span` by parent links.
    fn descends(&self, span: &SpanRecord, ancestor: &SpanRecord) -> bool {
        let mut current = self.parent(span);
        while let Some(parent) = current {
            if parent.span_id == ancestor.span_id {
                return true;
            }
            current = self.parent(parent);
        }
        false
    }

    /// The `ws.receive` span of the client frame that started `route`'s trace.
    fn receive_of(&self, route: &SpanRecord) -> &'a SpanRecord {
        self.named("ws.receive")
            .find(|r| self.descends(route, r))
            .unwrap_or_else(|| {
                panic!(
                    "no ws.receive above the route; spans:\n{}",
                    describe(self.all)
                )
            })
    }
}

/// Every span the exchange should produce has arrived (`gateways` fan-outs per entry).
fn exchange_complete(spans: &[SpanRecord], e: &Exchange, gateways: usize) -> bool {
    let s = Spans::new(spans);
    let fanouts = |seq: u64| s.with_attr("gateway.fanout", "seq", &seq.to_string()).len();
    s.with_attr("router.route", "message_id", &e.ask_id).len() == 1
        && s.with_attr("router.route", "message_id", &e.reply_id).len() == 1
        && s.named("log.append").count() >= 2
        && s.with_attr("bot.job", "message_id", &e.ask_id).len() == 1
        && s.named("bot.reply").count() >= 1
        && s.named("ws.receive").count() >= 1
        && fanouts(e.ask_seq) >= gateways
        && fanouts(e.reply_seq) >= gateways
}

/// The trace of a bot request, hop by hop, with the service each hop runs in.
fn assert_one_trace(spans: &[SpanRecord], e: &Exchange, services: [&str; 3], gateways: usize) {
    let [gateway, router, bot] = services;
    let s = Spans::new(spans);
    let route_ask = s.one("router.route", "message_id", &e.ask_id);
    let receive = s.receive_of(route_ask);
    let trace = &receive.trace_id;
    let same_trace = |span: &SpanRecord, what: &str| {
        assert_eq!(&span.trace_id, trace, "{what} is on the request's trace");
    };
    assert_eq!(receive.service, gateway);
    assert_eq!(receive.attr("frame"), Some("send"));
    assert_eq!(route_ask.service, router);
    same_trace(route_ask, "router.route");

    let append = s
        .named("log.append")
        .find(|a| a.parent_span_id == route_ask.span_id)
        .expect("log.append is a child of router.route");
    same_trace(append, "log.append");

    let ask_fanouts = s.with_attr("gateway.fanout", "seq", &e.ask_seq.to_string());
    assert_eq!(ask_fanouts.len(), gateways, "one fan-out per gateway");
    for fanout in &ask_fanouts {
        assert_eq!(fanout.service, gateway);
        same_trace(fanout, "gateway.fanout");
        assert!(s.descends(fanout, route_ask), "fan-out under the router");
        assert_eq!(fanout.attr("recipients"), Some("1"));
    }

    let job = s.one("bot.job", "message_id", &e.ask_id);
    assert_eq!(job.service, bot);
    same_trace(job, "bot.job");
    assert!(s.descends(job, route_ask), "the bot job under the router");
    let reply = s
        .named("bot.reply")
        .find(|r| r.parent_span_id == job.span_id)
        .expect("bot.reply is a child of bot.job");
    same_trace(reply, "bot.reply");

    let route_reply = s.one("router.route", "message_id", &e.reply_id);
    same_trace(route_reply, "router.route of the reply");
    assert!(
        s.descends(route_reply, reply),
        "the reply's route under bot.reply"
    );
    let reply_fanouts = s.with_attr("gateway.fanout", "seq", &e.reply_seq.to_string());
    assert_eq!(reply_fanouts.len(), gateways);
    for fanout in &reply_fanouts {
        same_trace(fanout, "gateway.fanout of the reply");
        assert!(s.descends(fanout, route_reply));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_request_is_one_trace_across_the_processes() {
    let receiver = Receiver::start().await;
    let d = Distributed::start_with(Topology {
        gateways: 2,
        routers: 1,
        bots: 1,
        nats_nodes: 1,
        env: traced_env(&receiver),
    })
    .await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let mut a = ann.connect(&d, 0).await;
    let b = bob.connect(&d, 1).await;
    let exchange = ask_the_bot(&mut a, &mut [b], &g).await;
    let spans = receiver
        .wait_for(SPANS_WAIT, |spans| exchange_complete(spans, &exchange, 2))
        .await;
    assert_one_trace(
        &spans,
        &exchange,
        ["chat-gateway", "chat-router", "chat-bot"],
        2,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_bot_request_is_one_trace() {
    let receiver = Receiver::start().await;
    let port = free_port();
    let mut env = traced_env(&receiver);
    env.extend([
        ("LISTEN_ADDR".to_owned(), format!("127.0.0.1:{port}")),
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("DEV_LOGIN".to_owned(), "true".to_owned()),
        ("RUST_LOG".to_owned(), "info".to_owned()),
    ]);
    let service = ChildService::spawn(cargo_bin("gateway"), Vec::<String>::new(), env);
    let base = format!("http://127.0.0.1:{port}");
    if let Err(error) = wait_for_http_ok(&format!("{base}/readyz"), Duration::from_secs(30)).await {
        panic!(
            "embedded gateway not ready ({error}):\n{}",
            service.log_tail(30)
        );
    }
    let guild = Scope::new().guild("g");
    let login: Value = reqwest::Client::new()
        .post(format!("{base}/api/dev/login"))
        .json(&json!({"name": "Ann", "role": "member", "guilds": [guild]}))
        .send()
        .await
        .expect("dev login")
        .json()
        .await
        .expect("login body");
    let token = login["token"].as_str().expect("token");
    let mut a = Client::open(
        &base,
        Connect {
            token: Some(token),
            ..Connect::default()
        },
    )
    .await
    .expect("handshake");
    let exchange = ask_the_bot(&mut a, &mut [], &guild).await;
    let spans = receiver
        .wait_for(SPANS_WAIT, |spans| exchange_complete(spans, &exchange, 1))
        .await;
    assert_one_trace(
        &spans,
        &exchange,
        ["chat-gateway", "chat-gateway", "chat-gateway"],
        1,
    );
}
