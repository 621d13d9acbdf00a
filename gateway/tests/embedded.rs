//! The contract suite against embedded mode (one process, in-memory bus and store), plus the
//! cases only embedded mode can stage (no router running, dev login).

mod contract;
mod support;

use std::time::Duration;

use chat_shared::bus::{Bus, IngressItem, MemoryBus, MemoryBusConfig, SendAck};
use chat_shared::protocol::ServerFrame;
use chat_shared::protocol::identity::Role;
use futures::StreamExt;
use serde_json::{Value, json};
use support::{Embedded, Scope, http, user};

contract_suite!(Embedded::start());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_when_no_router_answers() {
    let d = Embedded::start_with(|_| {}, false).await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut a = ann.connect(&d, 0).await;
    let error = a.post(&g, "anyone?").await.expect_err("nobody routes");
    assert_eq!(error.code.as_str(), "server_error");
    a.round_trip().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_login_sets_session_and_cookie() {
    let d = Embedded::start().await;
    let url = format!("{}/api/dev/login", support::Deployment::gateway(&d, 0));
    let response = http()
        .post(&url)
        .json(&json!({"name": "Ann", "role": "club", "guilds": ["g1", "g2"]}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status().as_u16(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(cookie.starts_with("slimy_admin_token=") && cookie.contains("HttpOnly"));
    let body: Value = response.json().await.expect("json");
    let token = body["token"].as_str().expect("token");
    assert_eq!(body["user"]["role"], json!("club"));
    let me: Value = http()
        .get(format!("{}/api/me", support::Deployment::gateway(&d, 0)))
        .header("cookie", format!("slimy_admin_token={token}"))
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["guilds"], json!(["g1", "g2"]));
    for bad in [
        json!({"name": "", "role": "member"}),
        json!({"name": "x", "role": "god"}),
        json!({"name": "x", "role": "member", "guilds": ["bad guild"]}),
    ] {
        let status = http()
            .post(&url)
            .json(&bad)
            .send()
            .await
            .expect("login")
            .status();
        assert_eq!(status.as_u16(), 400, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_login_is_off_when_disabled() {
    let d = Embedded::start_with(|c| c.dev_login = Some(false), true).await;
    let status = http()
        .post(format!(
            "{}/api/dev/login",
            support::Deployment::gateway(&d, 0)
        ))
        .json(&json!({"name": "Ann", "role": "admin"}))
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status.as_u16(), 404);
}

/// No hold after `hello` (issue #16): a live message posted before a first-frame `resume`
/// goes out at once, and the replay then writes only what was not written — each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_frame_resume_after_live_writes_each_message_once() {
    let d = Embedded::start().await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let mut a = ann.connect(&d, 0).await;
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(a.post(&g, &format!("old {i}")).await.expect("ack").seq);
    }
    let mut b = bob.connect(&d, 0).await;
    let new = a.post(&g, "new while bob connects").await.expect("ack").seq;
    sent.push(new);
    assert_eq!(b.message().await.seq, new, "live at once, no hold");
    b.send_value(json!({"type": "resume", "positions": {g.clone(): 0}}))
        .await;
    let mut got = vec![new];
    loop {
        match b.recv().await {
            ServerFrame::Message(m) => got.push(m.seq),
            ServerFrame::Resumed(r) => {
                assert_eq!(r.replayed, 3, "the one already written is not replayed");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    got.sort_unstable();
    assert_eq!(got, sent, "every message once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_tokens_close_4001_unless_refreshed() {
    use chat_shared::auth::unix_now;
    use support::client::{Client, Connect};
    let d = Embedded::start_with(|c| c.heartbeat_ms = 500, true).await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let base = support::Deployment::gateway(&d, 0);
    let nearly_expired = |info: &chat_shared::protocol::identity::UserInfo| {
        let claims =
            json!({"sub": info.id, "name": info.name, "role": "member", "exp": unix_now() - 2});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(support::SECRET.as_bytes()),
        )
        .expect("token")
    };
    let (ann_old, bob_old) = (nearly_expired(&ann.info), nearly_expired(&bob.info));
    let mut a = Client::open(
        &base,
        Connect {
            token: Some(&ann_old),
            ..Connect::default()
        },
    )
    .await
    .expect("within leeway");
    let mut b = Client::open(
        &base,
        Connect {
            token: Some(&bob_old),
            ..Connect::default()
        },
    )
    .await
    .expect("within leeway");
    b.send_value(json!({"type": "refresh", "ref": "t1", "token": ann.token}))
        .await;
    match b.recv().await {
        ServerFrame::Error(e) => assert_eq!(
            (e.code.as_str(), e.reference.as_deref()),
            ("not_authorized", Some("t1"))
        ),
        other => panic!("another user's token must be refused, got {other:?}"),
    }
    b.send_value(json!({"type": "refresh", "ref": "t2", "token": bob.token}))
        .await;
    match b.recv().await {
        ServerFrame::Refreshed(r) => {
            assert_eq!(r.reference.as_deref(), Some("t2"));
            assert!(r.exp > unix_now() + 60);
        }
        other => panic!("expected refreshed, got {other:?}"),
    }
    let keep_b_talking = async {
        loop {
            b.round_trip().await;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    let closed = tokio::select! {
        closed = a.closed() => closed.expect("close frame"),
        _ = keep_b_talking => unreachable!(),
    };
    assert_eq!(
        u16::from(closed.code),
        4001,
        "the unrefreshed connection expires"
    );
    b.round_trip().await;
    b.post(&g, "still here")
        .await
        .expect("the refreshed connection lives on");
}

/// An embedded gateway with no router: the test takes the sends from the ingress itself.
async fn with_held_router() -> (Embedded, chat_shared::bus::BoxStream<IngressItem>) {
    let bus = MemoryBus::new(MemoryBusConfig::default());
    let ingress = bus.ingress().await.expect("the ingress");
    let mut deps = support::test_deps();
    deps.bus = bus;
    deps.in_process_workers = false;
    (Embedded::start_on(|_| {}, deps).await, ingress)
}

/// Takes `n` sends from the ingress before answering any; their texts.
async fn take_sends(
    ingress: &mut chat_shared::bus::BoxStream<IngressItem>,
    n: usize,
) -> Vec<IngressItem> {
    let mut taken = Vec::new();
    for _ in 0..n {
        let item = tokio::time::timeout(Duration::from_secs(2), ingress.next())
            .await
            .expect("each send reaches the router before any is answered")
            .expect("the ingress is open");
        taken.push(item);
    }
    taken
}

/// Answers the sends in order with seqs 1, 2, …
async fn answer_in_order(taken: Vec<IngressItem>) {
    for (seq, item) in (1..).zip(taken) {
        let ack = SendAck {
            message_id: format!("id{seq}"),
            seq,
        };
        item.reply.reply(Ok(ack)).await;
    }
}

fn texts(taken: &[IngressItem]) -> Vec<Option<String>> {
    taken.iter().map(|i| i.request.text.clone()).collect()
}

/// A connection's sends overlap their router round trips (issue #12: one send in flight per
/// connection capped a hot guild at ~10 / round trip): the router here (this test, on the
/// ingress) takes all three sends of one connection before answering any, in the order they
/// were sent, and the client gets the acks in that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connections_sends_reach_the_router_before_the_first_is_answered() {
    let (d, mut ingress) = with_held_router().await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut a = ann.connect(&d, 0).await;
    let mut refs = Vec::new();
    for i in 0..3 {
        refs.push(a.send(json!({"guildId": g, "text": format!("m{i}")})).await);
    }
    let taken = take_sends(&mut ingress, 3).await;
    assert_eq!(
        texts(&taken),
        ["m0", "m1", "m2"].map(|t| Some(t.to_owned()))
    );
    answer_in_order(taken).await;
    for (seq, reference) in (1..).zip(&refs) {
        let ack = a.answer(reference).await.expect("acked");
        assert_eq!(ack.seq, seq);
    }
}

/// The same on the Socket.IO path: three `chat:message` events of one socket reach the
/// router before the first is answered, in order, and their acks name their seqs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socketio_sockets_sends_reach_the_router_before_the_first_is_answered() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    let (d, mut ingress) = with_held_router().await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let base = support::Deployment::gateway(&d, 0).replace("http://", "ws://");
    let mut request = format!("{base}/socket.io/?EIO=4&transport=websocket")
        .into_client_request()
        .expect("request");
    let origin = support::ALLOWED_ORIGIN.parse().expect("origin");
    request.headers_mut().insert("origin", origin);
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    let open = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the open packet in time")
        .expect("open")
        .expect("a message");
    assert!(
        matches!(&open, Message::Text(t) if t.starts_with('0')),
        "the open packet first: {open:?}"
    );
    let connect = format!("40{}", json!({"token": ann.token}));
    ws.send(Message::text(connect)).await.expect("connect");
    for i in 0..3 {
        let event = json!(["chat:message", {"guildId": g, "text": format!("m{i}")}]);
        ws.send(Message::text(format!("42{i}{event}")))
            .await
            .expect("emit");
    }
    let taken = take_sends(&mut ingress, 3).await;
    assert_eq!(
        texts(&taken),
        ["m0", "m1", "m2"].map(|t| Some(t.to_owned()))
    );
    answer_in_order(taken).await;
    let mut acks = Vec::new();
    while acks.len() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("acks in time")
            .expect("open")
            .expect("a message");
        if let Message::Text(text) = message
            && let Some(ack) = text.strip_prefix("43")
        {
            acks.push(ack.to_owned());
        }
    }
    let expected: Vec<String> = (0..3)
        .map(|i| {
            format!(
                "{i}{}",
                json!([{"ok": true, "messageId": format!("id{}", i + 1), "seq": i + 1}])
            )
        })
        .collect();
    assert_eq!(acks, expected);
}
