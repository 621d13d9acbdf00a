//! The rolling-update drain through a real load balancer: HAProxy, run from
//! `deploy/haproxy-local.cfg.tmpl`, in front of two gateway processes (with 2 routers, a bot
//! worker, NATS and Redis). Gateway 1 gets SIGTERM while a sender posts through the LB: HAProxy
//! takes it out of rotation during its readiness delay, new connections land on gateway 2, its
//! clients are closed with 1012, reconnect through the LB and resume, and every client ends with
//! every acked message of its guilds exactly once, in log order.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_shared::protocol::identity::Role;
use chat_shared::protocol::{ServerFrame, close_code};
use serde_json::json;
use support::client::{Client, Connect, WAIT};
use support::distributed::{Distributed, Topology};
use support::{Scope, user};
use testkit::{ChildService, free_port, wait_for_http_ok};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const HAPROXY: &str = "/usr/sbin/haproxy";
const TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/haproxy-local.cfg.tmpl"
);
const READINESS_DELAY_MS: u64 = 1500;
const CLOSE_WINDOW_MS: u64 = 1000;
/// Clients connected through the LB before the drain, and during its readiness delay.
const CLIENTS: usize = 10;
const LATE_CLIENTS: usize = 3;
/// Pause between two posts of the sender (paces the traffic; proves nothing).
const SEND_EVERY: Duration = Duration::from_millis(50);
/// Upper bound of every wait, and of one HTTP request.
const BOUND: Duration = Duration::from_secs(15);
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

/// Messages per guild: (seq, messageId), in arrival (or log) order.
type Received = HashMap<String, Vec<(u64, String)>>;

/// HAProxy from the local template (it reads the placeholders from its environment) in front
/// of the two gateways; returns it and its base URL once it proxies `/readyz`.
async fn start_haproxy(gateway_1: u16, gateway_2: u16) -> (ChildService, String) {
    let port = free_port();
    let env = [
        ("LB_PORT", port),
        ("GATEWAY_1_PORT", gateway_1),
        ("GATEWAY_2_PORT", gateway_2),
    ];
    let env = env.map(|(name, port)| (name, port.to_string()));
    let haproxy = ChildService::spawn(HAPROXY, ["-db", "-f", TEMPLATE], env);
    let base = format!("http://127.0.0.1:{port}");
    if let Err(error) = wait_for_http_ok(&format!("{base}/readyz"), BOUND).await {
        panic!(
            "HAProxy does not proxy /readyz ({error}):\n{}",
            haproxy.log_tail(30)
        );
    }
    (haproxy, base)
}

/// How long clients keep reading: while the test runs, until they have these seqs, or no more.
#[derive(Debug, Clone)]
enum Goal {
    Live,
    Until(HashMap<String, u64>),
    GiveUp,
}

/// One client: resumes on every connection, reconnects through the LB after a 1012.
struct Watcher {
    lb: String,
    token: String,
    guilds: Vec<String>,
    /// When the first of all clients was closed.
    first_close: Arc<Mutex<Option<Instant>>>,
    reconnected: watch::Sender<usize>,
}

/// What a client went through; `problems` are contract violations seen on the way.
#[derive(Default)]
struct Watched {
    received: Received,
    closes: usize,
    connections: usize,
    resumed: usize,
    problems: Vec<String>,
}

impl Watcher {
    /// Opens a connection through the LB that resumes each of the watcher's guilds after the
    /// last seq it received there, named in the handshake (a `resume` frame would let a live
    /// message that lands in between overtake the replay: docs/protocol.md).
    async fn open(&self, received: &Received) -> Result<Client, String> {
        let resume: Vec<String> = (self.guilds.iter())
            .map(|g| format!("{g}:{}", last_seq(received, g)))
            .collect();
        let resume = resume.join(",");
        let how = Connect {
            token: Some(&self.token),
            resume: Some(&resume),
            ..Connect::default()
        };
        Client::open(&self.lb, how)
            .await
            .map_err(|r| format!("LB refused a handshake: {r:?}"))
    }

