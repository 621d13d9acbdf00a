//! Clustered JetStream (issue #12): on a 3-node NATS cluster with `NATS_REPLICAS=3`, the
//! `CHAT_LOG` stream leader is killed (SIGKILL) under a steady stream of sends through two
//! gateways. Every acked message must be resumable at its acked seq (those not also delivered
//! live are counted and printed), none stored or shown twice, live frames in strictly
//! increasing seq, the log's seq strictly increasing along `prev` links. The time the cluster
//! takes to elect a new stream leader, and the longest pause between two acks, are printed
//! (run with `--nocapture` to see them); then the killed node is started again and must become
//! a current replica of the log (the time is printed too).

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chat_shared::bus::nats::{NatsBus, NatsConfig, StreamRole};
use chat_shared::bus::{Bus, LogEntry, Visibility};
use chat_shared::protocol::ServerFrame;
use chat_shared::protocol::identity::Role;
use serde_json::json;
use support::client::Client;
use support::distributed::{Distributed, Topology};
use support::{Scope, user};
use testkit::NatsCluster;

const LOG_STREAM: &str = "CHAT_LOG";
const SENDERS: usize = 3;
const PER_SENDER: usize = 40;
/// Pause between two sends of one sender.
const PACE: Duration = Duration::from_millis(25);
/// How long one message may take to be acked, resends included, across the failover.
const ACK_WITHIN: Duration = Duration::from_secs(45);

/// The stream's leader and replica names as the cluster reports them (`None` while there is
/// no leader, or the request fails).
async fn stream_peers(js: &jetstream::Context) -> Option<(String, Vec<String>)> {
    let mut stream = js.get_stream(LOG_STREAM).await.ok()?;
    let info = stream.info().await.ok()?;
    let cluster = info.cluster.clone()?;
    let replicas = cluster.replicas.iter().map(|p| p.name.clone()).collect();
    Some((cluster.leader?, replicas))
}

/// A JetStream context on every node but `except`, with short request timeouts.
async fn jetstream_without(cluster: &NatsCluster, except: Option<usize>) -> jetstream::Context {
    let urls: Vec<String> = (0..cluster.size())
        .filter(|&i| Some(i) != except)
        .map(|i| cluster.node_url(i))
        .collect();
    let client = async_nats::connect(urls.as_slice())
        .await
        .expect("connect to the cluster");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_millis(500));
    js
}

