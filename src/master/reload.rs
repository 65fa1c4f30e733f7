//! A reload: begin, advance, a new worker ready, failure, promote, abort, the queue behind a
//! running reload, and the callers waiting for the result.
//!
//! A run is spawning until every slot has a ready worker of the new generation (then it is
//! promoted: the old generation drains), or until any new worker fails (then it is rolled back:
//! the new generation is killed and the serving one refills its slots). Chain starts up to
//! `--reload-surge` new workers at once and drains each old worker as its successor is ready;
//! respawn stops one old worker, boots its successor as a canary, then does the rest at once.

use std::collections::{HashSet, VecDeque};

use tokio::time::Instant;

use super::command::{Outcome, ReloadOutcome, Responder};
use super::effect::Effect;
use super::generation::{self, GenerationId};
use super::supervisor::{Phase, Supervisor};
use super::worker::{WorkerId, WorkerState};
use crate::config::ReloadStrategy;
use crate::control::ReloadReport;
use crate::protocol::DrainReason;
use crate::systemd::notify::monotonic_usec;

/// Finished reloads kept for status.
pub const HISTORY: usize = 20;

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
    pub waiters: Vec<Responder>,
    /// Settings the new configuration changed that this reload could not apply.
    pub notes: Vec<String>,
}

/// A reload asked for while another runs. Requests coalesce: the last strategy wins and every
/// waiter gets the one run's result.
#[derive(Debug)]
pub struct QueuedReload {
    /// The strategy to start it with.
    pub strategy: ReloadStrategy,
    /// Its `--wait` callers.
    pub waiters: Vec<Responder>,
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
            notes: self.notes.clone(),
        }
    }
}

impl Supervisor {
    /// SIGHUP and friends: start a reload with `strategy`, or queue it behind the one running.
    /// With `wait`, the responder is answered when the reload is over; without, at once.
    pub(super) fn reload(
        &mut self,
        strategy: ReloadStrategy,
        wait: bool,
        responder: Option<Responder>,
    ) {
        if self.phase != Phase::Running {
            tracing::warn!("reload refused: the server is stopping");
            self.answer(responder, Outcome::Stopped);
            return;
        }
        let (waiter, now) = if wait {
            (responder, None)
        } else {
            (None, responder)
        };
        if self.reload.is_some() || self.reading.is_some() {
            // While the configuration is read, the reload about to start is the next number.
            let behind = self.reload.as_ref().map_or(self.next_reload, |run| run.id);
            tracing::info!(
                reload = behind,
                "reload {behind} is running: this reload is queued (further requests coalesce into it)"
            );
            let queued = self.queued.get_or_insert(QueuedReload {
                strategy,
                waiters: Vec::new(),
            });
            queued.strategy = strategy;
            queued.waiters.extend(waiter);
            self.answer(now, Outcome::Reload(ReloadOutcome::Queued { behind }));
            return;
        }
        self.start_reload(strategy, waiter.into_iter().collect(), now);
    }

    /// A reload that cannot begin (its configuration or paths do not resolve): recorded as
    /// failed, its waiters answered; the serving generation is untouched.
    pub(super) fn refuse_reload(
        &mut self,
        strategy: ReloadStrategy,
        waiters: Vec<Responder>,
        reason: String,
    ) -> ReloadOutcome {
        let id = self.next_reload;
        self.next_reload += 1;
        tracing::error!(
            reload = id,
            "reload {id} refused, generation {} keeps serving: {reason}",
            self.serving
        );
        let report = ReloadReport {
            reload: id,
            from: self.serving,
            generation: self.serving,
            strategy,
            ok: false,
            took_ms: 0,
            boot_ms: vec![],
            reason: Some(reason),
            traceback: None,
            notes: Vec::new(),
        };
        for w in waiters {
            self.emit(Effect::Reply(
                w,
                Outcome::Reload(ReloadOutcome::Finished(report.clone())),
            ));
        }
        self.record(report.clone());
        ReloadOutcome::Finished(report)
    }

