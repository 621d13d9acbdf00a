//! `resume`: replays exactly what was missed, refuses guilds the user may not read, and never
//! replays admin-only messages to non-admins.

use chat_shared::protocol::ServerFrame;
use chat_shared::protocol::identity::Role;
use serde_json::json;

use super::next_is;
use crate::support::client::Connect;
use crate::support::{Deployment, Scope, user};

pub async fn resume_replays_exactly_the_missed(d: &impl Deployment) {
    let s = Scope::new();
    let (g1, g2) = (s.guild("g1"), s.guild("g2"));
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g1, &g2]).await;
    let bob = user(d, &s.user_id("bob"), Role::Admin, &[&g1, &g2]).await;
    let mut a = ann.connect(d, 0).await;
    let mut b = bob.connect(d, 1).await;
    let seen = b.post(&g1, "before").await.expect("ack");
    assert_eq!(a.message().await.seq, seen.seq);
    a.drop_connection().await;
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(b.post(&g1, &format!("missed {i}")).await.expect("ack").seq);
    }
    let hidden = b
        .request(json!({"guildId": g1, "text": "admins", "adminOnly": true}))
        .await
        .expect("ack");
    missed.push(b.post(&g1, "after hidden").await.expect("ack").seq);
    let in_g2 = b.post(&g2, "g2 missed").await.expect("ack");
    let mut a = ann.connect(d, 1).await;
    a.send_value(json!({"type": "resume", "positions": {g1.clone(): seen.seq, g2.clone(): 0}}))
        .await;
    let mut replayed = Vec::new();
    let mut resumed = Vec::new();
    while resumed.len() < 2 {
        match a.recv().await {
            ServerFrame::Message(m) if m.message.guild_id == g1 => replayed.push(m.seq),
            ServerFrame::Message(m) => assert_eq!(m.seq, in_g2.seq),
            ServerFrame::Resumed(r) => resumed.push(r),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        replayed, missed,
        "exactly the missed ones, in order, without the admin-only one"
    );
    assert!(!replayed.contains(&hidden.seq));
    let r1 = resumed
        .iter()
        .find(|r| r.guild_id == g1)
        .expect("resumed g1");
    assert_eq!((r1.replayed, r1.gap), (6, false));
    let marker = b.post(&g1, "live again").await.expect("ack");
    next_is(&mut a, &marker.message_id).await;
}

pub async fn resume_refuses_foreign_guilds(d: &impl Deployment) {
    let s = Scope::new();
    let (g1, g2) = (s.guild("g1"), s.guild("g2"));
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g1]).await;
    let mut a = ann.connect(d, 0).await;
    a.send_value(json!({"type": "resume", "positions": {g2.clone(): 0}}))
        .await;
    match a.recv().await {
        ServerFrame::Error(e) => {
            assert_eq!(e.code.as_str(), "forbidden_guild");
            assert_eq!(e.guild_id.as_deref(), Some(g2.as_str()));
        }
        other => panic!("expected forbidden_guild, got {other:?}"),
    }
    a.send_value(json!({"type": "resume", "positions": {g1.clone(): 0}}))
        .await;
    match a.recv().await {
        ServerFrame::Resumed(r) => assert_eq!((r.guild_id.as_str(), r.replayed), (g1.as_str(), 0)),
        other => panic!("expected resumed, got {other:?}"),
    }
}

pub async fn resume_after_live_has_no_duplicates(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let mut a = ann.connect(d, 0).await;
    let mut b = bob.connect(d, 1).await;
    let first = b.post(&g, "one").await.expect("ack");
    let second = b.post(&g, "two").await.expect("ack");
    assert_eq!(a.message().await.seq, first.seq);
    assert_eq!(a.message().await.seq, second.seq);
    a.send_value(json!({"type": "resume", "positions": {g.clone(): 0}}))
        .await;
    match a.wait_for(|f| matches!(f, ServerFrame::Resumed(_))).await {
        ServerFrame::Resumed(r) => assert_eq!(r.replayed, 0, "both were already sent live"),
        _ => unreachable!(),
    }
    let marker = b.post(&g, "three").await.expect("ack");
    next_is(&mut a, &marker.message_id).await;
}

/// Positions named in the handshake (`/ws?resume=g:0`): the replay comes before any live
/// message of that guild, even one posted while the replay runs; nothing twice, no gap in
/// order; other guilds are live at once.
pub async fn handshake_resume_replays_before_live(d: &impl Deployment) {
    let s = Scope::new();
    let (g, other) = (s.guild("g"), s.guild("other"));
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g, &other]).await;
    let bob = user(d, &s.user_id("bob"), Role::Member, &[&g, &other]).await;
    let mut b = bob.connect(d, 1).await;
    let mut sent = Vec::new();
    for i in 0..30 {
        sent.push(b.post(&g, &format!("old {i}")).await.expect("ack").seq);
    }
    let resume = format!("{g}:0");
    let how = Connect {
        resume: Some(&resume),
        ..Connect::default()
    };
    let mut a = ann
        .try_connect(d, 0, how)
        .await
        .expect("handshake accepted");
    for i in 0..5 {
        sent.push(b.post(&g, &format!("new {i}")).await.expect("ack").seq);
    }
    let live_other = b.post(&other, "other guild").await.expect("ack");
    let mut got = Vec::new();
    let mut resumed = None;
    let mut saw_other = false;
    while got.len() < sent.len() || resumed.is_none() || !saw_other {
        match a.recv().await {
            ServerFrame::Message(m) if m.message.guild_id == g => {
                assert!(
                    resumed.is_none() || m.seq > *sent.get(29).unwrap_or(&0),
                    "a replayed message after resumed"
                );
                got.push(m.seq)
            }
            ServerFrame::Message(m) => {
                assert_eq!(m.seq, live_other.seq);
                saw_other = true;
            }
            ServerFrame::Resumed(r) => {
                assert_eq!(r.guild_id, g);
                assert!(r.replayed >= 30, "replayed {}", r.replayed);
                resumed = Some(r);
            }
            frame => panic!("unexpected {frame:?}"),
        }
    }
    assert_eq!(got, sent, "the log in order, each once");
}

/// A malformed `resume` value refuses the handshake with 400 `bad_request`; a guild the user
/// may not read is answered after `hello` as in the frame.
pub async fn handshake_resume_refusals(d: &impl Deployment) {
    let s = Scope::new();
    let (g1, g2) = (s.guild("g1"), s.guild("g2"));
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g1]).await;
    for bad in ["g1", "g1:x", "g1:1,g1:2", "g1:-3"] {
        let how = Connect {
            resume: Some(bad),
            ..Connect::default()
        };
        let refusal = ann.try_connect(d, 0, how).await.err().expect("refused");
        assert_eq!(
            (refusal.status, refusal.error.as_str()),
            (400, "bad_request"),
            "{bad}"
        );
    }
    let resume = format!("{g2}:0,{g1}:0");
    let how = Connect {
        resume: Some(&resume),
        ..Connect::default()
    };
    let mut a = ann
        .try_connect(d, 0, how)
        .await
        .expect("handshake accepted");
    let mut refused = false;
    let mut resumed = false;
    while !(refused && resumed) {
        match a.recv().await {
            ServerFrame::Error(e) => {
                assert_eq!(e.code.as_str(), "forbidden_guild");
                assert_eq!(e.guild_id.as_deref(), Some(g2.as_str()));
                refused = true;
            }
            ServerFrame::Resumed(r) => {
                assert_eq!((r.guild_id.as_str(), r.replayed), (g1.as_str(), 0));
                resumed = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