    async fn run(self, mut client: Client, mut goal: watch::Receiver<Goal>) -> Watched {
        let mut seen = Watched {
            connections: 1,
            ..Watched::default()
        };
        loop {
            let close = loop {
                if self.reached(&seen, &goal.borrow()) {
                    return seen;
                }
                tokio::select! {
                    next = client.next_or_close() => match next {
                        Ok(frame) => self.record(frame, &mut seen),
                        Err(close) => break close.map(|c| u16::from(c.code)),
                    },
                    _ = goal.changed() => {}
                }
            };
            if close != Some(close_code::SERVER_RESTARTING) {
                seen.problems
                    .push(format!("closed with {close:?}, not by the drain"));
                return seen;
            }
            seen.closes += 1;
            self.first_close
                .lock()
                .expect("lock")
                .get_or_insert_with(Instant::now);
            client = match self.open(&seen.received).await {
                Ok(client) => client,
                Err(problem) => {
                    return Watched {
                        problems: vec![problem],
                        ..seen
                    };
                }
            };
            seen.connections += 1;
            self.reconnected.send_modify(|n| *n += 1);
        }
    }

    fn reached(&self, seen: &Watched, goal: &Goal) -> bool {
        match goal {
            Goal::Live => false,
            Goal::Until(last) => last
                .iter()
                .all(|(g, seq)| last_seq(&seen.received, g) >= *seq),
            Goal::GiveUp => true,
        }
    }

    fn record(&self, frame: ServerFrame, seen: &mut Watched) {
        match frame {
            ServerFrame::Message(m) if self.guilds.contains(&m.message.guild_id) => {
                let list = seen.received.entry(m.message.guild_id.clone()).or_default();
                list.push((m.seq, m.message.message_id.clone()));
            }
            ServerFrame::Resumed(r) if !r.gap => seen.resumed += 1,
            ServerFrame::Message(_) | ServerFrame::Resumed(_) | ServerFrame::Error(_) => {
                seen.problems.push(format!("unexpected {frame:?}"));
            }
            _ => {}
        }
    }
}

fn last_seq(received: &Received, guild: &str) -> u64 {
    received
        .get(guild)
        .and_then(|m| m.last())
        .map_or(0, |(seq, _)| *seq)
}

/// What is wrong with what client `i` went through, against the acked posts of its guilds.
fn verdict(i: usize, seen: &Watched, guilds: &[String], expected: &Received) -> Vec<String> {
    let mut wrong: Vec<String> = seen
        .problems
        .iter()
        .map(|p| format!("client {i}: {p}"))
        .collect();
    for guild in guilds {
        let got = seen
            .received
            .get(guild)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let want = &expected[guild];
        if got != want.as_slice() {
            let distinct = got.iter().collect::<HashSet<_>>().len();
            let missing: Vec<_> = want.iter().filter(|m| !got.contains(m)).collect();
            wrong.push(format!(
                "client {i} in {guild}, {} connections: {} received ({} twice) of {} acked, \
                 missing {missing:?}",
                seen.connections,
                got.len(),
                got.len() - distinct,
                want.len()
            ));
        }
    }
    if seen.resumed != seen.connections * guilds.len() {
        wrong.push(format!(
            "client {i}: {} resumed, {} connections",
            seen.resumed, seen.connections
        ));
    }
    wrong
}

/// Acked posts: (guild, seq, messageId) in posting order, and the failed attempts.
#[derive(Default)]
struct Posted {
    acked: Vec<(String, u64, String)>,
    failures: Vec<String>,
}

