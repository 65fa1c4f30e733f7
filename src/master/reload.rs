//! A reload in progress and the record of finished ones.
//!
//! The run only holds bookkeeping; the supervisor performs every spawn, drain and kill, so worker
//! state changes stay in one place. A run is `Spawning` until every slot has a ready worker of
//! the new generation (then `Promoted`), or until any new worker fails (then `RolledBack`).

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use tokio::sync::oneshot;

use super::generation::GenerationId;
use super::worker::WorkerId;
use crate::config::ReloadStrategy;
use crate::control::{ReloadReport, Reply};

/// A reload being carried out.
#[derive(Debug)]
pub struct ReloadRun {
    /// Sequence number, for logs and status.
    pub id: u64,
    /// The generation being replaced.
    pub from: GenerationId,
    /// The generation being started.
    pub target: GenerationId,
    /// How.
    pub strategy: ReloadStrategy,
    /// When it began.
    pub started: Instant,
    /// Slots whose new worker has not been started yet, in order.
    pub todo: VecDeque<usize>,
    /// New workers still booting.
    pub booting: HashSet<WorkerId>,
    /// New workers that became ready, with their boot time in ms.
    pub ready: Vec<(WorkerId, u64)>,
    /// `segue reload --wait` callers, answered when the reload is over.
    pub waiters: Vec<oneshot::Sender<Reply>>,
}

impl ReloadRun {
    /// Whether the respawn strategy's canary has proven the new generation.
    pub fn canary_passed(&self) -> bool {
        !self.ready.is_empty()
    }

    /// All slots have a ready new worker.
    pub fn complete(&self) -> bool {
        self.todo.is_empty() && self.booting.is_empty()
    }

    /// The record of this run, promoted (`failure` is `None`) or rolled back.
    pub fn report(&self, failure: Option<(String, Option<String>)>) -> ReloadReport {
        let ok = failure.is_none();
        let (reason, traceback) = failure.unzip();
        ReloadReport {
            reload: self.id,
            from: self.from,
            generation: self.target,
            strategy: self.strategy,
            ok,
            took_ms: self.started.elapsed().as_millis() as u64,
            boot_ms: self.ready.iter().map(|(_, ms)| *ms).collect(),
            reason,
            traceback: traceback.flatten(),
        }
    }
}
