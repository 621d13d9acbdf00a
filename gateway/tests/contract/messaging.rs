//! Sends and deliveries: isolation by guild and by the admin rule, every error code, acks,
//! idempotency, order, MessagePack, the bot, and bad input.

use chat_shared::protocol::ServerFrame;
use chat_shared::protocol::identity::Role;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::next_is;
use crate::support::client::Connect;
use crate::support::{Deployment, Scope, user};

pub async fn guild_isolation(d: &impl Deployment) {
    let s = Scope::new();
    let (g1, g2) = (s.guild("g1"), s.guild("g2"));
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g1]).await;
    let bob = user(d, &s.user_id("bob"), Role::Member, &[&g1]).await;
    let cid = user(d, &s.user_id("cid"), Role::Member, &[&g2]).await;
    let (mut a, mut b, mut c) = (
        ann.connect(d, 0).await,
        bob.connect(d, 1).await,
        cid.connect(d, 2).await,
    );
    let ack = a.post(&g1, "hello g1").await.expect("ack");
    let seen = b.message().await;
    assert_eq!(
        (seen.seq, seen.message.message_id.as_str()),
        (ack.seq, ack.message_id.as_str())
    );
    assert_eq!(seen.message.text, "hello g1");
    assert_eq!(seen.message.from, ann.info);
    assert_eq!(
        next_is(&mut a, &ack.message_id).await.seq,
        ack.seq,
        "the sender sees its own message"
    );
    let marker = c.post(&g2, "marker g2").await.expect("ack");
    next_is(&mut c, &marker.message_id).await;
    let refused = c.post(&g1, "let me in").await.expect_err("not a member");
    assert_eq!(refused.code.as_str(), "forbidden_guild");
    let marker = b.post(&g1, "marker g1").await.expect("ack");
    next_is(&mut a, &marker.message_id).await;
}

pub async fn admin_only_isolation(d: &impl Deployment) {
    let s = Scope::new();
    let (g1, g2) = (s.guild("g1"), s.guild("g2"));
    let boss = user(d, &s.user_id("boss"), Role::Admin, &[&g1]).await;
    let other_admin = user(d, &s.user_id("root"), Role::Admin, &[]).await;
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g1]).await;
    let club = user(d, &s.user_id("club"), Role::Club, &[&g1, &g2]).await;
    let mut admin = boss.connect(d, 0).await;
    let mut root = other_admin.connect(d, 1).await;
    let mut member = ann.connect(d, 1).await;
    let mut clubber = club.connect(d, 0).await;
    let refused = member
        .request(json!({"guildId": g1, "text": "psst", "adminOnly": true}))
        .await
        .expect_err("members cannot send admin-only");
    assert_eq!(refused.code.as_str(), "admin_only_forbidden");
    let refused = clubber
        .request(json!({"guildId": g1, "text": "psst", "adminOnly": true}))
        .await
        .expect_err("club cannot send admin-only");
    assert_eq!(refused.code.as_str(), "admin_only_forbidden");
    let secret = admin
        .request(json!({"guildId": g1, "text": "admins only", "adminOnly": true}))
        .await
        .expect("admin may");
    assert!(
        next_is(&mut admin, &secret.message_id)
            .await
            .message
            .admin_only
    );
    next_is(&mut root, &secret.message_id).await;
    let in_g2 = admin
        .request(json!({"guildId": g2, "text": "admins in g2", "adminOnly": true}))
        .await
        .expect("admins may post to any guild");
    next_is(&mut root, &in_g2.message_id).await;
    next_is(&mut admin, &in_g2.message_id).await;
    let marker = admin.post(&g1, "public marker").await.expect("ack");
    next_is(&mut member, &marker.message_id).await;
    next_is(&mut clubber, &marker.message_id).await;
    next_is(&mut admin, &marker.message_id).await;
}

