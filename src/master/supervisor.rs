//! The supervisor: owns the workers, reacts to their messages, their exits and to signals, and
//! keeps the configured number serving. All worker state transitions happen here, on one task,
//! so no lock guards them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use super::listener::Listener;
use super::reaper::{ExitKind, reap};
use super::spawn::spawn_worker;
use super::worker::{Worker, WorkerId, WorkerState};
use crate::config::Config;
use crate::protocol::{
    Boot, DrainReason, FrameError, PROTOCOL_VERSION, ToMaster, ToWorker, read_frame, write_frame,
};

/// A worker that dies sooner than this after its start counts toward a crash loop.
const CRASH_WINDOW: Duration = Duration::from_secs(10);
/// Longest pause between respawns of a crash-looping slot.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

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
    /// The graceful timeout of a stop elapsed.
    StopDeadline,
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
}

/// Owns every worker and decides what to start and stop.
pub struct Supervisor {
    /// Validated configuration; workers get a copy in `Boot`.
    config: Arc<Config>,
    /// This binary, re-executed as each worker.
    exe: PathBuf,
    /// The sockets held for life; their fds are sent to every worker.
    listeners: Vec<Listener>,
    /// Live worker processes by id.
    workers: HashMap<WorkerId, Worker>,
    /// Slot bookkeeping, one per configured worker.
    slots: Vec<Slot>,
    /// The generation new workers join.
    generation: u64,
    /// Next worker id to hand out.
    next_id: u64,
    /// Whether "ready" has been announced for the first generation.
    announced_ready: bool,
    /// Running or stopping.
    phase: Phase,
    /// Where channel tasks and timers send their events.
    events: mpsc::UnboundedSender<Event>,
}

