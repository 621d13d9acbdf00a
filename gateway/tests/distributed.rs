//! The contract suite against a distributed deployment: real nats-server and redis-server,
//! 2 gateways, 2 routers and 1 bot worker as separate processes, clients spread over both
//! gateways.

mod contract;
mod support;

use support::distributed::Distributed;

contract_suite!(Distributed::start());
