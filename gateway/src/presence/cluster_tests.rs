//! Table-driven tests of [`super::ClusterView`].

use super::*;
use chat_shared::protocol::identity::Role;

const TTL: Duration = Duration::from_millis(30_000);

fn user(id: &str) -> UserInfo {
    UserInfo::new(id, id, Role::Member)
}

fn ids(users: &[impl std::borrow::Borrow<UserInfo>]) -> Vec<String> {
    let mut ids: Vec<String> = users.iter().map(|u| u.borrow().id.clone()).collect();
    ids.sort();
    ids
}

fn full(seq: u64, users: &[&str]) -> PresenceBody {
    PresenceBody::Full {
        seq,
        users: users.iter().map(|u| user(u)).collect(),
    }
}

fn delta(seq: u64, joined: &[&str], left: &[&str]) -> PresenceBody {
    PresenceBody::Delta {
        seq,
        joined: joined.iter().map(|u| user(u)).collect(),
        left: left.iter().map(|u| u.to_string()).collect(),
    }
}

#[test]
fn remote_updates_merge_into_one_view() {
    // (name, updates from source "b" at ms, expected online after, joined of the last, left of
    // the last, resync of the last)
    type Case = (
        &'static str,
        Vec<(u64, PresenceBody)>,
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "a full list joins its users",
            vec![(0, full(4, &["u2", "u3"]))],
            &["u1", "u2", "u3"],
            &["u2", "u3"],
            &[],
            false,
        ),
        (
            "a user on both gateways joins once",
            vec![(0, full(1, &["u1"]))],
            &["u1"],
            &[],
            &[],
            false,
        ),
        (
            "a delta in order",
            vec![(0, full(1, &["u2"])), (1, delta(2, &["u3"], &["u2"]))],
            &["u1", "u3"],
            &["u3"],
            &["u2"],
            false,
        ),
        (
            "a delta after a gap asks again",
            vec![(0, full(1, &[])), (1, delta(3, &["u3"], &[]))],
            &["u1", "u3"],
            &["u3"],
            &[],
            true,
        ),
        (
            "a delta from an unknown source asks",
            vec![(0, delta(1, &["u3"], &[]))],
            &["u1", "u3"],
            &["u3"],
            &[],
            true,
        ),
        (
            "a heartbeat in step",
            vec![
                (0, full(2, &["u2"])),
                (1, PresenceBody::Heartbeat { seq: 2 }),
            ],
            &["u1", "u2"],
            &[],
            &[],
            false,
        ),
        (
            "a heartbeat ahead asks",
            vec![
                (0, full(2, &["u2"])),
                (1, PresenceBody::Heartbeat { seq: 3 }),
            ],
            &["u1", "u2"],
            &[],
            &[],
            true,
        ),
        (
            "a heartbeat of an unknown source asks",
            vec![(0, PresenceBody::Heartbeat { seq: 0 })],
            &["u1"],
            &[],
            &[],
            true,
        ),
        (
            "a full list replaces",
            vec![(0, full(1, &["u2", "u3"])), (1, full(5, &["u3", "u4"]))],
            &["u1", "u3", "u4"],
            &["u4"],
            &["u2"],
            false,
        ),
        (
            "gone drops the source, not shared users",
            vec![(0, full(1, &["u1", "u2"])), (1, PresenceBody::Gone)],
            &["u1"],
            &[],
            &["u2"],
            false,
        ),
    ];
    let guild: Arc<str> = Arc::from("g1");
    let own: Arc<str> = Arc::from("a");
    let remote: Arc<str> = Arc::from("b");
    for (name, updates, online, joined, left, resync) in cases {
        let start = Instant::now();
        let mut view = ClusterView::new(TTL);
        let first = view.follow(&guild, &own, vec![user("u1").into()]);
        assert_eq!(ids(&first.joined), vec!["u1"], "{name}");
        let mut last = Applied::default();
        for (at, body) in &updates {
            last = view.apply(&guild, &remote, body, start + Duration::from_millis(*at));
        }
        let (listed, count) = view.listed(&guild, 100);
        assert_eq!(ids(&listed), *online, "{name}");
        assert_eq!(count, online.len(), "{name}");
        assert_eq!(ids(&last.changes.joined), *joined, "{name}");
        let mut got_left = last.changes.left.clone();
        got_left.sort();
        assert_eq!(got_left, *left, "{name}");
        assert_eq!(last.resync, resync, "{name}");
    }
}

