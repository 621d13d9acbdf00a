//! The NATS connection: how it is opened, how it reconnects, and the fast check every call
//! makes so that nothing waits on a connection that is down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event, Request, RequestErrorKind};

use super::auth::NatsAuth;
use super::connection_events;
use super::errors::{from_request, unavailable};
use crate::bus::BusError;

/// How long opening the first connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest pause between two reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);
/// How long a subscription waits for the server to confirm it.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the client checks that the server still answers.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// Opens the connection with `auth`'s credentials and TLS settings; async-nats then
/// reconnects on its own, forever, and restores every subscription. Its events are logged and
/// counted ([`connection_events`]). `url` may list several servers of a cluster separated by
/// commas (`nats://a:4222,nats://b:4222`): the client connects to one and fails over to the others.
pub async fn open(url: &str, name: &str, auth: &NatsAuth) -> Result<Client, BusError> {
    let connected_before = Arc::new(AtomicBool::new(false));
    let options = auth
        .apply(ConnectOptions::new())
        .await
        .map_err(|e| BusError::Unavailable(format!("NATS credentials: {e}")))?;
    options
        .name(name)
        .connection_timeout(CONNECT_TIMEOUT)
        .ping_interval(PING_INTERVAL)
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(move |event| {
            let reconnect =
                matches!(event, Event::Connected) && connected_before.swap(true, Ordering::Relaxed);
            connection_events::record(&event, reconnect);
            async move { log_event(event) }
        })
        .connect(server_list(url).as_slice())
        .await
        .map_err(|e| unavailable(&format!("connecting to NATS at {url}"), e))
}

/// The servers of a comma-separated `NATS_URL`, blanks dropped.
fn server_list(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|server| !server.is_empty())
        .collect()
}

/// 0 ms, then 50 ms doubling up to [`MAX_RECONNECT_DELAY`].
fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exponent = u32::try_from(attempts - 2).unwrap_or(u32::MAX).min(16);
    (Duration::from_millis(50) * 2u32.pow(exponent)).min(MAX_RECONNECT_DELAY)
}

fn log_event(event: Event) {
    match event {
        Event::Connected => tracing::info!("NATS connected"),
        Event::Disconnected => tracing::warn!("NATS disconnected; reconnecting"),
        Event::SlowConsumer(sid) => tracing::warn!(sid, "NATS slow consumer: messages dropped"),
        other => tracing::warn!(event = %other, "NATS event"),
    }
}

/// Waits until the server has read everything this connection sent so far, subscriptions
/// included: a request to a fresh inbox that nobody listens on comes back as "no responders"
/// only after that. (`Client::flush` only empties the socket buffer.)
pub async fn round_trip(client: &Client) -> Result<(), BusError> {
    ensure_connected(client)?;
    let probe = Request::new().timeout(Some(ROUND_TRIP_TIMEOUT));
    match client.send_request(client.new_inbox(), probe).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == RequestErrorKind::NoResponders => Ok(()),
        Err(e) => Err(from_request("confirming a subscription", &e)),
    }
}

/// Fails at once, without waiting, while the connection is down.
pub fn ensure_connected(client: &Client) -> Result<(), BusError> {
    match client.connection_state() {
        State::Connected => Ok(()),
        state => Err(BusError::Unavailable(format!(
            "NATS connection is {state:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_grows_then_caps() {
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(50));
        assert_eq!(reconnect_delay(3), Duration::from_millis(100));
        assert_eq!(reconnect_delay(100), MAX_RECONNECT_DELAY);
    }

    #[test]
    fn a_url_may_list_cluster_servers() {
        let table: [(&str, &[&str]); 4] = [
            ("nats://a:4222", &["nats://a:4222"]),
            ("nats://a:1,nats://b:2", &["nats://a:1", "nats://b:2"]),
            (" nats://a:1 , ,nats://c:3,", &["nats://a:1", "nats://c:3"]),
            ("", &[]),
        ];
        for (url, servers) in table {
            assert_eq!(server_list(url), servers, "{url:?}");
        }
    }
}
