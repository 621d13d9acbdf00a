//! The live view while a run goes: an indicatif bar per phase (connecting, warm-up, measuring,
//! draining) and a line of rates refreshed twice a second. Hidden when disabled (tests) or
//! when stderr is not a terminal.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

const TICK: Duration = Duration::from_millis(500);

/// The progress bar of a run.
#[derive(Clone)]
pub struct Live {
    bar: ProgressBar,
}

impl Live {
    pub fn new(enabled: bool) -> Live {
        let bar = if enabled {
            ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Live { bar }
    }

    /// Starts a phase whose progress goes from 0 to `length`.
    pub fn phase(&self, name: &str, length: u64) {
        self.bar.set_prefix(name.to_owned());
        self.bar.set_length(length);
        self.bar.set_position(0);
        self.bar.reset_elapsed();
    }

    pub fn set_position(&self, position: u64) {
        self.bar.set_position(position);
    }

    pub fn set_line(&self, line: String) {
        self.bar.set_message(line);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Every tick: position = seconds into the current phase, message = `line(since last
    /// tick)`. Stops when the returned handle is dropped.
    pub fn spawn_ticker(
        &self,
        mut line: impl FnMut(Duration) -> String + Send + 'static,
    ) -> Ticker {
        let bar = self.bar.clone();
        let handle = tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                tokio::time::sleep(TICK).await;
                let now = Instant::now();
                bar.set_position(bar.elapsed().as_secs());
                bar.set_message(line(now - last));
                last = now;
            }
        });
        Ticker(handle)
    }
}

/// A running ticker; stops on drop.
pub struct Ticker(JoinHandle<()>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Per-second rate of a counter between two ticks.
pub struct Rate {
    last: u64,
}

impl Rate {
    pub fn new() -> Rate {
        Rate { last: 0 }
    }

    /// The rate since the previous call, given the counter's value now.
    pub fn per_second(&mut self, value: u64, elapsed: Duration) -> f64 {
        let delta = value.saturating_sub(self.last);
        self.last = value;
        let secs = elapsed.as_secs_f64();
        if secs > 0.0 { delta as f64 / secs } else { 0.0 }
    }
}

impl Default for Rate {
    fn default() -> Self {
        Rate::new()
    }
}
