//! What only the NATS bus has, against a real `nats-server -js`, one fresh server per test:
//! several processes on one queue, stream seqs, garbage on the wire, a server restart, stream
//! setup. The guarantees every bus gives are checked once for all in `bus_conformance`.

mod bot_queue;
mod delivery;
mod history_cost;
mod history_links;
mod ingress;
mod log;
mod replay;
mod restart;
mod setup;
mod support;
