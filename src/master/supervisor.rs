//! The supervisor: the master's decisions. It owns the worker table, the generations and the
//! reload in progress, takes one [`Event`] at a time and returns the [`Effect`]s that carry out
//! what it decided. It performs no I/O and never waits, so it can neither block the master's loop
//! nor be tested only by starting processes.
//!
//! This file routes events; the rules live beside it by concept: [`super::reload`] (a reload
//! run), [`super::recycle`] (replacing workers past their limits), [`super::handover`] (in-place
//! upgrades), [`super::respawn`] (refilling slots, crash-loop backoff), [`super::first_start`]
//! (an app that does not boot at first start ends the master), [`super::stop`],
//! [`super::status`] (status and systemd text), [`super::table`] (workers and slots).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::time::Instant;

use super::cheap::Cheap;
use super::cheaper::Scaler;
use super::command::{Command, Outcome, Responder, ScaleError};
use super::cron::Crons;
use super::daemons::Daemons;
use super::effect::{Effect, Event, Timer};
use super::generation::{self, GenerationId};
use super::recycle::jitter;
use super::reload::{QueuedReload, ReloadRun};
use super::table::Table;
use super::worker::{Worker, WorkerId, WorkerState};
use crate::config::Config;
use crate::control::ReloadReport;
use crate::protocol::{DrainReason, ToMaster};

/// Whether the server runs or is on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Serving; dead workers are replaced.
    Running,
    /// Stopping; nothing is respawned, the master exits once every worker is reaped.
    Stopping {
        /// Quick stops kill at once; graceful ones drain first.
        graceful: bool,
    },
}

/// An upgrade between its request and its exec.
#[derive(Debug)]
pub(super) enum PendingUpgrade {
    /// The new binary's check runs; its callers wait for the verdict.
    Checking {
        /// The binary being checked.
        binary: PathBuf,
        /// Who asked.
        waiters: Vec<Responder>,
    },
    /// Checked; the exec timer runs.
    Executing,
}

/// Owns every worker and decides what to start and stop.
pub struct Supervisor {
    /// The configuration as given; each generation resolves its paths from it anew.
    pub(super) base: Arc<Config>,
    /// Workers and slots; the live worker count is its slot count, not `base.workers`.
    pub(super) table: Table,
    /// Configuration of each generation that still has (or may get) workers.
    pub(super) generations: HashMap<GenerationId, Arc<Config>>,
    /// The generation crash replacements join: the one the server stands behind.
    pub(super) serving: GenerationId,
    /// Next generation id (never reused).
    pub(super) next_generation: GenerationId,
    /// Whether "ready" has been announced for the first generation. Until then a worker that
    /// does not boot ends the master ([`super::first_start`]).
    pub(super) announced_ready: bool,
    /// Running or stopping.
    pub(super) phase: Phase,
    /// The status the master exits with once stopped: 0, or [`super::EXIT_BOOT_FAILED`] after
    /// a failed first start (set by [`super::first_start`]).
    pub(super) exit_status: i32,
    /// Whether [`Effect::Exit`] has been emitted (it is, once).
    exit_sent: bool,
    /// The reload being carried out.
    pub(super) reload: Option<ReloadRun>,
    /// A reload asked for while one runs; later requests coalesce into it.
    pub(super) queued: Option<QueuedReload>,
    /// A reload whose configuration is being read again (it starts when the read is back).
    pub(super) reading: Option<super::reconfigure::Reading>,
    /// `--wait` callers of promoted reloads, answered once the old workers have exited.
    pub(super) promoted_waiters: Vec<(ReloadReport, Responder)>,
    /// Next reload sequence number.
    pub(super) next_reload: u64,
    /// Finished reloads, newest last.
    pub(super) history: VecDeque<ReloadReport>,
    /// In-place upgrades so far (carried across them).
    pub(super) upgrades: u64,
    /// Why the last upgrade attempt failed, for status.
    pub(super) upgrade_error: Option<String>,
    /// An upgrade under way.
    pub(super) upgrade: Option<PendingUpgrade>,
    /// The listeners as bound, for status.
    pub(super) listeners: Vec<String>,
    /// This binary, upgraded to when `segue upgrade` names none.
    pub(super) exe: PathBuf,
    /// Attached daemons (`--attach-daemon` and the smart kinds).
    pub(super) daemons: Daemons,
    /// Cron jobs (`--cron`, `--unique-cron`).
    pub(super) crons: Crons,
    /// Cheap and idle modes: whether workers run at all.
    pub(super) cheap: Cheap,
    /// `--cheaper`: the adaptive worker count.
    pub(super) scaler: Option<Scaler>,
    /// Requests waiting at the last load sample (for status).
    pub(super) accept_queue: u32,
    /// Effects decided while handling the current event.
    pub(super) out: Vec<Effect>,
    /// What `--metrics` counts beyond the live workers' own counters.
    pub(super) meters: crate::control::messages::MetricsReport,
}

