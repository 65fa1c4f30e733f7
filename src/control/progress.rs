//! What `segue reload --wait` prints while it waits: each new worker booting and ready, each
//! old worker draining and gone, as the master's status shows them. The wait itself is one
//! control request; a second connection polls `status` beside it ([`watch`]), and [`changes`]
//! turns two snapshots into lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::client;
use super::messages::{Reply, Request, WorkerReport};

/// How often the watcher asks.
pub const POLL: Duration = Duration::from_millis(100);

/// The lines that lead from `before` to `after`, in worker order.
pub fn changes(before: &[WorkerReport], after: &[WorkerReport]) -> Vec<String> {
    let old: BTreeMap<u64, &WorkerReport> = before.iter().map(|w| (w.id, w)).collect();
    let new: BTreeMap<u64, &WorkerReport> = after.iter().map(|w| (w.id, w)).collect();
    let mut out = Vec::new();
    for (id, w) in &new {
        let what = match (old.get(id).map(|o| o.state.as_str()), w.state.as_str()) {
            (None, "starting") => "booting",
            (None | Some("starting"), "ready") => "ready",
            (Some(a), b) if a == b => continue,
            (_, "draining") => "draining",
            (_, "discarded") => "discarded (its reload is rolled back)",
            _ => continue,
        };
        out.push(format!(
            "worker {id} (generation {}, pid {}): {what}",
            w.generation, w.pid
        ));
    }
    for (id, w) in &old {
        if !new.contains_key(id) {
            out.push(format!(
                "worker {id} (generation {}, pid {}): gone",
                w.generation, w.pid
            ));
        }
    }
    out
}

fn workers(path: &Path) -> Option<Vec<WorkerReport>> {
    match client::call(path, &Request::Status, Duration::from_secs(5)) {
        Ok(Reply::Status(s)) => Some(s.workers),
        _ => None,
    }
}

/// Polls the master at `path` every [`POLL`] and writes each change to `out` until `stop`.
/// Returns at once, with the watching thread; the first snapshot is taken before it returns, so
/// every worker the reload starts is reported.
pub fn watch(
    path: PathBuf,
    stop: Arc<AtomicBool>,
    mut out: impl Write + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let mut last = workers(&path).unwrap_or_default();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(POLL);
            let Some(now) = workers(&path) else { continue };
            for line in changes(&last, &now) {
                if writeln!(out, "{line}").is_err() {
                    return;
                }
            }
            last = now;
        }
        // A last look: what happened between the final poll and the answer.
        if let Some(now) = workers(&path) {
            for line in changes(&last, &now) {
                let _ = writeln!(out, "{line}");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: u64, generation: u64, state: &str) -> WorkerReport {
        serde_json::from_value(serde_json::json!({
            "id": id, "pid": 100 + id, "generation": generation, "state": state,
            "requests": 0, "uptime_s": 1.0
        }))
        .unwrap()
    }

    #[test]
    fn a_chain_reload_step_by_step() {
        let start = [w(1, 1, "ready"), w(2, 1, "ready")];
        let booting = [w(1, 1, "ready"), w(2, 1, "ready"), w(3, 2, "starting")];
        assert_eq!(
            changes(&start, &booting),
            ["worker 3 (generation 2, pid 103): booting"]
        );
        let swapped = [w(1, 1, "draining"), w(2, 1, "ready"), w(3, 2, "ready")];
        assert_eq!(
            changes(&booting, &swapped),
            [
                "worker 1 (generation 1, pid 101): draining",
                "worker 3 (generation 2, pid 103): ready"
            ]
        );
        let gone = [w(2, 1, "ready"), w(3, 2, "ready")];
        assert_eq!(
            changes(&swapped, &gone),
            ["worker 1 (generation 1, pid 101): gone"]
        );
        assert!(changes(&gone, &gone).is_empty());
        // A worker that came and became ready between two polls.
        assert_eq!(
            changes(
                &gone,
                &[w(2, 1, "ready"), w(3, 2, "ready"), w(4, 2, "ready")]
            ),
            ["worker 4 (generation 2, pid 104): ready"]
        );
    }
}
