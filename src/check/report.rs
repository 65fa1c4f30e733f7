//! What `segue check-reload` found: the JSON document (schema in docs/check-reload.md), the
//! JUnit file (one test case per reload) and the human summary.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::load::Sample;
use crate::control::ReloadReport;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Requests counted.
    pub requests: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    fn of(samples: &mut [Duration]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort();
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
        Latency {
            requests: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: ms(samples[samples.len() - 1]),
        }
    }
}

/// One reload as the check saw it.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadCheck {
    /// 1-based number within this check.
    pub index: usize,
    /// Seconds into the run when it was triggered.
    pub started_s: f64,
    /// Milliseconds until the new generation served (promotion).
    pub new_serving_ms: Option<u64>,
    /// Milliseconds until the old generation was gone (the `--wait` answer).
    pub old_gone_ms: Option<u64>,
    /// Failed requests sent during this reload's window.
    pub failed_requests: u64,
    /// The master's record of the reload, if it answered.
    pub master: Option<ReloadReport>,
    /// Why this reload counts as failed, if it does.
    pub error: Option<String>,
}

/// The whole result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// True when nothing failed and every reload took effect.
    pub passed: bool,
    /// The app checked.
    pub app: String,
    /// Reload strategy.
    pub strategy: String,
    /// Seconds of load.
    pub duration_s: f64,
    /// Requests sent.
    pub requests: usize,
    /// Failed requests.
    pub failed: u64,
    /// Failed requests by kind (refused, reset, closed, timeout, server_error, other).
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Latency outside reload windows.
    pub steady: Latency,
    /// Latency of requests sent during a reload.
    pub during_reloads: Latency,
    /// Each reload.
    pub reloads: Vec<ReloadCheck>,
    /// Peak resident memory of the master and all workers together, in MiB.
    pub peak_rss_mib: f64,
    /// Requests per 100 ms of the run, by outcome, with their latency.
    pub timeline: Vec<Slice>,
}

/// Width of a [`Slice`] of the timeline.
pub const SLICE: Duration = Duration::from_millis(100);

/// What happened in one 100 ms slice of the run (requests by when they were sent).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Slice {
    /// Seconds from the start of the run to the slice's start.
    pub at_s: f64,
    /// Requests that got a response below 500.
    pub ok: u64,
    /// Requests that failed.
    pub failed: u64,
    /// The slowest request's latency, in ms.
    pub max_ms: f64,
    /// The median latency, in ms.
    pub p50_ms: f64,
}

fn timeline(samples: &[Sample], duration: Duration) -> Vec<Slice> {
    let n = (duration.as_millis() / SLICE.as_millis()).max(1) as usize;
    let mut lat: Vec<Vec<Duration>> = vec![Vec::new(); n];
    let mut out: Vec<Slice> = (0..n)
        .map(|i| Slice {
            at_s: (i as f64 * SLICE.as_secs_f64() * 10.0).round() / 10.0,
            ..Slice::default()
        })
        .collect();
    for s in samples {
        let i = ((s.at.as_millis() / SLICE.as_millis()) as usize).min(n - 1);
        if s.outcome.failed() {
            out[i].failed += 1;
        } else {
            out[i].ok += 1;
        }
        lat[i].push(s.latency);
    }
    for (slice, l) in out.iter_mut().zip(lat.iter_mut()) {
        let latency = Latency::of(l);
        slice.max_ms = latency.max_ms;
        slice.p50_ms = latency.p50_ms;
    }
    out
}

