//! Property: for any interleaving of appends, live copies on both feeds (reordered,
//! duplicated, some lost), replay pages and fill pages, what the sequencer writes for each
//! guild is the guild's log filtered by what the connection may see — all of it for a guild
//! resumed from 0, everything from its first written entry otherwise — in order, each once.

use std::collections::HashMap;

use proptest::prelude::*;

use super::tests::E;
use super::*;

const GUILDS: [&str; 3] = ["g1", "g2", "g3"];

/// The world around one connection: the log, copies in flight, replays, fetches.
struct World {
    admin: bool,
    members: Vec<&'static str>,
    log: Vec<E>,
    next_seq: u64,
    in_flight: Vec<E>,
    replays: Vec<(&'static str, u64, bool)>,
    fetches: Vec<Fetch>,
    seq: Sequencer<E>,
    written: Vec<Out<E>>,
}

impl World {
    fn new(admin: bool, members: Vec<&'static str>, resumed: Vec<&'static str>) -> Self {
        let mut seq = Sequencer::new(admin, members.iter().copied());
        for g in &resumed {
            seq.resume_begin(g, 0);
        }
        World {
            admin,
            members,
            log: Vec::new(),
            next_seq: 1,
            in_flight: Vec::new(),
            replays: resumed.into_iter().map(|g| (g, 0, false)).collect(),
            fetches: Vec::new(),
            seq,
            written: Vec::new(),
        }
    }

    fn step(&mut self, (kind, pick, bits): (u8, u8, u8)) {
        match kind % 5 {
            0 => self.append(GUILDS[pick as usize % 3], bits),
            1 | 4 => self.push_live(pick as usize),
            2 => self.replay(pick as usize),
            _ => self.complete_fetch(pick as usize),
        }
    }

    fn append(&mut self, guild: &'static str, bits: u8) {
        let prev = self
            .log
            .iter()
            .rev()
            .find(|e| e.guild == guild)
            .map_or(0, |e| e.seq);
        let entry = E {
            guild,
            seq: self.next_seq,
            prev,
            admin_only: bits.is_multiple_of(4),
        };
        self.next_seq += 1 + u64::from(bits % 2);
        if self.members.contains(&guild) && bits % 7 != 3 {
            self.in_flight.push(entry.clone());
        }
        if self.admin && entry.admin_only && bits % 11 != 5 {
            self.in_flight.push(entry.clone());
        }
        self.log.push(entry);
    }

    fn apply(&mut self, out: Vec<Out<E>>) {
        for o in out {
            match o {
                Out::Fetch(fetch) => self.fetches.push(fetch),
                other => self.written.push(other),
            }
        }
    }

    fn push_live(&mut self, pick: usize) {
        if self.in_flight.is_empty() {
            return;
        }
        let entry = self.in_flight.remove(pick % self.in_flight.len());
        let mut out = Vec::new();
        self.seq.live(entry, &mut out);
        self.apply(out);
    }

    /// The log of `guild` after `after` as a read with `visibility` returns it.
    fn read(
        &self,
        guild: &str,
        after: u64,
        limit: usize,
        visibility: Visibility,
    ) -> (Vec<E>, bool) {
        let all: Vec<E> = self
            .log
            .iter()
            .filter(|e| e.guild == guild && e.seq > after)
            .filter(|e| visibility == Visibility::All || !e.admin_only)
            .cloned()
            .collect();
        let more = all.len() > limit;
        (all.into_iter().take(limit).collect(), more)
    }

    fn replay(&mut self, pick: usize) {
        let open: Vec<usize> = (0..self.replays.len())
            .filter(|i| !self.replays[*i].2)
            .collect();
        if open.is_empty() {
            return;
        }
        let i = open[pick % open.len()];
        let (guild, after, _) = self.replays[i];
        let (page, more) = self.read(guild, after, 2, Visibility::for_admin(self.admin));
        self.replays[i].1 = page.last().map_or(after, |e| e.seq);
        self.replays[i].2 = !more;
        let mut out = Vec::new();
        self.seq.resume_page(guild, page, false, !more, &mut out);
        self.apply(out);
    }

    fn complete_fetch(&mut self, pick: usize) {
        if self.fetches.is_empty() {
            return;
        }
        let fetch = self.fetches.remove(pick % self.fetches.len());
        let (page, more) = self.read(&fetch.guild, fetch.after, 3, fetch.visibility);
        let mut out = Vec::new();
        self.seq.fill(&fetch, page, more, &mut out);
        self.apply(out);
    }

    /// Everything in flight arrives, replays end, and a resync (twice) fills what was lost.
    fn settle(&mut self) {
        while !self.in_flight.is_empty() {
            self.push_live(0);
        }
        while self.replays.iter().any(|r| !r.2) {
            self.replay(0);
        }
        for _ in 0..2 {
            let mut out = Vec::new();
            self.seq.resync(&mut out);
            self.apply(out);
            let mut rounds = 0;
            while !self.fetches.is_empty() && rounds < 10_000 {
                self.complete_fetch(0);
                rounds += 1;
            }
        }
    }

    fn sees(&self, entry: &E) -> bool {
        if self.members.contains(&entry.guild) {
            self.admin || !entry.admin_only
        } else {
            self.admin && entry.admin_only
        }
    }
}

/// Admin, membership of each guild, resumed from 0 in the handshake, the steps.
type Setup = (bool, Vec<bool>, Vec<bool>, Vec<(u8, u8, u8)>);

fn world() -> impl Strategy<Value = Setup> {
    (
        any::<bool>(),
        proptest::collection::vec(any::<bool>(), 3),
        proptest::collection::vec(any::<bool>(), 3),
        proptest::collection::vec(any::<(u8, u8, u8)>(), 0..160),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn writes_the_visible_log_in_order_once((admin, member, resume, ops) in world()) {
        let members: Vec<&str> = GUILDS.iter().zip(&member).filter(|(_, m)| **m).map(|(g, _)| *g).collect();
        let resumed: Vec<&str> = GUILDS.iter().zip(&resume).filter(|(g, r)| **r && members.contains(g)).map(|(g, _)| *g).collect();
        let mut world = World::new(admin, members, resumed.clone());
        for op in ops {
            world.step(op);
        }
        world.settle();
        let mut written: HashMap<&str, Vec<u64>> = HashMap::new();
        let mut resumed_frames: HashMap<String, usize> = HashMap::new();
        for out in &world.written {
            match out {
                Out::Write(e) => written.entry(e.guild).or_default().push(e.seq),
                Out::Resumed { guild, .. } => *resumed_frames.entry(guild.to_string()).or_default() += 1,
                Out::TooSlow => prop_assert!(false, "too slow"),
                Out::Fetch(_) => {}
            }
        }
        for guild in GUILDS {
            let got = written.remove(guild).unwrap_or_default();
            let visible: Vec<u64> = world.log.iter().filter(|e| e.guild == guild && world.sees(e)).map(|e| e.seq).collect();
            let expected: Vec<u64> = if resumed.contains(&guild) {
                visible
            } else {
                let first = got.first().copied().unwrap_or(u64::MAX);
                visible.into_iter().filter(|s| *s >= first).collect()
            };
            prop_assert_eq!(&got, &expected, "guild {}", guild);
            let frames = resumed_frames.get(guild).copied().unwrap_or(0);
            prop_assert_eq!(frames, usize::from(resumed.contains(&guild)), "resumed frames of {}", guild);
        }
    }
}
