//! The supervisor's record of one worker process: where it is in its life and what the master
//! knows about it. Pure data: the OS side (its pid's signals, its channel, its scoreboard cell)
//! belongs to the executor, so every decision about a worker can be tested without a process.

use tokio::time::Instant;

use super::generation::GenerationId;
use crate::protocol::{BootFailure, Stats};

/// A worker's id, unique over the master's life (carried across in-place upgrades); logged as
/// `worker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u64);

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A worker's life. Transitions happen only in the supervisor: starting -> ready -> draining,
/// starting -> discarded when its reload is rolled back, and out of the table when the reaper
/// reports its exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Spawned, importing the app.
    Starting,
    /// Accepting and serving.
    Ready,
    /// Told to drain; it finishes in-flight requests and exits.
    Draining {
        /// When the drain was ordered, for the log and the status.
        since: Instant,
    },
    /// Killed because the reload that started it was rolled back.
    Discarded,
}

impl WorkerState {
    /// The name `segue status` shows.
    pub fn name(&self) -> &'static str {
        match self {
            WorkerState::Starting => "starting",
            WorkerState::Ready => "ready",
            WorkerState::Draining { .. } => "draining",
            WorkerState::Discarded => "discarded",
        }
    }
}

/// One live worker process, as the supervisor sees it.
#[derive(Debug, Clone)]
pub struct Worker {
    /// Unique id.
    pub id: WorkerId,
    /// OS process id, once the executor has started it (for status and the handover).
    pub pid: Option<i32>,
    /// The generation it was started for.
    pub generation: GenerationId,
    /// The slot (0..workers) it fills; a crashed worker's slot is refilled.
    pub slot: usize,
    /// Where it is in its life.
    pub state: WorkerState,
    /// When it was spawned, for boot time and crash-loop detection.
    pub spawned_at: Instant,
    /// Last counters it reported.
    pub stats: Stats,
    /// Why it failed to boot, if it said so before exiting.
    pub boot_failure: Option<BootFailure>,
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
    /// Workers its slot had before it (uWSGI's `respawn_count`).
    pub respawns: u64,
    /// Requests of it that ran past `--harakiri`.
    pub harakiri_count: u64,
    /// Its requests waiting for a Python thread, at the last load sample (from the scoreboard).
    pub queued: u64,
}

impl Worker {
    /// A worker that has just been asked for, in `slot` of `generation`.
    pub fn starting(id: WorkerId, generation: GenerationId, slot: usize) -> Worker {
        let now = Instant::now();
        Worker {
            id,
            pid: None,
            generation,
            slot,
            state: WorkerState::Starting,
            spawned_at: now,
            stats: Stats::default(),
            boot_failure: None,
            max_requests: None,
            retire_at: None,
            replacement: None,
            replaces: None,
            recycle_retry_after: None,
            kill_when_replaced: false,
            last_heartbeat: now,
            respawns: 0,
            harakiri_count: 0,
            queued: 0,
        }
    }

    /// Serving or on its way to serve: it fills its slot.
    pub fn fills_slot(&self) -> bool {
        matches!(self.state, WorkerState::Starting | WorkerState::Ready)
    }
}
