//! `segue top`: a live view of a running master in the terminal, refreshed every interval: the
//! serving generation, requests per second, the listen queue, and per worker its state,
//! requests, rate, memory, connections and requests in flight. It polls `status` on the
//! control socket; nothing runs in the master for it.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::client;
use super::messages::{Reply, Request, StatusReport};

/// One frame of the view, from `now` and the requests each worker had at the previous frame
/// (`elapsed` ago).
pub fn frame(now: &StatusReport, before: &BTreeMap<u64, u64>, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = |id: u64, requests: u64| {
        before
            .get(&id)
            .map_or(0.0, |b| requests.saturating_sub(*b) as f64 / secs)
    };
    let total: u64 = now.workers.iter().map(|w| w.requests).sum();
    let rps: f64 = now.workers.iter().map(|w| rate(w.id, w.requests)).sum();
    let mut out = format!(
        "segue master {} - generation {} - {} workers - req {} - {:.0} req/s - listen queue {}{}\n\n",
        now.pid,
        now.serving,
        now.workers.len(),
        total,
        rps,
        now.scaling.queued,
        now.reloading
            .as_deref()
            .map_or(String::new(), |r| format!(" - reloading: {r}"))
    );
    out.push_str(&format!(
        "{:>6} {:>8} {:>4} {:<10} {:>9} {:>8} {:>8} {:>6} {:>6} {:>6} {:>8}\n",
        "worker",
        "pid",
        "gen",
        "state",
        "requests",
        "req/s",
        "rss",
        "conns",
        "busy",
        "queue",
        "uptime"
    ));
    for w in &now.workers {
        out.push_str(&format!(
            "{:>6} {:>8} {:>4} {:<10} {:>9} {:>8.1} {:>6}MB {:>6} {:>6} {:>6} {:>7.0}s\n",
            w.id,
            w.pid,
            w.generation,
            w.state,
            w.requests,
            rate(w.id, w.requests),
            w.rss_kib / 1024,
            w.connections,
            w.in_flight,
            w.queued,
            w.uptime_s
        ));
    }
    out
}

/// Runs the view against the master at `path`: `iterations` frames (0: until interrupted),
/// `interval` apart. On a terminal each frame replaces the last.
pub fn run(path: &Path, interval: Duration, iterations: u64) -> Result<(), client::Error> {
    let terminal = std::io::stdout().is_terminal();
    let mut before = BTreeMap::new();
    let mut at = Instant::now();
    let mut shown = 0;
    loop {
        let Reply::Status(now) = client::call(path, &Request::Status, Duration::from_secs(5))?
        else {
            return Ok(());
        };
        let text = frame(&now, &before, at.elapsed());
        before = now.workers.iter().map(|w| (w.id, w.requests)).collect();
        at = Instant::now();
        let mut out = std::io::stdout().lock();
        let written = if terminal {
            write!(out, "\x1b[H\x1b[2J{text}")
        } else {
            writeln!(out, "{text}")
        };
        if written.and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
        shown += 1;
        if iterations > 0 && shown >= iterations {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}
