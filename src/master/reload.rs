//! A reload in progress and the record of finished ones.
//!
//! The run only holds bookkeeping; the supervisor performs every spawn, drain and kill, so worker
//! state changes stay in one place. A run is `Spawning` until every slot has a ready worker of
//! the new generation (then `Promoted`), or until any new worker fails (then `RolledBack`).

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::generation::GenerationId;
use super::worker::WorkerId;
use crate::config::ReloadStrategy;

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
}

/// How a reload ended.
#[derive(Debug, Clone)]
pub enum ReloadResult {
    /// The new generation serves; the old one drains.
    Promoted {
        /// Boot time in ms of each new worker.
        boot_ms: Vec<u64>,
    },
    /// A new worker failed; the old generation keeps (or went back to) serving.
    RolledBack {
        /// What failed, with the fix.
        reason: String,
        /// The Python traceback, if any.
        traceback: Option<String>,
    },
}

/// A finished reload, kept for the status command.
#[derive(Debug, Clone)]
pub struct ReloadOutcome {
    /// Sequence number.
    pub id: u64,
    /// Replaced generation.
    pub from: GenerationId,
    /// Started generation.
    pub target: GenerationId,
    /// Strategy used.
    pub strategy: ReloadStrategy,
    /// Time from start to promotion or rollback.
    pub took: Duration,
    /// Result.
    pub result: ReloadResult,
}
