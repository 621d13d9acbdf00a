//! Issue #14 item 8d over real NATS: a router drops a send whose submitter has stopped waiting
//! (`timeout_ms` of its entry in the ingress batch, `shared/src/bus/nats/ingress.rs`): it is
//! answered `server_error` (what the gateway already told its client) and never stored, so the
//! client's retry cannot make a duplicate. A router in this process on the NATS bus; sends
//! made as a gateway makes them, as an `IngressBatch` on the ingress subject.

use std::sync::Arc;
use std::time::Duration;

use chat_shared::bus::nats::payload::{IngressAnswers, IngressBatch, IngressSend, decode, encode};
use chat_shared::bus::nats::subjects::ingress_subject;
use chat_shared::bus::nats::{NatsBus, NatsConfig};
use chat_shared::bus::{Bus, INTERNAL_VERSION, SendOutcome, SendRequest, Visibility};
use chat_shared::protocol::ErrorCode;
use chat_shared::protocol::identity::{Role, UserInfo};
use prometheus_client::registry::Registry;
use router_worker::{RouterConfig, RouterMetrics};
use testkit::Nats;
use tokio_util::sync::CancellationToken;

const GUILD: &str = "g-expired";
const PATIENCE: Duration = Duration::from_secs(20);

fn request(message_id: &str) -> SendRequest {
    SendRequest {
        v: INTERNAL_VERSION,
        sender: UserInfo::new("ann", "Ann", Role::Member),
        guild_id: Some(GUILD.to_owned()),
        text: Some(format!("text of {message_id}")),
        admin_only: false,
        request_bot: false,
        message_id: Some(message_id.to_owned()),
        member_verified: true,
    }
}

/// One ingress request of one send whose submitter waits `timeout_ms`; the router's answer.
async fn send_with_timeout(
    client: &async_nats::Client,
    message_id: &str,
    timeout_ms: u64,
) -> SendOutcome {
    let batch = IngressBatch {
        v: INTERNAL_VERSION,
        sends: vec![IngressSend {
            request: request(message_id),
            timeout_ms,
            trace: Default::default(),
        }],
    };
    let payload = encode(&batch).expect("encodes");
    let answer = tokio::time::timeout(
        PATIENCE,
        client.request(ingress_subject(Some(GUILD)), payload),
    )
    .await
    .expect("answered in time")
    .expect("a router answered");
    let mut answers: IngressAnswers = decode(&answer.payload).expect("answers");
    assert_eq!(answers.outcomes.len(), 1, "one outcome per send");
    answers.outcomes.remove(0)
}

#[tokio::test]
async fn a_router_drops_a_send_whose_submitter_gave_up() {
    let nats = Nats::start(1).await;
    let bus: Arc<NatsBus> = NatsBus::connect(&nats.url(), &NatsConfig::default())
        .await
        .expect("the bus connects");
    let stop = CancellationToken::new();
    let metrics = Arc::new(RouterMetrics::registered(&mut Registry::default()));
    let router_bus: Arc<dyn Bus> = bus.clone();
    let router_stop = stop.clone();
    let router = tokio::spawn(async move {
        let config = RouterConfig {
            max_text_chars: 2000,
        };
        router_worker::run(router_bus, config, metrics, router_stop).await
    });
    // The router serves the guild's partition once a plain submit is answered.
    let first = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(Ok(ack)) = bus.submit(request("m-first")).await {
                return ack;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the router serves");
    let client = async_nats::connect(nats.url()).await.expect("nats client");

    // Nobody waits any more (0 ms): answered server_error, not stored.
    assert_eq!(
        send_with_timeout(&client, "m-expired", 0).await,
        Err(ErrorCode::ServerError)
    );
    // Still waiting: stored, right after the first.
    let kept = send_with_timeout(&client, "m-kept", 5_000)
        .await
        .expect("stored");
    let page = bus
        .read_history(GUILD, None, 10, Visibility::for_admin(false))
        .await
        .expect("history");
    let ids: Vec<&str> = page
        .entries
        .iter()
        .map(|e| e.message.message_id.as_str())
        .collect();
    assert_eq!(ids, ["m-kept", "m-first"], "newest first, no m-expired");
    assert_eq!(page.entries[0].seq, kept.seq);
    assert_eq!(
        page.entries[0].prev, first.seq,
        "the expired send took no place in the log"
    );
    stop.cancel();
    let _ = tokio::time::timeout(PATIENCE, router).await;
}
