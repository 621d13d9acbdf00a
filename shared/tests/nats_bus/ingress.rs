//! Sends from gateways to routers: request/reply on the partition subjects, each partition
//! served by the router holding its lease.

use std::collections::HashSet;
use std::sync::Arc;

use chat_shared::bus::nats::payload::{IngressBatch, decode};
use chat_shared::bus::nats::{NatsBus, NatsConfig};
use chat_shared::bus::{Bus, BusError, INTERNAL_VERSION, IngressItem, SendAck, SendRequest};
use futures::StreamExt;
use testkit::NatsServer;
use tokio::sync::mpsc;

use crate::support::*;

fn send(guild: Option<&str>, id: &str) -> SendRequest {
    SendRequest {
        v: INTERNAL_VERSION,
        sender: user("u1"),
        guild_id: guild.map(str::to_owned),
        text: Some("hi".into()),
        admin_only: false,
        request_bot: false,
        message_id: Some(id.to_owned()),
        member_verified: true,
    }
}

/// A router that answers every send with its own name in the ack, and reports each request.
async fn router(
    bus: Arc<NatsBus>,
    name: &'static str,
    seen: mpsc::UnboundedSender<(String, SendRequest)>,
) {
    let mut items = bus.ingress().await.unwrap();
    tokio::spawn(async move {
        while let Some(IngressItem { request, reply, .. }) = items.next().await {
            let _ = seen.send((name.to_owned(), request.clone()));
            let ack = SendAck {
                message_id: format!("{name}:{}", request.message_id.unwrap_or_default()),
                seq: 1,
            };
            reply.reply(Ok(ack)).await;
        }
    });
}

#[tokio::test]
async fn two_routers_share_the_sends_and_each_is_answered_once() {
    let nats = NatsServer::start();
    let gateway = bus(&nats).await;
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    router(bus(&nats).await, "r1", seen_tx.clone()).await;
    router(bus(&nats).await, "r2", seen_tx).await;

    let mut answered = Vec::new();
    for i in 0..20 {
        let guild = format!("g{}", i % 4);
        let outcome = gateway
            .submit(send(Some(&guild), &format!("m{i}")))
            .await
            .unwrap();
        answered.push(outcome.expect("acked").message_id);
    }

    let mut handled = Vec::new();
    while handled.len() < 20 {
        handled.push(received(&mut seen_rx).await);
    }
    assert!(seen_rx.try_recv().is_err(), "no send is handled twice");
    let distinct: HashSet<_> = handled.iter().map(|(_, r)| r.message_id.clone()).collect();
    assert_eq!(distinct.len(), 20);
    for (router, request) in &handled {
        let id = request.message_id.as_deref().unwrap_or_default();
        assert!(answered.contains(&format!("{router}:{id}")));
    }
}

/// Acks a send with its own messageId (seq 1).
async fn ack_with_its_id(request: SendRequest, reply: Box<dyn chat_shared::bus::IngressReply>) {
    let message_id = request.message_id.unwrap_or_default();
    reply.reply(Ok(SendAck { message_id, seq: 1 })).await;
}

/// A router that holds the send `m0` until `release` fires, so the sends behind it queue.
async fn held_router(bus: Arc<NatsBus>, release: tokio::sync::oneshot::Receiver<()>) {
    let mut items = bus.ingress().await.unwrap();
    tokio::spawn(async move {
        // Dropping the bus would stop its partition ownership.
        let _serving = bus;
        let mut release = Some(release);
        while let Some(IngressItem { request, reply, .. }) = items.next().await {
            if request.message_id.as_deref() == Some("m0")
                && let Some(release) = release.take()
            {
                let _ = release.await;
            }
            ack_with_its_id(request, reply).await;
        }
    });
}

/// A gateway that waits long for its router (a loaded machine may take seconds to hand the
/// partition to the router just started).
async fn patient_gateway(nats: &NatsServer) -> Arc<NatsBus> {
    let config = NatsConfig {
        ingress_timeout_ms: 30_000,
        ..NatsConfig::default()
    };
    bus_with(nats, config).await
}