impl Supervisor {
    /// A supervisor for `config`, serving on `listeners`; nothing is started yet.
    pub fn new(
        config: Arc<Config>,
        exe: PathBuf,
        listeners: Vec<Listener>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Self {
        let slots = vec![Slot::default(); config.workers];
        Supervisor {
            config,
            exe,
            listeners,
            workers: HashMap::new(),
            slots,
            generation: 1,
            next_id: 1,
            announced_ready: false,
            phase: Phase::Running,
            events,
        }
    }

    /// Starts the first generation.
    pub fn start(&mut self) {
        for slot in 0..self.slots.len() {
            self.spawn(slot);
        }
    }

    /// True once a stop has finished: every worker is reaped.
    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Stopping { .. }) && self.workers.is_empty()
    }

    fn spawn(&mut self, slot: usize) {
        let id = WorkerId(self.next_id);
        self.next_id += 1;
        let boot = Boot {
            protocol: PROTOCOL_VERSION,
            worker_id: id.0,
            generation: self.generation,
            config: (*self.config).clone(),
            listeners: self.listeners.iter().map(|l| l.addr.clone()).collect(),
        };
        let fds: Vec<_> = self.listeners.iter().map(Listener::raw_fd).collect();
        match spawn_worker(&self.exe, &boot, &fds, &self.config.env) {
            Ok(spawned) => {
                tracing::debug!(worker = %id, generation = self.generation, pid = spawned.pid.as_raw(), "worker spawned");
                let (tx, rx) = mpsc::unbounded_channel();
                run_channel(id, spawned.control, rx, self.events.clone());
                self.workers.insert(
                    id,
                    Worker {
                        id,
                        pid: spawned.pid,
                        generation: self.generation,
                        slot,
                        state: WorkerState::Starting,
                        spawned_at: Instant::now(),
                        stats: Default::default(),
                        boot_failure: None,
                        commands: tx,
                    },
                );
            }
            Err(e) => {
                tracing::error!(worker = %id, generation = self.generation, "{e}");
                self.slots[slot].failures += 1;
                self.schedule_respawn(slot);
            }
        }
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
                if self.phase == Phase::Running && !self.slot_filled(slot) {
                    self.spawn(slot);
                }
            }
            Event::StopDeadline => {
                if !self.workers.is_empty() {
                    tracing::warn!(
                        workers = self.workers.len(),
                        "graceful timeout of {:?} passed: killing the workers still draining",
                        self.config.graceful_timeout
                    );
                    self.kill_all();
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
                if worker.state == WorkerState::Starting {
                    worker.state = WorkerState::Ready;
                }
                tracing::info!(worker = %id, generation, pid, boot_ms, "worker ready");
                if self.phase == Phase::Running && worker.state == WorkerState::Ready {
                    self.maybe_announce_ready();
                } else if matches!(self.phase, Phase::Stopping { graceful: true }) {
                    // Became ready while a stop was under way: drain it like the rest.
                    self.drain(id, DrainReason::Shutdown);
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
            ToMaster::Heartbeat(stats) => worker.stats = stats,
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
        let ready = self
            .workers
            .values()
            .filter(|w| w.state == WorkerState::Ready && w.generation == self.generation)
            .count();
        if ready >= self.slots.len() {
            self.announced_ready = true;
            tracing::info!(
                generation = self.generation,
                workers = ready,
                "segue ready: all workers serving"
            );
        }
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
        let lifetime = worker.spawned_at.elapsed();
        let (generation, raw_pid) = (worker.generation, pid.as_raw());
        match worker.state {
            WorkerState::Draining { since } => {
                tracing::info!(worker = %id, generation, pid = raw_pid, drain_ms = since.elapsed().as_millis() as u64, "worker exited after draining ({kind})");
            }
            _ if matches!(self.phase, Phase::Stopping { .. }) => {
                tracing::info!(worker = %id, generation, pid = raw_pid, "worker stopped ({kind})");
            }
            WorkerState::Starting => {
                let why = worker
                    .boot_failure
                    .as_ref()
                    .map(|f| f.error.as_str())
                    .unwrap_or("it exited before reporting ready");
                tracing::error!(worker = %id, generation, pid = raw_pid, "worker died while booting ({kind}): {why}");
            }
            WorkerState::Ready => {
                tracing::error!(worker = %id, generation, pid = raw_pid, uptime_ms = lifetime.as_millis() as u64, "worker died unexpectedly ({kind})");
            }
        }
        if self.phase != Phase::Running
            || worker.slot >= self.slots.len()
            || matches!(worker.state, WorkerState::Draining { .. })
        {
            return;
        }
        let slot = &mut self.slots[worker.slot];
        if lifetime < CRASH_WINDOW {
            slot.failures += 1;
        } else {
            slot.failures = 0;
        }
        self.schedule_respawn(worker.slot);
    }

    fn slot_filled(&self, slot: usize) -> bool {
        self.workers
            .values()
            .any(|w| w.slot == slot && !matches!(w.state, WorkerState::Draining { .. }))
    }

    /// Respawns a slot at once after an isolated crash, and with exponential backoff while it
    /// keeps dying young, so a broken app is retried forever without spinning.
    fn schedule_respawn(&mut self, slot: usize) {
        if self.slots[slot].respawn_pending {
            return;
        }
        let failures = self.slots[slot].failures;
        let delay = backoff(failures);
        if delay.is_zero() {
            self.spawn(slot);
            return;
        }
        tracing::warn!(
            slot,
            failures,
            "worker keeps dying young: respawning in {:.1}s",
            delay.as_secs_f64()
        );
        self.slots[slot].respawn_pending = true;
        let events = self.events.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = events.send(Event::Respawn { slot });
        });
    }

    fn drain(&mut self, id: WorkerId, reason: DrainReason) {
        if let Some(w) = self.workers.get_mut(&id) {
            if !matches!(w.state, WorkerState::Draining { .. }) {
                w.state = WorkerState::Draining {
                    since: Instant::now(),
                };
                w.send(ToWorker::Drain { reason });
            }
        }
    }

    /// SIGTERM: drain every worker, kill what is left after the graceful timeout.
    pub fn stop_graceful(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        tracing::info!(
            workers = self.workers.len(),
            "stopping gracefully (timeout {:?})",
            self.config.graceful_timeout
        );
        self.phase = Phase::Stopping { graceful: true };
        let ids: Vec<_> = self.workers.keys().copied().collect();
        for id in ids {
            match self.workers[&id].state {
                // Still importing: it has no requests to finish and does not read its channel yet.
                WorkerState::Starting => signal(self.workers[&id].pid, Signal::SIGKILL),
                _ => self.drain(id, DrainReason::Shutdown),
            }
        }
        let events = self.events.clone();
        let timeout = self.config.graceful_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let _ = events.send(Event::StopDeadline);
        });
    }

    /// SIGINT/SIGQUIT: kill every worker now.
    pub fn stop_quick(&mut self) {
        tracing::info!(workers = self.workers.len(), "stopping now");
        self.phase = Phase::Stopping { graceful: false };
        self.kill_all();
    }

    fn kill_all(&self) {
        for w in self.workers.values() {
            signal(w.pid, Signal::SIGKILL);
        }
    }

    /// The listeners, for logging at startup.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }
}

fn signal(pid: Pid, sig: Signal) {
    if let Err(e) = kill(pid, sig) {
        tracing::debug!(pid = pid.as_raw(), "kill({sig}) failed: {e}");
    }
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
fn run_channel(
    id: WorkerId,
    stream: tokio::net::UnixStream,
    mut commands: mpsc::UnboundedReceiver<ToWorker>,
    events: mpsc::UnboundedSender<Event>,
) {
    let (mut rd, mut wr) = stream.into_split();
    tokio::spawn(async move {
        loop {
            match read_frame::<_, ToMaster>(&mut rd).await {
                Ok(msg) => {
                    if events.send(Event::FromWorker(id, msg)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    if !matches!(e, FrameError::Closed) {
                        tracing::warn!(worker = %id, "control channel: {e}");
                    }
                    let _ = events.send(Event::ChannelClosed(id));
                    return;
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(msg) = commands.recv().await {
            if write_frame(&mut wr, &msg).await.is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_respawns_the_first_crash_at_once_then_doubles_up_to_a_cap() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(200));
        assert_eq!(backoff(50), MAX_BACKOFF);
    }
}