    /// Starts the reload's generation from `self.base`.
    pub(super) fn begin_reload(
        &mut self,
        strategy: ReloadStrategy,
        waiters: Vec<Responder>,
        notes: Vec<String>,
    ) -> ReloadOutcome {
        let config = match generation::snapshot(&self.base) {
            Ok(c) => c,
            Err(e) => return self.refuse_reload(strategy, waiters, e.to_string()),
        };
        self.wake_for_reload();
        let id = self.next_reload;
        self.next_reload += 1;
        let target = self.new_generation(config);
        let surge = self.surge();
        tracing::info!(
            reload = id,
            from = self.serving,
            generation = target,
            ?strategy,
            surge,
            "reload {id}: starting generation {target}"
        );
        self.reload = Some(ReloadRun {
            id,
            from: self.serving,
            target,
            strategy,
            started: Instant::now(),
            todo: (0..self.table.wanted()).collect(),
            booting: HashSet::new(),
            ready: Vec::new(),
            waiters,
            notes,
        });
        let status = self.status_line();
        self.emit(Effect::Notify(format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={status}",
            monotonic_usec()
        )));
        self.advance_reload();
        ReloadOutcome::Started {
            reload: id,
            generation: target,
            strategy,
        }
    }

    /// Starts the next new workers the strategy allows.
    fn advance_reload(&mut self) {
        let Some(run) = &self.reload else { return };
        let (strategy, target) = (run.strategy, run.target);
        let batch: Vec<usize> = match strategy {
            ReloadStrategy::Chain => {
                let room = self.surge().saturating_sub(run.booting.len());
                run.todo.iter().take(room).copied().collect()
            }
            // One canary; once it is ready, every remaining slot at once.
            ReloadStrategy::Respawn if run.booting.is_empty() => {
                let n = if run.canary_passed() {
                    run.todo.len()
                } else {
                    1
                };
                run.todo.iter().take(n).copied().collect()
            }
            ReloadStrategy::Respawn => Vec::new(),
        };
        for slot in batch {
            if let Some(run) = self.reload.as_mut() {
                run.todo.retain(|s| *s != slot);
            }
            if strategy == ReloadStrategy::Respawn {
                // Kill-then-spawn: the old worker leaves first; connections wait in the backlog.
                self.drain_slot(slot, target);
            }
            if let Some(id) = self.spawn(slot, target)
                && let Some(run) = self.reload.as_mut()
            {
                run.booting.insert(id);
            }
        }
    }

    /// New workers a chain reload boots at once: `--reload-surge`, or every slot.
    fn surge(&self) -> usize {
        let wanted = self.table.wanted();
        self.base
            .reload_surge
            .unwrap_or(wanted)
            .clamp(1, wanted.max(1))
    }

    /// Drains the workers of `slot` that belong to another generation than `keep`.
    fn drain_slot(&mut self, slot: usize, keep: GenerationId) {
        for id in self.table.ids(|w| w.slot == slot && w.generation != keep) {
            self.drain(id, DrainReason::Reload);
        }
    }

    pub(super) fn on_reload_worker_ready(&mut self, id: WorkerId, slot: usize, boot_ms: u64) {
        let Some(run) = self.reload.as_mut() else {
            return;
        };
        run.booting.remove(&id);
        run.ready.push((id, boot_ms));
        let target = run.target;
        if run.strategy == ReloadStrategy::Chain {
            self.drain_slot(slot, target);
        }
        self.advance_reload();
        if self.reload.as_ref().is_some_and(ReloadRun::complete) {
            self.promote();
        }
    }

    fn promote(&mut self) {
        let Some(mut run) = self.reload.take() else {
            return;
        };
        self.serving = run.target;
        self.announced_ready = true;
        if let Some(config) = self.generations.get(&run.target).cloned() {
            self.daemons.reload(&config.daemons, &mut self.out);
            self.crons.reconfigure(&config.crons, config.cron_harakiri);
        }
        for id in self.table.ids(|w| w.generation != run.target) {
            self.drain(id, DrainReason::Reload);
        }
        for slot in self.table.slots_mut() {
            slot.failures = 0;
        }
        let report = run.report(None);
        tracing::info!(
            reload = run.id,
            generation = run.target,
            took_ms = report.took_ms,
            boot_ms = ?report.boot_ms,
            "reload {}: generation {} is serving; generation {} drains",
            run.id,
            run.target,
            run.from
        );
        for w in std::mem::take(&mut run.waiters) {
            self.promoted_waiters.push((report.clone(), w));
        }
        self.record(report);
        let status = self.status_line();
        self.emit(Effect::Notify(format!(
            "READY=1\nSTATUS={status}; reload promoted"
        )));
        self.forget_idle_generations();
        self.answer_promoted_waiters();
        self.start_queued_reload();
    }

    /// `reload --wait` returns once the old generation is gone, not just promoted.
    pub(super) fn answer_promoted_waiters(&mut self) {
        let serving = self.serving;
        let old_left = self
            .table
            .workers()
            .any(|w| w.generation != serving && w.state != WorkerState::Discarded);
        if old_left || self.promoted_waiters.is_empty() {
            return;
        }
        for (report, w) in std::mem::take(&mut self.promoted_waiters) {
            self.emit(Effect::Reply(
                w,
                Outcome::Reload(ReloadOutcome::Finished(report)),
            ));
        }
    }

    /// Rolls back: the new generation is killed and every slot is refilled from the serving
    /// generation, whose workers never stopped (chain) or are started again (respawn).
    pub(super) fn abort_reload(&mut self, reason: String, traceback: Option<String>) {
        let Some(mut run) = self.reload.take() else {
            return;
        };
        for id in self.table.ids(|w| w.generation == run.target) {
            if let Some(w) = self.table.get_mut(id) {
                w.state = WorkerState::Discarded;
                self.emit(Effect::Kill(id));
            }
        }
        match &traceback {
            Some(tb) => tracing::error!(
                reload = run.id,
                generation = run.target,
                "reload {} rolled back, generation {} keeps serving: {reason}\n{}",
                run.id,
                self.serving,
                tb.trim_end()
            ),
            None => tracing::error!(
                reload = run.id,
                generation = run.target,
                "reload {} rolled back, generation {} keeps serving: {reason}",
                run.id,
                self.serving
            ),
        }
        for slot in 0..self.table.wanted() {
            if !self.table.slot_filled(slot, self.serving) {
                self.spawn(slot, self.serving);
            }
        }
        let first_line = reason.lines().next().unwrap_or_default().to_string();
        let report = run.report(Some((reason, traceback)));
        for w in std::mem::take(&mut run.waiters) {
            self.emit(Effect::Reply(
                w,
                Outcome::Reload(ReloadOutcome::Finished(report.clone())),
            ));
        }
        self.record(report);
        let status = self.status_line();
        // A reload asked for during the first start rolls back to a generation that has not been
        // ready yet: systemd must not hear READY=1 before it is.
        let ready = if self.announced_ready {
            "READY=1\n"
        } else {
            ""
        };
        self.emit(Effect::Notify(format!(
            "{ready}STATUS={status}; reload rolled back: {first_line}"
        )));
        self.forget_idle_generations();
        self.start_queued_reload();
    }

    pub(super) fn start_queued_reload(&mut self) {
        if let Some(q) = self.queued.take() {
            self.start_reload(q.strategy, q.waiters, None);
        }
    }

    pub(super) fn record(&mut self, report: ReloadReport) {
        if report.ok {
            self.meters.reloads_promoted += 1;
        } else {
            self.meters.reloads_rolled_back += 1;
        }
        self.meters.reload_seconds.observe(
            &crate::metrics::histogram::SLOW_BUCKETS,
            report.took_ms * 1000,
        );
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(report);
    }
}