impl Supervisor {
    /// A supervisor for `config`; nothing is started until [`Supervisor::start`].
    pub fn new(config: Arc<Config>, exe: PathBuf, listeners: Vec<String>) -> Self {
        Supervisor {
            table: Table::new(config.scaling.awake_workers(config.workers)),
            cheap: Cheap::new(config.scaling.idle, config.scaling.die_on_idle),
            scaler: config.scaling.cheaper.clone().map(Scaler::new),
            accept_queue: 0,
            daemons: Daemons::new(&config.daemons),
            crons: Crons::new(&config.crons, config.cron_harakiri),
            base: config,
            generations: HashMap::new(),
            serving: 0,
            next_generation: 1,
            announced_ready: false,
            phase: Phase::Running,
            exit_status: 0,
            exit_sent: false,
            reload: None,
            queued: None,
            reading: None,
            promoted_waiters: Vec::new(),
            next_reload: 1,
            history: VecDeque::new(),
            meters: Default::default(),
            upgrades: 0,
            upgrade_error: None,
            upgrade: None,
            listeners,
            exe,
            out: Vec::new(),
        }
    }

    /// Starts the first generation.
    pub fn start(&mut self) -> Result<Vec<Effect>, generation::ResolveError> {
        let config = generation::snapshot(&self.base)?;
        // Daemons first: workers may count on them from their first request.
        self.daemons.start(&mut self.out);
        self.serving = self.new_generation(config);
        for warning in &self.base.scaling.warnings {
            tracing::warn!("{warning}");
        }
        if self.start_asleep() {
            return Ok(self.take());
        }
        for slot in 0..self.table.wanted() {
            self.spawn(slot, self.serving);
        }
        Ok(self.take())
    }

