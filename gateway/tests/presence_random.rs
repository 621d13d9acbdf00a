//! Randomized presence over a real embedded gateway (issue #13 "Tests"): members connect and
//! disconnect extra sockets, send `typing`, and have their guilds changed live, in a random
//! order (seed printed; `PRESENCE_RANDOM_SEED` replays one). Checked on every frame of every
//! socket, in arrival order:
//! - a user never gets a `presence`, `presence_diff` or `typing` frame of a guild they are not
//!   a member of: each user has a guild they never join, and after a guild is removed from a
//!   user (the guild's observer saw them leave, then a ping round trip on each of their
//!   sockets marks the point), nothing of it arrives until they are added back;
//! - at the end, every socket's view (snapshot + diffs) of each of its guilds is the truth:
//!   the guild's current members (every user keeps one socket open throughout).

mod support;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use chat_shared::bus::UserEvent;
use chat_shared::protocol::ServerFrame;
use chat_shared::protocol::identity::Role;
use chat_shared::store::Session;
use serde_json::json;
use support::client::Client;
use support::{Deployment, Embedded, Scope, TestUser, user};

const USERS: usize = 4;
const GUILDS: usize = 3;
const STEPS: usize = 60;
const LINGER: Duration = Duration::from_millis(300);
/// The longest wait for presence to show a change (the machine is shared and loaded).
const SETTLE: Duration = Duration::from_secs(15);

/// xorshift64*: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// One socket: whose it is, what it saw, and what it must not see.
struct Sock {
    client: Client,
    owner: Owner,
    /// Snapshot + diffs per guild id.
    views: HashMap<String, BTreeSet<String>>,
    /// Guilds whose frames would be a leak on this socket now.
    banned: HashSet<String>,
    /// Guilds to ban once the pong with this ref is read.
    pending_ban: HashMap<String, String>,
    frames: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Owner {
    User(usize),
    Observer(usize),
}

impl Sock {
    fn new(client: Client, owner: Owner, banned: HashSet<String>) -> Self {
        Sock {
            client,
            owner,
            views: HashMap::new(),
            banned,
            pending_ban: HashMap::new(),
            frames: 0,
        }
    }

    /// Reads what arrives within `wait`, checking each frame in order.
    async fn pump(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.client.next_or_close()).await {
                Err(_) => return,
                Ok(Err(close)) => panic!("{:?}: socket closed: {close:?}", self.owner),
                Ok(Ok(frame)) => self.check(frame),
            }
            if left.is_zero() {
                return;
            }
        }
    }

    fn check(&mut self, frame: ServerFrame) {
        self.frames += 1;
        let guild = match &frame {
            ServerFrame::Presence(p) => Some(p.guild_id.clone()),
            ServerFrame::PresenceDiff(d) => Some(d.guild_id.clone()),
            ServerFrame::Typing(t) => Some(t.guild_id.clone()),
            ServerFrame::Pong(p) => {
                let reference = p.reference.clone().unwrap_or_default();
                let done: Vec<String> = self
                    .pending_ban
                    .iter()
                    .filter(|(_, r)| **r == reference)
                    .map(|(g, _)| g.clone())
                    .collect();
                for g in done {
                    self.pending_ban.remove(&g);
                    self.banned.insert(g);
                }
                None
            }
            _ => None,
        };
        if let Some(g) = &guild {
            assert!(
                !self.banned.contains(g),
                "{:?} got a frame of {g}, which it is not a member of: {frame:?}",
                self.owner
            );
        }
        match frame {
            ServerFrame::Presence(p) => {
                self.views.insert(
                    p.guild_id,
                    p.online.into_iter().map(|u| u.id.clone()).collect(),
                );
            }
            ServerFrame::PresenceDiff(d) => {
                let view = self.views.entry(d.guild_id).or_default();
                for id in d.left {
                    view.remove(&id);
                }
                for u in d.joined {
                    view.insert(u.id);
                }
            }
            _ => {}
        }
    }

    async fn ping(&mut self, reference: &str) {
        self.client
            .send_value(json!({"type": "ping", "ref": reference}))
            .await;
    }
}