#[tokio::test]
async fn sends_that_queue_behind_open_requests_share_one_request() {
    let nats = NatsServer::start();
    let gateway = patient_gateway(&nats).await;
    let (release, released) = tokio::sync::oneshot::channel();
    held_router(bus(&nats).await, released).await;
    // Once the router serves the partition (a request before would reach only `raw` below).
    let warm = gateway.submit(send(Some("g"), "warm")).await.unwrap();
    assert_eq!(warm.expect("acked").message_id, "warm");
    let raw = raw_client(&nats).await;
    let mut requests = raw.subscribe("chat.ingress.>").await.unwrap();
    // The server has the subscription before the first send leaves: it echoes a probe (no
    // router serves "probe") back to it.
    raw.publish("chat.ingress.probe", "probe".into())
        .await
        .unwrap();
    let probe = next(&mut requests).await;
    assert_eq!(probe.subject.as_str(), "chat.ingress.probe");

    let submitter = gateway.clone();
    let answered = tokio::spawn(async move {
        let sends = (0..100).map(|i| submitter.submit(send(Some("g"), &format!("m{i}"))));
        futures::future::join_all(sends).await
    });
    // The first request has left and the router holds its first send: the rest queue behind
    // the two requests a partition keeps open.
    let first = next(&mut requests).await;
    let _ = release.send(());
    let answers = answered.await.unwrap();

    for (i, answer) in answers.into_iter().enumerate() {
        let ack = answer
            .unwrap_or_else(|e| panic!("send {i}: {e:?}"))
            .expect("acked");
        assert_eq!(
            ack.message_id,
            format!("m{i}"),
            "each send gets its own answer"
        );
    }
    let sends_in = |request: &async_nats::Message| {
        decode::<IngressBatch>(&request.payload)
            .expect("a batch")
            .sends
            .len()
    };
    let mut carried = sends_in(&first);
    let mut messages = 1;
    while carried < 100 {
        carried += sends_in(&next(&mut requests).await);
        messages += 1;
    }
    assert_eq!(carried, 100);
    assert!(messages <= 4, "100 sends took {messages} requests");
}

#[tokio::test]
async fn no_router_means_unavailable_and_a_silent_router_means_timeout() {
    let nats = NatsServer::start();
    let config = NatsConfig {
        ingress_timeout_ms: 300,
        ..NatsConfig::default()
    };
    let gateway = bus_with(&nats, config).await;

    let nobody = gateway.submit(send(Some("g1"), "m1")).await.unwrap_err();
    assert!(matches!(nobody, BusError::Unavailable(_)), "{nobody:?}");

    let router_bus = bus(&nats).await;
    let mut items = router_bus.ingress().await.unwrap();
    // Takes the send and holds it until the submitter has given up (an item dropped
    // unanswered is answered `server_error`).
    let (gave_up, given_up) = tokio::sync::oneshot::channel::<()>();
    let held = tokio::spawn(async move {
        let item = items.next().await;
        let _ = given_up.await;
        item.map(|item| item.request)
    });
    let silent = gateway.submit(send(Some("g1"), "m2")).await.unwrap_err();
    let _ = gave_up.send(());
    assert!(matches!(silent, BusError::Timeout), "{silent:?}");
    assert!(held.await.unwrap().is_some());
}

#[tokio::test]
async fn garbage_on_an_ingress_subject_is_dropped_and_routing_goes_on() {
    let nats = NatsServer::start();
    let gateway = bus(&nats).await;
    let router_bus = bus(&nats).await;
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    router(router_bus.clone(), "r1", seen_tx).await;
    let raw = raw_client(&nats).await;

    let subject = chat_shared::bus::nats::subjects::ingress_subject(Some("g"));
    let mut echo = raw.subscribe(subject.clone()).await.unwrap();
    raw.publish_with_reply(subject, "nowhere", vec![0xc1, 0x00].into())
        .await
        .unwrap();
    next(&mut echo).await;
    let outcome = gateway.submit(send(Some("g"), "m1")).await.unwrap();

    assert_eq!(outcome.unwrap().message_id, "r1:m1");
    assert_eq!(
        received(&mut seen_rx).await.1.message_id.as_deref(),
        Some("m1")
    );
    assert_eq!(router_bus.dropped_payloads().ingress, 1);
}

#[tokio::test]
async fn a_send_the_router_drops_unanswered_is_answered_server_error_at_once() {
    let nats = NatsServer::start();
    let gateway = patient_gateway(&nats).await;
    let router_bus = bus(&nats).await;
    let mut items = router_bus.ingress().await.unwrap();
    tokio::spawn(async move {
        // Answers the warm-up, then drops every send without answering it.
        let _serving = router_bus;
        let mut first = true;
        while let Some(IngressItem { request, reply, .. }) = items.next().await {
            if std::mem::take(&mut first) {
                ack_with_its_id(request, reply).await;
            }
        }
    });
    let warm = gateway.submit(send(Some("g"), "warm")).await.unwrap();
    assert!(warm.is_ok(), "{warm:?}");

    let started = std::time::Instant::now();
    let dropped = gateway.submit(send(Some("g"), "m1")).await.unwrap();
    assert_eq!(dropped, Err(chat_shared::protocol::ErrorCode::ServerError));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "answered when dropped, not at the timeout: {:?}",
        started.elapsed()
    );
}

