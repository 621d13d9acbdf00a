//! The result of a run: serialisable to JSON (`--json`) and printable as tables.

use std::collections::BTreeMap;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::stats::{CdfPoint, Percentiles, TimelinePoint};

/// What was run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub scenario: String,
    pub targets: Vec<String>,
    pub encoding: String,
    pub clients: usize,
    pub guilds: usize,
    pub guilds_per_client: usize,
    pub senders: usize,
    pub rate_per_s: f64,
    pub message_bytes: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
}

/// Opening the connections.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnectionStats {
    pub attempted: u64,
    pub connected: u64,
    pub failed: u64,
    pub ramp_s: f64,
    pub connect_rate_per_s: f64,
    /// TCP connect start → `hello`.
    pub handshake: Percentiles,
}

/// Message delivery over the measured window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryStats {
    pub messages_sent: u64,
    pub messages_measured: u64,
    pub acks: u64,
    pub refused: u64,
    pub expected: u64,
    pub received: u64,
    pub delivery_ratio: f64,
    pub deliveries_per_s: f64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Out of order while a resume was answered (live overtaking replay).
    pub out_of_order_in_resume: u64,
    pub foreign: u64,
    /// Scheduled send time → receipt.
    pub latency: Percentiles,
}

/// The reconnect storm.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StormStats {
    pub clients_dropped: u64,
    pub clients_resumed: u64,
    /// Drop → the last client's last `resumed`; `None` when not every client resumed.
    pub all_resumed_ms: Option<f64>,
    /// Per client: drop → its last `resumed`.
    pub resume: Percentiles,
    pub reconnect_failures: u64,
    /// Owed deliveries never received (after every resume and the drain).
    pub lost: u64,
    pub duplicates: u64,
    /// Reconnect handshakes per second: clients resumed over the time until all resumed.
    pub handshakes_per_s: Option<f64>,
    /// Presence frames per dropped client from the drop to the end of the run (issue #13).
    pub presence_per_client: PresenceFrames,
}

/// `presence` snapshots and `presence_diff` frames per client.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PresenceFrames {
    pub snapshots: f64,
    pub diffs: f64,
}

/// Cost on the watched server processes over the measured window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerCost {
    /// What was watched: `pid N` or `threads PREFIX*`.
    pub watched: Vec<String>,
    pub window_s: f64,
    pub cpu_us: u64,
    pub cpu_percent_of_one_core: f64,
    pub cpu_us_per_delivery: Option<f64>,
    pub rss_kib_before_connect: Option<u64>,
    pub rss_kib_after_connect: Option<u64>,
    pub rss_kib_per_connection: Option<f64>,
}

/// A whole run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub run: RunSummary,
    pub connections: ConnectionStats,
    pub delivery: Option<DeliveryStats>,
    pub storm: Option<StormStats>,
    pub server: Option<ServerCost>,
    /// Failures by reason: connection refusals, error codes, unexpected closes.
    pub failures: BTreeMap<String, u64>,
    pub timeline: Vec<TimelinePoint>,
    pub cdf: Vec<CdfPoint>,
}

fn latency_row(table: &mut Table, name: &str, p: &Percentiles) {
    table.add_row(vec![
        name.to_owned(),
        format!(
            "p50 {:.2} / p90 {:.2} / p99 {:.2} / p99.9 {:.2} / max {:.2} ms (n={})",
            p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms, p.count
        ),
    ]);
}

fn row(table: &mut Table, name: &str, value: impl ToString) {
    table.add_row(vec![name.to_owned(), value.to_string()]);
}

impl Report {
    /// The results as text tables.
    pub fn render(&self) -> String {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(vec!["metric", "value"]);
        let r = &self.run;
        row(
            &mut table,
            "scenario",
            format!("{} ({})", r.scenario, r.encoding),
        );
        row(&mut table, "targets", r.targets.join(", "));
        let c = &self.connections;
        row(
            &mut table,
            "connections",
            format!("{} of {} ({} failed)", c.connected, c.attempted, c.failed),
        );
        row(
            &mut table,
            "connect rate",
            format!("{:.0}/s over {:.2} s", c.connect_rate_per_s, c.ramp_s),
        );
        latency_row(&mut table, "handshake", &c.handshake);
        if let Some(d) = &self.delivery {
            self.render_delivery(&mut table, d);
        }
        if let Some(s) = &self.storm {
            render_storm(&mut table, s);
        }
        if let Some(s) = &self.server {
            render_server(&mut table, s);
        }
        let mut out = table.to_string();
        if !self.failures.is_empty() {
            let mut failures = Table::new();
            failures.load_preset(UTF8_FULL_CONDENSED);
            failures.set_header(vec!["failure", "count"]);
            for (reason, count) in &self.failures {
                failures.add_row(vec![reason.clone(), count.to_string()]);
            }
            out.push('\n');
            out.push_str(&failures.to_string());
        }
        out
    }

    fn render_delivery(&self, table: &mut Table, d: &DeliveryStats) {
        row(
            table,
            "messages",
            format!(
                "{} sent ({} measured), {} acked, {} refused",
                d.messages_sent, d.messages_measured, d.acks, d.refused
            ),
        );
        row(table, "deliveries/s", format!("{:.0}", d.deliveries_per_s));
        row(
            table,
            "delivery ratio",
            format!("{:.6} ({} of {})", d.delivery_ratio, d.received, d.expected),
        );
        row(
            table,
            "duplicates / out-of-order (in resume) / foreign",
            format!(
                "{} / {} ({}) / {}",
                d.duplicates, d.out_of_order, d.out_of_order_in_resume, d.foreign
            ),
        );
        latency_row(table, "send→receive latency", &d.latency);
    }
}

fn render_storm(table: &mut Table, s: &StormStats) {
    row(
        table,
        "storm: resumed",
        format!("{} of {} dropped", s.clients_resumed, s.clients_dropped),
    );
    row(
        table,
        "storm: all resumed after",
        s.all_resumed_ms
            .map_or_else(|| "not all resumed".to_owned(), |ms| format!("{ms:.1} ms")),
    );
    latency_row(table, "storm: per-client resume", &s.resume);
    row(
        table,
        "storm: lost / duplicates / reconnect failures",
        format!("{} / {} / {}", s.lost, s.duplicates, s.reconnect_failures),
    );
    if let Some(rate) = s.handshakes_per_s {
        row(table, "storm: reconnect handshakes/s", format!("{rate:.0}"));
    }
    row(
        table,
        "storm: presence frames per client",
        format!(
            "{:.2} snapshots + {:.2} diffs",
            s.presence_per_client.snapshots, s.presence_per_client.diffs
        ),
    );
}

fn render_server(table: &mut Table, s: &ServerCost) {
    row(
        table,
        "server CPU",
        format!(
            "{:.1}% of a core over {:.1} s ({})",
            s.cpu_percent_of_one_core,
            s.window_s,
            s.watched.join(", ")
        ),
    );
    if let Some(per) = s.cpu_us_per_delivery {
        row(table, "server CPU-µs per delivery", format!("{per:.2}"));
    }
    if let Some(after) = s.rss_kib_after_connect {
        row(table, "server RSS after connect", format!("{after} KiB"));
    }
    if let Some(per) = s.rss_kib_per_connection {
        row(table, "server RSS per connection", format!("{per:.2} KiB"));
    }
}