/// Waits until a stream leader other than `old` is reported; the time it took.
async fn new_leader_elected(js: &jetstream::Context, old: &str, since: Instant) -> Duration {
    loop {
        if let Some((leader, _)) = stream_peers(js).await
            && leader != old
        {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "no new {LOG_STREAM} leader within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `PER_SENDER` messages one after another, each resent with its id until acked.
async fn steady_sender(
    mut client: Client,
    guild: String,
    prefix: String,
) -> Vec<(String, u64, Instant)> {
    let mut acked = Vec::new();
    for n in 0..PER_SENDER {
        let id = format!("{prefix}-{n}");
        let deadline = Instant::now() + ACK_WITHIN;
        loop {
            match client
                .request(json!({"guildId": guild, "text": id, "messageId": id}))
                .await
            {
                Ok(ack) => {
                    acked.push((id, ack.seq, Instant::now()));
                    break;
                }
                Err(e) => {
                    assert!(
                        matches!(e.code.as_str(), "server_error" | "rate_limited"),
                        "{id}: unexpected {e:?}"
                    );
                    assert!(Instant::now() < deadline, "{id} never acked");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tokio::time::sleep(PACE).await;
    }
    acked
}

/// Message frames of `guild` until none arrives for `quiet`.
async fn drain_live(client: &mut Client, guild: &str, quiet: Duration) -> Vec<(u64, String)> {
    let mut got = Vec::new();
    while let Ok(frame) = tokio::time::timeout(quiet, client.message()).await {
        if frame.message.guild_id == guild {
            got.push((frame.seq, frame.message.message_id.clone()));
        }
    }
    got
}

/// Every entry of `guild`, oldest first, as the log's `prev` links reach them (history pages
/// of direct gets: no consumer to create on the cluster after the failover).
async fn log_by_prev_links(bus: &NatsBus, guild: &str) -> Vec<LogEntry> {
    let mut entries: Vec<LogEntry> = Vec::new();
    let mut before = None;
    loop {
        let page = bus
            .read_history(guild, before, 200, Visibility::All)
            .await
            .expect("read the log");
        entries.extend(page.entries);
        match page.next_before {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    entries.reverse();
    entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_loses_and_repeats_nothing() {
    let topology = Topology {
        env: vec![
            ("INGRESS_TIMEOUT_MS".into(), "3000".into()),
            (
                "RUST_LOG".into(),
                "info,chat_shared::bus::nats=debug".into(),
            ),
        ],
        ..Topology::on_nats(3)
    };
    let d = Distributed::start_with(topology).await;
    let cluster = d.nats.cluster().expect("a cluster");
    let s = Scope::new();
    let g = s.guild("g");
    let reader = user(&d, &s.user_id("reader"), Role::Member, &[&g]).await;
    let mut live = reader.connect(&d, 1).await;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let u = user(&d, &s.user_id(&format!("u{i}")), Role::Member, &[&g]).await;
        senders.push(u.connect(&d, i).await);
    }
    let first_id = s.user_id("first");
    let first = senders[0]
        .request(json!({"guildId": g, "text": "before", "messageId": first_id}))
        .await
        .expect("first ack");
    assert_eq!(live.message().await.seq, first.seq);

    let js = jetstream_without(cluster, None).await;
    let (leader, replicas) = stream_peers(&js).await.expect("the log has a leader");
    assert_eq!(
        replicas.len(),
        2,
        "{LOG_STREAM} is R3: {leader} + {replicas:?}"
    );
    let victim = cluster.node_index(&leader).expect("leader is a node");

    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            tokio::spawn(steady_sender(
                client,
                g.clone(),
                s.user_id(&format!("c{i}")),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let survivors = jetstream_without(cluster, Some(victim)).await;
    let killed_at = Instant::now();
    cluster.stop_node(victim);
    let election = new_leader_elected(&survivors, &leader, killed_at).await;
    let mut acked: Vec<(String, u64, Instant)> = Vec::new();
    for task in tasks {
        acked.extend(task.await.expect("sender"));
    }
    let longest_pause = longest_ack_pause(&acked, killed_at);
    println!(
        "cluster leader election: {LOG_STREAM} leader {leader} killed; new leader after {} ms; \
         longest pause between two acks around the kill {} ms ({} acked)",
        election.as_millis(),
        longest_pause.as_millis(),
        acked.len()
    );
    assert_eq!(acked.len(), SENDERS * PER_SENDER);

    let mut seen = vec![(first.seq, first_id.clone())];
    seen.extend(drain_live(&mut live, &g, Duration::from_secs(5)).await);
    let live_seqs: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
    assert!(
        live_seqs.windows(2).all(|w| w[0] < w[1]),
        "live frames in strictly increasing seq, none twice: {live_seqs:?}"
    );
    let mut resumed = reader.connect(&d, 0).await;
    let from_zero = resume_all(&mut resumed, &g).await;
    let logged: HashMap<&str, u64> = from_zero
        .iter()
        .map(|(seq, id)| (id.as_str(), *seq))
        .collect();
    let twice: Vec<&(u64, String)> = from_zero
        .iter()
        .filter(|(seq, id)| logged.get(id.as_str()) != Some(seq))
        .collect();
    if !twice.is_empty() {
        keep_logs(&d, &from_zero);
    }
    assert!(
        twice.is_empty(),
        "no messageId stored twice: earlier copies {twice:?} (acked: {:?})",
        (acked.iter())
            .filter(|(id, _, _)| twice.iter().any(|(_, t)| t == id))
            .map(|(id, seq, _)| (id, seq))
            .collect::<Vec<_>>()
    );
    let live_ids: HashSet<&str> = seen.iter().map(|(_, id)| id.as_str()).collect();
    for (id, seq, _) in &acked {
        assert_eq!(
            logged.get(id.as_str()),
            Some(seq),
            "acked {id} is resumable at its seq (the resume from 0 gave {} entries: {:?})",
            from_zero.len(),
            from_zero.iter().map(|(seq, _)| *seq).collect::<Vec<_>>()
        );
    }
    let missed_live: Vec<u64> = acked
        .iter()
        .filter(|(id, _, _)| !live_ids.contains(id.as_str()))
        .map(|(_, seq, _)| *seq)
        .collect();
    println!(
        "cluster leader election: {} of {} acked messages not delivered live (resumed instead): \
         {missed_live:?}",
        missed_live.len(),
        acked.len()
    );
    assert_eq!(
        from_zero.len(),
        acked.len() + 1,
        "nothing but the acked messages"
    );

    let config = NatsConfig {
        nats_replicas: 3,
        ..NatsConfig::default()
    };
    let bus = NatsBus::connect_as(&cluster.url(), &config, StreamRole::Verify)
        .await
        .expect("bus");
    let chain = log_by_prev_links(&bus, &g).await;
    let chain_seqs: Vec<u64> = chain.iter().map(|e| e.seq).collect();
    let resumed_seqs: Vec<u64> = from_zero.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        chain_seqs, resumed_seqs,
        "the prev links reach every entry resume replays"
    );
    assert_eq!(chain[0].prev, 0, "the first entry links to nothing");
    for pair in chain.windows(2) {
        assert!(pair[0].seq < pair[1].seq, "seq strictly increases");
        assert_eq!(pair[1].prev, pair[0].seq, "prev links the previous entry");
    }

    let restarted_at = Instant::now();
    cluster.start_node(victim);
    cluster.ready().await;
    let caught_up = replica_caught_up(&js, &leader, restarted_at).await;
    println!(
        "cluster leader election: {leader} restarted; a current {LOG_STREAM} replica again after {} ms",
        caught_up.as_millis()
    );
}

/// Copies every worker's and gateway's log, and the replayed log, to a directory kept after
/// the test, and says where.
fn keep_logs(d: &Distributed, from_zero: &[(u64, String)]) {
    let dir = std::env::temp_dir().join(format!("cluster-leader-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let services = (d.routers.iter().map(|r| ("router", r)))
        .chain(d.gateways.iter().map(|g| ("gateway", &g.service)));
    for (n, (kind, service)) in services.enumerate() {
        let _ = std::fs::copy(service.log_path(), dir.join(format!("{kind}-{n}.log")));
    }
    let listing: String = (from_zero.iter())
        .map(|(seq, id)| format!("{seq} {id}\n"))
        .collect();
    let _ = std::fs::write(dir.join("replayed.txt"), listing);
    println!("cluster leader election: logs kept in {}", dir.display());
}

/// Waits until `node` is a current replica (or the leader) of the log again; the time it took.
async fn replica_caught_up(js: &jetstream::Context, node: &str, since: Instant) -> Duration {
    loop {
        let mut stream = js.get_stream(LOG_STREAM).await.ok();
        let info = match stream.as_mut() {
            Some(stream) => stream.info().await.ok().and_then(|i| i.cluster.clone()),
            None => None,
        };
        if let Some(cluster) = info {
            let current = cluster.leader.as_deref() == Some(node)
                || cluster
                    .replicas
                    .iter()
                    .any(|p| p.name == node && p.current && !p.offline);
            if current {
                return since.elapsed();
            }
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "{node} did not catch up with {LOG_STREAM} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The longest time between two consecutive acks (over every sender) after `from`.
fn longest_ack_pause(acked: &[(String, u64, Instant)], from: Instant) -> Duration {
    let mut times: Vec<Instant> = acked.iter().map(|(_, _, at)| *at).collect();
    times.push(from);
    times.sort();
    times
        .windows(2)
        .filter(|w| w[1] >= from)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

/// Every message of `guild` from seq 0, as `resume` replays it. Right after a stream-leader
/// change the replay may be answered `server_error` (creating its consumer timed out while the
/// cluster settles): a client resumes again then, and so does this one, a few times (the
/// `resume` frame rate allows 6 a minute), saying so in the log.
async fn resume_all(client: &mut Client, guild: &str) -> Vec<(u64, String)> {
    for attempt in 1..=5 {
        client
            .send_value(json!({"type": "resume", "positions": {guild: 0}}))
            .await;
        let mut got = Vec::new();
        let mut failed = false;
        loop {
            match client.recv().await {
                ServerFrame::Message(m) if m.message.guild_id == guild => {
                    got.push((m.seq, m.message.message_id.clone()))
                }
                ServerFrame::Error(e) if e.guild_id.as_deref() == Some(guild) => failed = true,
                ServerFrame::Resumed(r) if r.guild_id == guild => break,
                _ => {}
            }
        }
        if !failed {
            return got;
        }
        println!("cluster leader election: resume attempt {attempt} answered server_error; again");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("resume kept failing after the leader change");
}