/// A gateway's bus, and a raw client subscribed to guild "g"'s ingress partition (the test
/// plays its router).
async fn gateway_and_raw_router(
    nats: &NatsServer,
) -> (Arc<NatsBus>, async_nats::Client, async_nats::Subscriber) {
    let gateway = bus(nats).await;
    let raw = raw_client(nats).await;
    let requests = raw
        .subscribe(chat_shared::bus::nats::subjects::ingress_subject(Some("g")))
        .await
        .unwrap();
    raw.flush().await.unwrap();
    (gateway, raw, requests)
}

/// A request can vanish between the gateway and a router: async-nats drops what arrives for a
/// subscription it has just drained, before the server has seen the unsubscribe (a partition
/// handed over). The submitter asks again, with the same messageIds (one is given to a send
/// that had none), so the router answers a copy it already stored as a duplicate.
#[tokio::test]
async fn a_request_lost_on_the_way_is_asked_again_with_the_same_ids() {
    use chat_shared::bus::nats::payload::{IngressAnswers, encode};
    let nats = NatsServer::start();
    let (gateway, raw, mut requests) = gateway_and_raw_router(&nats).await;

    let started = std::time::Instant::now();
    let mut id_less = send(Some("g"), "unused");
    id_less.message_id = None;
    let submitting = tokio::spawn(async move { gateway.submit(id_less).await });
    let lost: IngressBatch = decode(&next(&mut requests).await.payload).unwrap();
    let again = next(&mut requests).await;
    let asked_again: IngressBatch = decode(&again.payload).unwrap();

    let id = lost.sends[0].request.message_id.clone();
    assert!(
        id.is_some(),
        "the gateway gives an id-less send its messageId"
    );
    assert_eq!(asked_again.sends[0].request.message_id, id);
    let ack = SendAck {
        message_id: id.unwrap_or_default(),
        seq: 7,
    };
    let answers = IngressAnswers {
        v: INTERNAL_VERSION,
        outcomes: vec![Ok(ack.clone())],
    };
    raw.publish(again.reply.unwrap(), encode(&answers).unwrap())
        .await
        .unwrap();
    assert_eq!(submitting.await.unwrap().unwrap(), Ok(ack));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "asked again long before the send's timeout: {:?}",
        started.elapsed()
    );
}

/// Answers `request`'s single send with seq `seq`.
async fn answer_one(raw: &async_nats::Client, request: async_nats::Message, seq: u64) {
    use chat_shared::bus::nats::payload::{IngressAnswers, encode};
    let batch: IngressBatch = decode(&request.payload).unwrap();
    let ack = SendAck {
        message_id: batch.sends[0]
            .request
            .message_id
            .clone()
            .unwrap_or_default(),
        seq,
    };
    let answers = IngressAnswers {
        v: INTERNAL_VERSION,
        outcomes: vec![Ok(ack)],
    };
    raw.publish(request.reply.unwrap(), encode(&answers).unwrap())
        .await
        .unwrap();
}

/// A router that answers slower than a second is waited for, not asked again: once a slow
/// answer has been timed, the patience follows it (a fixed second asked every batch again
/// under overload, doubling the routers' work: hot guild at 10,000 msg/s delivered nothing).
#[tokio::test]
async fn a_slow_router_is_waited_for_not_asked_again() {
    use std::time::Duration;
    let nats = NatsServer::start();
    let (gateway, raw, mut requests) = gateway_and_raw_router(&nats).await;

    let first = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.submit(send(Some("g"), "slow-1")).await }
    });
    let request = next(&mut requests).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    answer_one(&raw, request, 1).await;
    assert!(matches!(first.await.unwrap(), Ok(Ok(_))));

    let second = tokio::spawn(async move { gateway.submit(send(Some("g"), "slow-2")).await });
    let request = next(&mut requests).await;
    let again = tokio::time::timeout(Duration::from_millis(1_800), requests.next()).await;
    assert!(
        again.is_err(),
        "a batch answered in 1.8 s was asked again after a 0.9 s answer"
    );
    answer_one(&raw, request, 2).await;
    assert!(matches!(second.await.unwrap(), Ok(Ok(ack)) if ack.seq == 2));
}
