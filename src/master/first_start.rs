//! The first start: until the server has been ready once, a worker of the first generation
//! that cannot boot (it reports `BootFailed`, exits or is killed before `Ready`, misses
//! `--boot-timeout`, or cannot even be started) ends the master with [`EXIT_BOOT_FAILED`]
//! instead of being retried with backoff. Nothing was ever promised to clients or to systemd
//! (`READY=1` is not sent yet), so retrying a broken deploy forever would only hide the error.
//!
//! After the first ready, nothing here applies: crashes respawn with backoff and a reload that
//! does not boot rolls back. An upgraded image starts ready (its workers serve), so an upgrade
//! is never a first start.

use super::effect::Effect;
use super::supervisor::{Phase, Supervisor};
use super::worker::{Worker, WorkerState};
use crate::protocol::DrainReason;

/// The master's exit status when the app did not boot at first start: gunicorn's "Worker failed
/// to boot", and the status a worker itself exits with after `BootFailed`.
pub const EXIT_BOOT_FAILED: i32 = 3;

impl Supervisor {
    /// Whether `worker` failing now fails the first start: the server has never been ready, it
    /// is running, and the worker belongs to the serving generation (a reload's new workers
    /// roll their reload back instead) and never reported ready. A first-generation worker that
    /// was ready and then crashed proved that the app boots: it is respawned as after the first
    /// start, and only its replacement's boot decides again.
    pub(super) fn fails_first_start(&self, worker: &Worker) -> bool {
        !self.announced_ready
            && self.phase == Phase::Running
            && worker.generation == self.serving
            && worker.state == WorkerState::Starting
    }

    /// The app did not boot at first start: every worker stops (those still importing are
    /// killed; one already ready drains the few requests it may have taken) and the master exits
    /// with [`EXIT_BOOT_FAILED`] once they are reaped. The first failure decides; the others'
    /// are not awaited.
    pub(super) fn fail_first_start(&mut self, reason: &str) {
        tracing::error!(
            generation = self.serving,
            "{reason}; segue exits: the app did not boot at first start (on reload a failing app rolls back instead)"
        );
        self.fail_waiters();
        self.exit_status = EXIT_BOOT_FAILED;
        self.phase = Phase::Stopping { graceful: true };
        self.reload = None;
        let first_line = reason.lines().next().unwrap_or_default();
        self.emit(Effect::Notify(format!(
            "STOPPING=1\nSTATUS=segue exits: the app did not boot: {first_line}"
        )));
        for id in self.table.ids(|_| true) {
            self.drain(id, DrainReason::Shutdown);
        }
        self.stop_side_processes();
    }
}
