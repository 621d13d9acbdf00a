//! Revocation that reaches open sockets: every `SESSION_RECHECK_MS` the gateway re-reads, in
//! one `MGET`, the `session:{userId}` documents of the users it holds connections for, and turns
//! what changed into the hub's [`UserEvent`]s ([`Hub::apply_user_event`]): a document that was
//! there and is gone, or one marked `"revoked": true`, closes the user's sockets with 4001
//! (members and admins alike); any other rewrite makes them reload their guilds. Whoever
//! changes Redis (an identity backend, `redis-cli`) needs no help from this system; a
//! `session.events` publish still applies at once. A user seen for the first time reloads once
//! (the document may have changed since the handshake). A failed read changes nothing and is
//! not remembered as seen: the next good read compares against the last good one.
//!
//! In distributed mode the same comparison also runs at once for one user when Redis announces
//! a change of `session:{userId}` (keyspace notifications, [`session_watch`]; the server needs
//! `notify-keyspace-events K$gx`); without notifications the recheck interval is the bound.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chat_shared::bus::UserEvent;
use chat_shared::store::Session;
use chat_shared::store::session_watch::{self, SessionChange};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// What the recheck last saw of one user's session.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Absent,
    /// The document, re-encoded (fields in a fixed order).
    Present(String),
}

impl Seen {
    fn of(session: Option<&Session>) -> Seen {
        match session.and_then(|s| serde_json::to_string(s).ok()) {
            Some(document) => Seen::Present(document),
            None => Seen::Absent,
        }
    }
}

/// The users' last seen sessions: pure logic, no I/O.
#[derive(Debug, Default)]
pub struct Tracker {
    seen: HashMap<Arc<str>, Seen>,
}

impl Tracker {
    /// Compares a fresh read with the last one; returns the events to apply. Users absent from
    /// `read` (no open connection any more) are forgotten.
    pub fn observe(
        &mut self,
        read: Vec<(Arc<str>, Option<Session>)>,
    ) -> Vec<(Arc<str>, UserEvent)> {
        let mut events = Vec::new();
        let mut next = HashMap::with_capacity(read.len());
        for (user, session) in read {
            let now = Seen::of(session.as_ref());
            let revoked = session.as_ref().is_some_and(Session::is_revoked);
            let before = self.seen.remove(&user);
            let event = match (&before, &now) {
                _ if revoked => Some(UserEvent::Revoked),
                (Some(Seen::Present(_)), Seen::Absent) => Some(UserEvent::Revoked),
                (Some(before), now) if before != now => Some(UserEvent::GuildsChanged),
                // First sight: the document may have changed since the handshake read it, so
                // the user's connections reload once (a member left without guilds is closed).
                (None, _) => Some(UserEvent::GuildsChanged),
                _ => None,
            };
            if let Some(event) = event {
                events.push((user.clone(), event));
            }
            next.insert(user, now);
        }
        self.seen = next;
        events
    }

    /// Compares a fresh read of one user (who has an open connection) with the last one, by
    /// the same rules as [`Tracker::observe`]; the other users' entries are kept.
    pub fn observe_one(&mut self, user: Arc<str>, session: Option<Session>) -> Option<UserEvent> {
        let before = self.seen.remove(&user);
        let mut one = Tracker {
            seen: before
                .map(|seen| (user.clone(), seen))
                .into_iter()
                .collect(),
        };
        let event = one.observe(vec![(user, session)]).pop().map(|(_, e)| e);
        self.seen.extend(one.seen);
        event
    }
}

/// Subscribes to Redis keyspace notifications of the sessions when the gateway has a Redis;
/// `None` (recheck only) in embedded mode or when the subscription fails.
pub async fn watch(state: &AppState) -> Option<mpsc::Receiver<SessionChange>> {
    let url = state.config.common.redis_url.as_deref()?;
    match session_watch::watch_sessions(url).await {
        Ok(changes) => Some(changes),
        Err(error) => {
            tracing::warn!(
                %error,
                "no session keyspace notifications: revocation applies within SESSION_RECHECK_MS"
            );
            None
        }
    }
}

/// Runs the recheck every `every`, and for one user whenever `changes` names them, until `stop`.
pub async fn run(
    state: AppState,
    every: Duration,
    mut changes: Option<mpsc::Receiver<SessionChange>>,
    stop: CancellationToken,
) {
    let mut tracker = Tracker::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let change = async {
            match changes.as_mut() {
                Some(changes) => changes.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => recheck(&state, &mut tracker).await,
            change = change => match change {
                Some(SessionChange::User(user)) => recheck_one(&state, &mut tracker, &user).await,
                Some(SessionChange::Resync) => recheck(&state, &mut tracker).await,
                None => {
                    tracing::warn!("session notifications ended; recheck only");
                    changes = None;
                }
            },
        }
    }
}

