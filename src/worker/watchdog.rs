//! Per-request and per-interpreter health inside a worker.
//!
//! `--harakiri`: every request running on a Python thread is registered with its start time and
//! the thread's Python ident. A request past the limit is logged once with the Python stack of
//! its thread and reported to the master, which replaces the worker (replacement first) and then
//! kills it; the client gets a 504 from the tokio side if the response had not started.
//!
//! The GIL probe: a thread that takes and releases the GIL in a loop. If it has not managed to
//! for a while, the worker stops sending heartbeats, so the master sees a worker wedged holding
//! the GIL (a C extension in a loop) as silent and replaces it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// A request a Python thread is running.
#[derive(Debug)]
struct Running {
    started: Instant,
    /// `threading.get_ident()` of the thread running it.
    thread: u64,
    /// "GET /path", for the log.
    what: String,
    /// Already reported as stuck.
    reported: bool,
}

/// A request over the harakiri limit.
#[derive(Debug, Clone)]
pub struct Overdue {
    /// How long it has run.
    pub age: Duration,
    /// "GET /path".
    pub what: String,
    /// The thread's Python ident.
    pub thread: u64,
}

/// The registry of running requests.
#[derive(Debug, Default)]
pub struct Requests {
    running: Mutex<HashMap<u64, Running>>,
    next: AtomicU64,
}

/// Removes its request from the registry when dropped.
pub struct Token<'a> {
    registry: &'a Requests,
    id: u64,
}

impl Drop for Token<'_> {
    fn drop(&mut self) {
        self.registry
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl Requests {
    /// Registers a request starting now on Python thread `thread`.
    pub fn begin(&self, thread: u64, what: String) -> Token<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = Running {
            started: Instant::now(),
            thread,
            what,
            reported: false,
        };
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, entry);
        Token { registry: self, id }
    }

    /// Requests past `limit` not reported before; marks them reported.
    pub fn overdue(&self, limit: Duration) -> Vec<Overdue> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running
            .values_mut()
            .filter(|r| !r.reported && r.started.elapsed() >= limit)
            .map(|r| {
                r.reported = true;
                Overdue {
                    age: r.started.elapsed(),
                    what: r.what.clone(),
                    thread: r.thread,
                }
            })
            .collect()
    }
}

/// The Python stack of thread `ident`, or `None` if the GIL could not be had within `wait`
/// (the stuck thread may hold it).
pub fn python_stack(ident: u64, wait: Duration) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let stack = Python::attach(|py| -> PyResult<String> {
            let frames = py.import("sys")?.call_method0("_current_frames")?;
            let Some(frame) = frames.get_item(ident).ok() else {
                return Ok(String::new());
            };
            let lines: Vec<String> = py
                .import("traceback")?
                .call_method1("format_stack", (frame,))?
                .extract()?;
            Ok(lines.concat())
        });
        let _ = tx.send(stack.ok());
    });
    rx.recv_timeout(wait)
        .ok()
        .flatten()
        .filter(|s| !s.is_empty())
}

/// Milliseconds since the epoch of the process start when the GIL probe last got the GIL.
#[derive(Debug)]
pub struct GilProbe {
    started: Instant,
    last_ok_ms: AtomicU64,
}

impl GilProbe {
    /// Starts the probe thread; it takes the GIL every `every`.
    pub fn start(every: Duration) -> std::sync::Arc<GilProbe> {
        let probe = std::sync::Arc::new(GilProbe {
            started: Instant::now(),
            last_ok_ms: AtomicU64::new(0),
        });
        let p = probe.clone();
        let _ = std::thread::Builder::new()
            .name("segue-gil-probe".into())
            .spawn(move || {
                loop {
                    Python::attach(|_| ());
                    p.last_ok_ms
                        .store(p.started.elapsed().as_millis() as u64, Ordering::Relaxed);
                    std::thread::sleep(every);
                }
            });
        probe
    }

    /// How long ago the probe last got the GIL.
    pub fn stale_for(&self) -> Duration {
        let now = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ok_ms.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overdue_requests_are_reported_once_and_leave_when_done() {
        let r = Requests::default();
        let token = r.begin(7, "GET /slow".into());
        assert!(r.overdue(Duration::from_secs(60)).is_empty());
        let due = r.overdue(Duration::ZERO);
        assert_eq!(
            (due.len(), due[0].thread, due[0].what.as_str()),
            (1, 7, "GET /slow")
        );
        assert!(r.overdue(Duration::ZERO).is_empty(), "reported twice");
        drop(token);
        let _t = r.begin(8, "GET /".into());
        assert_eq!(r.overdue(Duration::ZERO).len(), 1);
    }
}
