//! Property tests of the pure presence state (issue #13 "Tests"): several gateways, each with
//! its [`LocalPresence`], [`ClusterView`] and [`Coalescer`], joined by an in-test bus that
//! delivers the updates the service would publish (deltas with a per-guild `seq`, heartbeats,
//! `Gone`, full lists answering a resync) and that sometimes loses one. For random sequences of connects, closes, membership
//! removals, time passing, gateway kills (`kill -9`: nothing more from it), graceful stops and
//! restarts:
//! - at every step, a user with an open connection on a live gateway is online in every live
//!   gateway's view of that guild (no false "gone"; after a lost update, from the next round
//!   of heartbeats on), and nobody is online in a guild they have
//!   never connected to (no view ever holds a non-member);
//! - once lingers and TTLs have passed, every live view equals the truth (users with an open
//!   connection on a live gateway: no phantom from a dead or restarted gateway), and a client
//!   that applied the snapshot and then every coalesced diff (set semantics) sees exactly the
//!   truth's listed sample (everyone up to `MAX_LISTED`, the first `MAX_LISTED − 1` above it).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_shared::bus::presence::PresenceBody;
use chat_shared::protocol::identity::{Role, UserInfo};
use proptest::prelude::*;

use super::cluster::{Changes, ClusterView};
use super::coalesce::Coalescer;
use super::listing::sample_size;
use super::local::LocalPresence;

const LINGER: Duration = Duration::from_millis(3_000);
const TTL: Duration = Duration::from_millis(30_000);
const GATEWAYS: usize = 3;
const USERS: usize = 5;
const GUILDS: usize = 3;
/// Below `USERS`, so guilds go above it and back.
const MAX_LISTED: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Open {
        gw: usize,
        user: usize,
        guild: usize,
    },
    Close {
        pick: usize,
    },
    RemoveMembership {
        pick: usize,
    },
    Advance {
        ms: u64,
    },
    Kill {
        gw: usize,
    },
    Stop {
        gw: usize,
    },
    Restart {
        gw: usize,
    },
    /// The bus loses the next update `gw` publishes (best-effort delivery, a full outbox).
    Lose {
        gw: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..GATEWAYS, 0..USERS, 0..GUILDS).prop_map(|(gw, user, guild)| Op::Open { gw, user, guild }),
        3 => any::<usize>().prop_map(|pick| Op::Close { pick }),
        1 => any::<usize>().prop_map(|pick| Op::RemoveMembership { pick }),
        3 => (1u64..5_000).prop_map(|ms| Op::Advance { ms }),
        1 => (0..GATEWAYS).prop_map(|gw| Op::Kill { gw }),
        1 => (0..GATEWAYS).prop_map(|gw| Op::Stop { gw }),
        1 => (0..GATEWAYS).prop_map(|gw| Op::Restart { gw }),
        2 => (0..GATEWAYS).prop_map(|gw| Op::Lose { gw }),
    ]
}

fn user(i: usize) -> UserInfo {
    UserInfo::new(format!("u{i}"), format!("User {i}"), Role::Member)
}

fn guild(i: usize) -> Arc<str> {
    Arc::from(format!("g{i}").as_str())
}

struct Conn {
    gw: usize,
    user: usize,
    guild: usize,
    open: bool,
}

/// One gateway's pure presence state, and what a client of each guild has applied.
struct Gateway {
    own: Arc<str>,
    alive: bool,
    local: LocalPresence,
    cluster: ClusterView,
    coalescer: Coalescer,
    seqs: HashMap<usize, u64>,
    client: HashMap<usize, BTreeSet<String>>,
    /// The next update this gateway publishes is lost.
    lose_next: bool,
}

impl Gateway {
    fn start(incarnation: usize, index: usize) -> Self {
        let own: Arc<str> = Arc::from(format!("gw{index}-{incarnation}").as_str());
        let mut cluster = ClusterView::new(TTL);
        for g in 0..GUILDS {
            cluster.follow(&guild(g), &own, Vec::new());
        }
        Gateway {
            own,
            alive: true,
            local: LocalPresence::new(LINGER),
            cluster,
            coalescer: Coalescer::default(),
            seqs: HashMap::new(),
            client: HashMap::new(),
            lose_next: false,
        }
    }

    fn online(&self, g: usize) -> BTreeSet<String> {
        let (listed, count) = self.cluster.listed(&guild(g), usize::MAX);
        assert_eq!(listed.len(), count);
        listed.into_iter().map(|u| u.id.clone()).collect()
    }

    fn record(&mut self, g: usize, changes: Changes) {
        self.coalescer.record(&guild(g), &changes);
    }

    fn sample(&self, g: usize) -> (Vec<Arc<UserInfo>>, usize) {
        let count = self.cluster.count(&guild(g));
        self.cluster
            .listed(&guild(g), sample_size(count, MAX_LISTED))
    }