/// A notified change of one user's session: re-read it if the user is connected here.
#[tracing::instrument(name = "session.notified", skip(state, tracker))]
async fn recheck_one(state: &AppState, tracker: &mut Tracker, user_id: &str) {
    let Some(user) = state
        .hub
        .connections()
        .iter()
        .find(|c| !c.is_closed() && &**c.user_id() == user_id)
        .map(|c| c.user_id().clone())
    else {
        return;
    };
    let session = match state.store.get(user_id).await {
        Ok(session) => session,
        Err(error) => {
            tracing::warn!(%error, "notified session unreadable; the recheck will retry");
            return;
        }
    };
    if let Some(event) = tracker.observe_one(user.clone(), session) {
        tracing::info!(user_id = %user, ?event, "session changed in the store (notified)");
        state.hub.apply_user_event(&user, &event);
    }
}

/// One round: read the sessions of the connected users and apply what changed.
#[tracing::instrument(name = "session.recheck", skip_all, fields(users))]
async fn recheck(state: &AppState, tracker: &mut Tracker) {
    let users: Vec<Arc<str>> = state
        .hub
        .connections()
        .iter()
        .filter(|c| !c.is_closed())
        .map(|c| c.user_id().clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    tracing::Span::current().record("users", users.len());
    if users.is_empty() {
        tracker.observe(Vec::new());
        return;
    }
    let ids: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    let sessions = match state.store.get_many(&ids).await {
        Ok(sessions) => sessions,
        Err(error) => {
            tracing::warn!(%error, "session recheck failed; retrying next interval");
            return;
        }
    };
    for (user, event) in tracker.observe(users.into_iter().zip(sessions).collect()) {
        tracing::info!(user_id = %user, ?event, "session changed in the store");
        state.hub.apply_user_event(&user, &event);
    }
}

/// Whether `refresh` may extend this user's connection: not when the session is marked
/// revoked, nor when it is gone for a user who needs guilds (non-admins), nor when the store
/// does not answer.
pub async fn refresh_allowed(state: &AppState, user_id: &str, is_admin: bool) -> bool {
    match state.store.get(user_id).await {
        Ok(Some(session)) => !session.is_revoked(),
        Ok(None) => is_admin,
        Err(error) => {
            tracing::warn!(%error, "session store unavailable during refresh");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(doc: &str) -> Option<Session> {
        Some(serde_json::from_str(doc).expect("session json"))
    }

    #[test]
    fn changes_become_user_events() {
        let u: Arc<str> = Arc::from("u1");
        let g1 = r#"{"guilds":[{"id":"g1"}]}"#;
        let g2 = r#"{"guilds":[{"id":"g1"},{"id":"g2"}]}"#;
        // (read, expected event)
        let table: Vec<(Option<Session>, Option<&str>)> = vec![
            (s(g2), Some("changed")), // first sight: reload once
            (s(g2), None),            // unchanged
            (s(g1), Some("changed")), // rewritten by hand
            (None, Some("revoked")),  // deleted
            (None, None),             // still gone
            (s(g1), Some("changed")), // back
            (
                s(r#"{"guilds":[{"id":"g1"}],"revoked":true}"#),
                Some("revoked"),
            ),
        ];
        let mut tracker = Tracker::default();
        for (i, (read, want)) in table.into_iter().enumerate() {
            let got = tracker.observe(vec![(u.clone(), read)]);
            let got = got.first().map(|(_, e)| match e {
                UserEvent::Revoked => "revoked",
                UserEvent::GuildsChanged => "changed",
                UserEvent::Notice { .. } => "notice",
            });
            assert_eq!(got, want, "step {i}");
        }
    }

    #[test]
    fn one_user_reads_follow_the_same_rules_and_keep_the_others() {
        let mut tracker = Tracker::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let g1 = r#"{"guilds":[{"id":"g1"}]}"#;
        tracker.observe(vec![(a.clone(), s(g1)), (b.clone(), s(g1))]);
        assert_eq!(tracker.observe_one(a.clone(), s(g1)), None);
        let g2 = r#"{"guilds":[{"id":"g2"}]}"#;
        assert_eq!(
            tracker.observe_one(a.clone(), s(g2)),
            Some(UserEvent::GuildsChanged)
        );
        assert_eq!(
            tracker.observe_one(a.clone(), None),
            Some(UserEvent::Revoked)
        );
        assert_eq!(tracker.seen.len(), 2, "b is still tracked");
        // The next full read compares a against what the one-user read saw.
        assert!(tracker.observe(vec![(a, None), (b, s(g1))]).is_empty());
    }

    #[test]
    fn a_first_sight_without_a_session_or_revoked_is_handled() {
        let mut tracker = Tracker::default();
        let u: Arc<str> = Arc::from("admin");
        let first = tracker.observe(vec![(u.clone(), None)]);
        assert!(matches!(first.as_slice(), [(_, UserEvent::GuildsChanged)]));
        assert!(tracker.observe(vec![(u.clone(), None)]).is_empty());
        let revoked = s(r#"{"revoked":true}"#);
        let events = tracker.observe(vec![(Arc::from("u2"), revoked)]);
        assert!(matches!(events.as_slice(), [(_, UserEvent::Revoked)]));
        // Users without connections are forgotten.
        tracker.observe(Vec::new());
        assert!(tracker.seen.is_empty());
    }
}
