//! The 3-node cluster starts, elects a JetStream meta leader, and survives a node restart.

use testkit::NatsCluster;

#[tokio::test]
async fn three_nodes_elect_a_meta_leader_and_take_a_node_back() {
    let cluster = NatsCluster::start(3);
    cluster.ready().await;
    assert_eq!(cluster.url().split(',').count(), 3);
    cluster.stop_node(0);
    assert!(!cluster.is_running(0));
    cluster.ready().await;
    cluster.start_node(0);
    cluster.ready().await;
    assert!(cluster.is_running(0));
}
