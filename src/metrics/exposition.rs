//! The Prometheus text exposition format (version 0.0.4) of a status report: what
//! `--metrics ADDR` serves on `/metrics`. Pure: the caller supplies the kernel's counters.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::histogram::{Histogram, REQUEST_BUCKETS, SLOW_BUCKETS};
use crate::control::StatusReport;

/// Counters read from the kernel at the scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel {
    /// `TcpExt: ListenOverflows` from `/proc/net/netstat` (system-wide), if readable.
    pub listen_overflows: Option<u64>,
}

impl Kernel {
    /// Reads them now.
    pub fn read() -> Kernel {
        Kernel {
            listen_overflows: std::fs::read_to_string("/proc/net/netstat")
                .ok()
                .and_then(|t| netstat_field(&t, "TcpExt:", "ListenOverflows")),
        }
    }
}

/// A field of `/proc/net/netstat`, whose sections come as a line of names then a line of values.
fn netstat_field(text: &str, section: &str, field: &str) -> Option<u64> {
    let mut lines = text.lines();
    while let Some(names) = lines.next() {
        let values = lines.next()?;
        if !names.starts_with(section) {
            continue;
        }
        let at = names.split_whitespace().position(|n| n == field)?;
        return values.split_whitespace().nth(at)?.parse().ok();
    }
    None
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.head(name, kind, help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram, bounds: &[f64]) {
        self.head(name, "histogram", help);
        for (le, count) in h.cumulative(bounds) {
            let le = le.map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            self.sample(&format!("{name}_bucket"), &[("le", &le)], count);
        }
        self.sample(&format!("{name}_sum"), &[], h.sum_us as f64 / 1e6);
        self.sample(&format!("{name}_count"), &[], h.count);
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition.
pub fn render(report: &StatusReport, kernel: Kernel) -> String {
    let m = &report.metrics;
    let t = &m.totals;
    let mut out = Out(String::new());
    out.head(
        "segue_requests_total",
        "counter",
        "Responses sent, by status class (exited workers included).",
    );
    for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
        out.sample("segue_requests_total", &[("code", class)], t.by_class[i]);
    }
    out.head(
        "segue_listener_requests_total",
        "counter",
        "Requests received, by listener.",
    );
    for (i, listener) in report.listeners.iter().enumerate() {
        let n = t.by_listener.get(i).copied().unwrap_or(0);
        out.sample(
            "segue_listener_requests_total",
            &[("listener", listener)],
            n,
        );
    }
    out.histogram(
        "segue_request_duration_seconds",
        "Time from a request's arrival to the end of its response.",
        &t.duration,
        &REQUEST_BUCKETS,
    );
    out.one(
        "segue_response_bytes_total",
        "counter",
        "Response body bytes sent.",
        t.tx_bytes,
    );
    out.one(
        "segue_static_files_total",
        "counter",
        "Responses served from --static-map files.",
        t.statics,
    );
    let in_flight: u64 = report.workers.iter().map(|w| w.in_flight).sum();
    out.one(
        "segue_requests_in_flight",
        "gauge",
        "Requests started and not finished, at the workers' last heartbeats.",
        in_flight,
    );
    let mut by_state: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for w in &report.workers {
        *by_state.entry((w.state.clone(), w.generation)).or_default() += 1;
    }
    out.head(
        "segue_workers",
        "gauge",
        "Workers by state (starting, ready, draining, discarded) and generation.",
    );
    for ((state, generation), n) in &by_state {
        out.sample(
            "segue_workers",
            &[("state", state), ("generation", &generation.to_string())],
            n,
        );
    }
    out.head(
        "segue_worker_rss_bytes",
        "gauge",
        "Resident memory of each worker, at its last heartbeat.",
    );
    for w in &report.workers {
        out.sample(
            "segue_worker_rss_bytes",
            &[
                ("worker", &w.id.to_string()),
                ("generation", &w.generation.to_string()),
            ],
            w.rss_kib * 1024,
        );
    }
    out.head(
        "segue_worker_connections",
        "gauge",
        "Open client connections of each worker, at its last heartbeat.",
    );
    for w in &report.workers {
        out.sample(
            "segue_worker_connections",
            &[
                ("worker", &w.id.to_string()),
                ("generation", &w.generation.to_string()),
            ],
            w.connections,
        );
    }
    out.one(
        "segue_serving_generation",
        "gauge",
        "The generation the server stands behind.",
        report.serving,
    );
    out.one(
        "segue_ready",
        "gauge",
        "1 once the first generation has been ready (what systemd's READY=1 says).",
        u8::from(report.ready),
    );
    out.head("segue_reloads_total", "counter", "Reloads by outcome.");
    out.sample(
        "segue_reloads_total",
        &[("outcome", "promoted")],
        m.reloads_promoted,
    );
    out.sample(
        "segue_reloads_total",
        &[("outcome", "rolled_back")],
        m.reloads_rolled_back,
    );
    out.histogram(
        "segue_reload_duration_seconds",
        "Time from a reload's start to its promotion or rollback.",
        &m.reload_seconds,
        &SLOW_BUCKETS,
    );
    out.histogram(
        "segue_worker_boot_seconds",
        "Time for a new worker to become ready (import, or fork with --preload).",
        &m.boot_seconds,
        &SLOW_BUCKETS,
    );
    out.one(
        "segue_listen_queue",
        "gauge",
        "Connections waiting in the TCP listeners' accept queues (sampled once a second).",
        report.scaling.queued,
    );
    if let Some(n) = kernel.listen_overflows {
        out.one(
            "segue_listen_overflows_total",
            "counter",
            "The kernel's ListenOverflows counter (system-wide: every listener on this host).",
            n,
        );
    }
    out.one(
        "segue_harakiri_total",
        "counter",
        "Requests that ran past --harakiri.",
        m.harakiri,
    );
    out.one(
        "segue_worker_crashes_total",
        "counter",
        "Workers that died without being asked to.",
        m.crashes,
    );
    out.one(
        "segue_log_lines_dropped_total",
        "counter",
        "Log lines the workers dropped because a log file could not keep up.",
        t.log_dropped,
    );
    out.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstat_fields_by_name() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                    TcpExt: 0 17 19\n\
                    IpExt: InNoRoutes\nIpExt: 3\n";
        assert_eq!(netstat_field(text, "TcpExt:", "ListenOverflows"), Some(17));
        assert_eq!(netstat_field(text, "IpExt:", "InNoRoutes"), Some(3));
        assert_eq!(netstat_field(text, "TcpExt:", "Nope"), None);
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
