//! Presence and typing cases (issue #13) over real sockets, written once and run against each
//! deployment (embedded; distributed with clients spread over two gateways). The deployments
//! run with `PRESENCE_LINGER_MS=500`, `PRESENCE_TTL_MS=3000`, `PRESENCE_MAX_LISTED=3`.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chat_shared::bus::{Bus, UserEvent};
use chat_shared::protocol::ServerFrame;
use chat_shared::protocol::identity::Role;
use chat_shared::store::Session;
use serde_json::json;

use crate::support::client::Client;
use crate::support::presence::{Tracker, http_presence};
use crate::support::{Deployment, Scope, TestUser, user};

pub const LINGER: Duration = Duration::from_millis(500);
pub const TTL: Duration = Duration::from_millis(3000);
pub const MAX_LISTED: usize = 3;

/// The settings as environment variables (distributed) .
pub fn env() -> Vec<(String, String)> {
    [
        ("PRESENCE_LINGER_MS", LINGER.as_millis().to_string()),
        ("PRESENCE_TTL_MS", TTL.as_millis().to_string()),
        ("PRESENCE_MAX_LISTED", MAX_LISTED.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Snapshot first, then diffs as users come and go; gone only after the linger.
pub async fn join_leave_diff_order(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let mut a = ann.connect(d, 0).await;
    let mut at = Tracker::default();
    let first = a.presence_frame().await;
    match &first {
        ServerFrame::Presence(p) => {
            assert_eq!(p.guild_id, g);
            assert!(p.available && !p.truncated);
        }
        other => panic!("the first presence frame is the snapshot, got {other:?}"),
    }
    at.apply(&first);
    at.until_online(&mut a, &g, &[&ann.info.id]).await;
    let mut b = bob.connect(d, 1).await;
    let mut bt = Tracker::default();
    bt.until_online(&mut b, &g, &[&ann.info.id, &bob.info.id])
        .await;
    assert_eq!(bt.view(&g).snapshots, 1);
    at.until_online(&mut a, &g, &[&ann.info.id, &bob.info.id])
        .await;
    drop(b);
    let closed = Instant::now();
    at.until_online(&mut a, &g, &[&ann.info.id]).await;
    assert!(closed.elapsed() >= LINGER, "gone only after the linger");
}

/// Several connections of one user count once; gone when the last one closed.
pub async fn two_connections_count_once(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let mut a = ann.connect(d, 0).await;
    let mut at = Tracker::default();
    at.until_online(&mut a, &g, &[&ann.info.id]).await;
    let b1 = bob.connect(d, 0).await;
    let b2 = bob.connect(d, 1).await;
    at.until_online(&mut a, &g, &[&ann.info.id, &bob.info.id])
        .await;
    drop(b1);
    at.drain(&mut a, LINGER * 3).await;
    assert!(
        at.view(&g).online.contains(&bob.info.id),
        "one connection is still open"
    );
    assert_eq!(at.view(&g).count, 2);
    drop(b2);
    at.until_online(&mut a, &g, &[&ann.info.id]).await;
}

/// A page reload within the linger does not flap: no diff at all.
pub async fn reload_does_not_flap(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let mut a = ann.connect(d, 0).await;
    let mut at = Tracker::default();
    let b = bob.connect(d, 0).await;
    at.until_online(&mut a, &g, &[&ann.info.id, &bob.info.id])
        .await;
    let diffs = at.view(&g).diffs;
    drop(b);
    let _b = bob.connect(d, 0).await;
    at.drain(&mut a, LINGER * 3).await;
    assert_eq!(at.view(&g).diffs, diffs, "no diff for a reload: {at:?}");
}

/// `typing` reaches the guild's other members, not the sender's own connections, and at
/// most one per 2 s; a foreign guild is `forbidden_guild`, a missing one `missing_guild`.
pub async fn typing_reaches_others_only(d: &impl Deployment) {
    let s = Scope::new();
    let (g, other) = (s.guild("g"), s.guild("other"));
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let mut a1 = ann.connect(d, 0).await;
    let mut a2 = ann.connect(d, 1).await;
    let mut b = bob.connect(d, 1).await;
    let (mut t1, mut t2, mut bt) = (Tracker::default(), Tracker::default(), Tracker::default());
    t1.until_online(&mut a1, &g, &[&ann.info.id, &bob.info.id])
        .await;
    t2.until_online(&mut a2, &g, &[&ann.info.id, &bob.info.id])
        .await;
    bt.until_online(&mut b, &g, &[&ann.info.id, &bob.info.id])
        .await;
    for _ in 0..5 {
        a1.send_value(json!({"type": "typing", "guildId": g})).await;
    }
    a1.round_trip().await;
    bt.until(&mut b, "ann typing", |t| !t.typing.is_empty())
        .await;
    assert_eq!(bt.typing[0], (g.clone(), ann.info.id.clone()));
    bt.drain(&mut b, Duration::from_millis(700)).await;
    assert_eq!(bt.typing.len(), 1, "throttled to one per 2 s");
    t1.drain(&mut a1, Duration::from_millis(300)).await;
    t2.drain(&mut a2, Duration::from_millis(300)).await;
    assert!(
        t1.typing.is_empty() && t2.typing.is_empty(),
        "not to the sender's connections"
    );
    a1.send_value(json!({"type": "typing", "guildId": other}))
        .await;
    let refused = a1.wait_for(|f| matches!(f, ServerFrame::Error(_))).await;
    let ServerFrame::Error(e) = refused else {
        unreachable!()
    };
    assert_eq!(
        (e.code.as_str(), e.guild_id.as_deref()),
        ("forbidden_guild", Some(other.as_str()))
    );
    a1.send_value(json!({"type": "typing"})).await;
    let refused = a1.wait_for(|f| matches!(f, ServerFrame::Error(_))).await;
    let ServerFrame::Error(e) = refused else {
        unreachable!()
    };
    assert_eq!(e.code.as_str(), "missing_guild");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    b.send_value(json!({"type": "typing", "guildId": g})).await;
    t2.until(&mut a2, "bob typing", |t| !t.typing.is_empty())
        .await;
    a1.send_value(json!({"type": "typing", "guildId": g})).await;
    bt.until(&mut b, "ann typing again after 2 s", |t| {
        t.typing.len() == 2
    })
    .await;
}

/// Non-members see nothing of a guild, on the socket or over HTTP; members read it.
pub async fn non_members_see_nothing(d: &impl Deployment) {
    let s = Scope::new();
    let (g, g2) = (s.guild("g"), s.guild("g2"));
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let carol = user(d, &s.user_id("carol"), Role::Member, &[&g2]).await;
    let admin = user(d, &s.user_id("root"), Role::Admin, &[&g2]).await;
    let mut c = carol.connect(d, 1).await;
    let mut r = admin.connect(d, 0).await;
    let _a = ann.connect(d, 0).await;
    let (mut ct, mut rt) = (Tracker::default(), Tracker::default());
    ct.drain(&mut c, Duration::from_millis(800)).await;
    rt.drain(&mut r, Duration::from_millis(800)).await;
    for t in [&ct, &rt] {
        assert!(!t.guilds.contains_key(&g), "a non-member saw {g}: {t:?}");
        assert!(t.guilds.contains_key(&g2));
    }
    for (who, status) in [(&carol, 403), (&admin, 403), (&ann, 200)] {
        let (got, body) = http_presence(d, 1, &g, &who.token).await;
        assert_eq!(got, status);
        if status == 403 {
            assert_eq!(body, json!({"error": "forbidden_guild"}));
        } else {
            assert_eq!(body["count"], json!(1), "{body}");
            assert_eq!(body["online"][0]["id"], json!(ann.info.id));
            assert_eq!(
                (body["truncated"].clone(), body["available"].clone()),
                (json!(false), json!(true))
            );
        }
    }
}

/// Above `PRESENCE_MAX_LISTED` a guild lists a sample, the first `MAX_LISTED - 1` by name,
/// with the exact count: a member in the sample sees it, any other member the sample and
/// themself; diffs carry only the sample's changes and come at most once per second.
pub async fn large_guild_truncated_and_coalesced(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let users = members(d, &s, &g, 10).await;
    let ids: Vec<&str> = users.iter().map(|u| u.info.id.as_str()).collect();
    let (mut watcher, mut wt) = watch(d, &users[0], &g).await;
    let mut open = Vec::new();
    for (i, u) in users.iter().enumerate().skip(1) {
        open.push(u.connect(d, i).await);
    }
    let started = Instant::now();
    wt.until(&mut watcher, "count 10", |t| t.view(&g).count == 10)
        .await;
    let diffs = wt.view(&g).diffs;
    let allowed = 3 + started.elapsed().as_secs() as usize;
    assert!(diffs <= allowed, "{diffs} diffs in {:?}", started.elapsed());
    let sample: BTreeSet<String> = ids[..MAX_LISTED - 1]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        wt.view(&g).online,
        sample,
        "the watcher's view is the sample"
    );
    // (who connects again, whom their snapshot lists)
    for (who, listed) in [(1, &ids[..2]), (9, &[ids[0], ids[1], ids[9]][..])] {
        let mut late = users[who].connect(d, who).await;
        let snapshot = loop {
            if let ServerFrame::Presence(p) = late.presence_frame().await {
                break p;
            }
        };
        let got: Vec<&str> = snapshot.online.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(got, listed, "u{who}'s snapshot");
        assert_eq!((snapshot.count, snapshot.truncated), (10, true), "u{who}");
    }
}

/// A connection that opens in a large guild while the guild's diff is held (within the second
/// after the last one) ends with the true view: here a user who came and went within that
/// second is netted out of the held diff, so the newcomer, whose snapshot had them, must not
/// keep them. The newcomer is a second connection of a user already online, so it brings no
/// change of its own.
pub async fn late_joiner_during_a_held_diff(d: &impl Deployment, bus: &dyn Bus) {
    let s = Scope::new();
    let (g, other) = (s.guild("g"), s.guild("other"));
    let users = members(d, &s, &g, MAX_LISTED + 1).await;
    let ids: Vec<&str> = users.iter().map(|u| u.info.id.as_str()).collect();
    let (mut watcher, mut wt) = watch(d, &users[0], &g).await;
    let mut open = Vec::new();
    for u in &users[1..] {
        open.push(u.connect(d, 0).await);
    }
    // The diff that completes the count has just gone out: the next one is held for a second.
    let all = ids.len() as u64;
    wt.until(&mut watcher, "everyone counted", |t| {
        t.view(&g).count == all
    })
    .await;
    let passer = user(d, &s.user_id("passer"), Role::Member, &[&g, &other]).await;
    let mut p = passer.connect(d, 0).await;
    p.round_trip().await;
    let mut late = users[0].connect(d, 0).await;
    late.round_trip().await;
    d.store()
        .put(&passer.info.id, &Session::with_guilds([other.as_str()]))
        .await
        .expect("put");
    bus.publish_user_event(&passer.info.id, UserEvent::GuildsChanged)
        .await
        .expect("event");
    let mut lt = Tracker::default();
    let truth = ids.len() as u64;
    lt.until(&mut late, "the newcomer's view without the passer", |t| {
        let v = t.view(&g);
        v.count == truth && !v.online.contains(&passer.info.id)
    })
    .await;
}

/// A membership added live brings the user in (with a snapshot of the new guild); one removed
/// takes them out at once, without the linger.
pub async fn membership_change_live(d: &impl Deployment, bus: &dyn Bus) {
    let s = Scope::new();
    let (g1, g2) = (s.guild("g1"), s.guild("g2"));
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g1]).await;
    let bob = user(d, &s.user_id("bob"), Role::Member, &[&g2]).await;
    let mut a = ann.connect(d, 0).await;
    let mut b = bob.connect(d, 1).await;
    let (mut at, mut bt) = (Tracker::default(), Tracker::default());
    bt.until_online(&mut b, &g2, &[&bob.info.id]).await;
    at.until_online(&mut a, &g1, &[&ann.info.id]).await;
    let change = |guilds: Vec<String>| {
        let id = ann.info.id.clone();
        async move {
            d.store()
                .put(
                    &id,
                    &Session::with_guilds(guilds.iter().map(String::as_str)),
                )
                .await
                .expect("put");
            bus.publish_user_event(&id, UserEvent::GuildsChanged)
                .await
                .expect("event");
        }
    };
    change(vec![g1.clone(), g2.clone()]).await;
    at.until_online(&mut a, &g2, &[&ann.info.id, &bob.info.id])
        .await;
    bt.until_online(&mut b, &g2, &[&ann.info.id, &bob.info.id])
        .await;
    change(vec![g1.clone()]).await;
    let changed = Instant::now();
    bt.until_online(&mut b, &g2, &[&bob.info.id]).await;
    assert!(changed.elapsed() < Duration::from_secs(5));
}

/// `n` members of `g` named u0, u1, … in order.
async fn members(d: &impl Deployment, s: &Scope, g: &str, n: usize) -> Vec<TestUser> {
    let mut users = Vec::new();
    for i in 0..n {
        users.push(user(d, &s.user_id(&format!("u{i}")), Role::Member, &[g]).await);
    }
    users
}

/// `who` connected to gateway 0, once its view of `g` shows itself online.
async fn watch(d: &impl Deployment, who: &TestUser, g: &str) -> (Client, Tracker) {
    let mut watcher = who.connect(d, 0).await;
    let mut tracker = Tracker::default();
    tracker
        .until_online(&mut watcher, g, &[who.info.id.as_str()])
        .await;
    (watcher, tracker)
}
