//! The gateway's explicit state, shared by every handler: configuration, the token verifier,
//! the bus and session store, the hub, admission of new connections, health and metrics.
//! Health is probed in the background; a handshake or `/readyz` that finds it down asks again
//! at once ([`AppState::dependencies_live`]), so a recovered bus is used by the first client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chat_shared::auth::JwtVerifier;
use chat_shared::bus::Bus;
use chat_shared::bus::InstrumentedBus;
use chat_shared::bus::nats::connection_events;
use chat_shared::store::InstrumentedStore;
use chat_shared::store::SessionStore;
use chat_shared::store::rate_limit::RateLimiter;
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::config::GatewayConfig;
use crate::http::dev_sessions::DevSessions;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::presence::PresenceService;
use crate::send_limit::SendLimits;
use crate::user_budget::UserBudgets;

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
    /// The per-user send limits every send path checks.
    pub send_limits: SendLimits,
    /// The per-user handshake and history budgets.
    pub user_budgets: UserBudgets,
    /// Presence (issue #13).
    pub presence: Arc<PresenceService>,
    pub metrics: Arc<Metrics>,
    /// The sessions dev login made, bounded.
    pub dev_sessions: DevSessions,
    pub health: Health,
    /// When the last on-demand probe finished (one at a time).
    live_probe: tokio::sync::Mutex<Option<Instant>>,
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
        rate_limiter: Arc<dyn RateLimiter>,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        let bus = metrics.register_with(|registry| InstrumentedBus::wrap(bus, registry));
        let store = metrics.register_with(|registry| InstrumentedStore::wrap(store, registry));
        metrics.register_with(connection_events::register);
        let hub = Hub::new(bus.clone(), metrics.clone());
        let admission = Admission::new(&config.connection_limits, store.clone());
        let send_limits = SendLimits::new(&config.send_limits, rate_limiter.clone());
        metrics.register_with(|registry| send_limits.register(registry));
        let user_budgets = UserBudgets::new(&config.user_budgets, rate_limiter);
        metrics.register_with(|registry| user_budgets.register(registry));
        let dev_sessions = DevSessions::new(
            config.dev_login_max_sessions as usize,
            crate::http::dev_login::TOKEN_TTL,
        );
        let presence = PresenceService::new(&config.presence, bus.presence(), &metrics);
        AppState(Arc::new(Inner {
            config,
            verifier,
            bus,
            store,
            hub,
            admission,
            send_limits,
            user_budgets,
            presence,
            metrics,
            dev_sessions,
            health: Health::default(),
            live_probe: tokio::sync::Mutex::new(None),
            next_conn_id: AtomicU64::new(1),
        }))
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Probes the bus and the store until `stop`, keeping [`Health`] current.
    pub async fn run_health_probe(self, stop: CancellationToken) {
        loop {
            self.probe().await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(PROBE_EVERY) => {}
            }
        }
    }
}

impl AppState {
    /// Pings the bus and the store once and records the answers; true when both answered.
    async fn probe(&self) -> bool {
        let (bus, store) = tokio::join!(
            tokio::time::timeout(PROBE_TIMEOUT, self.bus.ping()),
            tokio::time::timeout(PROBE_TIMEOUT, self.store.ping()),
        );
        let bus_ok = matches!(bus, Ok(Ok(())));
        let store_ok = matches!(store, Ok(Ok(())));
        self.health.bus_ok.store(bus_ok, Ordering::Relaxed);
        self.health.store_ok.store(store_ok, Ordering::Relaxed);
        bus_ok && store_ok
    }

    /// Whether the bus and the store answer now. The background probe's answer when it is
    /// "up"; when it is "down", the dependencies are asked again at once (one probe at a time;
    /// callers that waited for a probe finished within [`LIVE_PROBE_REUSE`] take its answer),
    /// so a client connecting right after a recovery is not refused on a stale flag.
    pub async fn dependencies_live(&self) -> bool {
        if self.health.dependencies_ok() {
            return true;
        }
        let mut last = self.live_probe.lock().await;
        if last.is_some_and(|at| at.elapsed() < LIVE_PROBE_REUSE) {
            return self.health.dependencies_ok();
        }
        let ok = self.probe().await;
        *last = Some(Instant::now());
        ok
    }
}

/// How long an on-demand probe's answer serves the handshakes that queued behind it.
const LIVE_PROBE_REUSE: Duration = Duration::from_millis(100);

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
