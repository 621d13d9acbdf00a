//! One slow reader does not slow the others: a client that stops reading while its guild gets a
//! burst is closed with 4009 once its outbound queue is full, the other members get every
//! message, and the slow one can reconnect and resume without loss.

mod support;

use chat_shared::protocol::ServerFrame;
use chat_shared::protocol::identity::Role;
use serde_json::json;
use support::{Embedded, Scope, user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_closed_with_4009_and_resumes() {
    let d = Embedded::start_with(
        |c| {
            c.outbound_queue = 16;
            c.send_rate_per_sec = 1_000_000;
            c.send_limits.user_send_rate_per_sec = 0;
            c.send_burst = 1_000_000;
        },
        true,
    )
    .await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let fast_user = user(&d, &s.user_id("fast"), Role::Member, &[&g]).await;
    let slow_user = user(&d, &s.user_id("slow"), Role::Member, &[&g]).await;
    let mut sender = ann.connect(&d, 0).await;
    let mut fast = fast_user.connect(&d, 0).await;
    let mut slow = slow_user.connect(&d, 0).await;
    slow.round_trip().await;
    let text = "x".repeat(1900);
    let (total_tx, mut total) = tokio::sync::watch::channel(usize::MAX);
    let reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        loop {
            let expected = *total.borrow_and_update();
            if seqs.len() >= expected {
                return seqs;
            }
            tokio::select! {
                m = fast.message() => seqs.push(m.seq),
                _ = total.changed() => {}
            }
        }
    });
    let metrics_url = format!("{}/metrics", support::Deployment::ops(&d, 0));
    let mut acked = Vec::new();
    let mut after_close = None;
    while after_close.is_none_or(|n| n > 0) {
        let reference = sender.send(json!({"guildId": g, "text": text})).await;
        acked.push(sender.answer(&reference).await.expect("ack").seq);
        while sender.stashed_messages() > 0 {
            sender.message().await;
        }
        after_close = match after_close {
            Some(n) => Some(n - 1),
            None if acked.len() % 100 == 0 && slow_closes(&metrics_url).await > 0 => Some(20),
            None => None,
        };
        assert!(acked.len() < 20_000, "the slow reader was never closed");
    }
    total_tx.send(acked.len()).expect("reader waits");
    let seen = reader.await.expect("fast reader");
    assert_eq!(seen, acked, "the fast member got every message in order");
    let mut last_seen = 0;
    let close = loop {
        match slow.next_or_close().await {
            Ok(ServerFrame::Message(m)) => last_seen = m.seq,
            Ok(_) => {}
            Err(close) => break close,
        }
    };
    assert_eq!(
        close.map(|f| u16::from(f.code)),
        Some(4009),
        "closed as too slow"
    );
    let mut again = slow_user.connect(&d, 0).await;
    again
        .send_value(json!({"type": "resume", "positions": {g.clone(): last_seen}}))
        .await;
    let mut replayed = Vec::new();
    loop {
        match again.recv().await {
            ServerFrame::Message(m) => replayed.push(m.seq),
            ServerFrame::Resumed(_) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let missed: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|seq| *seq > last_seen)
        .collect();
    assert_eq!(
        replayed, missed,
        "the slow reader recovers exactly what it missed"
    );
}

async fn slow_closes(metrics_url: &str) -> u64 {
    let text = support::http()
        .get(metrics_url)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with("chat_gateway_slow_consumer_closes_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
