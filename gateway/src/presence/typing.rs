//! The typing throttle (pure, no I/O): at most one `typing` per user per guild per
//! [`TYPING_EVERY`]; extras are dropped silently. Entries older than the window are pruned, so
//! the map holds only the last two seconds of typists.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The contract's window: one `typing` per user per guild per 2 s.
pub const TYPING_EVERY: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct TypingThrottle {
    last: HashMap<(Arc<str>, Arc<str>), Instant>,
}

impl TypingThrottle {
    /// Whether `user` may type in `guild` at `now` (and counts it when so).
    pub fn allow(&mut self, guild: &str, user: &str, now: Instant) -> bool {
        let key: (Arc<str>, Arc<str>) = (Arc::from(guild), Arc::from(user));
        match self.last.get(&key) {
            Some(at) if now < *at + TYPING_EVERY => false,
            _ => {
                self.last.insert(key, now);
                true
            }
        }
    }

    /// Forgets entries whose window is over.
    pub fn prune(&mut self, now: Instant) {
        self.last.retain(|_, at| now < *at + TYPING_EVERY);
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_user_and_guild_per_window() {
        // (guild, user, at ms, allowed)
        let cases: &[(&str, &str, u64, bool)] = &[
            ("g1", "u1", 0, true),
            ("g1", "u1", 1999, false),
            ("g2", "u1", 500, true),
            ("g1", "u2", 500, true),
            ("g1", "u1", 2000, true),
            ("g1", "u1", 3000, false),
        ];
        let start = Instant::now();
        let mut throttle = TypingThrottle::default();
        for (guild, user, at, allowed) in cases {
            let now = start + Duration::from_millis(*at);
            assert_eq!(
                throttle.allow(guild, user, now),
                *allowed,
                "{guild} {user} at {at}"
            );
        }
        throttle.prune(start + Duration::from_millis(4100));
        assert!(throttle.is_empty());
    }
}
