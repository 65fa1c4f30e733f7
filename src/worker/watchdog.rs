//! Per-request and per-interpreter health inside a worker.
//!
//! `--harakiri`: every request running on a Python thread is registered with its start time and
//! the thread's Python ident. A request past the limit is logged once with the Python stack of
//! its thread and reported to the master, which replaces the worker (replacement first) and then
//! kills it; the client gets a 504 from the tokio side if the response had not started.
//!
//! The GIL probe: a thread that takes and releases the GIL in a loop. When one attempt has
//! waited [`WEDGED`], the [`GilGate`] closes: the worker's acceptors step out and the
//! scoreboard shows it wedged, so its peers take the new connections; it opens again as soon as
//! the probe gets the GIL. If the probe has not managed for 3 s, the worker also stops sending
//! heartbeats, so the master sees a worker wedged holding the GIL (a C extension in a loop) as
//! silent and replaces it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::protocol::scoreboard::{Cell, Wedged};

/// How long one attempt of the probe may wait for the GIL before the worker counts as wedged.
/// A thread running Python gives the GIL up within the 5 ms switch interval when another asks
/// for it; only C code that does not release it (a `ctypes.PyDLL` call, an extension's loop)
/// keeps it a hundred times longer. Short against the 3 s after which heartbeats stop.
pub const WEDGED: Duration = Duration::from_millis(500);

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

/// The GIL probe's record: when it last got the GIL, and since when it has been trying to.
/// Times are milliseconds since `started`.
#[derive(Debug)]
pub struct GilProbe {
    started: Instant,
    last_ok_ms: AtomicU64,
    /// When the attempt under way began, plus one (0: the probe is sleeping, not waiting).
    attempt_ms: AtomicU64,
}

impl GilProbe {
    fn new() -> GilProbe {
        GilProbe {
            started: Instant::now(),
            last_ok_ms: AtomicU64::new(0),
            attempt_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Starts the probe thread; it takes the GIL every `every`.
    pub fn start(every: Duration) -> Arc<GilProbe> {
        let probe = Arc::new(GilProbe::new());
        let p = probe.clone();
        let _ = std::thread::Builder::new()
            .name("segue-gil-probe".into())
            .spawn(move || {
                loop {
                    p.attempt_ms.store(p.now_ms() + 1, Ordering::Relaxed);
                    Python::attach(|_| ());
                    p.got_gil();
                    std::thread::sleep(every);
                }
            });
        probe
    }

    /// Records a success.
    fn got_gil(&self) {
        self.attempt_ms.store(0, Ordering::Relaxed);
        self.last_ok_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long ago the probe last got the GIL.
    pub fn stale_for(&self) -> Duration {
        Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.last_ok_ms.load(Ordering::Relaxed)),
        )
    }

    /// How long the probe's current attempt has waited for the GIL; zero while it sleeps
    /// between attempts.
    pub fn waiting_for(&self) -> Duration {
        match self.attempt_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(self.now_ms().saturating_sub(since - 1)),
        }
    }
}

/// Whether the worker should take new connections, by the GIL probe: closed while the GIL has
/// been held past [`WEDGED`], because a connection accepted then waits for the GIL however
/// idle the worker's threads look, while a peer could serve it at once. The worker's acceptors
/// ask it before every accept, and the worker's main thread every tenth of a second
/// ([`watch_gate`]); the first to see a change posts it on the scoreboard and logs it, so each
/// wedge is logged once per worker, not once per listener.
#[derive(Debug)]
pub struct GilGate {
    probe: Arc<GilProbe>,
    /// This worker's scoreboard cell, where a wedge is posted for the peers.
    cell: Option<Cell>,
    /// The current verdict, read without the lock on every accept.
    closed: AtomicBool,
    /// The wedge under way: when it was seen and its mark on the scoreboard. Changed only
    /// under this lock, by whichever acceptor sees the change first.
    wedge: Mutex<Option<(Instant, Option<Wedged>)>>,
}

impl GilGate {
    /// A gate that follows `probe` and posts wedges in `cell`.
    pub fn new(probe: Arc<GilProbe>, cell: Option<Cell>) -> GilGate {
        GilGate {
            probe,
            cell,
            closed: AtomicBool::new(false),
            wedge: Mutex::new(None),
        }
    }

    /// True while the GIL is held past [`WEDGED`]; the caller must not accept meanwhile.
    pub fn is_closed(&self) -> bool {
        let wedged = self.probe.waiting_for() >= WEDGED;
        if wedged == self.closed.load(Ordering::Relaxed) {
            return wedged;
        }
        let mut wedge = self.wedge.lock().unwrap_or_else(|p| p.into_inner());
        match (wedge.take(), wedged) {
            (None, true) => {
                tracing::warn!(
                    "the GIL has been held for {:.1}s by one thread (C code that does not release it?): not accepting connections until it is released; other workers take them",
                    self.probe.waiting_for().as_secs_f64()
                );
                *wedge = Some((Instant::now(), self.cell.as_ref().map(Cell::wedged)));
            }
            (Some((since, mark)), false) => {
                drop(mark);
                tracing::info!(
                    "the GIL is free again after {:.1}s: accepting connections",
                    (since.elapsed() + WEDGED).as_secs_f64()
                );
            }
            // Another acceptor made this change while we took the lock.
            (current, _) => *wedge = current,
        }
        self.closed.store(wedged, Ordering::Relaxed);
        wedged
    }
}

/// Keeps `gate`'s verdict current (its log lines, its mark on the scoreboard) whether or not
/// an acceptor runs to ask it, checking a few times within [`WEDGED`].
pub async fn watch_gate(gate: Arc<GilGate>) {
    let mut every = tokio::time::interval(WEDGED / 5);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        gate.is_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::scoreboard::{Cells, Scoreboard};

    #[test]
    fn the_gate_closes_while_the_probe_waits_too_long_and_posts_it() {
        let mut cells = Cells::new().unwrap();
        let board = Arc::new(Scoreboard::open(cells.fd().try_clone_to_owned().unwrap()).unwrap());
        let me = board.clone().cell(cells.take().unwrap()).unwrap();
        let peer = board.cell(cells.take().unwrap()).unwrap();
        let (_me_acc, _me_idle) = (me.accepting(), me.idle());
        let _peer_conns: Vec<_> = (0..3).map(|_| peer.opened()).collect();
        // A probe whose clock started WEDGED ago, so that an attempt begun at its start has
        // waited exactly that long.
        let probe = Arc::new(GilProbe {
            started: Instant::now().checked_sub(WEDGED).unwrap(),
            ..GilProbe::new()
        });
        let gate = GilGate::new(probe.clone(), Some(me.clone()));
        assert!(!gate.is_closed(), "the probe is between attempts");
        assert_eq!(peer.better_peer(), Some(0));
        probe.attempt_ms.store(1, Ordering::Relaxed);
        assert!(gate.is_closed());
        assert!(gate.is_closed(), "still closed");
        assert_eq!(
            peer.better_peer(),
            None,
            "the peer must not wait for a wedged worker"
        );
        probe.got_gil();
        assert!(!gate.is_closed());
        assert_eq!(
            peer.better_peer(),
            Some(0),
            "the worker takes its share again"
        );
    }

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
