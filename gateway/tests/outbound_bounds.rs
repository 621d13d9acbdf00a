//! Issue #14 item 3, over real sockets: a peer that stops reading is closed with 4009 by the
//! socket write timeout even when no live traffic arrives (a resume of a large backlog into a
//! socket nobody reads), and resumes are bounded per connection (a guild already being
//! resumed, and `resume` frames beyond their rate, are answered `rate_limited`).

mod support;

use std::time::{Duration, Instant};

use chat_shared::bus::AppendOutcome;
use chat_shared::protocol::identity::{Role, UserInfo};
use chat_shared::protocol::{ChatMessage, ServerFrame};
use serde_json::json;
use support::{Embedded, Scope, user};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Appends `count` messages of ~1.9 KB to `guild`'s log directly (no live traffic: nobody is
/// subscribed yet); returns their seqs.
async fn backlog(d: &Embedded, guild: &str, count: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(count);
    let bus = d.node().state.bus.clone();
    let text = "x".repeat(1900);
    for i in 0..count {
        let message = ChatMessage {
            guild_id: guild.to_owned(),
            message_id: format!("backlog-{i}"),
            admin_only: false,
            from: UserInfo::new("writer", "writer", Role::Member),
            text: text.clone(),
            ts: "2026-11-26T23:00:00.000Z".to_owned(),
        };
        match bus.append(message).await.expect("append") {
            AppendOutcome::Appended(entry) => seqs.push(entry.seq),
            other => panic!("not appended: {other:?}"),
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_closed_4009_without_live_traffic() {
    let d = Embedded::start_with(|c| c.outbound.write_timeout_ms = 500, true).await;
    let s = Scope::new();
    let g = s.guild("g");
    let seqs = backlog(&d, &g, 4000).await;
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    // A client with a tiny receive buffer that never reads after the handshake.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let addr = d.node().addr;
    let stream = socket.connect(addr).await.expect("connect");
    let url = format!("ws://{addr}/ws?resume={g}:0");
    let mut request = url.into_client_request().expect("request");
    let bearer = format!("Bearer {}", ann.token);
    request
        .headers_mut()
        .insert("authorization", bearer.parse().expect("header"));
    let (ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("handshake");
    let metrics = d.node().state.metrics.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while metrics.slow_closes.get() == 0 {
        assert!(
            Instant::now() < deadline,
            "a socket nobody reads was never closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(ws);
    // A reader of the same backlog is not affected.
    let mut b = ann.connect(&d, 0).await;
    b.send_value(json!({"type": "resume", "positions": {g.clone(): seqs[3989]}}))
        .await;
    match b.wait_for(|f| matches!(f, ServerFrame::Resumed(_))).await {
        ServerFrame::Resumed(r) => assert_eq!(r.replayed, 10),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_are_bounded_per_connection() {
    // A queue of the smallest byte bound: each replay page waits for the one before it to be
    // written, so the replay is still running when the second frame is read. With room for
    // all three pages the replay could end in the loop step before that read, and the second
    // `resume` be admitted (seen once in a full run on a loaded machine).
    let d = Embedded::start_with(|c| c.outbound.outbound_queue_bytes = 4096, true).await;
    let s = Scope::new();
    let g = s.guild("g");
    let seqs = backlog(&d, &g, 1200).await;
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut a = ann.connect(&d, 0).await;
    // The same guild twice while its replay (three pages) runs: the second is refused.
    let resume = json!({"type": "resume", "positions": {g.clone(): 0}});
    a.send_value(resume.clone()).await;
    a.send_value(resume.clone()).await;
    let (mut refused, mut resumed) = (0, 0);
    while resumed == 0 {
        match a.recv().await {
            ServerFrame::Error(e) => {
                assert_eq!(e.code.as_str(), "rate_limited");
                assert_eq!(e.guild_id.as_deref(), Some(g.as_str()));
                refused += 1;
            }
            ServerFrame::Resumed(_) => resumed += 1,
            ServerFrame::Message(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(refused, 1, "a guild is resumed once at a time");
    // Four frames are allowed at once (the burst; two were used above): of four more, two
    // are refused for the frame rate. Each frame gets one answer.
    let near_end = json!({"type": "resume", "positions": {g.clone(): seqs[1198]}});
    for _ in 0..4 {
        a.send_value(near_end.clone()).await;
    }
    let (mut over_rate, mut answers) = (0, 0);
    while answers < 4 {
        match a.recv().await {
            ServerFrame::Error(e) => {
                assert_eq!(e.code.as_str(), "rate_limited");
                over_rate += usize::from(e.guild_id.is_none());
                answers += 1;
            }
            ServerFrame::Resumed(_) => answers += 1,
            ServerFrame::Message(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(over_rate, 2, "frames beyond the burst of 4 are refused");
    a.round_trip().await;
}
