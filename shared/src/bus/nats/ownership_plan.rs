//! What one router does with each ingress partition on a tick, decided from what the routers'
//! bucket shows (pure logic, no I/O; [`super::leases`] carries it out):
//! - a partition whose rendezvous owner ([`super::partitions::owner_of`]) is this router is
//!   held: renewed, or taken — and when another router still holds it, asked for with a
//!   `want.{partition}.{router}` key;
//! - a partition held here for someone else is kept (as a stand-in) until its owner asks for
//!   it, then handed over (lease first, subscription one tick later);
//! - a partition nobody holds and nobody asks for is taken at once as a stand-in, so a router
//!   that stopped (or a share whose owner's heartbeat outlives it) never leaves a partition
//!   without a router until heartbeats expire.

use std::collections::{BTreeMap, BTreeSet};

use super::partitions::{INGRESS_PARTITIONS, owner_of};

/// What the routers' bucket and this router's own state show on a tick.
#[derive(Debug, Default, Clone)]
pub struct View {
    pub me: String,
    /// Routers with a live heartbeat (this one included).
    pub members: Vec<String>,
    /// Partitions with a live lease (anyone's).
    pub leased: BTreeSet<u32>,
    /// Partitions some router asks for, with who asks.
    pub wants: BTreeMap<u32, BTreeSet<String>>,
    /// Partitions this router holds.
    pub held: BTreeSet<u32>,
    /// Of those, the ones whose lease it already gave back (subscription still open).
    pub releasing: BTreeSet<u32>,
}

/// What to do with one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Ours: renew the lease, or take it (asking for it when someone else holds it).
    Own,
    /// Held for its owner until asked: renew the lease.
    KeepStandIn,
    /// Not held by anyone and not asked for: take it as a stand-in.
    TakeStandIn,
    /// Its owner asks for it (or we already gave the lease back): hand it over.
    HandOver,
    /// Someone else's business.
    Leave,
}

/// The step for every partition, in partition order.
pub fn plan(view: &View) -> Vec<(u32, Step)> {
    (0..INGRESS_PARTITIONS)
        .map(|p| (p, step(view, p)))
        .collect()
}

fn step(view: &View, partition: u32) -> Step {
    if owner_of(partition, &view.members) == Some(view.me.as_str()) {
        return Step::Own;
    }
    let asked_by_other = view
        .wants
        .get(&partition)
        .is_some_and(|who| who.iter().any(|w| *w != view.me));
    if view.held.contains(&partition) {
        if asked_by_other || view.releasing.contains(&partition) {
            Step::HandOver
        } else {
            Step::KeepStandIn
        }
    } else if !view.leased.contains(&partition) && !asked_by_other {
        Step::TakeStandIn
    } else {
        Step::Leave
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::nats::partitions::wanted;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    /// A partition `me` owns among `members`, and one it does not.
    fn mine_and_not(me: &str, members: &[String]) -> (u32, u32) {
        let mine = wanted(me, members);
        let own = *mine.iter().next().expect("owns one");
        let other = (0..INGRESS_PARTITIONS)
            .find(|p| !mine.contains(p))
            .expect("does not own all");
        (own, other)
    }

    #[test]
    fn each_situation_of_a_partition() {
        let members = names(&["a", "b"]);
        let (own, other) = mine_and_not("a", &members);
        let base = View {
            me: "a".into(),
            members: members.clone(),
            ..View::default()
        };
        let wants_b: BTreeMap<u32, BTreeSet<String>> =
            [(other, BTreeSet::from(["b".to_owned()]))].into();
        let cases: Vec<(&str, View, u32, Step)> = vec![
            ("ours, free", base.clone(), own, Step::Own),
            (
                "ours, held by another",
                View {
                    leased: [own].into(),
                    ..base.clone()
                },
                own,
                Step::Own,
            ),
            (
                "theirs, leased by them",
                View {
                    leased: [other].into(),
                    ..base.clone()
                },
                other,
                Step::Leave,
            ),
            (
                "theirs, nobody holds it",
                base.clone(),
                other,
                Step::TakeStandIn,
            ),
            (
                "theirs, free but asked for",
                View {
                    wants: wants_b.clone(),
                    ..base.clone()
                },
                other,
                Step::Leave,
            ),
            (
                "theirs, held here, not asked",
                View {
                    leased: [other].into(),
                    held: [other].into(),
                    ..base.clone()
                },
                other,
                Step::KeepStandIn,
            ),
            (
                "theirs, held here, asked",
                View {
                    leased: [other].into(),
                    held: [other].into(),
                    wants: wants_b,
                    ..base.clone()
                },
                other,
                Step::HandOver,
            ),
            (
                "theirs, lease already given back",
                View {
                    held: [other].into(),
                    releasing: [other].into(),
                    ..base.clone()
                },
                other,
                Step::HandOver,
            ),
        ];
        for (name, view, partition, expected) in cases {
            assert_eq!(step(&view, partition), expected, "{name}");
        }
    }

    #[test]
    fn a_lone_router_owns_everything() {
        let view = View {
            me: "a".into(),
            members: names(&["a"]),
            ..View::default()
        };
        assert!(plan(&view).iter().all(|(_, s)| *s == Step::Own));
    }

    #[test]
    fn two_routers_converge_to_one_holder_each() {
        // Simulates ticks of two routers over one shared bucket until nothing changes.
        let members = names(&["a", "b"]);
        let mut leases: BTreeMap<u32, String> = BTreeMap::new();
        // "a" started alone and holds everything.
        for p in 0..INGRESS_PARTITIONS {
            leases.insert(p, "a".into());
        }
        let mut wants: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        let mut releasing: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        let mut held: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        held.insert("a".into(), (0..INGRESS_PARTITIONS).collect());
        for _ in 0..6 {
            for me in ["a", "b"] {
                let view = View {
                    me: me.into(),
                    members: members.clone(),
                    leased: leases.keys().copied().collect(),
                    wants: wants.clone(),
                    held: held.get(me).cloned().unwrap_or_default(),
                    releasing: releasing.get(me).cloned().unwrap_or_default(),
                };
                for (p, s) in plan(&view) {
                    let mine = held.entry(me.into()).or_default();
                    match s {
                        Step::Own | Step::TakeStandIn => match leases.get(&p) {
                            None => {
                                leases.insert(p, me.into());
                                mine.insert(p);
                                if let Some(w) = wants.get_mut(&p) {
                                    w.remove(me);
                                }
                            }
                            Some(holder) if holder != me && s == Step::Own => {
                                wants.entry(p).or_default().insert(me.into());
                            }
                            Some(_) => {}
                        },
                        Step::HandOver => {
                            let gone = releasing.entry(me.into()).or_default();
                            if gone.contains(&p) {
                                gone.remove(&p);
                                mine.remove(&p);
                            } else {
                                gone.insert(p);
                                if leases.get(&p).map(String::as_str) == Some(me) {
                                    leases.remove(&p);
                                }
                            }
                        }
                        Step::KeepStandIn | Step::Leave => {}
                    }
                }
            }
        }
        for p in 0..INGRESS_PARTITIONS {
            let owner = owner_of(p, &members).expect("an owner");
            assert_eq!(
                leases.get(&p).map(String::as_str),
                Some(owner),
                "partition {p}"
            );
        }
    }
}