struct World {
    d: Embedded,
    guilds: Vec<String>,
    users: Vec<TestUser>,
    observers: Vec<TestUser>,
    membership: Vec<BTreeSet<usize>>,
    /// Sockets: 0..GUILDS observers, then one permanent socket per user, then churn.
    socks: Vec<Sock>,
    pings: u64,
}

impl World {
    fn never(&self, u: usize) -> usize {
        u % GUILDS
    }

    fn banned_for(&self, owner: Owner) -> HashSet<String> {
        (0..GUILDS)
            .filter(|g| match owner {
                Owner::User(u) => !self.membership[u].contains(g),
                Owner::Observer(o) => *g != o,
            })
            .map(|g| self.guilds[g].clone())
            .collect()
    }

    async fn open(&mut self, owner: Owner) {
        let who = match owner {
            Owner::User(u) => &self.users[u],
            Owner::Observer(o) => &self.observers[o],
        };
        let client = who.connect(&self.d, 0).await;
        let banned = self.banned_for(owner);
        self.socks.push(Sock::new(client, owner, banned));
    }

    async fn pump_all(&mut self, wait: Duration) {
        let each = wait / self.socks.len().max(1) as u32;
        for s in &mut self.socks {
            s.pump(each.max(Duration::from_millis(5))).await;
        }
    }

