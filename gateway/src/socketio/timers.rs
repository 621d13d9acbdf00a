//! The deadlines of one socket's loop, kept behind a single timer: the Engine.IO heartbeat of
//! a WebSocket session (ping every interval; closed when the client was silent for interval +
//! timeout — polling sessions are pinged by their engine task instead), the CONNECT deadline
//! of a socket not connected yet, and the expiry of a connected socket's token. Pure: the loop
//! sleeps until [`Timers::next`] and asks [`Timers::wake`] what is due.

use std::time::Duration;

use tokio::time::Instant;

/// When nothing is due, the loop still wakes this often (a timer far away costs nothing).
const FAR: Duration = Duration::from_secs(24 * 3600);

/// What a wake-up asks the loop to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Nothing,
    Ping,
    /// No pong (or any packet) for interval + timeout: the session ends.
    Silent,
    /// No CONNECT in time: the session ends.
    ConnectTimeout,
    /// The connected socket's token expired: it is told to go (server DISCONNECT).
    TokenExpired,
}

/// The heartbeat of a transport the loop pings itself.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct Timers {
    heartbeat: Option<Heartbeat>,
    next_ping: Instant,
    connect_by: Option<Instant>,
    expires_at: Option<Instant>,
}

impl Timers {
    /// The timers of a socket that starts now and must connect within `connect_timeout`.
    pub fn new(now: Instant, heartbeat: Option<Heartbeat>, connect_timeout: Duration) -> Self {
        Timers {
            next_ping: now + heartbeat.map_or(FAR, |h| h.interval),
            heartbeat,
            connect_by: Some(now + connect_timeout),
            expires_at: None,
        }
    }

    /// The socket connected with a token that expires `expires_in` from `now`.
    pub fn connected(&mut self, now: Instant, expires_in: Duration) {
        self.connect_by = None;
        self.expires_at = Some(now + expires_in.min(FAR));
    }

    /// When the loop must wake next.
    pub fn next(&self) -> Instant {
        [self.connect_by, self.expires_at]
            .into_iter()
            .flatten()
            .fold(self.next_ping, Instant::min)
    }

    /// What is due at `now`, given how long the client has been silent.
    pub fn wake(&mut self, now: Instant, silent_for: Duration) -> Wake {
        if self.expires_at.is_some_and(|at| at <= now) {
            self.expires_at = None;
            return Wake::TokenExpired;
        }
        if self.connect_by.is_some_and(|at| at <= now) {
            return Wake::ConnectTimeout;
        }
        if self.next_ping > now {
            return Wake::Nothing;
        }
        let Some(beat) = self.heartbeat else {
            self.next_ping = now + FAR;
            return Wake::Nothing;
        };
        if silent_for > beat.interval + beat.timeout {
            return Wake::Silent;
        }
        self.next_ping = now + beat.interval;
        Wake::Ping
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn beat() -> Option<Heartbeat> {
        Some(Heartbeat {
            interval: 10 * S,
            timeout: 10 * S,
        })
    }

    #[test]
    fn what_is_due_when() {
        let t0 = Instant::now();
        // (heartbeat, connected with expiry in, wake at, silent for, expected)
        let cases = [
            (beat(), None, 5 * S, S, Wake::Nothing),
            (beat(), None, 10 * S, S, Wake::Ping),
            (beat(), None, 10 * S, 20 * S, Wake::Ping),
            (beat(), None, 10 * S, 21 * S, Wake::Silent),
            (beat(), None, 45 * S, S, Wake::ConnectTimeout),
            (None, None, 10 * S, 100 * S, Wake::Nothing),
            (None, None, 45 * S, S, Wake::ConnectTimeout),
            (beat(), Some(5 * S), 5 * S, S, Wake::TokenExpired),
            (beat(), Some(500 * S), 45 * S, S, Wake::Ping),
            (None, Some(500 * S), 45 * S, S, Wake::Nothing),
        ];
        for (i, (heartbeat, expiry, at, silent, expected)) in cases.into_iter().enumerate() {
            let mut timers = Timers::new(t0, heartbeat, 45 * S);
            if let Some(expires_in) = expiry {
                timers.connected(t0, expires_in);
            }
            assert_eq!(timers.wake(t0 + at, silent), expected, "case {i}");
        }
    }

    #[test]
    fn the_next_wake_is_the_nearest_deadline() {
        let t0 = Instant::now();
        let mut timers = Timers::new(t0, beat(), 45 * S);
        assert_eq!(timers.next(), t0 + 10 * S);
        assert_eq!(timers.wake(t0 + 10 * S, S), Wake::Ping);
        assert_eq!(timers.next(), t0 + 20 * S);
        timers.connected(t0 + 11 * S, 3 * S);
        assert_eq!(timers.next(), t0 + 14 * S);
        assert_eq!(timers.wake(t0 + 14 * S, S), Wake::TokenExpired);
        assert_eq!(timers.next(), t0 + 20 * S);
        let polling = Timers::new(t0, None, 45 * S);
        assert_eq!(polling.next(), t0 + 45 * S);
    }
}
