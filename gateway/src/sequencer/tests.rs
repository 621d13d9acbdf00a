//! Table-driven cases of the sequencer: reordering, duplicates across feeds, admin-only
//! interleaving, resume racing live, gaps and their fill, guild removal mid-replay.

use super::*;

/// A test entry: `(guild, seq, prev, admin_only)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct E {
    pub guild: &'static str,
    pub seq: u64,
    pub prev: u64,
    pub admin_only: bool,
}

impl Sequenced for E {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn prev(&self) -> u64 {
        self.prev
    }
    fn guild_id(&self) -> &str {
        self.guild
    }
    fn admin_only(&self) -> bool {
        self.admin_only
    }
}

fn e(guild: &'static str, seq: u64, prev: u64) -> E {
    E {
        guild,
        seq,
        prev,
        admin_only: false,
    }
}

fn a(guild: &'static str, seq: u64, prev: u64) -> E {
    E {
        admin_only: true,
        ..e(guild, seq, prev)
    }
}

/// One input of a case.
enum In {
    Live(E),
    Begin(&'static str, u64),
    Page(&'static str, Vec<E>, bool),
    /// The page of the last fetch asked for (entries, more).
    Fill(Vec<E>, bool),
    Leave(&'static str),
    Join(&'static str),
    Resync,
}

/// What a case expects to see, flattened: `W(guild, seq)`, `R(guild, replayed)`, `F(guild,
/// after, before)`.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    W(&'static str, u64),
    R(String, u64),
    F(String, u64, Option<u64>),
    Slow,
}

fn run(admin: bool, guilds: &[&'static str], inputs: Vec<In>) -> Vec<Seen> {
    let mut seq = Sequencer::new(admin, guilds.iter().copied());
    let mut seen = Vec::new();
    let mut last_fetch: Option<Fetch> = None;
    for input in inputs {
        let mut out = Vec::new();
        match input {
            In::Live(entry) => seq.live(entry, &mut out),
            In::Begin(g, after) => seq.resume_begin(g, after),
            In::Page(g, entries, done) => seq.resume_page(g, entries, false, done, &mut out),
            In::Fill(entries, more) => {
                let fetch = last_fetch.take().expect("a fetch was asked for");
                seq.fill(&fetch, entries, more, &mut out);
            }
            In::Leave(g) => seq.leave(g),
            In::Join(g) => seq.join(g),
            In::Resync => seq.resync(&mut out),
        }
        for o in out {
            seen.push(match o {
                Out::Write(entry) => Seen::W(entry.guild, entry.seq),
                Out::Resumed {
                    guild, replayed, ..
                } => Seen::R(guild.to_string(), replayed),
                Out::Fetch(fetch) => {
                    let f = Seen::F(fetch.guild.to_string(), fetch.after, fetch.before);
                    last_fetch = Some(fetch);
                    f
                }
                Out::TooSlow => Seen::Slow,
            });
        }
    }
    seen
}

use In::*;
use Seen::*;

fn f(g: &str, after: u64, before: Option<u64>) -> Seen {
    F(g.to_string(), after, before)
}

fn r(g: &str, replayed: u64) -> Seen {
    R(g.to_string(), replayed)
}

/// Name, admin, member guilds, inputs, what is seen.
type Case = (&'static str, bool, Vec<&'static str>, Vec<In>, Vec<Seen>);

#[test]
fn cases() {
    let cases: Vec<Case> = vec![
        (
            "in order goes straight out",
            false,
            vec!["g1"],
            vec![
                Live(e("g1", 5, 3)),
                Live(e("g1", 6, 5)),
                Live(e("g1", 9, 6)),
            ],
            vec![W("g1", 5), W("g1", 6), W("g1", 9)],
        ),
        (
            "reordered: the later one waits, the hole is fetched, the late copy closes it",
            false,
            vec!["g1"],
            vec![
                Live(e("g1", 5, 3)),
                Live(e("g1", 7, 6)),
                Live(e("g1", 6, 5)),
                Fill(vec![e("g1", 6, 5)], false),
            ],
            vec![W("g1", 5), f("g1", 5, Some(7)), W("g1", 6), W("g1", 7)],
        ),
        (
            "a lost delivery is filled from the log",
            false,
            vec!["g1"],
            vec![
                Live(e("g1", 5, 3)),
                Live(e("g1", 8, 7)),
                Fill(vec![e("g1", 6, 5), e("g1", 7, 6)], false),
            ],
            vec![
                W("g1", 5),
                f("g1", 5, Some(8)),
                W("g1", 6),
                W("g1", 7),
                W("g1", 8),
            ],
        ),
        (
            "a fill cut at its limit asks for the rest",
            false,
            vec!["g1"],
            vec![
                Live(e("g1", 5, 3)),
                Live(e("g1", 9, 8)),
                Fill(vec![e("g1", 6, 5)], true),
                Fill(vec![e("g1", 8, 6)], false),
            ],
            vec![
                W("g1", 5),
                f("g1", 5, Some(9)),
                W("g1", 6),
                f("g1", 6, Some(9)),
                W("g1", 8),
                W("g1", 9),
            ],
        ),
        (
            "duplicates across feeds are written once",
            true,
            vec!["g1"],
            vec![
                Live(a("g1", 5, 4)),
                Live(a("g1", 5, 4)),
                Live(e("g1", 6, 5)),
                Live(a("g1", 5, 4)),
            ],
            vec![W("g1", 5), W("g1", 6)],
        ),
        (
            "a member never sees admin-only entries, which still move the position",
            false,
            vec!["g1"],
            vec![
                Live(e("g1", 5, 4)),
                Live(a("g1", 6, 5)),
                Live(e("g1", 7, 6)),
            ],
            vec![W("g1", 5), W("g1", 7)],
        ),
        (
            "admin-only of a non-member guild, reordered (two routers): both, in order",
            true,
            vec!["g1"],
            vec![
                Live(a("g2", 10, 8)),
                Live(a("g2", 14, 12)),
                Live(a("g2", 12, 10)),
                Fill(vec![a("g2", 12, 10)], false),
            ],
            vec![W("g2", 10), f("g2", 10, Some(14)), W("g2", 12), W("g2", 14)],
        ),
        (
            "an admin's fill of a non-member guild keeps only its admin-only entries",
            true,
            vec!["g1"],
            vec![
                Live(a("g2", 10, 8)),
                Live(a("g2", 14, 13)),
                Fill(
                    vec![e("g2", 11, 10), a("g2", 12, 11), e("g2", 13, 12)],
                    false,
                ),
            ],
            vec![W("g2", 10), f("g2", 10, Some(14)), W("g2", 12), W("g2", 14)],
        ),
        (
            "an admin resuming a non-member guild gets the replay's entries it never saw live",
            true,
            vec!["g1"],
            vec![
                Live(a("g2", 1, 0)),
                Live(a("g2", 3, 2)),
                Fill(vec![e("g2", 2, 1)], false),
                Begin("g2", 0),
                Page(
                    "g2",
                    vec![a("g2", 1, 0), e("g2", 2, 1), a("g2", 3, 2)],
                    true,
                ),
            ],
            vec![
                W("g2", 1),
                f("g2", 1, Some(3)),
                W("g2", 3),
                W("g2", 2),
                r("g2", 1),
            ],
        ),
        (
            "an admin resuming a non-member guild twice gets each entry once",
            true,
            vec!["g1"],
            vec![
                Live(a("g2", 1, 0)),
                Begin("g2", 0),
                Page("g2", vec![a("g2", 1, 0), e("g2", 2, 1)], true),
                Begin("g2", 0),
                Page("g2", vec![a("g2", 1, 0), e("g2", 2, 1)], true),
            ],
            vec![W("g2", 1), W("g2", 2), r("g2", 1), r("g2", 0)],
        ),
        (
            // Found by visibility_props: the two empty replays (0, 0] and (2, 2] were merged
            // into (0, 2], as if entry 2 had been replayed.
            "an admin's non-member replays that did not touch are not taken as one",
            true,
            vec!["g1"],
            vec![
                Begin("g2", 0),
                Page("g2", vec![], true),
                Begin("g2", 2),
                Page("g2", vec![], true),
                Begin("g2", 0),
                Page("g2", vec![e("g2", 2, 0)], true),
            ],
            vec![r("g2", 0), r("g2", 0), W("g2", 2), r("g2", 1)],
        ),
        (
            "a non-admin ignores guilds that are not theirs",
            false,
            vec!["g1"],
            vec![Live(e("g2", 5, 4)), Live(a("g2", 6, 5))],
            vec![],
        ),
        (
            "resume racing live: live waits, replay first, then the live ones not replayed",
            false,
            vec!["g1"],
            vec![
                Begin("g1", 2),
                Live(e("g1", 5, 4)),
                Live(e("g1", 6, 5)),
                Page("g1", vec![e("g1", 3, 2), e("g1", 4, 3)], false),
                Page("g1", vec![e("g1", 5, 4)], true),
            ],
            vec![W("g1", 3), W("g1", 4), W("g1", 5), r("g1", 3), W("g1", 6)],
        ),
        (
            "after a resume, a hole before the held live entries is fetched",
            false,
            vec!["g1"],
            vec![
                Begin("g1", 0),
                Live(e("g1", 9, 8)),
                Page("g1", vec![e("g1", 3, 0)], true),
                Fill(vec![e("g1", 8, 3)], false),
            ],
            vec![
                W("g1", 3),
                r("g1", 1),
                f("g1", 3, Some(9)),
                W("g1", 8),
                W("g1", 9),
            ],
        ),
        (
            "a resume of a guild already live skips what was written",
            false,
            vec!["g1"],
            vec![
                Live(e("g1", 5, 4)),
                Begin("g1", 4),
                Page("g1", vec![e("g1", 5, 4), e("g1", 6, 5)], true),
                Live(e("g1", 6, 5)),
                Live(e("g1", 7, 6)),
            ],
            vec![W("g1", 5), W("g1", 6), r("g1", 1), W("g1", 7)],
        ),
        (
            "guild removed mid-replay: nothing more of it, no resumed",
            false,
            vec!["g1", "g2"],
            vec![
                Begin("g1", 0),
                Page("g1", vec![e("g1", 1, 0)], false),
                Leave("g1"),
                Page("g1", vec![e("g1", 2, 1)], true),
                Live(e("g1", 3, 2)),
                Live(e("g2", 4, 0)),
            ],
            vec![W("g1", 1), W("g2", 4)],
        ),
        (
            "an admin leaving a guild keeps its admin-only entries only",
            true,
            vec!["g1"],
            vec![
                Live(e("g1", 1, 0)),
                Leave("g1"),
                Live(e("g1", 2, 1)),
                Live(a("g1", 3, 2)),
                Fill(vec![e("g1", 2, 1), a("g1", 3, 2)], false),
            ],
            vec![W("g1", 1), f("g1", 1, Some(3)), W("g1", 3)],
        ),
        (
            "a joined guild starts at its first live entry",
            false,
            vec![],
            vec![
                Live(e("g3", 5, 4)),
                Join("g3"),
                Live(e("g3", 7, 5)),
                Live(e("g3", 3, 2)),
            ],
            vec![W("g3", 7)],
        ),
        (
            "resync fetches after the last written entry; the fill writes what was lost",
            false,
            vec!["g1"],
            vec![
                Live(e("g1", 5, 4)),
                Resync,
                Fill(vec![e("g1", 6, 5), e("g1", 7, 6)], false),
                Live(e("g1", 7, 6)),
                Live(e("g1", 8, 7)),
            ],
            vec![
                W("g1", 5),
                f("g1", 5, None),
                W("g1", 6),
                W("g1", 7),
                W("g1", 8),
            ],
        ),
        (
            "a fill that comes back during a resume is left to the replay",
            false,
            vec!["g1"],
            vec![
                Live(e("g1", 5, 4)),
                Live(e("g1", 8, 7)),
                Begin("g1", 5),
                Fill(vec![e("g1", 6, 5)], false),
                Page(
                    "g1",
                    vec![e("g1", 6, 5), e("g1", 7, 6), e("g1", 8, 7)],
                    true,
                ),
            ],
            vec![
                W("g1", 5),
                f("g1", 5, Some(8)),
                W("g1", 6),
                W("g1", 7),
                W("g1", 8),
                r("g1", 3),
            ],
        ),
    ];
    for (name, admin, guilds, inputs, expected) in cases {
        assert_eq!(run(admin, &guilds, inputs), expected, "{name}");
    }
}

#[test]
fn too_much_held_back_is_too_slow() {
    let mut seq = Sequencer::new(false, ["g1"]);
    seq.resume_begin("g1", 0);
    let mut out = Vec::new();
    for n in 1..=MAX_HELD as u64 + 1 {
        seq.live(e("g1", n, n - 1), &mut out);
    }
    assert_eq!(out, vec![Out::TooSlow]);
}

#[test]
fn leaving_forgets_what_was_held() {
    let mut seq = Sequencer::new(false, ["g1"]);
    seq.resume_begin("g1", 0);
    let mut out = Vec::new();
    seq.live(e("g1", 3, 2), &mut out);
    assert_eq!(seq.held(), 1);
    seq.leave("g1");
    assert_eq!(seq.held(), 0);
}