#[test]
fn a_silent_gateway_expires_after_the_ttl() {
    let guild: Arc<str> = Arc::from("g1");
    let own: Arc<str> = Arc::from("a");
    let remote: Arc<str> = Arc::from("b");
    let start = Instant::now();
    let mut view = ClusterView::new(TTL);
    view.follow(&guild, &own, vec![user("u1").into()]);
    view.apply(&guild, &remote, &full(1, &["u1", "u2"]), start);
    view.apply(
        &guild,
        &remote,
        &PresenceBody::Heartbeat { seq: 1 },
        start + Duration::from_secs(10),
    );
    assert!(
        view.expire(start + Duration::from_secs(39)).is_empty(),
        "the heartbeat renewed it"
    );
    let expired = view.expire(start + Duration::from_secs(40));
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].1.left, vec!["u2".to_owned()]);
    assert!(view.is_online(&guild, "u1"), "the own source never expires");
    assert!(view.expire(start + Duration::from_secs(3600)).is_empty());
}

#[test]
fn the_list_is_truncated_with_the_exact_count() {
    let guild: Arc<str> = Arc::from("g1");
    let own: Arc<str> = Arc::from("a");
    let mut view = ClusterView::new(TTL);
    let users: Vec<Arc<UserInfo>> = (0..250).map(|i| user(&format!("u{i:03}")).into()).collect();
    view.follow(&guild, &own, users);
    for (max, listed) in [(100, 100), (250, 250), (1000, 250), (0, 0)] {
        let (got, count) = view.listed(&guild, max);
        assert_eq!((got.len(), count), (listed, 250), "max {max}");
        assert!(got.windows(2).all(|w| w[0].name <= w[1].name), "sorted");
    }
    assert_eq!(view.listed("other", 10), (Vec::new(), 0));
}

#[test]
fn the_list_is_the_first_in_name_order_across_sources() {
    let guild: Arc<str> = Arc::from("g1");
    let (own, other): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
    let named = |id: &str, name: &str| UserInfo::new(id, name, Role::Member);
    let mut view = ClusterView::new(TTL);
    view.follow(
        &guild,
        &own,
        vec![named("u1", "Cid").into(), named("u2", "Ann").into()],
    );
    let now = Instant::now();
    let remote = PresenceBody::Full {
        seq: 1,
        users: vec![named("u3", "Bob"), named("u2", "Ann")],
    };
    view.apply(&guild, &other, &remote, now);
    // (step, listed ids with max 2)
    let listed = |view: &ClusterView| {
        let (got, _) = view.listed(&guild, 2);
        got.into_iter().map(|u| u.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(listed(&view), ["u2", "u3"], "Ann, Bob; Cid beyond");
    view.local(&guild, &own, None, Some("u2"));
    assert_eq!(
        listed(&view),
        ["u2", "u3"],
        "Ann still online on the other source"
    );
    view.apply(&guild, &other, &delta(2, &[], &["u2"]), now);
    assert_eq!(listed(&view), ["u3", "u1"], "Ann gone: Bob, Cid");
    view.apply(&guild, &other, &PresenceBody::Gone, now);
    assert_eq!(listed(&view), ["u1"]);
    assert_eq!(
        view.user(&guild, "u1").map(|u| u.name.as_str()),
        Some("Cid")
    );
    assert_eq!(view.user(&guild, "u3"), None);
}

#[test]
fn local_changes_and_unfollowed_guilds() {
    let guild: Arc<str> = Arc::from("g1");
    let own: Arc<str> = Arc::from("a");
    let mut view = ClusterView::new(TTL);
    assert!(
        view.local(&guild, &own, Some(user("u1").into()), None)
            .is_empty(),
        "not followed"
    );
    view.follow(&guild, &own, vec![]);
    assert_eq!(
        ids(&view
            .local(&guild, &own, Some(user("u1").into()), None)
            .joined),
        vec!["u1"]
    );
    assert!(
        view.local(&guild, &own, Some(user("u1").into()), None)
            .is_empty(),
        "already there"
    );
    assert_eq!(
        view.local(&guild, &own, None, Some("u1")).left,
        vec!["u1".to_owned()]
    );
    view.unfollow(&guild);
    assert!(!view.follows(&guild));
    assert_eq!(
        view.apply(&guild, &own, &full(1, &["u1"]), Instant::now()),
        Applied::default()
    );
}