    /// Diffs that may go out now, applied to this gateway's clients (guilds above
    /// `MAX_LISTED` are coalesced to one per second).
    fn flush(&mut self, now: Instant) {
        for g in 0..GUILDS {
            let large = self.cluster.count(&guild(g)) > MAX_LISTED;
            if !self.coalescer.take(&guild(g), large, now) {
                continue;
            }
            let (sample, count) = self.sample(g);
            if let Some(diff) = self.coalescer.advance(&guild(g), &sample, count) {
                let client = self.client.entry(g).or_default();
                for id in diff.left {
                    client.remove(&id);
                }
                for u in diff.joined {
                    client.insert(u.id);
                }
            }
        }
    }
}

struct World {
    now: Instant,
    gws: Vec<Gateway>,
    conns: Vec<Conn>,
    incarnations: usize,
    /// Users that ever connected to each guild (the guild's members, for the visibility check).
    members: HashMap<usize, HashSet<String>>,
    /// An update was lost and no complete round of heartbeats has repaired it yet.
    lost: bool,
}

impl World {
    fn new() -> Self {
        World {
            now: Instant::now(),
            gws: (0..GATEWAYS).map(|i| Gateway::start(0, i)).collect(),
            conns: Vec::new(),
            incarnations: 1,
            members: HashMap::new(),
            lost: false,
        }
    }

    /// Sends `body` from gateway `from` about guild `g` to every other live gateway; answers a
    /// resync with the sender's full list, as the service does.
    fn publish(&mut self, from: usize, g: usize, body: PresenceBody) {
        if std::mem::take(&mut self.gws[from].lose_next) {
            self.lost = true;
            return;
        }
        let source = self.gws[from].own.clone();
        for to in 0..GATEWAYS {
            if to == from || !self.gws[to].alive {
                continue;
            }
            let now = self.now;
            let applied = self.gws[to].cluster.apply(&guild(g), &source, &body, now);
            self.gws[to].record(g, applied.changes);
            if applied.resync {
                let full = self.full_of(from, g);
                let again = self.gws[to].cluster.apply(&guild(g), &source, &full, now);
                self.gws[to].record(g, again.changes);
            }
        }
    }

    fn full_of(&self, gw: usize, g: usize) -> PresenceBody {
        PresenceBody::Full {
            seq: self.gws[gw].seqs.get(&g).copied().unwrap_or(0),
            users: self.gws[gw]
                .local
                .users(&guild(g))
                .iter()
                .map(|u| UserInfo::clone(u))
                .collect(),
        }
    }

    /// A local change on `gw`: into its own view, then a delta to the others.
    fn local_change(
        &mut self,
        gw: usize,
        g: usize,
        joined: Option<UserInfo>,
        left: Option<String>,
    ) {
        let own = self.gws[gw].own.clone();
        let changes = self.gws[gw].cluster.local(
            &guild(g),
            &own,
            joined.clone().map(Arc::new),
            left.as_deref(),
        );
        self.gws[gw].record(g, changes);
        let seq = self.gws[gw].seqs.entry(g).or_default();
        *seq += 1;
        let body = PresenceBody::Delta {
            seq: *seq,
            joined: joined.into_iter().collect(),
            left: left.into_iter().collect(),
        };
        self.publish(gw, g, body);
    }