    /// Pumps until the observer of `g` lists `want` (panics after [`SETTLE`]).
    async fn until_observer(&mut self, g: usize, want: &BTreeSet<String>) {
        let deadline = Instant::now() + SETTLE;
        loop {
            self.pump_all(Duration::from_millis(100)).await;
            if self.socks[g].views.get(&self.guilds[g]) == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "observer of g{g} never listed {want:?}: {:?}",
                self.socks[g].views
            );
        }
    }

    fn truth(&self, g: usize) -> BTreeSet<String> {
        (0..USERS)
            .filter(|u| self.membership[*u].contains(&g))
            .map(|u| self.users[u].info.id.clone())
            .chain([self.observers[g].info.id.clone()])
            .collect()
    }

    /// Changes `u`'s guilds live; waits until the observers show it, then bans removed guilds
    /// on `u`'s sockets from a ping round trip on.
    async fn set_guilds(&mut self, u: usize, fresh: BTreeSet<usize>) {
        let before = std::mem::replace(&mut self.membership[u], fresh.clone());
        let ids: Vec<&str> = fresh.iter().map(|g| self.guilds[*g].as_str()).collect();
        let id = self.users[u].info.id.clone();
        self.d
            .store()
            .put(&id, &Session::with_guilds(ids.iter().copied()))
            .await
            .expect("put");
        let bus = self.d.node().state.bus.clone();
        bus.publish_user_event(&id, UserEvent::GuildsChanged)
            .await
            .expect("event");
        // Added (or kept) guilds: their frames are allowed again at once.
        for g in &fresh {
            for s in self.socks.iter_mut().filter(|s| s.owner == Owner::User(u)) {
                s.banned.remove(&self.guilds[*g]);
                s.pending_ban.remove(&self.guilds[*g]);
            }
        }
        for g in fresh.union(&before).copied().collect::<Vec<_>>() {
            let truth = self.truth(g);
            self.until_observer(g, &truth).await;
        }
        for g in before.difference(&fresh).copied() {
            self.pings += 1;
            let reference = format!("ban{}", self.pings);
            for s in self.socks.iter_mut().filter(|s| s.owner == Owner::User(u)) {
                s.pending_ban
                    .insert(self.guilds[g].clone(), reference.clone());
                s.ping(&reference).await;
            }
        }
    }

    async fn step(&mut self, rng: &mut Rng) {
        match rng.below(10) {
            0..=2 => self.open(Owner::User(rng.below(USERS))).await,
            3..=4 => {
                let churn = self.socks.len() - (GUILDS + USERS);
                if churn > 0 {
                    let i = GUILDS + USERS + rng.below(churn);
                    self.socks.swap_remove(i).client.drop_connection().await;
                }
            }
            5..=6 => {
                let u = rng.below(USERS);
                let never = self.never(u);
                let mut fresh: BTreeSet<usize> = (0..GUILDS)
                    .filter(|g| *g != never && rng.below(2) == 0)
                    .collect();
                if fresh.is_empty() {
                    fresh.insert((never + 1) % GUILDS);
                }
                self.set_guilds(u, fresh).await;
            }
            7..=8 => {
                let i = GUILDS + rng.below(self.socks.len() - GUILDS);
                let g = self.guilds[rng.below(GUILDS)].clone();
                self.socks[i]
                    .client
                    .send_value(json!({"type": "typing", "guildId": g}))
                    .await;
            }
            _ => {
                let ms = 50 + rng.below(400) as u64;
                self.pump_all(Duration::from_millis(ms)).await;
            }
        }
        self.pump_all(Duration::from_millis(60)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_members_never_reveal_a_guild_to_a_non_member() {
    let seed = std::env::var("PRESENCE_RANDOM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("presence_random: PRESENCE_RANDOM_SEED={seed}");
    let mut rng = Rng(seed);
    let d = Embedded::start_with(
        |c| c.presence.presence_linger_ms = LINGER.as_millis() as u64,
        true,
    )
    .await;
    let s = Scope::new();
    let guilds: Vec<String> = (0..GUILDS).map(|g| s.guild(&format!("g{g}"))).collect();
    let mut observers = Vec::new();
    for (g, id) in guilds.iter().enumerate() {
        let name = s.user_id(&format!("obs{g}"));
        observers.push(user(&d, &name, Role::Member, &[id]).await);
    }
    let mut users = Vec::new();
    let mut membership = Vec::new();
    for u in 0..USERS {
        let mine: BTreeSet<usize> = (0..GUILDS).filter(|g| *g != u % GUILDS).collect();
        let ids: Vec<&str> = mine.iter().map(|g| guilds[*g].as_str()).collect();
        users.push(user(&d, &s.user_id(&format!("u{u}")), Role::Member, &ids).await);
        membership.push(mine);
    }
    let mut w = World {
        d,
        guilds,
        users,
        observers,
        membership,
        socks: Vec::new(),
        pings: 0,
    };
    for g in 0..GUILDS {
        w.open(Owner::Observer(g)).await;
    }
    for u in 0..USERS {
        w.open(Owner::User(u)).await;
    }
    for g in 0..GUILDS {
        let truth = w.truth(g);
        w.until_observer(g, &truth).await;
    }
    for _ in 0..STEPS {
        w.step(&mut rng).await;
    }

    // Closed churn sockets linger, then go; every view converges to the members.
    let deadline = Instant::now() + SETTLE;
    loop {
        w.pump_all(Duration::from_millis(200)).await;
        let wrong: Vec<String> = w
            .socks
            .iter()
            .flat_map(|s| {
                let guilds: Vec<usize> = match s.owner {
                    Owner::User(u) => w.membership[u].iter().copied().collect(),
                    Owner::Observer(o) => vec![o],
                };
                guilds.into_iter().filter_map(|g| {
                    let truth = w.truth(g);
                    (s.views.get(&w.guilds[g]) != Some(&truth)).then(|| {
                        format!(
                            "{:?} g{g}: {:?} != {truth:?}",
                            s.owner,
                            s.views.get(&w.guilds[g])
                        )
                    })
                })
            })
            .collect();
        if wrong.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "views never converged (seed {seed}): {wrong:?}"
        );
    }
    let frames: usize = w.socks.iter().map(|s| s.frames).sum();
    eprintln!(
        "presence_random: {} sockets, {frames} frames checked",
        w.socks.len()
    );
}
