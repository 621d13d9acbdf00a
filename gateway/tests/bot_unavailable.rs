//! Issue #14 item 8c over a real socket: when the router cannot queue a bot job, the requester
//! hears `bot_unavailable` for its message instead of nothing. The embedded gateway runs on a
//! memory bus whose bot queue holds one job and a router but no bot worker, so the second bot
//! request finds the queue full.

mod support;

use std::sync::Arc;

use chat_shared::bus::{Bus, MemoryBus, MemoryBusConfig};
use chat_shared::protocol::ServerFrame;
use chat_shared::protocol::identity::Role;
use prometheus_client::registry::Registry;
use router_worker::{RouterConfig, RouterMetrics};
use serde_json::json;
use support::{Embedded, Scope, test_deps, user};
use tokio_util::sync::CancellationToken;

/// A gateway with a router and a one-job bot queue nobody takes from.
struct NoBotWorker {
    gateway: Embedded,
    stop: CancellationToken,
}

impl NoBotWorker {
    async fn start() -> Self {
        let bus: Arc<dyn Bus> = MemoryBus::new(MemoryBusConfig {
            bot_queue: 1,
            ..Default::default()
        });
        let mut deps = test_deps();
        deps.bus = bus.clone();
        deps.in_process_workers = false;
        let stop = CancellationToken::new();
        let metrics = Arc::new(RouterMetrics::registered(&mut Registry::default()));
        let router_stop = stop.clone();
        tokio::spawn(async move {
            let config = RouterConfig {
                max_text_chars: 2000,
            };
            let _ = router_worker::run(bus, config, metrics, router_stop).await;
        });
        let gateway = Embedded::start_on(|_| {}, deps).await;
        NoBotWorker { gateway, stop }
    }
}

impl Drop for NoBotWorker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test]
async fn a_bot_request_that_cannot_be_queued_gets_bot_unavailable() {
    let no_bot = NoBotWorker::start().await;
    let d = &no_bot.gateway;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut a = ann.connect(d, 0).await;
    let ask = |n: u32| json!({"guildId": g, "text": format!("@bot {n}"), "requestBot": true});
    // The first job fills the queue (no bot worker takes it); the second cannot be queued.
    a.request(ask(1)).await.expect("stored, job queued");
    let second = a.request(ask(2)).await.expect("stored, job refused");
    let frame = a
        .wait_for(|f| matches!(f, ServerFrame::Error(e) if e.code.as_str() == "bot_unavailable"))
        .await;
    let ServerFrame::Error(error) = frame else {
        unreachable!("wait_for matched an error")
    };
    assert_eq!(
        error.message_id.as_deref(),
        Some(second.message_id.as_str())
    );
    assert_eq!(error.guild_id.as_deref(), Some(g.as_str()));
}
