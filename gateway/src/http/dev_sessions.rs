//! The sessions dev login created, bounded: at most `DEV_LOGIN_MAX_SESSIONS`, and none older
//! than a dev-login token's lifetime (its token has expired, so nobody can use it). Beyond the
//! cap the oldest session is deleted from the store. Without this, every dev login with a fresh
//! id left a session in the (in-memory, in embedded mode) store for the life of the process.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The dev-login sessions in the order they were made.
pub struct DevSessions {
    max: usize,
    ttl: Duration,
    state: Mutex<Order>,
}

#[derive(Default)]
struct Order {
    /// User id → when its session was last written by dev login.
    latest: HashMap<String, Instant>,
    queue: VecDeque<(Instant, String)>,
}

impl DevSessions {
    pub fn new(max: usize, ttl: Duration) -> Self {
        DevSessions {
            max: max.max(1),
            ttl,
            state: Mutex::new(Order::default()),
        }
    }

    /// Records a dev login of `user_id` now; returns the users whose sessions are to be
    /// deleted (over the cap, or older than the token lifetime).
    pub fn record(&self, user_id: &str) -> Vec<String> {
        let now = Instant::now();
        let mut order = self.state.lock();
        order.latest.insert(user_id.to_owned(), now);
        order.queue.push_back((now, user_id.to_owned()));
        let mut evicted = Vec::new();
        while let Some((at, _)) = order.queue.front() {
            let expired = now.saturating_duration_since(*at) > self.ttl;
            if !expired && order.latest.len() <= self.max {
                break;
            }
            let Some((at, id)) = order.queue.pop_front() else {
                break;
            };
            // An older entry of a user who logged in again since is only a stale marker.
            if order.latest.get(&id) == Some(&at) {
                order.latest.remove(&id);
                evicted.push(id);
            }
        }
        // Repeated logins of the same users leave stale markers behind a live front: compact
        // them away once they outnumber the live ones, so the queue stays within twice the cap.
        if order.queue.len() > 2 * self.max {
            let Order { latest, queue } = &mut *order;
            queue.retain(|(at, id)| latest.get(id) == Some(at));
        }
        evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_beyond_the_cap_are_evicted() {
        let sessions = DevSessions::new(2, Duration::from_secs(3600));
        assert!(sessions.record("a").is_empty());
        assert!(sessions.record("b").is_empty());
        assert_eq!(sessions.record("c"), vec!["a".to_owned()]);
        // b logs in again: it is now the newest, so c goes first.
        assert!(sessions.record("b").is_empty());
        assert_eq!(sessions.record("d"), vec!["c".to_owned()]);
    }

    #[test]
    fn repeated_logins_keep_the_queue_bounded() {
        let sessions = DevSessions::new(3, Duration::from_secs(3600));
        for _ in 0..1000 {
            assert!(sessions.record("a").is_empty());
        }
        assert!(sessions.state.lock().queue.len() <= 6);
    }

    #[test]
    fn sessions_older_than_the_token_lifetime_are_evicted() {
        let sessions = DevSessions::new(100, Duration::from_millis(20));
        sessions.record("a");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(sessions.record("b"), vec!["a".to_owned()]);
    }
}
