//! A 3-node (or n-node) `nats-server` cluster with JetStream on every node, as child processes:
//! routes on loopback between free ports, each node with its own store directory and
//! monitoring port. Nodes are killed and started again one by one by the test ([`Self::stop_node`],
//! [`Self::start_node`]); [`Self::ready`] waits until every running node reports JetStream healthy
//! (a meta leader is elected and the node is current with it).

use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::ports::{free_port, wait_for_http_ok};
use crate::server_process::ServerProcess;
use crate::system_binary;

/// How long the cluster may take to elect its JetStream meta leader.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The ports of one node.
#[derive(Debug, Clone, Copy)]
struct NodePorts {
    client: u16,
    route: u16,
    monitor: u16,
}

/// A running cluster (every node killed on drop).
pub struct NatsCluster {
    nodes: Vec<ServerProcess>,
    ports: Vec<NodePorts>,
}

impl NatsCluster {
    /// Starts `size` nodes named `n1`…`n{size}` with empty stores; call [`Self::ready`] before use.
    pub fn start(size: usize) -> Self {
        assert!(size >= 1, "a cluster has at least one node");
        let binary = system_binary::find("nats-server", "nats-server");
        let ports: Vec<NodePorts> = (0..size)
            .map(|_| NodePorts {
                client: free_port(),
                route: free_port(),
                monitor: free_port(),
            })
            .collect();
        let nodes = (0..size)
            .map(|i| {
                let dir = TempDir::with_prefix(format!("testkit-nats-n{}-", i + 1))
                    .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
                let config = node_config(i, &ports, &dir);
                let path = dir.path().join("nats-server.conf");
                std::fs::write(&path, config)
                    .unwrap_or_else(|e| panic!("cannot write {path:?}: {e}"));
                let args = vec!["-c".to_owned(), path.display().to_string()];
                ServerProcess::start("nats-server", binary.clone(), args, ports[i].client, dir)
            })
            .collect();
        NatsCluster { nodes, ports }
    }

    /// Waits until every running node answers `/healthz` (JetStream meta leader known).
    pub async fn ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for i in (0..self.size()).filter(|&i| self.is_running(i)) {
            let url = format!("http://127.0.0.1:{}/healthz", self.ports[i].monitor);
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(error) = wait_for_http_ok(&url, left).await {
                panic!("cluster node n{} not healthy: {error}", i + 1);
            }
        }
    }

    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Every node's client URL, comma-separated (what `NATS_URL` takes for a cluster).
    pub fn url(&self) -> String {
        (0..self.size())
            .map(|i| self.node_url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `nats://127.0.0.1:{client port}` of node `i`.
    pub fn node_url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.ports[i].client)
    }

    /// The server name of node `i` (`n1`…), as JetStream names stream leaders and replicas.
    pub fn node_name(&self, i: usize) -> String {
        format!("n{}", i + 1)
    }

    /// The index of the node with this server name.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        (0..self.size()).find(|&i| self.node_name(i) == name)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].is_running()
    }

    /// Kills node `i` (SIGKILL); its ports and store stay for [`Self::start_node`].
    pub fn stop_node(&self, i: usize) {
        self.nodes[i].stop();
    }

    /// Starts node `i` again with its store (it rejoins and catches up).
    pub fn start_node(&self, i: usize) {
        self.nodes[i].start_again();
    }

    /// Kills every node.
    pub fn stop(&self) {
        self.nodes.iter().for_each(ServerProcess::stop);
    }

    /// Starts every stopped node again.
    pub fn start_again(&self) {
        self.nodes.iter().for_each(ServerProcess::start_again);
    }
}

/// The configuration file of node `i`: its name, ports, store and routes to every other node.
fn node_config(i: usize, ports: &[NodePorts], dir: &TempDir) -> String {
    let routes: Vec<String> = ports
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i)
        .map(|(_, p)| format!("\"nats-route://127.0.0.1:{}\"", p.route))
        .collect();
    let store = dir.path().join("jetstream");
    format!(
        "server_name: n{name}\n\
         listen: \"127.0.0.1:{client}\"\n\
         http: \"127.0.0.1:{monitor}\"\n\
         jetstream {{\n  store_dir: \"{store}\"\n}}\n\
         cluster {{\n  name: testkit\n  listen: \"127.0.0.1:{route}\"\n  routes: [{routes}]\n}}\n",
        name = i + 1,
        client = ports[i].client,
        monitor = ports[i].monitor,
        route = ports[i].route,
        store = store.display(),
        routes = routes.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_routes_to_the_others() {
        let ports =
            [(1, 11, 21), (2, 12, 22), (3, 13, 23)].map(|(client, route, monitor)| NodePorts {
                client,
                route,
                monitor,
            });
        let dir = TempDir::new().unwrap();
        let config = node_config(1, &ports, &dir);
        assert!(config.contains("server_name: n2\n"), "{config}");
        assert!(config.contains("listen: \"127.0.0.1:2\""), "{config}");
        assert!(config.contains("listen: \"127.0.0.1:12\""), "{config}");
        assert!(
            config
                .contains("routes: [\"nats-route://127.0.0.1:11\", \"nats-route://127.0.0.1:13\"]"),
            "{config}"
        );
    }
}
