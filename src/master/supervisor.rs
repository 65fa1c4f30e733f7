//! The supervisor: owns the workers and the generations, reacts to worker messages, exits,
//! timers and signals, keeps the configured number serving, and carries out reloads. All worker
//! state transitions happen here, on one task, so no lock guards them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot};

use super::generation::{self, GenerationId};
use super::listener::Listener;
use super::reaper::{ExitKind, reap};
use super::reload::ReloadRun;
use super::spawn::spawn_worker;
use super::upgrade::{self, HandedListener, HandedWorker, Handover, UpgradeError};
use super::worker::{Worker, WorkerId, WorkerState};
use crate::config::{Config, ReloadStrategy};
use crate::control::{CrashLoop, ReloadReport, Reply, Request, StatusReport, WorkerReport};
use crate::protocol::scoreboard::Cells;
use crate::protocol::{
    Boot, Channel, DrainReason, FrameError, PROTOCOL_VERSION, ToMaster, ToWorker,
};
use crate::systemd::Notifier;
use crate::systemd::notify::monotonic_usec;
use std::os::fd::{AsRawFd, FromRawFd};

/// A worker that dies sooner than this after its start counts toward a crash loop.
const CRASH_WINDOW: Duration = Duration::from_secs(10);
/// Longest pause between respawns of a crash-looping slot.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Finished reloads kept for status.
const HISTORY: usize = 20;
/// After a recycling replacement fails to boot, how long before the next attempt.
const RECYCLE_RETRY: Duration = Duration::from_secs(10);
/// How long a stuck worker's other requests get once its replacement serves.
const STUCK_GRACE: Duration = Duration::from_secs(1);

/// Something the supervisor reacts to.
#[derive(Debug)]
pub enum Event {
    /// A worker said something.
    FromWorker(WorkerId, ToMaster),
    /// A worker's control channel closed (it is exiting or dead).
    ChannelClosed(WorkerId),
    /// A slot's respawn backoff elapsed.
    Respawn {
        /// Which slot.
        slot: usize,
    },
    /// A worker's `--boot-timeout` elapsed.
    BootDeadline(WorkerId),
    /// A draining worker's `--graceful-timeout` elapsed.
    DrainDeadline(WorkerId),
    /// A stuck worker's grace after its replacement became ready elapsed.
    KillStuck(WorkerId),
    /// A request from the control socket.
    Control(Request, oneshot::Sender<Reply>),
    /// A command from `--touch-reload` or `--master-fifo`.
    Trigger(Trigger),
    /// Re-execute this binary (or the one given) in place: the upgrade itself, scheduled
    /// after the reply to `segue upgrade` has been flushed.
    Exec(PathBuf),
}

/// Commands that arrive without a caller to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Reload with this strategy.
    Reload(ReloadStrategy),
    /// Stop; quick kills at once.
    Stop {
        /// Kill instead of draining.
        quick: bool,
    },
    /// One worker more (+1) or less (-1).
    Scale(i32),
}

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

/// Per-slot crash-loop bookkeeping.
#[derive(Debug, Default, Clone)]
struct Slot {
    /// Consecutive deaths within [`CRASH_WINDOW`] of the start.
    failures: u32,
    /// A respawn is scheduled; do not schedule another.
    respawn_pending: bool,
    /// Why its last worker died young, for `segue status`.
    last_failure: Option<String>,
}

/// Owns every worker and decides what to start and stop.
pub struct Supervisor {
    /// The configuration as given; each generation resolves its paths from it anew.
    base: Arc<Config>,
    /// This binary, re-executed as each worker.
    exe: PathBuf,
    /// The sockets held for life; their fds are sent to every worker.
    listeners: Vec<Listener>,
    /// Live worker processes by id.
    workers: HashMap<WorkerId, Worker>,
    /// Slot bookkeeping, one per configured worker.
    slots: Vec<Slot>,
    /// Configuration of each generation that still has (or may get) workers.
    generations: HashMap<GenerationId, Arc<Config>>,
    /// The generation crash replacements join: the one the server stands behind.
    serving: GenerationId,
    /// Next generation id (never reused).
    next_generation: GenerationId,
    /// Next worker id to hand out.
    next_id: u64,
    /// Whether "ready" has been announced for the first generation.
    announced_ready: bool,
    /// Running or stopping.
    phase: Phase,
    /// The reload being carried out.
    reload: Option<ReloadRun>,
    /// A reload asked for while one runs; requests coalesce into this one.
    reload_queued: Option<ReloadStrategy>,
    /// `--wait` callers of the queued reload.
    queued_waiters: Vec<oneshot::Sender<Reply>>,
    /// `--wait` callers of promoted reloads, answered once the old workers have exited.
    promoted_waiters: Vec<(ReloadReport, oneshot::Sender<Reply>)>,
    /// Next reload sequence number.
    next_reload: u64,
    /// Finished reloads, newest last.
    history: VecDeque<ReloadReport>,
    /// Where channel tasks and timers send their events.
    events: mpsc::UnboundedSender<Event>,
    /// systemd's notify socket, when running under systemd.
    notifier: Option<Notifier>,
    /// The control socket's fd, handed over by an upgrade.
    control_fd: Option<std::os::fd::RawFd>,
    /// In-place upgrades so far (carried across them).
    upgrades: u64,
    /// Why the last upgrade attempt failed, for status.
    upgrade_error: Option<String>,
    /// The page where workers post their connection counts to balance accepts; `None` if it
    /// could not be created (workers then accept first-come first-served).
    cells: Option<Cells>,
}

