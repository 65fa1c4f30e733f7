//! The master's view of one worker process: its state machine and its control channel.

use std::time::Instant;

use nix::unistd::Pid;
use tokio::sync::mpsc;

use crate::protocol::{BootFailure, Stats, ToWorker};

/// A worker's id, unique over the master's life; logged as `worker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u64);

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A worker's life. Transitions happen only in `Supervisor` (starting -> ready -> draining,
/// any -> exited when the reaper reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Spawned, importing the app.
    Starting,
    /// Accepting and serving.
    Ready,
    /// Told to drain; it finishes in-flight requests and exits.
    Draining {
        /// When the drain was ordered.
        since: Instant,
    },
    /// Killed because the reload that started it was rolled back.
    Discarded,
}

/// One live worker process.
#[derive(Debug)]
pub struct Worker {
    /// Unique id.
    pub id: WorkerId,
    /// OS process id, matched against the reaper's reports.
    pub pid: Pid,
    /// The generation it was started for.
    pub generation: u64,
    /// The slot (0..workers) it fills; a crashed worker's slot is refilled.
    pub slot: usize,
    /// Its cell on the scoreboard, freed when it exits (none for workers adopted in an upgrade:
    /// theirs are on the old master's page).
    pub cell: Option<usize>,
    /// Where it is in its life.
    pub state: WorkerState,
    /// When it was spawned, for boot time and crash-loop detection.
    pub spawned_at: Instant,
    /// Last counters it reported.
    pub stats: Stats,
    /// Why it failed to boot, if it said so before exiting.
    pub boot_failure: Option<BootFailure>,
    /// Commands to it, written by its channel task; closed when the worker is gone.
    pub commands: mpsc::UnboundedSender<ToWorker>,
    /// Its request limit, jitter applied (`--max-requests`).
    pub max_requests: Option<u64>,
    /// When it is due for replacement by age (`--max-worker-lifetime`, jitter applied).
    pub retire_at: Option<Instant>,
    /// The worker starting up to take over from this one.
    pub replacement: Option<WorkerId>,
    /// The worker this one takes over from once ready.
    pub replaces: Option<WorkerId>,
    /// After a replacement failed to boot, no new attempt before this.
    pub recycle_retry_after: Option<Instant>,
    /// Stuck (harakiri, silent): killed, not drained at leisure, once its replacement is ready.
    pub kill_when_replaced: bool,
    /// When it last sent a heartbeat (or was spawned).
    pub last_heartbeat: Instant,
    /// The master's end of its control channel, handed over by an in-place upgrade.
    pub control_fd: std::os::fd::RawFd,
}

impl Worker {
    /// Sends a command; a worker whose channel is gone is about to be reaped, so a failed send
    /// needs no handling.
    pub fn send(&self, msg: ToWorker) {
        let _ = self.commands.send(msg);
    }
}