    /// True once a stop has finished: every worker and daemon child is reaped.
    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Stopping { .. })
            && self.table.is_empty()
            && !self.daemons.any_alive()
            && !self.crons.any_running()
    }

    /// Handles one event and returns what to do about it, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Command(command, responder) => self.on_command(command, responder),
            Event::Spawned { id, pid } => {
                if let Some(w) = self.table.get_mut(id) {
                    w.pid = Some(pid);
                    tracing::debug!(worker = %id, generation = w.generation, pid, "worker spawned");
                }
            }
            Event::SpawnFailed { id, error } => self.on_spawn_failed(id, error),
            // The executor's own; it never passes one on.
            Event::Zygote(_) => {}
            Event::FromWorker(id, msg) => self.on_message(id, msg),
            Event::ChannelClosed(id) => {
                if let Some(w) = self.table.get(id) {
                    tracing::debug!(worker = %id, generation = w.generation, "control channel closed");
                }
            }
            Event::Exited { id, kind } => self.on_exit(id, kind),
            Event::Timer(timer) => self.on_timer(timer),
            Event::Tick => {
                self.check_heartbeats();
                self.extend_start_timeout();
                self.daemons.tick(&mut self.out);
            }
            Event::Watchdog => self.watchdog(),
            Event::PreflightDone { binary, result } => self.on_preflight(binary, result),
            Event::ExecFailed(err) => self.on_exec_failed(err),
            Event::ConfigRead(result) => self.on_config_read(result),
            Event::DaemonStarted { id, pid } => self.daemons.started(id, pid, &mut self.out),
            Event::DaemonStartFailed { id, error } => {
                self.daemons.start_failed(id, &error, &mut self.out);
            }
            Event::OtherExited { pid, kind } => {
                if !self.daemons.reaped(pid, kind, &mut self.out) && !self.crons.reaped(pid, kind) {
                    tracing::debug!(pid, "reaped orphaned descendant: {kind}");
                }
            }
            Event::FilesSeen { id, mtimes } => self.daemons.files_seen(id, mtimes, &mut self.out),
            Event::Minute(now) => self.crons.minute(&now, &mut self.out),
            Event::CronStarted { id, pid } => self.crons.started(id, pid, &mut self.out),
            Event::CronStartFailed { id, error } => self.crons.start_failed(id, &error),
            Event::PidfileRead { id, alive } => self.daemons.pidfile_read(id, alive, &mut self.out),
            Event::Load {
                workers,
                accept_queue,
            } => {
                for (id, load) in &workers {
                    if let Some(w) = self.table.get_mut(*id) {
                        w.queued = load.waiting;
                    }
                }
                let judged = self.judge(&workers, accept_queue);
                self.accept_queue = judged.queued;
                self.adapt(judged);
                self.check_idle(judged.running);
            }
            Event::ConnectionWaiting => self.on_connection_waiting(),
        }
        if let Some(why) = self.daemons.take_control_exit()
            && self.phase == Phase::Running
        {
            tracing::error!("{why}: stopping the server (attach-daemon2 control)");
            self.stop_graceful();
        }
        if self.finished() && !self.exit_sent {
            self.exit_sent = true;
            self.emit(Effect::Exit(self.exit_status));
        }
        self.take()
    }

    /// The effects decided so far, in order.
    pub(super) fn take(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.out)
    }

    /// Records an effect to be carried out after this event.
    pub(super) fn emit(&mut self, effect: Effect) {
        self.out.push(effect);
    }

    pub(super) fn new_generation(&mut self, config: Arc<Config>) -> GenerationId {
        let id = self.next_generation;
        self.next_generation += 1;
        self.generations.insert(id, config);
        id
    }

    /// Asks for a new worker of `generation` in `slot`; it is in the table at once, as
    /// `Starting`, and its boot deadline runs from now.
    pub(super) fn spawn(&mut self, slot: usize, generation: GenerationId) -> Option<WorkerId> {
        let config = self.generations.get(&generation)?.clone();
        let id = self.table.next_id();
        let mut worker = Worker::starting(id, generation, slot);
        if let Some(s) = self.table.slot_mut(slot) {
            s.spawns += 1;
            worker.respawns = s.spawns - 1;
        }
        let recycle = config.recycle;
        worker.max_requests = recycle
            .max_requests
            .map(|n| n + jitter(recycle.max_requests_jitter, id.0));
        worker.retire_at = recycle.max_lifetime.map(|life| {
            let extra = jitter(recycle.max_lifetime_jitter.as_millis() as u64, id.0);
            worker.spawned_at + life + std::time::Duration::from_millis(extra)
        });
        let max_requests = worker.max_requests;
        self.table.insert(worker);
        self.emit(Effect::After(
            config.worker.boot_timeout,
            Timer::BootDeadline(id),
        ));
        self.emit(Effect::Spawn {
            id,
            generation,
            config,
            // Workers learn from this whether others serve beside them (`wsgi.multiprocess`):
            // the live count, which scaling changes, not the configured one.
            multiprocess: self.table.wanted() > 1,
            max_requests,
        });
        Some(id)
    }

    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::DaemonRestart { id, token } => {
                self.daemons.restart_due(id, token, &mut self.out)
            }
            Timer::KillSideProcesses => {
                self.daemons.kill_remaining(&mut self.out);
                self.crons.kill_remaining(&mut self.out);
            }
            Timer::CronHarakiri { pid } => self.crons.harakiri_due(pid, &mut self.out),
            Timer::Respawn { slot, token } => {
                let Some(s) = self.table.slot_mut(slot) else {
                    tracing::debug!(
                        slot,
                        "respawn timer for a slot that no longer exists: ignored"
                    );
                    return;
                };
                if s.respawn != Some(token) {
                    tracing::debug!(slot, "stale respawn timer: ignored");
                    return;
                }
                s.respawn = None;
                if self.phase == Phase::Running && !self.table.slot_filled(slot, self.serving) {
                    self.spawn(slot, self.serving);
                }
            }
            Timer::BootDeadline(id) => {
                let Some(w) = self.table.get_mut(id) else {
                    return;
                };
                if w.state != WorkerState::Starting {
                    return;
                }
                let secs = self
                    .generations
                    .get(&w.generation)
                    .map_or(0.0, |c| c.worker.boot_timeout.as_secs_f64());
                let error = format!(
                    "not ready within {secs}s (raise --boot-timeout if the app is slow to import)"
                );
                tracing::error!(worker = %id, generation = w.generation, "{error}");
                w.boot_failure = Some(crate::protocol::BootFailure {
                    error: error.clone(),
                    traceback: None,
                });
                self.emit(Effect::Kill(id));
                if let Some(w) = self.table.get(id)
                    && self.fails_first_start(w)
                {
                    self.fail_first_start(&error);
                }
            }
            Timer::DrainDeadline(id) => {
                let Some(w) = self.table.get(id) else {
                    return;
                };
                if let WorkerState::Draining { since } = w.state {
                    tracing::warn!(
                        worker = %id,
                        generation = w.generation,
                        "graceful timeout: still draining after {:.1}s, killed (its unfinished requests are lost; raise --graceful-timeout if they are legitimate)",
                        since.elapsed().as_secs_f64()
                    );
                    self.emit(Effect::Kill(id));
                }
            }
            Timer::KillStuck(id) => {
                if let Some(w) = self.table.get(id) {
                    tracing::warn!(worker = %id, generation = w.generation, "killing the stuck worker");
                    self.emit(Effect::Kill(id));
                }
            }
            Timer::Exec(binary) => self.exec_upgrade(binary),
        }
    }

    fn on_message(&mut self, id: WorkerId, msg: ToMaster) {
        let Some(worker) = self.table.get_mut(id) else {
            return;
        };
        let generation = worker.generation;
        match msg {
            ToMaster::Ready { boot_ms } => {
                if worker.state != WorkerState::Starting {
                    return;
                }
                worker.state = WorkerState::Ready;
                let slot = worker.slot;
                self.meters
                    .boot_seconds
                    .observe(&crate::metrics::histogram::SLOW_BUCKETS, boot_ms * 1000);
                tracing::info!(worker = %id, generation, pid = worker.pid, boot_ms, "worker ready");
                if matches!(self.phase, Phase::Stopping { graceful: true }) {
                    self.drain(id, DrainReason::Shutdown);
                } else if self.reload.as_ref().is_some_and(|r| r.target == generation) {
                    self.on_reload_worker_ready(id, slot, boot_ms);
                } else if generation == self.serving {
                    self.maybe_announce_ready();
                    self.finish_recycle(id);
                }
            }
            ToMaster::BootFailed(failure) => {
                match &failure.traceback {
                    Some(tb) => {
                        tracing::error!(worker = %id, generation, "worker failed to boot: {}\n{}", failure.error, tb.trim_end())
                    }
                    None => {
                        tracing::error!(worker = %id, generation, "worker failed to boot: {}", failure.error)
                    }
                }
                let error = failure.error.clone();
                worker.boot_failure = Some(failure);
                if let Some(w) = self.table.get(id)
                    && self.fails_first_start(w)
                {
                    self.fail_first_start(&error);
                }
            }
            ToMaster::Heartbeat(stats) => {
                worker.stats = stats;
                worker.last_heartbeat = Instant::now();
                self.check_recycle(id);
            }
            ToMaster::Stuck { request, age_ms } => {
                worker.harakiri_count += 1;
                self.meters.harakiri += 1;
                let reason = format!("harakiri: {request} ran {:.1}s", age_ms as f64 / 1000.0);
                tracing::error!(worker = %id, generation, "{reason}; replacing the worker, then killing it");
                self.start_replacement(id, reason, true);
            }
            ToMaster::Bye(stats) => {
                let served = stats.requests_finished;
                worker.stats = stats;
                tracing::debug!(worker = %id, generation, served, "worker finished draining");
            }
        }
    }

    /// Tells a worker to drain; each drain has its own `--graceful-timeout`, whatever caused
    /// it (stop, reload, scale-down), after which the worker is killed.
    pub(super) fn drain(&mut self, id: WorkerId, reason: DrainReason) {
        let Some(w) = self.table.get_mut(id) else {
            return;
        };
        match w.state {
            WorkerState::Ready => {
                w.state = WorkerState::Draining {
                    since: Instant::now(),
                };
                let timeout = self
                    .generations
                    .get(&w.generation)
                    .map_or(self.base.graceful_timeout, |c| c.graceful_timeout);
                self.emit(Effect::Drain(id, reason));
                self.emit(Effect::After(timeout, Timer::DrainDeadline(id)));
            }
            // Still importing: it has no requests and does not read its channel yet.
            WorkerState::Starting => {
                w.state = WorkerState::Draining {
                    since: Instant::now(),
                };
                self.emit(Effect::Kill(id));
            }
            WorkerState::Draining { .. } | WorkerState::Discarded => {}
        }
    }

    /// Forgets the configuration of generations that can get no more workers.
    pub(super) fn forget_idle_generations(&mut self) {
        let live = self.table.live_generations();
        let (serving, target) = (self.serving, self.reload.as_ref().map(|r| r.target));
        let mut gone = Vec::new();
        self.generations.retain(|g, _| {
            let keep = *g == serving || Some(*g) == target || live.contains(g);
            if !keep {
                gone.push(*g);
            }
            keep
        });
        for g in gone {
            self.emit(Effect::Retire(g));
        }
    }

    /// Applies one command; every source of commands ends here.
    fn on_command(&mut self, command: Command, responder: Option<Responder>) {
        match command {
            Command::Reload { strategy, wait } => {
                let strategy = strategy.unwrap_or(self.base.reload_strategy);
                self.reload(strategy, wait, responder);
            }
            Command::Status => {
                let report = self.status();
                self.answer(responder, Outcome::Status(Box::new(report)));
            }
            Command::Stop { graceful } => {
                if graceful {
                    self.stop_graceful();
                } else {
                    self.stop_quick();
                }
                self.answer(responder, Outcome::Stopping { graceful });
            }
            Command::Upgrade { binary } => self.upgrade(binary, responder),
            Command::Scale(delta) => {
                let result = self.scale(delta);
                if let Err(e) = &result {
                    tracing::warn!("cannot change the worker count: {e}");
                }
                self.answer(responder, Outcome::Scale(result));
            }
            // No caller waits: SIGUSR1 is its only source.
            Command::ReopenLogs => {
                tracing::info!("reopening the log files (SIGUSR1)");
                self.emit(Effect::ReopenLogs);
            }
        }
    }

    /// Replies if someone asked; commands from signals have no one to answer.
    pub(super) fn answer(&mut self, responder: Option<Responder>, outcome: Outcome) {
        if let Some(r) = responder {
            self.emit(Effect::Reply(r, outcome));
        }
    }

    /// SIGTTIN/SIGTTOU, `segue workers +1|-1`: one worker more or less.
    fn scale(&mut self, delta: i32) -> Result<usize, ScaleError> {
        if self.phase != Phase::Running {
            return Err(ScaleError::Stopping);
        }
        if let Some(run) = &self.reload {
            return Err(ScaleError::Reloading(run.id));
        }
        if self.cheap.asleep() {
            return Err(ScaleError::Asleep);
        }
        let wanted = self.table.wanted();
        if let Some(spec) = self.scaler.as_ref().map(Scaler::spec) {
            let next = wanted.saturating_add_signed(delta as isize);
            if next < spec.min || next > spec.max {
                return Err(ScaleError::Bounds {
                    min: spec.min,
                    max: spec.max,
                });
            }
        }
        match delta {
            1 => {
                let slot = self.table.push_slot();
                self.spawn(slot, self.serving);
            }
            -1 if self.table.wanted() > 1 => {
                if let Some(slot) = self.table.pop_slot() {
                    for id in self.table.ids(|w| w.slot == slot) {
                        self.drain(id, DrainReason::ScaleDown);
                    }
                }
            }
            -1 => return Err(ScaleError::Minimum),
            _ => return Err(ScaleError::Step(delta)),
        }
        let n = self.table.wanted();
        tracing::info!("workers: {n}");
        Ok(n)
    }
}