impl CheckReport {
    /// Builds the report from the raw samples and reload records.
    pub fn new(
        app: String,
        strategy: String,
        duration: Duration,
        samples: &[Sample],
        mut reloads: Vec<ReloadCheck>,
        peak_rss_kib: u64,
    ) -> CheckReport {
        let windows: Vec<(Duration, Duration)> = reloads
            .iter()
            .map(|r| {
                let start = Duration::from_secs_f64(r.started_s);
                let end = start
                    + Duration::from_millis(
                        r.old_gone_ms
                            .or(r.master.as_ref().map(|m| m.took_ms))
                            .unwrap_or(0),
                    );
                (start, end)
            })
            .collect();
        let in_window = |at: Duration| windows.iter().position(|(s, e)| at >= *s && at <= *e);
        let (mut steady, mut during) = (Vec::new(), Vec::new());
        let mut by_kind = BTreeMap::new();
        let mut failed = 0;
        for s in samples {
            let window = in_window(s.at);
            match window {
                Some(_) => during.push(s.latency),
                None => steady.push(s.latency),
            }
            if s.outcome.failed() {
                failed += 1;
                let kind = serde_json::to_value(s.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                *by_kind.entry(kind).or_insert(0) += 1;
                if let Some(i) = window {
                    reloads[i].failed_requests += 1;
                }
            }
        }
        for r in &mut reloads {
            if r.error.is_none() && r.failed_requests > 0 {
                r.error = Some(format!(
                    "{} requests failed during this reload",
                    r.failed_requests
                ));
            }
        }
        let passed = failed == 0 && reloads.iter().all(|r| r.error.is_none());
        CheckReport {
            passed,
            app,
            strategy,
            duration_s: duration.as_secs_f64(),
            requests: samples.len(),
            failed,
            failures_by_kind: by_kind,
            steady: Latency::of(&mut steady),
            during_reloads: Latency::of(&mut during),
            reloads,
            peak_rss_mib: (peak_rss_kib as f64 / 1024.0 * 10.0).round() / 10.0,
            timeline: timeline(samples, duration),
        }
    }

    /// The summary printed at the end.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        out += &format!(
            "segue check-reload {verdict}: {} ({} strategy)\n",
            self.app, self.strategy
        );
        out += &format!("  requests: {} sent, {} failed", self.requests, self.failed);
        if !self.failures_by_kind.is_empty() {
            let kinds: Vec<String> = self
                .failures_by_kind
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            out += &format!(" ({})", kinds.join(", "));
        }
        out += "\n";
        let lat = |l: &Latency| {
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests)",
                l.p50_ms, l.p99_ms, l.max_ms, l.requests
            )
        };
        out += &format!("  latency, steady state: {}\n", lat(&self.steady));
        out += &format!("  latency, during reloads: {}\n", lat(&self.during_reloads));
        out += &format!(
            "  peak memory (master + workers): {:.1} MiB\n",
            self.peak_rss_mib
        );
        for r in &self.reloads {
            let timing = match (r.new_serving_ms, r.old_gone_ms) {
                (Some(n), Some(o)) => {
                    format!("new generation serving after {n} ms, old gone after {o} ms")
                }
                _ => "did not take effect".into(),
            };
            let status = r
                .error
                .as_deref()
                .map_or("ok".to_string(), |e| format!("FAILED: {e}"));
            out += &format!(
                "  reload {} at {:.1}s: {timing}; {status}\n",
                r.index, r.started_s
            );
            if let Some(tb) = r.master.as_ref().and_then(|m| m.traceback.as_deref()) {
                for line in tb.trim_end().lines() {
                    out += &format!("      {line}\n");
                }
            }
        }
        out
    }

    /// JUnit XML: one test case per reload, plus one for the steady state.
    pub fn junit(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let failures = self.reloads.iter().filter(|r| r.error.is_some()).count();
        let steady_failed =
            self.failed - self.reloads.iter().map(|r| r.failed_requests).sum::<u64>();
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x += &format!(
            "<testsuite name=\"segue check-reload\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">\n",
            self.reloads.len() + 1,
            failures + usize::from(steady_failed > 0),
            self.duration_s
        );
        for r in &self.reloads {
            let time = r.old_gone_ms.unwrap_or(0) as f64 / 1000.0;
            x += &format!(
                "  <testcase classname=\"check-reload\" name=\"reload {} ({})\" time=\"{time:.3}\">\n",
                r.index,
                esc(&self.strategy)
            );
            if let Some(e) = &r.error {
                let detail = r
                    .master
                    .as_ref()
                    .and_then(|m| m.traceback.clone())
                    .unwrap_or_default();
                x += &format!(
                    "    <failure message=\"{}\">{}</failure>\n",
                    esc(e),
                    esc(&detail)
                );
            }
            x += "  </testcase>\n";
        }
        x += &format!(
            "  <testcase classname=\"check-reload\" name=\"steady state\" time=\"{:.3}\">\n",
            self.duration_s
        );
        if steady_failed > 0 {
            x += &format!(
                "    <failure message=\"{steady_failed} requests failed outside reloads\"/>\n"
            );
        }
        x += "  </testcase>\n</testsuite>\n";
        x
    }
}