/// Posts `POST /api/guilds/{g}/messages` through the LB, alternating guilds, until `stop`;
/// a failed post is recorded and retried with the same messageId.
async fn post_until(
    lb: String,
    token: String,
    guilds: [String; 2],
    stop: watch::Receiver<bool>,
    acked: watch::Sender<usize>,
) -> Posted {
    let client = http();
    let mut posted = Posted::default();
    while !*stop.borrow() {
        let n = posted.acked.len();
        let guild = &guilds[n % 2];
        let id = format!("{guild}-m{n}");
        let url = format!("{lb}/api/guilds/{guild}/messages");
        let deadline = Instant::now() + BOUND;
        let seq = loop {
            let body = json!({"text": id, "messageId": id});
            match client
                .post(&url)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status().as_u16() == 201 => {
                    let ack: serde_json::Value = r.json().await.expect("ack body");
                    break ack["seq"].as_u64().expect("seq");
                }
                Ok(r) => posted.failures.push(format!("{id}: {}", r.status())),
                Err(e) => posted.failures.push(format!("{id}: {e}")),
            }
            assert!(
                Instant::now() < deadline,
                "{id} never acked: {:?}",
                posted.failures
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        posted.acked.push((guild.clone(), seq, id));
        acked.send_replace(posted.acked.len());
        tokio::time::sleep(SEND_EVERY).await;
    }
    posted
}

/// An HTTP client whose requests cannot hang the test.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .expect("http client")
}

/// Sum of a metric's samples (all label sets) at `base/metrics`; `None` when nothing answers.
async fn metric(base: &str, name: &str) -> Option<f64> {
    let response = http().get(format!("{base}/metrics")).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let text = response.text().await.ok()?;
    let samples = text.lines().filter_map(|line| {
        let rest = line.strip_prefix(name)?;
        (rest.starts_with(' ') || rest.starts_with('{')).then_some(())?;
        rest.rsplit(' ').next()?.parse::<f64>().ok()
    });
    Some(samples.sum())
}

async fn readyz(base: &str) -> u16 {
    let response = http().get(format!("{base}/readyz")).send().await;
    response.map_or(0, |r| r.status().as_u16())
}