    fn open_conn(&mut self, pick: usize) -> Option<usize> {
        let open: Vec<usize> = (0..self.conns.len())
            .filter(|i| self.conns[*i].open)
            .collect();
        (!open.is_empty()).then(|| open[pick % open.len()])
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Open {
                gw,
                user: u,
                guild: g,
            } => {
                if !self.gws[gw].alive {
                    return;
                }
                self.members.entry(g).or_default().insert(user(u).id);
                self.conns.push(Conn {
                    gw,
                    user: u,
                    guild: g,
                    open: true,
                });
                if self.gws[gw].local.connect(&guild(g), &Arc::new(user(u))) {
                    self.local_change(gw, g, Some(user(u)), None);
                }
            }
            Op::Close { pick } | Op::RemoveMembership { pick } => {
                let Some(i) = self.open_conn(pick) else {
                    return;
                };
                let at_once = matches!(op, Op::RemoveMembership { .. });
                let Conn {
                    gw,
                    user: u,
                    guild: g,
                    ..
                } = self.conns[i];
                self.conns[i].open = false;
                let id = user(u).id;
                if self.gws[gw]
                    .local
                    .disconnect(&guild(g), &id, self.now, at_once)
                {
                    self.local_change(gw, g, None, Some(id));
                }
            }
            Op::Advance { ms } => self.advance(Duration::from_millis(ms)),
            Op::Kill { gw } => self.kill(gw),
            Op::Lose { gw } => self.gws[gw].lose_next = true,
            Op::Stop { gw } => {
                if self.gws[gw].alive {
                    for g in 0..GUILDS {
                        self.publish(gw, g, PresenceBody::Gone);
                    }
                    self.kill(gw);
                }
            }
            Op::Restart { gw } => {
                if self.gws[gw].alive {
                    return;
                }
                self.gws[gw] = Gateway::start(self.incarnations, gw);
                self.incarnations += 1;
                // Following a guild asks every gateway for its full list; the snapshot comes
                // after the answers, so the new clients start from the merged view.
                for g in 0..GUILDS {
                    for from in 0..GATEWAYS {
                        if from != gw && self.gws[from].alive {
                            let full = self.full_of(from, g);
                            let source = self.gws[from].own.clone();
                            let now = self.now;
                            self.gws[gw].cluster.apply(&guild(g), &source, &full, now);
                        }
                    }
                    let (sample, count) = self.gws[gw].sample(g);
                    self.gws[gw].coalescer.told_all(&guild(g), &sample, count);
                    let snapshot = sample.into_iter().map(|u| u.id.clone()).collect();
                    self.gws[gw].client.insert(g, snapshot);
                }
            }
        }
        let now = self.now;
        for gw in self.gws.iter_mut().filter(|gw| gw.alive) {
            gw.flush(now);
        }
    }

    fn kill(&mut self, gw: usize) {
        self.gws[gw].alive = false;
        for c in self.conns.iter_mut().filter(|c| c.gw == gw) {
            c.open = false;
        }
    }

    /// Time passes: heartbeats from every live gateway (they go every TTL/3; steps are shorter),
    /// lingers end, dead sources expire.
    fn advance(&mut self, by: Duration) {
        // This round's heartbeats repair every earlier loss (a seq mismatch asks for the full
        // list), unless something of this round is lost too.
        self.lost = false;
        self.now += by;
        let now = self.now;
        for gw in 0..GATEWAYS {
            if !self.gws[gw].alive {
                continue;
            }
            for (g, id) in self.gws[gw].local.expire(now) {
                let g: usize = g[1..].parse().expect("test guild ids are g<n>");
                self.local_change(gw, g, None, Some(id));
            }
            for g in 0..GUILDS {
                let seq = self.gws[gw].seqs.get(&g).copied().unwrap_or(0);
                self.publish(gw, g, PresenceBody::Heartbeat { seq });
            }
        }
        for gw in self.gws.iter_mut().filter(|gw| gw.alive) {
            for (g, changes) in gw.cluster.expire(now) {
                let g: usize = g[1..].parse().expect("test guild ids are g<n>");
                gw.record(g, changes);
            }
        }
    }

    /// Users with an open connection to `g` on a live gateway.
    fn truth(&self, g: usize) -> BTreeSet<String> {
        self.conns
            .iter()
            .filter(|c| c.open && c.guild == g && self.gws[c.gw].alive)
            .map(|c| user(c.user).id)
            .collect()
    }

    fn check_invariants(&self) -> Result<(), TestCaseError> {
        for g in 0..GUILDS {
            let truth = self.truth(g);
            let members = self.members.get(&g).cloned().unwrap_or_default();
            for (i, gw) in self.gws.iter().enumerate().filter(|(_, gw)| gw.alive) {
                let online = gw.online(g);
                prop_assert!(
                    self.lost || truth.is_subset(&online),
                    "gw{i} g{g}: open users {truth:?} missing from {online:?}"
                );
                prop_assert!(
                    online.iter().all(|id| members.contains(id)),
                    "gw{i} g{g}: {online:?} holds a non-member (members {members:?})"
                );
                let client = gw.client.get(&g).cloned().unwrap_or_default();
                prop_assert!(
                    client.iter().all(|id| members.contains(id)),
                    "gw{i} g{g}: a client was told of a non-member: {client:?}"
                );
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn presence_converges_to_the_truth_and_stays_within_the_guild(ops in prop::collection::vec(op(), 1..80)) {
        let mut world = World::new();
        for op in &ops {
            world.step(op);
            world.check_invariants()?;
        }
        // Let every linger, TTL and coalescing window pass, in heartbeat-sized steps.
        let settle = TTL + LINGER + Duration::from_secs(2);
        let mut passed = Duration::ZERO;
        while passed < settle {
            world.step(&Op::Advance { ms: 4_000 });
            world.check_invariants()?;
            passed += Duration::from_millis(4_000);
        }
        for g in 0..GUILDS {
            let truth = world.truth(g);
            for (i, gw) in world.gws.iter().enumerate().filter(|(_, gw)| gw.alive) {
                prop_assert_eq!(&gw.online(g), &truth, "gw{} g{} view", i, g);
                prop_assert_eq!(gw.cluster.count(&guild(g)), truth.len());
                let client = gw.client.get(&g).cloned().unwrap_or_default();
                let listed: BTreeSet<String> =
                    truth.iter().take(sample_size(truth.len(), MAX_LISTED)).cloned().collect();
                prop_assert_eq!(&client, &listed, "gw{} g{}: snapshot + diffs", i, g);
            }
        }
    }
}
