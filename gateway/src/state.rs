//! The gateway's explicit state, shared by every handler: configuration, the token verifier,
//! the bus and session store, the hub, admission of new connections, health and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chat_shared::auth::JwtVerifier;
use chat_shared::bus::Bus;
use chat_shared::instrumented::{InstrumentedBus, InstrumentedStore, nats_events};
use chat_shared::session::SessionStore;
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::config::GatewayConfig;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::presence::PresenceService;

/// How often the bus and the store are probed for `/readyz` and handshakes.
const PROBE_EVERY: Duration = Duration::from_millis(500);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: GatewayConfig,
    pub verifier: JwtVerifier,
    pub bus: Arc<dyn Bus>,
    pub store: Arc<dyn SessionStore>,
    pub hub: Arc<Hub>,
    pub admission: Arc<Admission>,
    /// Presence (issue #13).
    pub presence: Arc<PresenceService>,
    pub metrics: Arc<Metrics>,
    pub health: Health,
    next_conn_id: AtomicU64,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        config: GatewayConfig,
        verifier: JwtVerifier,
        bus: Arc<dyn Bus>,
        store: Arc<dyn SessionStore>,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        let bus = metrics.register_with(|registry| InstrumentedBus::wrap(bus, registry));
        let store = metrics.register_with(|registry| InstrumentedStore::wrap(store, registry));
        metrics.register_with(nats_events::register);
        let hub = Hub::new(bus.clone(), metrics.clone());
        let admission = Admission::new(&config.connection_limits, store.clone());
        let presence = PresenceService::new(&config.presence, bus.presence(), &metrics);
        AppState(Arc::new(Inner {
            config,
            verifier,
            bus,
            store,
            hub,
            admission,
            presence,
            metrics,
            health: Health::default(),
            next_conn_id: AtomicU64::new(1),
        }))
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Probes the bus and the store until `stop`, keeping [`Health`] current.
    pub async fn run_health_probe(self, stop: CancellationToken) {
        loop {
            let bus_ok = matches!(
                tokio::time::timeout(PROBE_TIMEOUT, self.bus.ping()).await,
                Ok(Ok(()))
            );
            let store_ok = matches!(
                tokio::time::timeout(PROBE_TIMEOUT, self.store.ping()).await,
                Ok(Ok(()))
            );
            self.health.bus_ok.store(bus_ok, Ordering::Relaxed);
            self.health.store_ok.store(store_ok, Ordering::Relaxed);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(PROBE_EVERY) => {}
            }
        }
    }
}

/// What `/readyz` and the handshake consult.
#[derive(Debug)]
pub struct Health {
    pub bus_ok: AtomicBool,
    pub store_ok: AtomicBool,
    pub draining: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            bus_ok: AtomicBool::new(true),
            store_ok: AtomicBool::new(true),
            draining: AtomicBool::new(false),
        }
    }
}

impl Health {
    pub fn dependencies_ok(&self) -> bool {
        self.bus_ok.load(Ordering::Relaxed) && self.store_ok.load(Ordering::Relaxed)
    }

    pub fn ready(&self) -> bool {
        self.dependencies_ok() && !self.draining.load(Ordering::Relaxed)
    }
}