impl Supervisor {
    /// A supervisor for `config`, serving on `listeners`; nothing is started yet.
    pub fn new(
        config: Arc<Config>,
        exe: PathBuf,
        listeners: Vec<Listener>,
        events: mpsc::UnboundedSender<Event>,
        notifier: Option<Notifier>,
    ) -> Self {
        let slots = vec![Slot::default(); config.workers];
        Supervisor {
            base: config,
            exe,
            listeners,
            workers: HashMap::new(),
            slots,
            generations: HashMap::new(),
            serving: 0,
            next_generation: 1,
            next_id: 1,
            announced_ready: false,
            phase: Phase::Running,
            reload: None,
            reload_queued: None,
            queued_waiters: Vec::new(),
            promoted_waiters: Vec::new(),
            next_reload: 1,
            history: VecDeque::new(),
            events,
            notifier,
            control_fd: None,
            upgrades: 0,
            upgrade_error: None,
            cells: Cells::new()
                .inspect_err(|e| {
                    tracing::warn!("cannot create the scoreboard ({e}): connections will not be balanced across workers")
                })
                .ok(),
        }
    }

    /// Starts the first generation.
    pub fn start(&mut self) -> Result<(), generation::ResolveError> {
        let config = generation::snapshot(&self.base)?;
        self.serving = self.new_generation(config);
        for slot in 0..self.slots.len() {
            self.spawn(slot, self.serving);
        }
        Ok(())
    }

    fn new_generation(&mut self, config: Arc<Config>) -> GenerationId {
        let id = self.next_generation;
        self.next_generation += 1;
        self.generations.insert(id, config);
        id
    }