/// Polls `check` until it holds, for at most [`BOUND`].
async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {BOUND:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the watched count reaches `at_least`.
async fn wait_count(what: &str, count: &mut watch::Receiver<usize>, at_least: usize) {
    let reached = tokio::time::timeout(BOUND, count.wait_for(|n| *n >= at_least)).await;
    assert!(
        matches!(reached, Ok(Ok(_))),
        "{what}: never reached {at_least}"
    );
}

/// The clients' users (every third in both guilds, the others in one), not yet connected.
async fn watchers(
    d: &Distributed,
    lb: &str,
    s: &Scope,
    guilds: &[String; 2],
    reconnected: &watch::Sender<usize>,
) -> Vec<Watcher> {
    let first_close = Arc::new(Mutex::new(None));
    let mut watchers = Vec::new();
    for i in 0..CLIENTS + LATE_CLIENTS {
        let mine = guilds_of(i, guilds);
        let refs: Vec<&str> = mine.iter().map(String::as_str).collect();
        let u = user(d, &s.user_id(&format!("c{i}")), Role::Member, &refs).await;
        let (lb, first_close, reconnected) =
            (lb.to_owned(), first_close.clone(), reconnected.clone());
        watchers.push(Watcher {
            lb,
            token: u.token,
            guilds: mine,
            first_close,
            reconnected,
        });
    }
    watchers
}

fn guilds_of(i: usize, guilds: &[String; 2]) -> Vec<String> {
    match i % 3 {
        0 => guilds.to_vec(),
        k => vec![guilds[k - 1].clone()],
    }
}

/// Connects each watcher through the LB, one after another, and lets it run.
async fn connect(watchers: Vec<Watcher>, goal: &watch::Receiver<Goal>) -> Vec<JoinHandle<Watched>> {
    let mut tasks = Vec::new();
    for w in watchers {
        let client = (w.open(&Received::default()).await).expect("connected through the LB");
        tasks.push(tokio::spawn(w.run(client, goal.clone())));
    }
    tasks
}

/// SIGTERM to gateway 1, `late` clients connecting once HAProxy has taken it out; checks each
/// step of the drain and prints when it happened.
async fn drain_gateway_1(
    d: &mut Distributed,
    lb: &ChildService,
    late: Vec<Watcher>,
    on_1: usize,
    goal: &watch::Receiver<Goal>,
) -> Vec<JoinHandle<Watched>> {
    // Its ops listener: /metrics is not on the public port.
    let gateway_1 = format!("http://127.0.0.1:{}", d.gateways[0].ops_port);
    let first_close = late[0].first_close.clone();
    let mut reconnected = late[0].reconnected.subscribe();
    let opened = metric(&gateway_1, "chat_gateway_connections_opened_total").await;
    let refused = metric(&gateway_1, "chat_gateway_handshake_refusals_total").await;
    assert!(
        opened.is_some() && refused.is_some(),
        "gateway 1 serves /metrics"
    );
    let flapped = lb.wait_for_output(" is DOWN", Duration::ZERO).await;
    assert!(
        !flapped,
        "both gateways in rotation before SIGTERM:\n{}",
        lb.log_tail(20)
    );
    let term = Instant::now();
    d.gateways[0].service.terminate();
    wait_until("gateway 1 /readyz 503", async || {
        readyz(&gateway_1).await == 503
    })
    .await;
    let not_ready = term.elapsed();
    let down = lb
        .wait_for_output("gateways/gateway-1 is DOWN", BOUND)
        .await;
    assert!(
        down,
        "HAProxy never took gateway 1 out:\n{}",
        lb.log_tail(20)
    );
    let lb_down = term.elapsed();
    let early = first_close.lock().expect("lock").map(|at| at - term);
    assert_eq!(
        early, None,
        "a client was closed before HAProxy took gateway 1 out ({lb_down:?})"
    );

    let tasks = connect(late, goal).await;
    let late_in = term.elapsed();
    let opened_after = metric(&gateway_1, "chat_gateway_connections_opened_total").await;
    let refused_after = metric(&gateway_1, "chat_gateway_handshake_refusals_total").await;
    assert_eq!(
        opened_after, opened,
        "gateway 1 (still up) took no connection after SIGTERM"
    );
    assert_eq!(
        refused_after, refused,
        "HAProxy sent gateway 1 no handshake after SIGTERM"
    );

    wait_count("clients of gateway 1 reconnected", &mut reconnected, on_1).await;
    let all_back = term.elapsed();
    let gateway = &mut d.gateways[0].service;
    let status = gateway
        .wait_exit(BOUND)
        .await
        .expect("gateway 1 exits by itself");
    assert!(
        status.success(),
        "gateway 1 exited with {status}:\n{}",
        gateway.log_tail(20)
    );
    let first = first_close.lock().expect("lock").map(|at| at - term);
    println!(
        "after SIGTERM: /readyz 503 at {not_ready:?}, HAProxy DOWN at {lb_down:?}, {LATE_CLIENTS} new \
         connections on gateway 2 by {late_in:?}, first 1012 at {first:?}, {on_1} clients back by \
         {all_back:?}, gateway 1 exited at {:?}",
        term.elapsed()
    );
    tasks
}

/// Each guild's acked posts in seq order, and its last seq.
fn expected(posted: &Posted) -> (Received, HashMap<String, u64>) {
    let mut expected = Received::new();
    for (guild, seq, id) in &posted.acked {
        expected
            .entry(guild.clone())
            .or_default()
            .push((*seq, id.clone()));
    }
    expected.values_mut().for_each(|list| list.sort());
    let last = expected
        .iter()
        .filter_map(|(g, l)| Some((g.clone(), l.last()?.0)))
        .collect();
    (expected, last)
}

/// Lets the clients catch up to `last` (bounded by the client's own read timeout), then
/// collects what each went through.
async fn collect(
    tasks: Vec<JoinHandle<Watched>>,
    goal: &watch::Sender<Goal>,
    last: HashMap<String, u64>,
) -> Vec<Watched> {
    goal.send_replace(Goal::Until(last));
    let deadline = Instant::now() + WAIT / 2;
    while Instant::now() < deadline && !tasks.iter().all(JoinHandle::is_finished) {
        tokio::time::sleep(POLL).await;
    }
    goal.send_replace(Goal::GiveUp);
    let mut seen = Vec::new();
    for task in tasks {
        let watched = task.await.unwrap_or_else(|e| Watched {
            problems: vec![format!("client task failed: {e}")],
            ..Watched::default()
        });
        seen.push(watched);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_drains_through_haproxy() {
    if !Path::new(HAPROXY).is_file() {
        eprintln!("SKIPPED: {HAPROXY} is not installed (apt-get install haproxy)");
        return;
    }
    let env = [
        ("SHUTDOWN_READINESS_DELAY_MS", READINESS_DELAY_MS),
        ("SHUTDOWN_CLOSE_WINDOW_MS", CLOSE_WINDOW_MS),
    ];
    let env = env
        .map(|(name, ms)| (name.to_owned(), ms.to_string()))
        .to_vec();
    let mut d = Distributed::start_with(Topology {
        gateways: 2,
        routers: 2,
        bots: 1,
        nats_nodes: 1,
        env,
    })
    .await;
    let started = Instant::now();
    // The gateways' ops listeners (/metrics).
    let gateways: Vec<String> = d
        .gateways
        .iter()
        .map(|g| format!("http://127.0.0.1:{}", g.ops_port))
        .collect();
    let (haproxy, lb) = start_haproxy(d.gateways[0].port, d.gateways[1].port).await;
    let s = Scope::new();
    let guilds = [s.guild("ga"), s.guild("gb")];
    let (goal_tx, goal) = watch::channel(Goal::Live);
    let (reconnected, _) = watch::channel(0);
    let mut watchers = watchers(&d, &lb, &s, &guilds, &reconnected).await;
    let late = watchers.split_off(CLIENTS);
    let mut tasks = connect(watchers, &goal).await;
    let on_1 = metric(&gateways[0], "chat_gateway_connections")
        .await
        .expect("metrics") as usize;
    let on_2 = metric(&gateways[1], "chat_gateway_connections")
        .await
        .expect("metrics") as usize;
    assert_eq!(
        on_1 + on_2,
        CLIENTS,
        "every client is on one of the two gateways"
    );
    assert!(
        on_1 > 0 && on_2 > 0,
        "leastconn spread the clients: {on_1} + {on_2}"
    );

    let sender = user(
        &d,
        &s.user_id("sender"),
        Role::Member,
        &[&guilds[0], &guilds[1]],
    )
    .await;
    let (stop, stop_rx) = watch::channel(false);
    let (acked, mut posts) = watch::channel(0);
    let posting = tokio::spawn(post_until(lb, sender.token, guilds.clone(), stop_rx, acked));
    wait_count("posts acked before the drain", &mut posts, 10).await;
    tasks.extend(drain_gateway_1(&mut d, &haproxy, late, on_1, &goal).await);
    let after_exit = *posts.borrow();
    wait_count("posts acked after the drain", &mut posts, after_exit + 10).await;
    let on_2_after = metric(&gateways[1], "chat_gateway_connections").await;
    assert_eq!(
        on_2_after,
        Some((CLIENTS + LATE_CLIENTS) as f64),
        "everyone is on gateway 2"
    );
    stop.send_replace(true);
    let posted = posting.await.expect("sender");
    let (expected, last) = expected(&posted);
    let seen = collect(tasks, &goal_tx, last).await;

    let wrong: Vec<String> = seen
        .iter()
        .enumerate()
        .flat_map(|(i, w)| verdict(i, w, &guilds_of(i, &guilds), &expected))
        .collect();
    let closes: Vec<usize> = seen.iter().map(|w| w.closes).collect();
    let n = posted.acked.len();
    println!(
        "{n} posts acked through the LB; 1012 closes per client {closes:?}; {:?} after start",
        started.elapsed()
    );
    assert!(
        wrong.is_empty(),
        "not every acked message exactly once, in order:\n{}",
        wrong.join("\n")
    );
    assert_eq!(
        closes[..CLIENTS].iter().sum::<usize>(),
        on_1,
        "gateway 1's clients closed once each"
    );
    assert!(
        closes[CLIENTS..].iter().all(|c| *c == 0),
        "the late clients were on gateway 2"
    );
    assert!(
        posted.failures.is_empty(),
        "posts through the LB failed: {:?}",
        posted.failures
    );
    let flapped = haproxy
        .wait_for_output("gateway-2 is DOWN", Duration::ZERO)
        .await;
    assert!(!flapped, "gateway 2 stayed in rotation");
}