pub async fn send_error_codes(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let eve = user(d, &s.user_id("eve"), Role::Member, &[&g]).await;
    let mut a = ann.connect(d, 0).await;
    let mut e = eve.connect(d, 1).await;
    let long = "x".repeat(2001);
    let cases = [
        (json!({"guildId": g, "text": "   "}), "empty_message"),
        (json!({"guildId": g}), "empty_message"),
        (json!({"text": "hi"}), "missing_guild"),
        (json!({"guildId": "", "text": "hi"}), "missing_guild"),
        (
            json!({"guildId": s.guild("nope"), "text": "hi"}),
            "forbidden_guild",
        ),
        (
            json!({"guildId": g, "text": "hi", "adminOnly": true}),
            "admin_only_forbidden",
        ),
        (json!({"guildId": g, "text": long}), "message_too_long"),
        (
            json!({"guildId": g, "text": "hi", "messageId": "has space"}),
            "bad_frame",
        ),
        (
            json!({"guildId": g, "text": "hi", "messageId": "fake-bot"}),
            "bad_frame",
        ),
        (
            json!({"guildId": g, "text": "hi", "messageId": "x".repeat(65)}),
            "bad_frame",
        ),
    ];
    for (fields, code) in cases {
        let reference = a.send(fields.clone()).await;
        let error = a.answer(&reference).await.expect_err("refused");
        assert_eq!(error.code.as_str(), code, "{fields}");
        assert_eq!(error.reference.as_deref(), Some(reference.as_str()));
        assert!(!error.message.is_empty());
    }
    let exactly = "é".repeat(2000);
    a.request(json!({"guildId": g, "text": exactly}))
        .await
        .expect("2000 chars fit");
    let id = format!("{}-mine", s.user_id("m"));
    a.request(json!({"guildId": g, "text": "mine", "messageId": id}))
        .await
        .expect("ack");
    let stolen = e
        .request(json!({"guildId": g, "text": "theirs", "messageId": id}))
        .await;
    assert_eq!(
        stolen.expect_err("someone else's id").code.as_str(),
        "duplicate_message_id"
    );
}

pub async fn rate_limited_then_recovers(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut a = ann.connect(d, 0).await;
    let mut refs = Vec::new();
    for i in 0..60 {
        refs.push(
            a.send(json!({"guildId": g, "text": format!("burst {i}")}))
                .await,
        );
    }
    let mut limited = 0;
    for r in &refs {
        if let Err(e) = a.answer(r).await {
            assert_eq!(e.code.as_str(), "rate_limited");
            limited += 1;
        }
    }
    assert!(limited > 0, "a burst of 60 exceeds the default burst of 40");
    a.round_trip().await;
}

