//! Keeping every slot filled: a worker that dies is replaced, at once after an isolated crash
//! and with growing backoff while its slot keeps dying young; a new generation's worker that
//! dies rolls its reload back instead, and one that does not boot at first start ends the master
//! ([`super::first_start`]).

use super::effect::{Effect, Timer};
use super::reaper::ExitKind;
use super::supervisor::{Phase, Supervisor};
use super::table::{CRASH_WINDOW, backoff};
use super::worker::{Worker, WorkerId, WorkerState};
use crate::protocol::EXIT_NO_WORKER_MODULE;

impl Supervisor {
    /// The reason for the bootstrap's "cannot import segue" exit, naming the interpreter.
    fn no_worker_module(&self, worker: &Worker, kind: ExitKind) -> Option<String> {
        if worker.state != WorkerState::Starting || kind != ExitKind::Code(EXIT_NO_WORKER_MODULE) {
            return None;
        }
        let python = self
            .generations
            .get(&worker.generation)
            .and_then(|c| c.python.as_ref())
            .map_or_else(|| "python".to_string(), |p| p.display().to_string());
        Some(format!(
            "{python} cannot import segue's worker module: install segue {} in that environment \
             ({python} -m pip install segue=={}), or point --virtualenv at one that has it",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_VERSION")
        ))
    }

    pub(super) fn on_spawn_failed(&mut self, id: WorkerId, error: String) {
        let Some(w) = self.table.remove(id) else {
            return;
        };
        tracing::error!(worker = %id, generation = w.generation, "{error}");
        if self
            .reload
            .as_ref()
            .is_some_and(|r| r.target == w.generation)
        {
            self.abort_reload(format!("cannot start a worker: {error}"), None);
            return;
        }
        if self.fails_first_start(&w) {
            self.fail_first_start(&format!("cannot start a worker: {error}"));
            return;
        }
        self.replacement_failed(&w);
        if self.phase != Phase::Running || w.generation != self.serving {
            return;
        }
        if let Some(slot) = self.table.slot_mut(w.slot) {
            slot.failures += 1;
            slot.last_failure = Some(error);
            self.schedule_respawn(w.slot);
        }
    }

    pub(super) fn on_exit(&mut self, id: WorkerId, kind: ExitKind) {
        let Some(worker) = self.table.remove(id) else {
            return;
        };
        let lifetime = worker.spawned_at.elapsed();
        self.meters.totals.add_counters(&worker.stats);
        let asked = matches!(
            worker.state,
            WorkerState::Draining { .. } | WorkerState::Discarded
        ) || matches!(self.phase, Phase::Stopping { .. });
        if !asked {
            self.meters.crashes += 1;
        }
        let (generation, pid) = (worker.generation, worker.pid);
        let why = worker
            .boot_failure
            .as_ref()
            .map(|f| f.error.clone())
            .or_else(|| self.no_worker_module(&worker, kind));
        match worker.state {
            WorkerState::Draining { since } => {
                tracing::info!(worker = %id, generation, pid, drain_ms = since.elapsed().as_millis() as u64, "worker exited after draining ({kind})");
            }
            WorkerState::Discarded => {
                tracing::info!(worker = %id, generation, pid, "worker of the rolled-back generation stopped ({kind})");
            }
            _ if matches!(self.phase, Phase::Stopping { .. }) => {
                tracing::info!(worker = %id, generation, pid, "worker stopped ({kind})");
            }
            WorkerState::Starting => {
                let why = why.as_deref().unwrap_or("it exited before reporting ready");
                tracing::error!(worker = %id, generation, pid, "worker died while booting ({kind}): {why}");
            }
            WorkerState::Ready => {
                tracing::error!(worker = %id, generation, pid, uptime_ms = lifetime.as_millis() as u64, "worker died unexpectedly ({kind})");
            }
        }
        if matches!(
            worker.state,
            WorkerState::Draining { .. } | WorkerState::Discarded
        ) {
            self.forget_idle_generations();
            self.answer_promoted_waiters();
            return;
        }
        if self.fails_first_start(&worker) {
            let reason =
                why.unwrap_or_else(|| format!("a worker exited before reporting ready ({kind})"));
            self.fail_first_start(&reason);
            return;
        }
        if self.phase != Phase::Running {
            return;
        }
        if self.reload.as_ref().is_some_and(|r| r.target == generation) {
            let reason = match (&worker.state, why) {
                (_, Some(why)) => why,
                (WorkerState::Starting, None) => {
                    format!("a new worker exited while booting ({kind})")
                }
                _ => format!("a new worker died before the generation was promoted ({kind})"),
            };
            let traceback = worker.boot_failure.and_then(|f| f.traceback);
            self.abort_reload(reason, traceback);
            return;
        }
        self.replacement_failed(&worker);
        if generation != self.serving {
            return; // an old generation's worker: its replacement is under way
        }
        let Some(slot) = self.table.slot_mut(worker.slot) else {
            return; // its slot was scaled away
        };
        if lifetime < CRASH_WINDOW {
            slot.failures += 1;
            slot.last_failure =
                Some(why.unwrap_or_else(|| {
                    format!("died after {:.1}s ({kind})", lifetime.as_secs_f64())
                }));
        } else {
            slot.failures = 0;
            slot.last_failure = None;
        }
        self.schedule_respawn(worker.slot);
    }

    /// Respawns a slot at once after an isolated crash, and with exponential backoff while it
    /// keeps dying young, so a broken app is retried forever without spinning.
    pub(super) fn schedule_respawn(&mut self, slot: usize) {
        let filled = self.table.slot_filled(slot, self.serving);
        let Some(s) = self.table.slot_mut(slot) else {
            return;
        };
        if s.respawn.is_some() || filled {
            return;
        }
        let failures = s.failures;
        let delay = backoff(failures);
        if delay.is_zero() {
            self.spawn(slot, self.serving);
            return;
        }
        tracing::warn!(
            slot,
            failures,
            "worker keeps dying young: respawning in {:.1}s",
            delay.as_secs_f64()
        );
        let token = self.table.next_token();
        if let Some(s) = self.table.slot_mut(slot) {
            s.respawn = Some(token);
        }
        self.emit(Effect::After(delay, Timer::Respawn { slot, token }));
    }
}
