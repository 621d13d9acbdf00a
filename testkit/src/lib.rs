//! What integration tests need to run real parts: `nats-server` and `redis-server` as child
//! processes on free loopback ports ([`NatsServer`], [`RedisServer`]; a JetStream cluster,
//! [`NatsCluster`]; either behind [`Nats`]), workspace binaries as
//! child services with captured output ([`cargo_bin`], [`ChildService`]), and waits for
//! readiness ([`wait_for_tcp`], [`wait_for_http_ok`]). Everything started here is killed when
//! its handle is dropped; when that happens during a panic, the process's output tail is
//! printed so the failing test shows what the process said.

mod cargo_bin;
mod child;
mod nats;
mod nats_cluster;
mod nats_server;
mod output;
mod ports;
mod redis_server;
mod server_process;
mod system_binary;

pub use cargo_bin::{cargo_bin, cargo_bin_of};
pub use child::ChildService;
pub use nats::Nats;
pub use nats_cluster::NatsCluster;
pub use nats_server::NatsServer;
pub use ports::{free_port, wait_for_http_ok, wait_for_tcp};
pub use redis_server::RedisServer;
