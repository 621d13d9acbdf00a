//! The NATS a test deployment runs on, one server or a cluster, behind one handle: so a fault
//! test is written once and run against both ([`Nats::start`] with 1 or 3 nodes).

use crate::nats_cluster::NatsCluster;
use crate::nats_server::NatsServer;

/// A single `nats-server -js`, or an n-node JetStream cluster.
pub enum Nats {
    Single(NatsServer),
    Cluster(NatsCluster),
}

impl Nats {
    /// One server when `nodes` is 1, else a cluster of `nodes`, ready for JetStream.
    pub async fn start(nodes: usize) -> Self {
        if nodes <= 1 {
            return Nats::Single(NatsServer::start());
        }
        let cluster = NatsCluster::start(nodes);
        cluster.ready().await;
        Nats::Cluster(cluster)
    }

    /// What `NATS_URL` takes: the server's URL, or every node's, comma-separated.
    pub fn url(&self) -> String {
        match self {
            Nats::Single(server) => server.url(),
            Nats::Cluster(cluster) => cluster.url(),
        }
    }

    /// The stream replicas this NATS supports: 1, or 3 on a cluster of 3 or more.
    pub fn replicas(&self) -> usize {
        match self {
            Nats::Single(_) => 1,
            Nats::Cluster(cluster) => cluster.size().min(3),
        }
    }

    /// The cluster, when this is one.
    pub fn cluster(&self) -> Option<&NatsCluster> {
        match self {
            Nats::Single(_) => None,
            Nats::Cluster(cluster) => Some(cluster),
        }
    }

    /// Kills every server (the whole NATS is down); stores and ports stay.
    pub fn stop(&self) {
        match self {
            Nats::Single(server) => server.stop(),
            Nats::Cluster(cluster) => cluster.stop(),
        }
    }

    /// Starts every server again with its store.
    pub fn start_again(&self) {
        match self {
            Nats::Single(server) => server.start_again(),
            Nats::Cluster(cluster) => cluster.start_again(),
        }
    }
}
