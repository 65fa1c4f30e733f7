//! The supervisor's side of an in-place upgrade: when one may start, the bookkeeping that
//! crosses the exec (workers, counters, history) and its adoption by the new image. The fds and
//! the exec itself are the executor's ([`super::executor`], [`super::upgrade`]).
//!
//! The sequence: `Upgrade` -> the new binary's check runs off the loop -> `PreflightDone` ->
//! the callers are answered -> 100 ms later the `Exec` timer -> [`Effect::Exec`]. The old
//! master keeps running if any step fails; an exec that fails comes back as `ExecFailed`.

use std::path::PathBuf;

use tokio::time::Instant;

use super::command::{Outcome, Responder};
use super::effect::{Effect, Timer};
use super::supervisor::{PendingUpgrade, Phase, Supervisor};
use super::upgrade::{HANDOVER_VERSION, HandedWorker, Handover, UpgradeError};
use super::worker::{Worker, WorkerId, WorkerState};
use crate::config::ReloadStrategy;

impl Supervisor {
    /// An upgrade hands over a settled state only: no reload running, no worker booting.
    pub(super) fn upgrade_blocked(&self) -> bool {
        self.phase != Phase::Running || self.reload.is_some() || self.table.any_starting()
    }

    /// SIGUSR2, `segue upgrade`: checks the new binary off the loop; the answer comes when the
    /// check is done.
    pub(super) fn upgrade(&mut self, binary: Option<PathBuf>, responder: Option<Responder>) {
        let binary = binary.unwrap_or_else(|| self.exe.clone());
        match &mut self.upgrade {
            // The same binary is being checked: wait for the same verdict.
            Some(PendingUpgrade::Checking { binary: b, waiters }) if *b == binary => {
                waiters.extend(responder);
                return;
            }
            Some(_) => {
                self.refuse_upgrade(responder, UpgradeError::Busy);
                return;
            }
            None => {}
        }
        if self.upgrade_blocked() {
            self.refuse_upgrade(responder, UpgradeError::Busy);
            return;
        }
        tracing::info!("upgrade: checking {}", binary.display());
        self.upgrade = Some(PendingUpgrade::Checking {
            binary: binary.clone(),
            waiters: responder.into_iter().collect(),
        });
        self.emit(Effect::Preflight(binary));
    }

    fn refuse_upgrade(&mut self, responder: Option<Responder>, e: UpgradeError) {
        tracing::warn!("upgrade refused: {e}");
        self.answer(responder, Outcome::Upgrade(Err(e)));
    }

    /// The exec timer: hand over, unless the server changed meanwhile.
    pub(super) fn exec_upgrade(&mut self, binary: PathBuf) {
        if !matches!(self.upgrade, Some(PendingUpgrade::Executing)) {
            return;
        }
        if self.upgrade_blocked() {
            self.upgrade = None;
            let message =
                "upgrade abandoned: workers started or a reload began meanwhile; retry".to_string();
            tracing::warn!("{message}");
            self.upgrade_error = Some(message);
            return;
        }
        self.emit(Effect::Notify(
            "RELOADING=1\nSTATUS=upgrading the master binary in place".into(),
        ));
        self.emit(Effect::Exec(binary));
    }

    /// The exec failed; nothing changed and this image carries on.
    pub(super) fn on_exec_failed(&mut self, err: UpgradeError) {
        self.upgrade = None;
        tracing::error!("upgrade failed, this master keeps running: {err}");
        let status = self.status_line();
        self.emit(Effect::Notify(format!(
            "READY=1\nSTATUS={status}; upgrade failed"
        )));
        self.upgrade_error = Some(err.to_string());
    }

    /// The bookkeeping the new image needs. Listener fds, the control socket and each worker's
    /// channel fd are the executor's to fill in (they are left empty here).
    pub fn handover(&self) -> Handover {
        Handover {
            version: HANDOVER_VERSION,
            listeners: Vec::new(),
            control_fd: None,
            workers: self
                .table
                .workers()
                .filter(|w| matches!(w.state, WorkerState::Ready | WorkerState::Draining { .. }))
                .filter_map(|w| {
                    Some(HandedWorker {
                        id: w.id.0,
                        pid: w.pid?,
                        generation: w.generation,
                        slot: w.slot,
                        ready: w.state == WorkerState::Ready,
                        control_fd: -1,
                    })
                })
                .collect(),
            serving: self.serving,
            next_id: self.table.peek_next_id(),
            next_generation: self.next_generation,
            next_reload: self.next_reload,
            history: self.history.iter().cloned().collect(),
            upgrades: self.upgrades + 1,
            workers_wanted: Some(self.table.wanted()),
            daemons: self.daemons.handover(),
        }
    }

    /// In the new image: takes over the old master's workers (those whose channel the executor
    /// could adopt) and counters, then replaces the workers with the new binary's through a
    /// gated chain reload.
    pub fn adopt(
        &mut self,
        handover: &Handover,
        adopted: &[WorkerId],
    ) -> Result<Vec<Effect>, super::generation::ResolveError> {
        let config = super::generation::snapshot(&self.base)?;
        self.serving = handover.serving;
        self.generations.insert(self.serving, config);
        self.table.set_next_id(handover.next_id);
        self.next_generation = handover.next_generation;
        self.next_reload = handover.next_reload;
        self.history = handover.history.iter().cloned().collect();
        self.upgrades = handover.upgrades;
        if let Some(n) = handover.workers_wanted.filter(|&n| n > 0) {
            self.table.set_wanted(n);
        }
        self.announced_ready = true;
        self.daemons.adopt(&handover.daemons, &mut self.out);
        for w in handover
            .workers
            .iter()
            .filter(|w| adopted.contains(&WorkerId(w.id)))
        {
            let mut worker = Worker::starting(WorkerId(w.id), w.generation, w.slot);
            worker.pid = Some(w.pid);
            worker.state = if w.ready {
                WorkerState::Ready
            } else {
                WorkerState::Draining {
                    since: Instant::now(),
                }
            };
            self.table.insert(worker);
        }
        tracing::info!(
            upgrades = self.upgrades,
            workers = self.table.len(),
            generation = self.serving,
            "upgrade: new master binary running; replacing the workers"
        );
        self.reload(ReloadStrategy::Chain, false, None);
        Ok(self.take())
    }

    pub(super) fn on_preflight(&mut self, binary: PathBuf, result: Result<(), UpgradeError>) {
        let waiters = match self.upgrade.take() {
            Some(PendingUpgrade::Checking { binary: b, waiters }) if b == binary => waiters,
            other => {
                self.upgrade = other;
                return;
            }
        };
        let result = result.and_then(|()| {
            if self.upgrade_blocked() {
                Err(UpgradeError::Busy)
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => {
                tracing::info!(
                    "upgrade: re-executing {} in place (pid {})",
                    binary.display(),
                    std::process::id()
                );
                self.upgrade = Some(PendingUpgrade::Executing);
                for w in waiters {
                    self.emit(Effect::Reply(w, Outcome::Upgrade(Ok(binary.clone()))));
                }
                // Exec a moment later, so the replies are on their way first.
                self.emit(Effect::After(
                    std::time::Duration::from_millis(100),
                    Timer::Exec(binary),
                ));
            }
            Err(e) => {
                tracing::error!("upgrade refused, this master keeps running: {e}");
                self.upgrade_error = Some(e.to_string());
                for w in waiters {
                    self.emit(Effect::Reply(w, Outcome::Upgrade(Err(e.clone()))));
                }
            }
        }
    }
}
