//! `PRESENCE_ENABLED=false` (issue #13's off switch) over real sockets, embedded and across two
//! gateway processes on real NATS and Redis: every connection gets one `presence` snapshot per
//! guild saying `available:false` and never a `presence_diff`; `GET /api/guilds/{id}/presence`
//! says unavailable (non-members still get 403); nothing but typing goes on the presence bus;
//! chat and typing work as with presence on.

mod support;

use std::time::Duration;

use chat_shared::bus::Bus;
use chat_shared::bus::nats::{NatsBus, NatsConfig};
use chat_shared::bus::presence::{PresenceBody, Received};
use chat_shared::protocol::identity::Role;
use futures::StreamExt;
use serde_json::json;
use support::distributed::{Distributed, Topology};
use support::presence::{Tracker, http_presence};
use support::{Deployment, Embedded, Scope, user};

/// How long the test listens for frames that must not come (well past a diff's latency).
const QUIET: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_off_embedded() {
    let d = Embedded::start_with(|c| c.presence.presence_enabled = false, true).await;
    let bus = d.node().state.bus.clone();
    presence_off(&d, bus.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_off_distributed() {
    let d = Distributed::start_with(Topology {
        bots: 0,
        routers: 1,
        env: vec![("PRESENCE_ENABLED".to_owned(), "false".to_owned())],
        ..Topology::default()
    })
    .await;
    let bus = NatsBus::connect(&d.nats.url(), &NatsConfig::default())
        .await
        .expect("bus");
    presence_off(&d, bus.as_ref()).await;
}

async fn presence_off(d: &impl Deployment, bus: &dyn Bus) {
    let s = Scope::new();
    let (g, other) = (s.guild("g"), s.guild("other"));
    let mut wire = bus
        .presence()
        .expect("a presence channel")
        .subscribe(&g)
        .await
        .expect("subscribe");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let carol = user(d, &s.user_id("carol"), Role::Member, &[&g]).await;
    let outsider = user(d, &s.user_id("dan"), Role::Member, &[&other]).await;
    let mut a = ann.connect(d, 0).await;
    let mut b = bob.connect(d, 1).await;
    let (mut at, mut bt) = (Tracker::default(), Tracker::default());
    at.until(&mut a, "a snapshot", |t| t.view(&g).snapshots == 1)
        .await;
    bt.until(&mut b, "a snapshot", |t| t.view(&g).snapshots == 1)
        .await;
    // Someone comes and goes: with presence on, both would get diffs.
    let c = carol.connect(d, 0).await;
    drop(c);

    let ack = a
        .post(&g, "still chatting")
        .await
        .expect("the send is acked");
    let got = b.message().await;
    assert_eq!(
        (got.seq, got.message.text.as_str()),
        (ack.seq, "still chatting")
    );

    a.send_value(json!({"type": "typing", "guildId": g})).await;
    a.round_trip().await;
    bt.until(&mut b, "ann typing", |t| !t.typing.is_empty())
        .await;
    assert_eq!(bt.typing, vec![(g.clone(), ann.info.id.clone())]);

    at.drain(&mut a, QUIET).await;
    bt.drain(&mut b, QUIET).await;
    for t in [&at, &bt] {
        let view = t.view(&g);
        assert_eq!(
            (view.snapshots, view.diffs, view.available, view.count),
            (1, 0, false, 0),
            "one unavailable snapshot, no diffs: {t:?}"
        );
        assert!(view.online.is_empty() && !view.truncated, "{t:?}");
    }
    assert!(at.typing.is_empty(), "not to the typist: {at:?}");

    for (who, status) in [(&ann, 200), (&bob, 200), (&outsider, 403)] {
        let (got, body) = http_presence(d, 1, &g, &who.token).await;
        assert_eq!(got, status);
        let want = match status {
            200 => json!({"count": 0, "online": [], "truncated": false, "available": false}),
            _ => json!({"error": "forbidden_guild"}),
        };
        assert_eq!(body, want);
    }

    // The presence channel carried the typing notice and nothing else.
    let mut seen = Vec::new();
    while let Ok(Some(received)) =
        tokio::time::timeout(Duration::from_millis(300), wire.next()).await
    {
        seen.push(received);
    }
    assert!(
        seen.iter().all(
            |r| matches!(r, Received::Update(u) if matches!(u.body, PresenceBody::Typing { .. }))
        ),
        "only typing on the presence bus: {seen:?}"
    );
    assert_eq!(seen.len(), 1, "{seen:?}");
}