pub async fn bad_frames_keep_the_connection(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut a = ann.connect(d, 0).await;
    let bad: Vec<Message> = vec![
        Message::Text("{not json".into()),
        Message::Text("[1,2,3]".into()),
        Message::Text("42".into()),
        Message::Text(r#"{"type":"dance","ref":"d1"}"#.into()),
        Message::Text(r#"{"type":"send","ref":"d2","guildId":5,"text":"hi"}"#.into()),
        Message::Text(r#"{"type":"send","ref":"d3","text":"hi","adminOnly":"yes"}"#.into()),
        Message::Binary(vec![0xff, 0xfe, 0x00].into()),
    ];
    for message in bad {
        a.send_raw(message).await;
        match a.recv().await {
            ServerFrame::Error(e) => assert_eq!(e.code.as_str(), "bad_frame"),
            other => panic!("expected bad_frame, got {other:?}"),
        }
    }
    a.send_raw(Message::Text(r#"{"type":"dance","ref":"d9"}"#.into()))
        .await;
    let e = a.answer("d9").await.expect_err("unknown type");
    assert_eq!(e.reference.as_deref(), Some("d9"));
    a.round_trip().await;
    a.post(&g, "still here")
        .await
        .expect("the connection still works");
}

pub async fn frame_too_big_closes_1009(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut a = ann.connect(d, 0).await;
    let huge = format!(
        r#"{{"type":"send","guildId":"{g}","text":"{}"}}"#,
        "x".repeat(70_000)
    );
    a.send_raw(Message::Text(huge.into())).await;
    let frame = a.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1009);
}

pub async fn one_ack_per_send_in_seq_order(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let mut a = ann.connect(d, 0).await;
    let mut b = bob.connect(d, 1).await;
    let mut refs = Vec::new();
    for i in 0..20 {
        refs.push(a.send(json!({"guildId": g, "text": format!("n{i}")})).await);
    }
    let mut acked = Vec::new();
    for r in &refs {
        acked.push(a.answer(r).await.expect("ack").seq);
    }
    a.post(&g, "last").await.expect("ack");
    assert_eq!(a.stashed_acks(), 0, "no second ack for any send");
    assert!(
        acked.windows(2).all(|w| w[0] < w[1]),
        "seqs increase in send order: {acked:?}"
    );
    let mut seen = Vec::new();
    for _ in 0..20 {
        seen.push(b.message().await.seq);
    }
    assert_eq!(seen, acked, "every viewer gets the log order");
}

pub async fn idempotent_resend(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let mut a = ann.connect(d, 0).await;
    let mut b = bob.connect(d, 1).await;
    let id = s.user_id("once");
    let first = a
        .request(json!({"guildId": g, "text": "first", "messageId": id}))
        .await
        .expect("ack");
    let again = a
        .request(json!({"guildId": g, "text": "changed", "messageId": id}))
        .await
        .expect("ack");
    assert_eq!(
        (again.seq, again.message_id.as_str()),
        (first.seq, id.as_str())
    );
    let mut other = ann.connect(d, 1).await;
    let third = other
        .request(json!({"guildId": g, "text": "x", "messageId": id}))
        .await
        .expect("ack");
    assert_eq!(third.seq, first.seq, "same sender on another connection");
    let got = b.message().await;
    assert_eq!((got.message.text.as_str(), got.seq), ("first", first.seq));
    let marker = a.post(&g, "marker").await.expect("ack");
    next_is(&mut b, &marker.message_id).await;
}

pub async fn msgpack_path(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let mut a = ann
        .try_connect(
            d,
            0,
            Connect {
                msgpack: true,
                ..Connect::default()
            },
        )
        .await
        .expect("msgpack");
    let mut b = bob.connect(d, 1).await;
    let ack = a.post(&g, "packed").await.expect("ack");
    assert_eq!(a.message().await.message.text, "packed");
    assert_eq!(b.message().await.seq, ack.seq);
    let ack2 = b.post(&g, "from json").await.expect("ack");
    assert_eq!(a.message().await.seq, ack2.seq);
    a.send_raw(Message::Binary(vec![0xc1].into())).await;
    match a.recv().await {
        ServerFrame::Error(e) => assert_eq!(e.code.as_str(), "bad_frame"),
        other => panic!("expected bad_frame, got {other:?}"),
    }
    a.round_trip().await;
}

pub async fn bot_replies(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let boss = user(d, &s.user_id("boss"), Role::Admin, &[&g]).await;
    let mut a = ann.connect(d, 0).await;
    let mut admin = boss.connect(d, 1).await;
    let ask = a.post(&g, "hey @Slimy /ping").await.expect("ack");
    next_is(&mut a, &ask.message_id).await;
    let reply = a.message().await;
    assert_eq!(reply.message.message_id, format!("{}-bot", ask.message_id));
    assert_eq!(
        reply.message.from,
        chat_shared::protocol::identity::UserInfo::bot()
    );
    assert_eq!(reply.message.from.color, "#22c55e");
    assert_eq!(reply.message.text, "pong");
    assert!(!reply.message.admin_only);
    assert!(reply.seq > ask.seq);
    next_is(&mut admin, &ask.message_id).await;
    next_is(&mut admin, &reply.message.message_id).await;
    let private = admin
        .request(json!({"guildId": g, "text": "/help", "adminOnly": true, "requestBot": true}))
        .await
        .expect("ack");
    next_is(&mut admin, &private.message_id).await;
    let reply = admin.message().await;
    assert_eq!(
        reply.message.message_id,
        format!("{}-bot", private.message_id)
    );
    assert!(
        reply.message.admin_only,
        "the reply keeps the request's adminOnly"
    );
    let marker = admin.post(&g, "marker").await.expect("ack");
    next_is(&mut a, &marker.message_id).await;
}
