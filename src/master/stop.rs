//! Stopping: SIGTERM drains every worker within `--graceful-timeout`, SIGINT/SIGQUIT kill them
//! at once; either way nothing is respawned, every waiting caller learns why, and the master
//! exits once the reaper has collected the last worker and daemon ([`super::daemons`]).

use super::command::Outcome;
use super::effect::{Effect, Timer};
use super::supervisor::{PendingUpgrade, Phase, Supervisor};
use crate::protocol::DrainReason;

impl Supervisor {
    /// SIGTERM: drain every worker, kill what is left after the graceful timeout.
    pub(super) fn stop_graceful(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        self.fail_waiters();
        tracing::info!(
            workers = self.table.len(),
            "stopping gracefully (timeout {:?})",
            self.base.graceful_timeout
        );
        self.phase = Phase::Stopping { graceful: true };
        self.emit(Effect::Notify(
            "STOPPING=1\nSTATUS=stopping gracefully".into(),
        ));
        self.reload = None;
        for id in self.table.ids(|_| true) {
            self.drain(id, DrainReason::Shutdown);
        }
        self.stop_side_processes();
    }

    /// A graceful stop's share for the attached daemons and cron runs: SIGTERM now, SIGKILL
    /// to what is left after the graceful timeout. The master exits only once they are reaped.
    pub(super) fn stop_side_processes(&mut self) {
        if !self.daemons.is_empty() || !self.crons.is_empty() {
            self.daemons.stop(true, &mut self.out);
            self.crons.stop(true, &mut self.out);
            self.emit(Effect::After(
                self.base.graceful_timeout,
                Timer::KillSideProcesses,
            ));
        }
    }

    /// SIGINT/SIGQUIT: kill every worker now.
    pub(super) fn stop_quick(&mut self) {
        self.fail_waiters();
        tracing::info!(workers = self.table.len(), "stopping now");
        self.phase = Phase::Stopping { graceful: false };
        self.emit(Effect::Notify("STOPPING=1\nSTATUS=stopping now".into()));
        self.reload = None;
        for id in self.table.ids(|_| true) {
            self.emit(Effect::Kill(id));
        }
        self.daemons.stop(false, &mut self.out);
        self.crons.stop(false, &mut self.out);
    }

    /// Everyone waiting for a reload or an upgrade learns that the server is stopping.
    pub(super) fn fail_waiters(&mut self) {
        let run = self
            .reload
            .as_mut()
            .map(|r| std::mem::take(&mut r.waiters))
            .unwrap_or_default();
        let queued = self.queued.take().map(|q| q.waiters).unwrap_or_default();
        let reading = self
            .reading
            .take()
            .map(|r| r.waiters.into_iter().chain(r.now).collect::<Vec<_>>())
            .unwrap_or_default();
        let promoted = std::mem::take(&mut self.promoted_waiters)
            .into_iter()
            .map(|(_, w)| w);
        let upgrading = match self.upgrade.take() {
            Some(PendingUpgrade::Checking { waiters, .. }) => waiters,
            _ => Vec::new(),
        };
        for w in run
            .into_iter()
            .chain(queued)
            .chain(reading)
            .chain(promoted)
            .chain(upgrading)
        {
            self.emit(Effect::Reply(w, Outcome::Stopped));
        }
    }
}