    /// True once a stop has finished: every worker is reaped.
    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Stopping { .. }) && self.workers.is_empty()
    }

    /// The listeners, for logging at startup.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    fn spawn(&mut self, slot: usize, generation: GenerationId) -> Option<WorkerId> {
        let config = self.generations.get(&generation)?.clone();
        let id = WorkerId(self.next_id);
        self.next_id += 1;
        let boot = Boot {
            protocol: PROTOCOL_VERSION,
            worker_id: id.0,
            generation,
            config: (*config).clone(),
            listeners: self.listeners.iter().map(|l| l.addr.clone()).collect(),
            max_requests: None,
            scoreboard_cell: None,
        };
        let mut fds: Vec<_> = self.listeners.iter().map(Listener::raw_fd).collect();
        let cell = self.cells.as_mut().and_then(Cells::take);
        if let (Some(cells), Some(_)) = (&self.cells, cell) {
            fds.push(cells.fd().as_raw_fd());
        }
        let recycle = config.recycle;
        let max_requests = recycle
            .max_requests
            .map(|n| n + jitter(recycle.max_requests_jitter, id.0));
        let retire_at = recycle.max_lifetime.map(|life| {
            let extra =
                Duration::from_millis(jitter(recycle.max_lifetime_jitter.as_millis() as u64, id.0));
            Instant::now() + life + extra
        });
        let boot = Boot {
            max_requests,
            scoreboard_cell: cell,
            ..boot
        };
        match spawn_worker(&self.exe, &boot, &fds, &config.env) {
            Ok(spawned) => {
                tracing::debug!(worker = %id, generation, pid = spawned.pid.as_raw(), "worker spawned");
                let (tx, rx) = mpsc::unbounded_channel();
                let control_fd = std::os::fd::AsRawFd::as_raw_fd(&spawned.control);
                run_channel(id, spawned.control, rx, self.events.clone());
                self.after(config.boot_timeout, Event::BootDeadline(id));
                self.workers.insert(
                    id,
                    Worker {
                        id,
                        pid: spawned.pid,
                        generation,
                        slot,
                        cell,
                        state: WorkerState::Starting,
                        spawned_at: Instant::now(),
                        stats: Default::default(),
                        boot_failure: None,
                        commands: tx,
                        max_requests,
                        retire_at,
                        replacement: None,
                        replaces: None,
                        recycle_retry_after: None,
                        kill_when_replaced: false,
                        last_heartbeat: Instant::now(),
                        control_fd,
                    },
                );
                Some(id)
            }
            Err(e) => {
                tracing::error!(worker = %id, generation, "{e}");
                self.release_cell(cell);
                if self.reload.as_ref().is_some_and(|r| r.target == generation) {
                    self.abort_reload(format!("cannot start a worker: {e}"), None);
                } else {
                    self.slots[slot].failures += 1;
                    self.schedule_respawn(slot);
                }
                None
            }
        }
    }

    fn release_cell(&mut self, cell: Option<usize>) {
        if let (Some(cells), Some(cell)) = (self.cells.as_mut(), cell) {
            cells.release(cell);
        }
    }

    fn after(&self, delay: Duration, event: Event) {
        let events = self.events.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = events.send(event);
        });
    }

    /// Handles one event from a channel task or timer.
    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::FromWorker(id, msg) => self.on_message(id, msg),
            Event::ChannelClosed(id) => {
                if let Some(w) = self.workers.get(&id) {
                    tracing::debug!(worker = %id, generation = w.generation, pid = w.pid.as_raw(), "control channel closed");
                }
            }
            Event::Respawn { slot } => {
                self.slots[slot].respawn_pending = false;
                if self.phase == Phase::Running && !self.slot_filled(slot, self.serving) {
                    self.spawn(slot, self.serving);
                }
            }
            Event::BootDeadline(id) => {
                let Some(w) = self.workers.get_mut(&id) else {
                    return;
                };
                if w.state != WorkerState::Starting {
                    return;
                }
                let secs = self
                    .generations
                    .get(&w.generation)
                    .map_or(0.0, |c| c.boot_timeout.as_secs_f64());
                let error = format!(
                    "not ready within {secs}s (raise --boot-timeout if the app is slow to import)"
                );
                tracing::error!(worker = %id, generation = w.generation, pid = w.pid.as_raw(), "{error}");
                w.boot_failure = Some(crate::protocol::BootFailure {
                    error,
                    traceback: None,
                });
                signal(w.pid, Signal::SIGKILL);
            }
            Event::Control(request, reply) => self.on_control(request, reply),
            Event::Trigger(trigger) => self.on_trigger(trigger),
            Event::Exec(binary) => self.exec_upgrade(&binary),
            Event::KillStuck(id) => {
                if let Some(w) = self.workers.get(&id) {
                    tracing::warn!(worker = %id, generation = w.generation, pid = w.pid.as_raw(), "killing the stuck worker");
                    signal(w.pid, Signal::SIGKILL);
                }
            }
            Event::DrainDeadline(id) => {
                let Some(w) = self.workers.get(&id) else {
                    return;
                };
                if let WorkerState::Draining { since } = w.state {
                    tracing::warn!(
                        worker = %id,
                        generation = w.generation,
                        pid = w.pid.as_raw(),
                        "graceful timeout: still draining after {:.1}s, killed (its unfinished requests are lost; raise --graceful-timeout if they are legitimate)",
                        since.elapsed().as_secs_f64()
                    );
                    signal(w.pid, Signal::SIGKILL);
                }
            }
        }
    }

    fn on_message(&mut self, id: WorkerId, msg: ToMaster) {
        let Some(worker) = self.workers.get_mut(&id) else {
            return;
        };
        let (generation, pid) = (worker.generation, worker.pid.as_raw());
        match msg {
            ToMaster::Ready { boot_ms } => {
                if worker.state != WorkerState::Starting {
                    return;
                }
                worker.state = WorkerState::Ready;
                let slot = worker.slot;
                tracing::info!(worker = %id, generation, pid, boot_ms, "worker ready");
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
                        tracing::error!(worker = %id, generation, pid, "worker failed to boot: {}\n{}", failure.error, tb.trim_end())
                    }
                    None => {
                        tracing::error!(worker = %id, generation, pid, "worker failed to boot: {}", failure.error)
                    }
                }
                worker.boot_failure = Some(failure);
            }
            ToMaster::Heartbeat(stats) => {
                worker.stats = stats;
                worker.last_heartbeat = Instant::now();
                self.check_recycle(id);
            }
            ToMaster::Stuck { request, age_ms } => {
                let reason = format!("harakiri: {request} ran {:.1}s", age_ms as f64 / 1000.0);
                tracing::error!(worker = %id, generation, pid, "{reason}; replacing the worker, then killing it");
                self.start_replacement(id, reason, true);
            }
            ToMaster::Bye(stats) => {
                worker.stats = stats;
                tracing::debug!(worker = %id, generation, pid, served = stats.requests_finished, "worker finished draining");
            }
        }
    }

    fn maybe_announce_ready(&mut self) {
        if self.announced_ready {
            return;
        }
        let ready = self.ready_count(self.serving);
        if ready >= self.slots.len() {
            self.announced_ready = true;
            self.notify(&format!("READY=1\nSTATUS={}", self.status_line()));
            tracing::info!(
                generation = self.serving,
                workers = ready,
                "segue ready: all workers serving"
            );
        }
    }

    fn notify(&self, message: &str) {
        if let Some(n) = &self.notifier {
            n.send(message);
        }
    }

    /// `STATUS=` for systemd: what serves, and what is happening.
    fn status_line(&self) -> String {
        let ready = self.ready_count(self.serving);
        let mut line = format!(
            "generation {} serving with {ready}/{} workers",
            self.serving,
            self.slots.len()
        );
        if let Some(run) = &self.reload {
            line += &format!(
                "; reload {} starting generation {} ({:?})",
                run.id, run.target, run.strategy
            );
        }
        line
    }

    /// `WATCHDOG=1`, but only while the server can serve: at least one ready worker of the
    /// serving generation, or the first generation still booting without a crash loop.
    pub fn watchdog(&self) {
        let booting = !self.announced_ready && self.slots.iter().all(|s| s.failures < 2);
        if self.ready_count(self.serving) > 0 || booting {
            self.notify("WATCHDOG=1");
        }
    }

    /// While the first generation boots (a slow import), asks systemd for more start time, so
    /// `TimeoutStartSec=` measures a hung start, not a slow app.
    pub fn extend_start_timeout(&self) {
        let booting = self
            .workers
            .values()
            .any(|w| w.state == WorkerState::Starting);
        if !self.announced_ready && booting && self.phase == Phase::Running {
            self.notify("EXTEND_TIMEOUT_USEC=5000000");
        }
    }

    fn ready_count(&self, generation: GenerationId) -> usize {
        self.workers
            .values()
            .filter(|w| w.state == WorkerState::Ready && w.generation == generation)
            .count()
    }

    /// Collects exited children and decides what replaces them.
    pub fn on_reap(&mut self) {
        for (pid, kind) in reap() {
            self.on_exit(pid, kind);
        }
    }

    fn on_exit(&mut self, pid: Pid, kind: ExitKind) {
        let Some(id) = self.workers.values().find(|w| w.pid == pid).map(|w| w.id) else {
            // A grandchild re-parented to us (we are a subreaper): reaped, nothing else to do.
            tracing::debug!(pid = pid.as_raw(), "reaped orphaned descendant: {kind}");
            return;
        };
        let Some(worker) = self.workers.remove(&id) else {
            return;
        };
        self.release_cell(worker.cell);
        let lifetime = worker.spawned_at.elapsed();
        let (generation, raw_pid) = (worker.generation, pid.as_raw());
        let why = worker.boot_failure.as_ref().map(|f| f.error.clone());
        match worker.state {
            WorkerState::Draining { since } => {
                tracing::info!(worker = %id, generation, pid = raw_pid, drain_ms = since.elapsed().as_millis() as u64, "worker exited after draining ({kind})");
            }
            WorkerState::Discarded => {
                tracing::info!(worker = %id, generation, pid = raw_pid, "worker of the rolled-back generation stopped ({kind})");
            }
            _ if matches!(self.phase, Phase::Stopping { .. }) => {
                tracing::info!(worker = %id, generation, pid = raw_pid, "worker stopped ({kind})");
            }
            WorkerState::Starting => {
                let why = why.as_deref().unwrap_or("it exited before reporting ready");
                tracing::error!(worker = %id, generation, pid = raw_pid, "worker died while booting ({kind}): {why}");
            }
            WorkerState::Ready => {
                tracing::error!(worker = %id, generation, pid = raw_pid, uptime_ms = lifetime.as_millis() as u64, "worker died unexpectedly ({kind})");
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
        if let Some(old) = worker.replaces {
            // The replacement of a recycled worker failed: the old one keeps serving.
            if let Some(o) = self.workers.get_mut(&old) {
                o.replacement = None;
                if o.kill_when_replaced {
                    // A stuck worker is no use: let the crash path refill its slot.
                    tracing::warn!(worker = %old, "its replacement failed to start; killing the stuck worker anyway");
                    signal(o.pid, Signal::SIGKILL);
                } else {
                    o.recycle_retry_after = Some(Instant::now() + RECYCLE_RETRY);
                    tracing::warn!(worker = %old, "its replacement failed to start; it keeps serving, next attempt in {RECYCLE_RETRY:?}");
                }
            }
        }
        if generation != self.serving || worker.slot >= self.slots.len() {
            return; // an old generation's worker: its replacement is under way
        }
        let slot = &mut self.slots[worker.slot];
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

    fn slot_filled(&self, slot: usize, generation: GenerationId) -> bool {
        self.workers.values().any(|w| {
            w.slot == slot
                && w.generation == generation
                && matches!(w.state, WorkerState::Starting | WorkerState::Ready)
        })
    }

    /// Respawns a slot at once after an isolated crash, and with exponential backoff while it
    /// keeps dying young, so a broken app is retried forever without spinning.
    fn schedule_respawn(&mut self, slot: usize) {
        if self.slots[slot].respawn_pending || self.slot_filled(slot, self.serving) {
            return;
        }
        let failures = self.slots[slot].failures;
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
        self.slots[slot].respawn_pending = true;
        self.after(delay, Event::Respawn { slot });
    }

    /// Tells a worker to drain; each drain has its own `--graceful-timeout`, whatever caused
    /// it (stop, reload, scale-down), after which the worker is killed.
    fn drain(&mut self, id: WorkerId, reason: DrainReason) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        match w.state {
            WorkerState::Ready => {
                w.state = WorkerState::Draining {
                    since: Instant::now(),
                };
                w.send(ToWorker::Drain { reason });
                let timeout = self
                    .generations
                    .get(&w.generation)
                    .map_or(self.base.graceful_timeout, |c| c.graceful_timeout);
                self.after(timeout, Event::DrainDeadline(id));
            }
            // Still importing: it has no requests and does not read its channel yet.
            WorkerState::Starting => {
                w.state = WorkerState::Draining {
                    since: Instant::now(),
                };
                signal(w.pid, Signal::SIGKILL);
            }
            WorkerState::Draining { .. } | WorkerState::Discarded => {}
        }
    }

    /// Drains the workers of `slot` that belong to another generation than `keep`.
    fn drain_slot(&mut self, slot: usize, keep: GenerationId) {
        let ids: Vec<_> = self
            .workers
            .values()
            .filter(|w| w.slot == slot && w.generation != keep)
            .map(|w| w.id)
            .collect();
        for id in ids {
            self.drain(id, DrainReason::Reload);
        }
    }

    fn forget_idle_generations(&mut self) {
        let live: HashSet<_> = self.workers.values().map(|w| w.generation).collect();
        let (serving, target) = (self.serving, self.reload.as_ref().map(|r| r.target));
        self.generations
            .retain(|g, _| *g == serving || Some(*g) == target || live.contains(g));
    }

    /// SIGHUP and friends: start a reload with `strategy`, or queue it behind the one running.
    /// A `waiter` is answered when the reload is over. Returns what happened, in words.
    pub fn reload(
        &mut self,
        strategy: ReloadStrategy,
        waiter: Option<oneshot::Sender<Reply>>,
    ) -> String {
        if self.phase != Phase::Running {
            if let Some(w) = waiter {
                let _ = w.send(Reply::Error {
                    message: "the server is stopping".into(),
                });
            }
            return "the server is stopping".into();
        }
        if let Some(run) = &self.reload {
            let message = format!(
                "reload {} is running: this reload is queued (further requests coalesce into it)",
                run.id
            );
            tracing::info!(reload = run.id, "{message}");
            self.reload_queued = Some(strategy);
            self.queued_waiters.extend(waiter);
            return message;
        }
        self.begin_reload(strategy, waiter.into_iter().collect())
    }

    fn begin_reload(
        &mut self,
        strategy: ReloadStrategy,
        waiters: Vec<oneshot::Sender<Reply>>,
    ) -> String {
        let id = self.next_reload;
        self.next_reload += 1;
        let config = match generation::snapshot(&self.base) {
            Ok(c) => c,
            Err(e) => {
                let message = format!(
                    "reload {id} refused, generation {} keeps serving: {e}",
                    self.serving
                );
                tracing::error!(reload = id, "{message}");
                let report = ReloadReport {
                    reload: id,
                    from: self.serving,
                    generation: self.serving,
                    strategy,
                    ok: false,
                    took_ms: 0,
                    boot_ms: vec![],
                    reason: Some(e.to_string()),
                    traceback: None,
                };
                for w in waiters {
                    let _ = w.send(Reply::Reload(report.clone()));
                }
                self.record(report);
                return message;
            }
        };
        let target = self.new_generation(config);
        let surge = self.base.reload_surge;
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
            todo: (0..self.slots.len()).collect(),
            booting: HashSet::new(),
            ready: Vec::new(),
            waiters,
        });
        self.notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={}",
            monotonic_usec(),
            self.status_line()
        ));
        self.advance_reload();
        format!("reload {id} started: generation {target} ({strategy:?})")
    }

    /// Starts the next new workers the strategy allows.
    fn advance_reload(&mut self) {
        let Some(run) = &self.reload else { return };
        let (strategy, target) = (run.strategy, run.target);
        let batch: Vec<usize> = match strategy {
            ReloadStrategy::Chain => {
                let room = self.base.reload_surge.saturating_sub(run.booting.len());
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
            match self.spawn(slot, target) {
                Some(id) => {
                    if let Some(run) = self.reload.as_mut() {
                        run.booting.insert(id);
                    }
                }
                None => return, // spawn failed and aborted the reload
            }
        }
    }

    fn on_reload_worker_ready(&mut self, id: WorkerId, slot: usize, boot_ms: u64) {
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
        let old: Vec<_> = self
            .workers
            .values()
            .filter(|w| w.generation != run.target)
            .map(|w| w.id)
            .collect();
        for id in old {
            self.drain(id, DrainReason::Reload);
        }
        for slot in &mut self.slots {
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
        self.notify(&format!(
            "READY=1\nSTATUS={}; reload promoted",
            self.status_line()
        ));
        self.forget_idle_generations();
        self.answer_promoted_waiters();
        self.start_queued_reload();
    }

    /// `reload --wait` returns once the old generation is gone, not just promoted.
    fn answer_promoted_waiters(&mut self) {
        let serving = self.serving;
        let old_left = self
            .workers
            .values()
            .any(|w| w.generation != serving && !matches!(w.state, WorkerState::Discarded));
        if old_left || self.promoted_waiters.is_empty() {
            return;
        }
        for (report, w) in std::mem::take(&mut self.promoted_waiters) {
            let _ = w.send(Reply::Reload(report));
        }
    }

    /// Rolls back: the new generation is killed and every slot is refilled from the serving
    /// generation, whose workers never stopped (chain) or are started again (respawn).
    fn abort_reload(&mut self, reason: String, traceback: Option<String>) {
        let Some(mut run) = self.reload.take() else {
            return;
        };
        let doomed: Vec<_> = self
            .workers
            .values()
            .filter(|w| w.generation == run.target)
            .map(|w| w.id)
            .collect();
        for id in doomed {
            if let Some(w) = self.workers.get_mut(&id) {
                w.state = WorkerState::Discarded;
                signal(w.pid, Signal::SIGKILL);
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
        for slot in 0..self.slots.len() {
            if !self.slot_filled(slot, self.serving) {
                self.spawn(slot, self.serving);
            }
        }
        let report = run.report(Some((reason, traceback)));
        for w in std::mem::take(&mut run.waiters) {
            let _ = w.send(Reply::Reload(report.clone()));
        }
        self.record(report);
        let why = self
            .history
            .back()
            .and_then(|r| r.reason.clone())
            .unwrap_or_default();
        let why = why.lines().next().unwrap_or_default().to_string();
        self.notify(&format!(
            "READY=1\nSTATUS={}; reload rolled back: {why}",
            self.status_line()
        ));
        self.forget_idle_generations();
        self.start_queued_reload();
    }

    fn start_queued_reload(&mut self) {
        if let Some(strategy) = self.reload_queued.take() {
            let waiters = std::mem::take(&mut self.queued_waiters);
            self.begin_reload(strategy, waiters);
        }
    }

    fn record(&mut self, report: ReloadReport) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(report);
    }

    fn on_control(&mut self, request: Request, reply: oneshot::Sender<Reply>) {
        match request {
            Request::Reload { strategy, wait } => {
                let strategy = strategy.unwrap_or(self.base.reload_strategy);
                if wait {
                    self.reload(strategy, Some(reply));
                } else {
                    let message = self.reload(strategy, None);
                    let _ = reply.send(Reply::ReloadStarted { message });
                }
            }
            Request::Status => {
                let _ = reply.send(Reply::Status(self.status()));
            }
            Request::Stop => {
                self.stop_graceful();
                let _ = reply.send(Reply::Ok {
                    message: "stopping gracefully".into(),
                });
            }
            Request::Upgrade { binary } => {
                let _ = reply.send(match self.upgrade(binary) {
                    Ok(message) => Reply::Ok { message },
                    Err(e) => Reply::Error {
                        message: e.to_string(),
                    },
                });
            }
            Request::Workers { delta } => {
                let _ = reply.send(match self.scale(delta) {
                    Ok(message) => Reply::Ok { message },
                    Err(message) => Reply::Error { message },
                });
            }
        }
    }

    /// Starts a replacement for a worker past one of its recycling limits. The old worker keeps
    /// serving until the replacement is ready (see `finish_recycle`), so nothing is lost.
    fn check_recycle(&mut self, id: WorkerId) {
        if self.phase != Phase::Running || self.reload.is_some() {
            return; // a reload replaces every worker anyway
        }
        let Some(w) = self.workers.get(&id) else {
            return;
        };
        let eligible = w.state == WorkerState::Ready
            && w.generation == self.serving
            && w.replacement.is_none()
            && w.slot < self.slots.len();
        if !eligible || w.recycle_retry_after.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let max_rss = self
            .generations
            .get(&w.generation)
            .and_then(|c| c.recycle.max_rss_kib);
        let reason = if let Some(limit) = w.max_requests.filter(|&m| w.stats.requests_finished >= m)
        {
            format!(
                "served {} requests (--max-requests {limit})",
                w.stats.requests_finished
            )
        } else if let Some(limit) = max_rss.filter(|&m| w.stats.rss_kib > m) {
            format!(
                "resident memory {} MiB over --reload-on-rss {} MiB",
                w.stats.rss_kib / 1024,
                limit / 1024
            )
        } else if w.retire_at.is_some_and(|t| Instant::now() >= t) {
            format!(
                "{:.0}s old (--max-worker-lifetime)",
                w.spawned_at.elapsed().as_secs_f64()
            )
        } else {
            return;
        };
        tracing::info!(worker = %id, generation = w.generation, "recycling: {reason}; starting its replacement first");
        self.start_replacement(id, reason, false);
    }

    /// Spawns a worker to take over `id`'s slot; when it is ready `id` drains (or, if `kill`,
    /// drains for a short grace and is then killed).
    fn start_replacement(&mut self, id: WorkerId, reason: String, kill: bool) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        w.kill_when_replaced |= kill;
        if w.replacement.is_some()
            || !matches!(w.state, WorkerState::Ready)
            || self.phase != Phase::Running
        {
            return;
        }
        let (slot, generation) = (w.slot, w.generation);
        if generation != self.serving || slot >= self.slots.len() {
            // An old generation's worker: its reload replaces it; a stuck one just goes.
            if kill {
                self.after(STUCK_GRACE, Event::KillStuck(id));
                self.drain(id, DrainReason::Recycle);
            }
            return;
        }
        match self.spawn(slot, self.serving) {
            Some(new) => {
                if let Some(n) = self.workers.get_mut(&new) {
                    n.replaces = Some(id);
                }
                if let Some(o) = self.workers.get_mut(&id) {
                    o.replacement = Some(new);
                }
            }
            None => tracing::warn!(worker = %id, "no replacement could be started ({reason})"),
        }
    }

    /// The sweep: a ready worker silent for `--heartbeat-timeout` is replaced and killed.
    pub fn check_heartbeats(&mut self) {
        let silent: Vec<(WorkerId, Duration)> = self
            .workers
            .values()
            .filter(|w| w.state == WorkerState::Ready && w.replacement.is_none())
            .filter_map(|w| {
                let timeout = self
                    .generations
                    .get(&w.generation)
                    .map_or(self.base.heartbeat_timeout, |c| c.heartbeat_timeout);
                let quiet = w.last_heartbeat.elapsed();
                (quiet > timeout).then_some((w.id, quiet))
            })
            .collect();
        for (id, quiet) in silent {
            let reason = format!(
                "no heartbeat for {:.0}s (stuck holding the GIL?)",
                quiet.as_secs_f64()
            );
            tracing::error!(worker = %id, "{reason}; replacing the worker, then killing it");
            self.start_replacement(id, reason, true);
        }
    }

    /// A replacement is ready: the worker it replaces drains (a stuck one is killed shortly).
    fn finish_recycle(&mut self, new: WorkerId) {
        let Some(old) = self.workers.get(&new).and_then(|w| w.replaces) else {
            return;
        };
        tracing::info!(worker = %old, replacement = %new, "recycled: the replacement is ready, the old worker drains");
        if self.workers.get(&old).is_some_and(|w| w.kill_when_replaced) {
            self.after(STUCK_GRACE, Event::KillStuck(old));
        }
        self.drain(old, DrainReason::Recycle);
    }

    /// Records the control socket's fd so an upgrade can hand it over.
    pub fn set_control_fd(&mut self, fd: std::os::fd::RawFd) {
        self.control_fd = Some(fd);
    }

    /// An upgrade hands over a settled state only: no reload running, no worker booting.
    fn upgrade_blocked(&self) -> bool {
        self.phase != Phase::Running
            || self.reload.is_some()
            || self
                .workers
                .values()
                .any(|w| w.state == WorkerState::Starting)
    }

    /// SIGUSR2, `segue upgrade`: checks the new binary now, then re-executes it in place a
    /// moment later (after the caller's reply is on its way). The old master keeps running if
    /// anything fails.
    pub fn upgrade(&mut self, binary: Option<PathBuf>) -> Result<String, UpgradeError> {
        if self.upgrade_blocked() {
            return Err(UpgradeError::Busy);
        }
        let binary = binary.unwrap_or_else(|| self.exe.clone());
        if let Err(e) = upgrade::preflight(&binary) {
            tracing::error!("upgrade refused, this master keeps running: {e}");
            self.upgrade_error = Some(e.to_string());
            return Err(e);
        }
        tracing::info!(
            "upgrade: re-executing {} in place (pid {})",
            binary.display(),
            std::process::id()
        );
        self.after(Duration::from_millis(100), Event::Exec(binary.clone()));
        Ok(format!(
            "upgrading: re-executing {} as pid {}",
            binary.display(),
            std::process::id()
        ))
    }

    fn exec_upgrade(&mut self, binary: &std::path::Path) {
        if self.upgrade_blocked() {
            let message =
                "upgrade abandoned: workers started or a reload began meanwhile; retry".to_string();
            tracing::warn!("{message}");
            self.upgrade_error = Some(message);
            return;
        }
        let handover = self.handover();
        self.notify("RELOADING=1\nSTATUS=upgrading the master binary in place");
        let err = upgrade::exec(binary, &handover);
        // Still here: exec failed and nothing changed.
        tracing::error!("upgrade failed, this master keeps running: {err}");
        self.notify(&format!(
            "READY=1\nSTATUS={}; upgrade failed",
            self.status_line()
        ));
        self.upgrade_error = Some(err.to_string());
    }

    /// The state the new image needs.
    fn handover(&self) -> Handover {
        Handover {
            version: upgrade::HANDOVER_VERSION,
            listeners: self
                .listeners
                .iter()
                .map(|l| HandedListener {
                    addr: l.addr.clone(),
                    fd: l.raw_fd(),
                    systemd_name: l.systemd_name.clone(),
                })
                .collect(),
            control_fd: self.control_fd,
            workers: self
                .workers
                .values()
                .filter(|w| matches!(w.state, WorkerState::Ready | WorkerState::Draining { .. }))
                .map(|w| HandedWorker {
                    id: w.id.0,
                    pid: w.pid.as_raw(),
                    generation: w.generation,
                    slot: w.slot,
                    ready: w.state == WorkerState::Ready,
                    control_fd: w.control_fd,
                })
                .collect(),
            serving: self.serving,
            next_id: self.next_id,
            next_generation: self.next_generation,
            next_reload: self.next_reload,
            history: self.history.iter().cloned().collect(),
            upgrades: self.upgrades + 1,
        }
    }

    /// In the new image after an upgrade: takes over the running workers and the counters, then
    /// replaces the workers with the new binary's through a gated chain reload.
    pub fn adopt(&mut self, handover: Handover) -> Result<(), generation::ResolveError> {
        let config = generation::snapshot(&self.base)?;
        self.serving = handover.serving;
        self.generations.insert(self.serving, config);
        self.next_id = handover.next_id;
        self.next_generation = handover.next_generation;
        self.next_reload = handover.next_reload;
        self.history = handover.history.into_iter().collect();
        self.upgrades = handover.upgrades;
        self.announced_ready = true;
        for w in handover.workers {
            let id = WorkerId(w.id);
            // SAFETY: the old image passed this fd across exec for exactly this purpose;
            // nothing else in this process owns it.
            let std_stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(w.control_fd) };
            let _ = crate::protocol::set_cloexec(w.control_fd, true);
            let stream = match std_stream
                .set_nonblocking(true)
                .and_then(|_| tokio::net::UnixStream::from_std(std_stream))
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(worker = %id, "cannot adopt its control channel: {e}; it will be replaced");
                    continue;
                }
            };
            let (tx, rx) = mpsc::unbounded_channel();
            run_channel(id, stream, rx, self.events.clone());
            let ready = w.ready;
            self.workers.insert(
                id,
                Worker {
                    id,
                    pid: Pid::from_raw(w.pid),
                    generation: w.generation,
                    slot: w.slot,
                    cell: None,
                    state: if ready {
                        WorkerState::Ready
                    } else {
                        WorkerState::Draining {
                            since: Instant::now(),
                        }
                    },
                    spawned_at: Instant::now(),
                    stats: Default::default(),
                    boot_failure: None,
                    commands: tx,
                    max_requests: None,
                    retire_at: None,
                    replacement: None,
                    replaces: None,
                    recycle_retry_after: None,
                    kill_when_replaced: false,
                    last_heartbeat: Instant::now(),
                    control_fd: w.control_fd,
                },
            );
        }
        tracing::info!(
            upgrades = self.upgrades,
            workers = self.workers.len(),
            generation = self.serving,
            "upgrade: new master binary running; replacing the workers"
        );
        self.reload(ReloadStrategy::Chain, None);
        Ok(())
    }

    /// Signals, the touch file and the master FIFO end up here.
    pub fn on_trigger(&mut self, trigger: Trigger) {
        match trigger {
            Trigger::Reload(strategy) => {
                self.reload(strategy, None);
            }
            Trigger::Stop { quick: false } => self.stop_graceful(),
            Trigger::Stop { quick: true } => self.stop_quick(),
            Trigger::Scale(delta) => {
                if let Err(e) = self.scale(delta) {
                    tracing::warn!("cannot change the worker count: {e}");
                }
            }
        }
    }

    /// What `segue status` shows.
    pub fn status(&self) -> StatusReport {
        let mut workers: Vec<WorkerReport> = self
            .workers
            .values()
            .map(|w| WorkerReport {
                id: w.id.0,
                pid: w.pid.as_raw(),
                generation: w.generation,
                state: match w.state {
                    WorkerState::Starting => "starting",
                    WorkerState::Ready => "ready",
                    WorkerState::Draining { .. } => "draining",
                    WorkerState::Discarded => "discarded",
                }
                .into(),
                requests: w.stats.requests_finished,
                uptime_s: w.spawned_at.elapsed().as_secs_f64(),
            })
            .collect();
        workers.sort_by_key(|w| w.id);
        StatusReport {
            pid: std::process::id(),
            serving: self.serving,
            workers_wanted: self.slots.len(),
            ready: self.announced_ready,
            listeners: self.listeners.iter().map(|l| l.addr.to_string()).collect(),
            reloading: self
                .reload
                .as_ref()
                .map(|r| format!("reload {} -> generation {}", r.id, r.target)),
            workers,
            reloads: self.history.iter().cloned().collect(),
            upgrades: self.upgrades,
            upgrade_error: self.upgrade_error.clone(),
            crash_loops: self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.failures >= 2)
                .map(|(i, s)| CrashLoop {
                    slot: i,
                    failures: s.failures,
                    last_error: s.last_failure.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// SIGTTIN/SIGTTOU, `segue workers +1|-1`: one worker more or less.
    pub fn scale(&mut self, delta: i32) -> Result<String, String> {
        if self.phase != Phase::Running {
            return Err("the server is stopping".into());
        }
        if let Some(run) = &self.reload {
            return Err(format!(
                "reload {} is running: change the worker count after it finishes",
                run.id
            ));
        }
        match delta {
            1 => {
                self.slots.push(Slot::default());
                let slot = self.slots.len() - 1;
                self.spawn(slot, self.serving);
            }
            -1 if self.slots.len() > 1 => {
                self.slots.pop();
                let slot = self.slots.len();
                let ids: Vec<_> = self
                    .workers
                    .values()
                    .filter(|w| w.slot == slot)
                    .map(|w| w.id)
                    .collect();
                for id in ids {
                    self.drain(id, DrainReason::ScaleDown);
                }
            }
            -1 => return Err("cannot go below 1 worker".into()),
            _ => return Err(format!("workers can change by +1 or -1, not {delta:+}")),
        }
        Arc::make_mut(&mut self.base).workers = self.slots.len();
        let message = format!("workers: {}", self.slots.len());
        tracing::info!("{message}");
        Ok(message)
    }

    /// SIGTERM: drain every worker, kill what is left after the graceful timeout.
    pub fn stop_graceful(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        self.fail_waiters("the server is stopping");
        tracing::info!(
            workers = self.workers.len(),
            "stopping gracefully (timeout {:?})",
            self.base.graceful_timeout
        );
        self.phase = Phase::Stopping { graceful: true };
        self.notify("STOPPING=1\nSTATUS=stopping gracefully");
        self.reload = None;
        let ids: Vec<_> = self.workers.keys().copied().collect();
        for id in ids {
            self.drain(id, DrainReason::Shutdown);
        }
    }

    fn fail_waiters(&mut self, why: &str) {
        let run_waiters = self
            .reload
            .as_mut()
            .map(|r| std::mem::take(&mut r.waiters))
            .unwrap_or_default();
        let promoted = std::mem::take(&mut self.promoted_waiters)
            .into_iter()
            .map(|(_, w)| w);
        for w in run_waiters
            .into_iter()
            .chain(std::mem::take(&mut self.queued_waiters))
            .chain(promoted)
        {
            let _ = w.send(Reply::Error {
                message: why.into(),
            });
        }
    }

    /// SIGINT/SIGQUIT: kill every worker now.
    pub fn stop_quick(&mut self) {
        self.fail_waiters("the server is stopping");
        tracing::info!(workers = self.workers.len(), "stopping now");
        self.phase = Phase::Stopping { graceful: false };
        self.notify("STOPPING=1\nSTATUS=stopping now");
        self.reload = None;
        self.kill_all();
    }

    fn kill_all(&self) {
        for w in self.workers.values() {
            signal(w.pid, Signal::SIGKILL);
        }
    }
}

fn signal(pid: Pid, sig: Signal) {
    if let Err(e) = kill(pid, sig) {
        tracing::debug!(pid = pid.as_raw(), "kill({sig}) failed: {e}");
    }
}

/// A pseudo-random number in `0..=max` (splitmix64 over the clock and `salt`): enough to
/// spread workers' recycling apart, no cryptography needed.
fn jitter(max: u64, salt: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut z = nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % (max + 1)
}

fn backoff(failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let exp = (failures - 2).min(10);
    (Duration::from_millis(100) * 2u32.pow(exp)).min(MAX_BACKOFF)
}

/// Runs a worker's control channel: one task reads its messages into the supervisor's queue,
/// one writes the supervisor's commands.
///
/// Once the worker's last word (`Bye`, `BootFailed`) is in the supervisor's queue, the writer
/// stops, closing our side: that is the worker's cue to exit, so its exit (and the reap) always
/// comes after its last word.
fn run_channel(
    id: WorkerId,
    stream: tokio::net::UnixStream,
    mut commands: mpsc::UnboundedReceiver<ToWorker>,
    events: mpsc::UnboundedSender<Event>,
) {
    let (mut from_worker, mut to_worker) = Channel::<ToMaster, ToWorker>::new(stream).split();
    // Dropped when the last word is queued, or when the reader stops.
    let (taken, mut last_word_taken) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut taken = Some(taken);
        loop {
            match from_worker.recv().await {
                Ok(msg) => {
                    let last = msg.is_last_word();
                    if events.send(Event::FromWorker(id, msg)).is_err() {
                        return;
                    }
                    if last {
                        taken = None;
                    }
                }
                Err(e) => {
                    if !matches!(e, FrameError::Closed) {
                        tracing::warn!(worker = %id, "control channel: {e}");
                    }
                    let _ = events.send(Event::ChannelClosed(id));
                    drop(taken);
                    return;
                }
            }
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                msg = commands.recv() => match msg {
                    Some(msg) => {
                        if to_worker.send(&msg).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                },
                _ = &mut last_word_taken => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range_and_varies() {
        assert_eq!(jitter(0, 7), 0);
        let draws: std::collections::HashSet<u64> = (0..200).map(|i| jitter(10, i)).collect();
        assert!(draws.iter().all(|&d| d <= 10));
        assert!(draws.len() > 5, "{draws:?}");
    }

    #[test]
    fn backoff_respawns_the_first_crash_at_once_then_doubles_up_to_a_cap() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(200));
        assert_eq!(backoff(50), MAX_BACKOFF);
    }
}
