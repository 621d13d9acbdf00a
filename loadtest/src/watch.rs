//! Server-side cost from /proc: CPU time (utime+stime) and resident memory of watched
//! processes, or of this process's own threads by name (the in-process ceiling server runs on
//! its own named threads, so its CPU can be told apart from the load generator's).

use std::path::Path;

use serde::Serialize;

use crate::error::LoadTestError;

/// /proc reports CPU times in USER_HZ, which Linux fixes at 100 per second.
const MICROS_PER_TICK: u64 = 10_000;

/// What to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchTarget {
    Pid(u32),
    /// Every process whose name (comm or argv[0] file name) is this.
    Name(String),
    /// This process's threads whose name starts with this.
    OwnThreads(String),
}

/// Summed over the watched processes at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub cpu_us: u64,
    /// Resident memory; `None` when watching threads (memory is per process).
    pub rss_kib: Option<u64>,
}

/// Resolved watch targets.
#[derive(Debug, Clone, Default)]
pub struct Watcher {
    pids: Vec<u32>,
    thread_prefixes: Vec<String>,
}

impl Watcher {
    /// Resolves names to pids now; a name that matches nothing is an error.
    pub fn resolve(targets: &[WatchTarget]) -> Result<Watcher, LoadTestError> {
        let mut watcher = Watcher::default();
        for target in targets {
            match target {
                WatchTarget::Pid(pid) => {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        return Err(LoadTestError::config(format!(
                            "--watch-pid {pid}: no such process"
                        )));
                    }
                    watcher.pids.push(*pid);
                }
                WatchTarget::Name(name) => {
                    let found = pids_named(name);
                    if found.is_empty() {
                        return Err(LoadTestError::config(format!(
                            "--watch-name {name}: no such process"
                        )));
                    }
                    watcher.pids.extend(found);
                }
                WatchTarget::OwnThreads(prefix) => watcher.thread_prefixes.push(prefix.clone()),
            }
        }
        Ok(watcher)
    }

    pub fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.thread_prefixes.is_empty()
    }

    /// What is watched, for the report: `pid N`, `threads PREFIX*`.
    pub fn describe(&self) -> Vec<String> {
        self.pids
            .iter()
            .map(|p| format!("pid {p}"))
            .chain(self.thread_prefixes.iter().map(|t| format!("threads {t}*")))
            .collect()
    }

    /// CPU and memory now.
    pub fn sample(&self) -> Sample {
        let mut sample = Sample::default();
        let mut rss = 0;
        for pid in &self.pids {
            sample.cpu_us += cpu_us(&format!("/proc/{pid}/stat"));
            rss += rss_kib(*pid);
        }
        for prefix in &self.thread_prefixes {
            sample.cpu_us += own_threads_cpu_us(prefix);
        }
        if !self.pids.is_empty() {
            sample.rss_kib = Some(rss);
        }
        sample
    }
}

fn pids_named(name: &str) -> Vec<u32> {
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != own && process_name_matches(*pid, name))
        .collect()
}

fn process_name_matches(pid: u32, name: &str) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim_end() == name {
        return true;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    Path::new(&*String::from_utf8_lossy(argv0))
        .file_name()
        .is_some_and(|f| f == name)
}

/// utime+stime of a /proc stat file, in µs (0 when unreadable: the process is gone).
fn cpu_us(stat_path: &str) -> u64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) * MICROS_PER_TICK
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn own_threads_cpu_us(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|comm| comm.starts_with(prefix))
        })
        .map(|t| cpu_us(&t.path().join("stat").to_string_lossy()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let watcher =
            Watcher::resolve(&[WatchTarget::Pid(std::process::id())]).expect("own pid exists");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let sample = watcher.sample();
        assert!(sample.rss_kib.is_some_and(|r| r > 0));
        assert!(Watcher::resolve(&[WatchTarget::Name("no-such-process-xyz".into())]).is_err());
    }
}
