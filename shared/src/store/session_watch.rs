//! Redis keyspace notifications of `session:*` (issue #15, item 3, "at once where a
//! notification is possible"): a subscriber connection `PSUBSCRIBE`s
//! `__keyspace@{db}__:session:*` and turns each notification (a `SET`, `DEL`, `EXPIRE`,
//! `RENAME`… by anyone, `redis-cli` included) into the user id whose session changed. Redis
//! publishes them only when its `notify-keyspace-events` includes `K` (keyspace channel), `$`
//! (string commands) and `g` (generic: `DEL`, `RENAME`, `EXPIRE`), plus `x` for expiry:
//! `notify-keyspace-events K$gx`. Without them nothing arrives and the periodic recheck
//! (`SESSION_RECHECK_MS`) stays the bound. Notifications are fire-and-forget: after a
//! reconnect, or when the reader falls behind, [`SessionChange::Resync`] asks for a full
//! re-read of every watched session.

use fred::prelude::{
    Builder, ClientLike, Config, EventInterface, PubsubInterface, ReconnectPolicy,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::store::StoreError;

/// Pause between reconnect attempts while Redis is away (retried forever).
const RECONNECT_DELAY_MS: u32 = 200;
/// How long the first connection and the subscription may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Changes buffered for the consumer; beyond it the rest collapse into one resync.
const QUEUE: usize = 4096;

/// What a notification means for the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionChange {
    /// `session:{0}` was written, deleted or expired.
    User(String),
    /// Notifications may have been missed (reconnect, lag): re-read every session.
    Resync,
}

/// The keyspace channel pattern of the sessions in database `db`.
pub fn channel_pattern(db: u8) -> String {
    format!("__keyspace@{db}__:{}*", crate::store::session_key(""))
}

/// The user whose session `key` is (`session:u1` → `u1`).
pub fn user_of_key(key: &str) -> Option<&str> {
    key.strip_prefix(crate::store::session_key("").as_str())
        .filter(|user| !user.is_empty())
}

/// Subscribes to the session notifications of the Redis at `url`; the changes arrive on the
/// returned channel until it is dropped.
pub async fn watch_sessions(url: &str) -> Result<mpsc::Receiver<SessionChange>, StoreError> {
    let unavailable =
        |doing: &str, e: fred::error::Error| StoreError::Unavailable(format!("{doing}: {e}"));
    let config = Config::from_url(url).map_err(|e| unavailable("parsing REDIS_URL", e))?;
    let pattern = channel_pattern(config.database.unwrap_or(0));
    let client = Builder::from_config(config)
        .with_connection_config(|connection| {
            connection.connection_timeout = CONNECT_TIMEOUT;
            connection.internal_command_timeout = CONNECT_TIMEOUT;
        })
        .with_performance_config(|performance| {
            performance.default_command_timeout = CONNECT_TIMEOUT;
        })
        .set_policy(ReconnectPolicy::new_constant(0, RECONNECT_DELAY_MS))
        .build_subscriber_client()
        .map_err(|e| unavailable("configuring the Redis subscriber", e))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.init()).await {
        Ok(Ok(_connection)) => {}
        Ok(Err(e)) => return Err(unavailable("connecting the Redis subscriber", e)),
        Err(_) => {
            let _ = client.quit().await;
            return Err(StoreError::Unavailable(
                "connecting the Redis subscriber: timed out".to_owned(),
            ));
        }
    }
    // fred parses `__keyspace@…` messages into keyspace events (not plain messages).
    let mut messages = client.keyspace_event_rx();
    let mut reconnects = client.reconnect_rx();
    let resubscriber = client.manage_subscriptions();
    client
        .psubscribe(pattern.clone())
        .await
        .map_err(|e| unavailable("subscribing to session notifications", e))?;
    tracing::info!(%pattern, "watching session keyspace notifications");
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        loop {
            let change = tokio::select! {
                _ = tx.closed() => break,
                message = messages.recv() => match message {
                    Ok(event) => match event.key.as_str().and_then(user_of_key) {
                        Some(user) => SessionChange::User(user.to_owned()),
                        None => continue,
                    },
                    Err(RecvError::Lagged(_)) => SessionChange::Resync,
                    Err(RecvError::Closed) => break,
                },
                reconnected = reconnects.recv() => match reconnected {
                    Ok(_) | Err(RecvError::Lagged(_)) => SessionChange::Resync,
                    Err(RecvError::Closed) => break,
                },
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(change) {
                // The consumer is behind: it will re-read everything once it catches up.
                let _ = tx.send(SessionChange::Resync).await;
            }
        }
        resubscriber.abort();
        let _ = client.quit().await;
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_user() {
        let table = [
            ("session:u1", Some("u1")),
            ("session:a:b", Some("a:b")),
            ("session:", None),
            ("conns:u1", None),
            ("u1", None),
        ];
        for (key, user) in table {
            assert_eq!(user_of_key(key), user, "{key}");
        }
        assert_eq!(channel_pattern(3), "__keyspace@3__:session:*");
    }
}
