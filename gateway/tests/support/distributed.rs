//! The distributed deployment, as real processes: `nats-server -js` (one server, or a 3-node
//! JetStream cluster with `NATS_REPLICAS=3` when [`Topology::nats_nodes`] is 3), `redis-server`,
//! gateways, routers and bot workers from this workspace, on free loopback ports. Each test
//! starts its own, so tests can kill and restart any part.

use std::sync::Arc;
use std::time::Duration;

use chat_shared::store::RedisStore;
use chat_shared::store::SessionStore;
use testkit::{ChildService, Nats, RedisServer, cargo_bin, wait_for_http_ok};

use super::{ALLOWED_ORIGIN, Deployment, SECRET};

const READY: Duration = Duration::from_secs(30);

/// How many of each process, and extra environment for all of them.
#[derive(Debug, Clone)]
pub struct Topology {
    pub gateways: usize,
    pub routers: usize,
    pub bots: usize,
    /// NATS servers: 1, or a cluster (3) whose streams get `NATS_REPLICAS=3`.
    pub nats_nodes: usize,
    pub env: Vec<(String, String)>,
}

impl Topology {
    /// The default topology on `nats_nodes` NATS servers.
    pub fn on_nats(nats_nodes: usize) -> Self {
        Topology {
            nats_nodes,
            ..Topology::default()
        }
    }
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            gateways: 2,
            routers: 2,
            bots: 1,
            nats_nodes: 1,
            env: Vec::new(),
        }
    }
}

/// A gateway process and its addresses.
pub struct GatewayProcess {
    pub service: ChildService,
    pub port: u16,
    /// Its `OPS_LISTEN_ADDR` port (`/metrics`, `/healthz`, `/readyz`).
    pub ops_port: u16,
}

pub struct Distributed {
    pub nats: Nats,
    pub redis: RedisServer,
    pub gateways: Vec<GatewayProcess>,
    pub routers: Vec<ChildService>,
    pub bots: Vec<ChildService>,
    topology: Topology,
    store: Arc<RedisStore>,
}

impl Distributed {
    /// 2 gateways, 2 routers, 1 bot worker.
    pub async fn start() -> Self {
        Self::start_with(Topology::default()).await
    }

    pub async fn start_with(topology: Topology) -> Self {
        let nats = Nats::start(topology.nats_nodes).await;
        let redis = RedisServer::start();
        let store = RedisStore::connect(&redis.url())
            .await
            .expect("redis store");
        let mut d = Distributed {
            nats,
            redis,
            gateways: Vec::new(),
            routers: Vec::new(),
            bots: Vec::new(),
            topology: topology.clone(),
            store,
        };
        for _ in 0..topology.routers {
            let router = d
                .spawn_worker("router-worker", "router worker serving")
                .await;
            d.routers.push(router);
        }
        for _ in 0..topology.bots {
            let bot = d.spawn_worker("bot-worker", "bot worker taking jobs").await;
            d.bots.push(bot);
        }
        for _ in 0..topology.gateways {
            let gateway = d.spawn_gateway(0).await;
            d.gateways.push(gateway);
        }
        d
    }

    fn env(&self, listen: String) -> Vec<(String, String)> {
        let mut env = vec![
            ("NATS_URL".to_owned(), self.nats.url()),
            ("REDIS_URL".to_owned(), self.redis.url()),
            ("JWT_SECRET".to_owned(), SECRET.to_owned()),
            ("LISTEN_ADDR".to_owned(), listen),
            ("ALLOWED_ORIGINS".to_owned(), ALLOWED_ORIGIN.to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
            ("SHUTDOWN_READINESS_DELAY_MS".to_owned(), "200".to_owned()),
            ("SHUTDOWN_CLOSE_WINDOW_MS".to_owned(), "200".to_owned()),
            ("NATS_REPLICAS".to_owned(), self.nats.replicas().to_string()),
        ];
        env.extend(self.topology.env.iter().cloned());
        env
    }

    /// Starts a worker binary (its ops listener on a port it picks) and waits until it says it
    /// is serving.
    pub async fn spawn_worker(&self, name: &str, ready_line: &str) -> ChildService {
        let env = self.env("127.0.0.1:0".to_owned());
        let service = ChildService::spawn(cargo_bin(name), Vec::<String>::new(), env);
        assert!(
            service.wait_for_output(ready_line, READY).await,
            "{name} did not start:\n{}",
            service.log_tail(30)
        );
        service
    }

    /// Starts a gateway on `port` (0: one it picks) with its ops listener on a port it picks,
    /// reads both from the lines it prints once they are bound, and waits until it is ready.
    /// No port is picked here and freed for the gateway to bind later: another process could
    /// be handed it meanwhile and answer `/readyz` for it.
    pub async fn spawn_gateway(&self, port: u16) -> GatewayProcess {
        let mut env = self.env(format!("127.0.0.1:{port}"));
        env.push(("OPS_LISTEN_ADDR".to_owned(), "127.0.0.1:0".to_owned()));
        let mut service = ChildService::spawn(cargo_bin("gateway"), Vec::<String>::new(), env);
        let port = printed_port(&mut service, "gateway listening on http://").await;
        let ops_port = printed_port(
            &mut service,
            "ops endpoints (/metrics, /healthz, /readyz) on http://",
        )
        .await;
        if let Err(error) =
            wait_for_http_ok(&format!("http://127.0.0.1:{port}/readyz"), READY).await
        {
            panic!(
                "gateway on {port} not ready ({error}):\n{}",
                service.log_tail(30)
            );
        }
        GatewayProcess {
            service,
            port,
            ops_port,
        }
    }

    /// Kills gateway `i` and starts a new one on the same port (its ops port may change).
    pub async fn restart_gateway(&mut self, i: usize) {
        let port = self.gateways[i].port;
        self.gateways[i].service.kill();
        self.gateways[i] = self.spawn_gateway(port).await;
    }
}

impl Deployment for Distributed {
    fn gateway(&self, i: usize) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.gateways[i % self.gateways.len()].port
        )
    }

    fn gateway_count(&self) -> usize {
        self.gateways.len()
    }

    fn ops(&self, i: usize) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.gateways[i % self.gateways.len()].ops_port
        )
    }

    fn store(&self) -> Arc<dyn SessionStore> {
        self.store.clone()
    }
}

/// The port of the `host:port` a child printed after `prefix` once it had bound it.
async fn printed_port(service: &mut ChildService, prefix: &str) -> u16 {
    let addr = service.wait_for_line(prefix, READY).await;
    addr.as_deref()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no \"{prefix}…\" line:\n{}", service.log_tail(30)))
}
