//! The executor: carries out the supervisor's [`Effect`]s and owns everything that is not a
//! decision: worker processes and their control channels, the scoreboard cells, timers, the
//! systemd socket, the upgrade check and exec. What it learns (a pid, a failed spawn, a reaped
//! child) goes back to the supervisor as an [`Event`].
//!
//! Nothing here waits on the loop: timers, channel I/O and the upgrade check run as tasks that
//! report back through the event channel.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use super::daemon_process::Side;
use super::effect::{Effect, Event};
use super::listener::Listener;
use super::reaper::{ExitKind, reap};
use super::spawn::spawn_worker;
use super::supervisor::Supervisor;
use super::upgrade::{self, HandedListener, Handover, PREFLIGHT_TIMEOUT};
use super::worker::WorkerId;
use super::zygote::{ForkRequest, News, Zygotes};
use crate::config::WorkerConfig;
use crate::protocol::scoreboard::Cells;
use crate::protocol::{Boot, Channel, FrameError, PROTOCOL_VERSION, ToMaster, ToWorker};
use crate::systemd::Notifier;

/// The OS side of one worker.
struct Process {
    /// Its pid, signalled by [`Effect::Kill`].
    pid: Pid,
    /// Commands to it, written by its channel task.
    commands: mpsc::UnboundedSender<ToWorker>,
    /// The master's end of its channel, handed over by an in-place upgrade.
    control_fd: RawFd,
    /// Its scoreboard cell, freed when it exits (none for workers adopted in an upgrade: theirs
    /// are on the old master's page).
    cell: Option<usize>,
}

/// Who a child process is, so the one reaper can route its exit.
enum Owner {
    /// A worker.
    Worker(WorkerId),
    /// The new binary's `__upgrade-check`, whose exit its checking task awaits.
    Preflight(oneshot::Sender<ExitKind>),
    /// An attached daemon or a cron run: its exit goes to the supervisor by pid.
    Daemon,
    /// A `--preload` zygote: the workers still waiting on it fail with its exit status.
    Zygote {
        /// Its generation, for the log.
        generation: u64,
        /// Which zygote.
        instance: u64,
    },
}

/// How many exits of unknown children are remembered: a worker forked by a zygote is a
/// child of the master before the master learns its pid, and could die in between.
const EARLY_EXITS: usize = 64;

/// Performs effects; see the module doc.
pub struct Executor {
    /// The sockets held for life; their fds are sent to every worker.
    listeners: Vec<Listener>,
    /// The page where workers post their load to balance accepts; `None` if it could not be
    /// created (workers then accept first-come first-served).
    cells: Option<Cells>,
    /// Live workers' OS handles.
    processes: HashMap<WorkerId, Process>,
    /// Every child by pid.
    owners: HashMap<i32, Owner>,
    /// Where tasks and timers send their events.
    events: mpsc::UnboundedSender<Event>,
    /// systemd's notify socket, when running under systemd.
    notifier: Option<Notifier>,
    /// The control socket's fd, handed over by an upgrade.
    control_fd: Option<RawFd>,
    /// The status the master exits with, once the supervisor has said so ([`Effect::Exit`]).
    exit: Option<i32>,
    /// The first `READY=1` has gone out (gunicorn's `when_ready` runs once).
    ready_seen: bool,
    /// The cheap-mode watch on the listeners, while it runs.
    watch: Option<tokio::task::AbortHandle>,
    /// `--preload`: each generation's zygote and the workers waiting on them.
    zygotes: Zygotes,
    /// The latest exits of children nobody owned (see [`EARLY_EXITS`]).
    early_exits: VecDeque<(i32, ExitKind)>,
}

impl Executor {
    /// An executor starting workers on `listeners`.
    pub fn new(
        listeners: Vec<Listener>,
        events: mpsc::UnboundedSender<Event>,
        notifier: Option<Notifier>,
        control_fd: Option<RawFd>,
    ) -> Executor {
        Executor {
            listeners,
            cells: Cells::new()
                .inspect_err(|e| {
                    tracing::warn!("cannot create the scoreboard ({e}): connections will not be balanced across workers")
                })
                .ok(),
            processes: HashMap::new(),
            owners: HashMap::new(),
            events,
            notifier,
            control_fd,
            exit: None,
            ready_seen: false,
            watch: None,
            zygotes: Zygotes::default(),
            early_exits: VecDeque::new(),
        }
    }

    /// The once-a-second load sample ([`Event::Load`]): what each worker posts on the
    /// scoreboard, and the connections in the TCP listeners' accept queues.
    pub fn load(&self) -> Event {
        let workers = match &self.cells {
            Some(cells) => self
                .processes
                .iter()
                .filter_map(|(id, p)| Some((*id, cells.sample(p.cell?))))
                .collect(),
            None => Vec::new(),
        };
        let accept_queue = self
            .listeners
            .iter()
            .filter_map(super::watch::queued)
            .fold(0u32, u32::saturating_add);
        Event::Load {
            workers,
            accept_queue,
        }
    }

    fn unwatch(&mut self) {
        if let Some(task) = self.watch.take() {
            task.abort();
        }
    }

    /// Runs the gunicorn arbiter hooks the moment `message` marks (see [`super::server_hooks`]).
    fn server_hooks(&mut self, message: &str, sup: &Supervisor) {
        for pid in super::server_hooks::at_notify(&sup.base, message, &mut self.ready_seen) {
            self.owners.insert(pid, Owner::Daemon);
        }
    }

    /// The status to exit with, once the supervisor has decided the master is done.
    pub fn exit_status(&self) -> Option<i32> {
        self.exit
    }

    /// Carries out one effect; returns what it learned at once (to be handled before anything
    /// else happens).
    pub fn execute(&mut self, effect: Effect, sup: &Supervisor) -> Option<Event> {
        match effect {
            Effect::Spawn {
                id,
                generation,
                config,
                multiprocess,
                max_requests,
            } => {
                let worker = WorkerConfig {
                    multiprocess,
                    ..config.worker.clone()
                };
                let python = config
                    .python
                    .clone()
                    .unwrap_or_else(super::generation::own_python);
                if worker.preload.is_some() {
                    return self.fork(id, generation, &python, worker, &config.env, max_requests);
                }
                return Some(self.spawn(
                    id,
                    generation,
                    &python,
                    worker,
                    &config.env,
                    max_requests,
                ));
            }
            Effect::Drain(id, reason) => {
                if let Some(p) = self.processes.get(&id) {
                    // A worker whose channel is gone is about to be reaped: nothing to do.
                    let _ = p.commands.send(ToWorker::Drain { reason });
                }
            }
            Effect::Kill(id) => {
                if let Some(p) = self.processes.get(&id) {
                    signal(p.pid, Signal::SIGKILL);
                } else if let Some((pending, zygote)) = self.zygotes.cancel(id) {
                    // Not forked yet: it ends here, as if killed (its fork, if it comes, is
                    // killed on arrival).
                    self.release_cell(pending.cell);
                    if let Some(pid) = zygote {
                        tracing::warn!(worker = %id, pid, "killing the zygote, which had not forked this worker yet (the next worker of its generation starts a new one)");
                        signal(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                    return Some(Event::Exited {
                        id,
                        kind: ExitKind::Signal(libc::SIGKILL),
                    });
                }
            }
            Effect::ReopenLogs => {
                crate::logging::reopen();
                for p in self.processes.values() {
                    let _ = p.commands.send(ToWorker::ReopenLogs);
                }
            }
            Effect::Retire(generation) => {
                if let Some(pid) = self.zygotes.retire(generation) {
                    tracing::info!(
                        generation,
                        pid,
                        "killing the zygote of a retired generation in its import"
                    );
                    signal(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            Effect::After(delay, timer) => {
                let events = self.events.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = events.send(Event::Timer(timer));
                });
            }
            Effect::Notify(message) => {
                if let Some(n) = &self.notifier {
                    n.send(&message);
                }
                self.server_hooks(&message, sup);
            }
            Effect::Reply(responder, outcome) => responder.send(outcome),
            Effect::Preflight(binary) => {
                if let Some(event) = self.preflight(binary) {
                    return Some(event);
                }
            }
            Effect::Exec(binary) => {
                let handover = self.complete(sup.handover());
                return Some(Event::ExecFailed(upgrade::exec(&binary, &handover)));
            }
            Effect::ReadConfig(inv) => {
                let events = self.events.clone();
                tokio::task::spawn_blocking(move || {
                    let result = crate::config::load(&inv)
                        .map(Box::new)
                        .map_err(|e| e.to_string());
                    let _ = events.send(Event::ConfigRead(result));
                });
            }
            Effect::Exit(status) => self.exit = Some(status),
            Effect::StartCronJob { id, command } => {
                let how = super::daemon_process::Launch {
                    dir: sup.base.worker.chdir.as_deref(),
                    ..Default::default()
                };
                return Some(
                    match super::daemon_process::start(&command, Side::Cron, how) {
                        Ok(pid) => {
                            self.owners.insert(pid, Owner::Daemon);
                            Event::CronStarted { id, pid }
                        }
                        Err(e) => Event::CronStartFailed {
                            id,
                            error: format!("/bin/sh -c {command:?}: {e}"),
                        },
                    },
                );
            }
            Effect::StartDaemon { id, spec } => {
                let keys = &spec.keys;
                let how = super::daemon_process::Launch {
                    dir: keys.chdir.as_deref().or(sup.base.worker.chdir.as_deref()),
                    stdin: keys.stdin,
                    uid: keys.uid,
                    gid: keys.gid,
                    outlives_master: false,
                };
                return Some(
                    match super::daemon_process::start(&spec.command, Side::Daemon, how) {
                        Ok(pid) => {
                            self.owners.insert(pid, Owner::Daemon);
                            if let Some(smart) = spec.smart.as_ref().filter(|s| s.write_pidfile) {
                                super::daemon_process::write_pidfile(&smart.pidfile, pid);
                            }
                            Event::DaemonStarted { id, pid }
                        }
                        Err(e) => Event::DaemonStartFailed {
                            id,
                            error: format!("/bin/sh -c {:?}: {e}", spec.command),
                        },
                    },
                );
            }
            Effect::SignalProcess { pid, group, signal } => {
                let target = if group { -pid } else { pid };
                if pid > 1 {
                    if let Ok(sig) = Signal::try_from(signal) {
                        self::signal(Pid::from_raw(target), sig);
                    }
                }
            }
            Effect::ReadPidfile { id, path } => {
                super::daemon_process::read_pidfile(id, path, self.events.clone());
            }
            Effect::StatFiles { id, paths } => {
                let events = self.events.clone();
                tokio::task::spawn_blocking(move || {
                    let mtimes = paths
                        .iter()
                        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
                        .collect();
                    let _ = events.send(Event::FilesSeen { id, mtimes });
                });
            }
            Effect::WatchListeners => {
                self.unwatch();
                self.watch = super::watch::watch(&self.listeners, self.events.clone());
            }
            Effect::UnwatchListeners => self.unwatch(),
        }
        None
    }

    /// A worker's `Boot`, with its fds and the scoreboard cell taken for it.
    fn boot(
        &mut self,
        id: WorkerId,
        generation: u64,
        config: WorkerConfig,
        max_requests: Option<u64>,
    ) -> (Boot, Vec<RawFd>, Option<usize>) {
        let mut fds: Vec<_> = self.listeners.iter().map(Listener::raw_fd).collect();
        let cell = self.cells.as_mut().and_then(Cells::take);
        if let (Some(cells), Some(_)) = (&self.cells, cell) {
            fds.push(cells.fd().as_raw_fd());
        }
        let boot = Boot {
            protocol: PROTOCOL_VERSION,
            worker_id: id.0,
            generation,
            config,
            listeners: self.listeners.iter().map(|l| l.addr.clone()).collect(),
            protocols: self.listeners.iter().map(|l| l.protocol).collect(),
            max_requests,
            scoreboard_cell: cell,
            zygote: false,
        };
        (boot, fds, cell)
    }

    /// Gets a worker of a `--preload` generation from its zygote, starting the zygote first if
    /// there is none; the pid comes later, through [`Executor::absorb`].
    fn fork(
        &mut self,
        id: WorkerId,
        generation: u64,
        python: &Path,
        config: WorkerConfig,
        env: &[(String, String)],
        max_requests: Option<u64>,
    ) -> Option<Event> {
        let zygote_boot = Boot {
            protocol: PROTOCOL_VERSION,
            worker_id: 0,
            generation,
            config: config.clone(),
            listeners: Vec::new(),
            protocols: Vec::new(),
            max_requests: None,
            scoreboard_cell: None,
            zygote: true,
        };
        let (boot, fds, cell) = self.boot(id, generation, config, max_requests);
        let fds = boot.fd_roles().into_iter().zip(fds).collect();
        let request = ForkRequest { id, boot, fds };
        let start = || {
            spawn_worker(python, &zygote_boot, &[], env)
                .map(|s| (s.pid.as_raw(), s.control))
                .map_err(|e| format!("cannot start the zygote: {e}"))
        };
        match self
            .zygotes
            .fork(generation, request, cell, &self.events, start)
        {
            Ok(Some((pid, instance))) => {
                tracing::info!(
                    generation,
                    pid,
                    "zygote started: it imports the app once for this generation's workers (--preload)"
                );
                self.owners.insert(
                    pid,
                    Owner::Zygote {
                        generation,
                        instance,
                    },
                );
                None
            }
            Ok(None) => None,
            Err(error) => {
                self.release_cell(cell);
                Some(Event::SpawnFailed { id, error })
            }
        }
    }

    /// Consumes what only the executor acts on (a zygote's news), turning it into what the
    /// supervisor knows: a spawned worker, a failed spawn, a worker's `BootFailed`. Every
    /// other event passes through.
    pub fn absorb(&mut self, event: Event) -> Vec<Event> {
        let Event::Zygote(news) = event else {
            return vec![event];
        };
        match news {
            News::Ready {
                instance,
                import_ms,
            } => {
                tracing::debug!(instance, import_ms, "zygote ready");
                self.zygotes.mark_ready(instance);
                Vec::new()
            }
            // Each waiting worker failed as it would have failed importing by itself; each
            // exits with the zygote's status when the zygote is reaped.
            News::BootFailed { instance, failure } => self
                .zygotes
                .waiting_on(instance)
                .into_iter()
                .map(|id| Event::FromWorker(id, ToMaster::BootFailed(failure.clone())))
                .collect(),
            News::Forked { id, pid, control } => {
                let Some(pending) = self.zygotes.take_pending(id) else {
                    tracing::debug!(worker = %id, pid, "a cancelled worker was forked: killing it");
                    signal(Pid::from_raw(pid), Signal::SIGKILL);
                    return Vec::new();
                };
                let (tx, rx) = mpsc::unbounded_channel();
                let control_fd = control.as_raw_fd();
                run_channel(id, control, rx, self.events.clone());
                let mut out = vec![Event::Spawned { id, pid }];
                if let Some(at) = self.early_exits.iter().position(|(p, _)| *p == pid) {
                    let (_, kind) = self
                        .early_exits
                        .remove(at)
                        .unwrap_or((pid, ExitKind::Code(0)));
                    self.release_cell(pending.cell);
                    out.push(Event::Exited { id, kind });
                    return out;
                }
                self.owners.insert(pid, Owner::Worker(id));
                self.processes.insert(
                    id,
                    Process {
                        pid: Pid::from_raw(pid),
                        commands: tx,
                        control_fd,
                        cell: pending.cell,
                    },
                );
                out
            }
            News::ForkFailed { id, error } => match self.zygotes.take_pending(id) {
                Some(pending) => {
                    self.release_cell(pending.cell);
                    vec![Event::SpawnFailed { id, error }]
                }
                None => Vec::new(),
            },
        }
    }

    fn spawn(
        &mut self,
        id: WorkerId,
        generation: u64,
        python: &Path,
        config: WorkerConfig,
        env: &[(String, String)],
        max_requests: Option<u64>,
    ) -> Event {
        let (boot, fds, cell) = self.boot(id, generation, config, max_requests);
        match spawn_worker(python, &boot, &fds, env) {
            Ok(spawned) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let control_fd = spawned.control.as_raw_fd();
                run_channel(id, spawned.control, rx, self.events.clone());
                self.owners.insert(spawned.pid.as_raw(), Owner::Worker(id));
                self.processes.insert(
                    id,
                    Process {
                        pid: spawned.pid,
                        commands: tx,
                        control_fd,
                        cell,
                    },
                );
                Event::Spawned {
                    id,
                    pid: spawned.pid.as_raw(),
                }
            }
            Err(e) => {
                self.release_cell(cell);
                Event::SpawnFailed {
                    id,
                    error: e.to_string(),
                }
            }
        }
    }

    fn release_cell(&mut self, cell: Option<usize>) {
        if let (Some(cells), Some(cell)) = (self.cells.as_mut(), cell) {
            cells.release(cell);
        }
    }

    /// Collects exited children: workers become [`Event::Exited`]; the upgrade check's exit
    /// goes to its task; anything else (a daemon, an orphaned grandchild: we are a subreaper)
    /// becomes [`Event::OtherExited`].
    pub fn reap(&mut self, sup: &Supervisor) -> Vec<Event> {
        let mut out = Vec::new();
        for (pid, kind) in reap() {
            match self.owners.remove(&pid.as_raw()) {
                Some(Owner::Worker(id)) => {
                    if let Some(p) = self.processes.remove(&id) {
                        self.release_cell(p.cell);
                    }
                    if let Some(hook) =
                        super::server_hooks::child_exit(&sup.base, pid.as_raw(), id.0)
                    {
                        self.owners.insert(hook, Owner::Daemon);
                    }
                    out.push(Event::Exited { id, kind });
                }
                Some(Owner::Preflight(tx)) => {
                    let _ = tx.send(kind);
                }
                Some(Owner::Zygote {
                    generation,
                    instance,
                }) => {
                    let waiting = self.zygotes.waiting_on(instance);
                    if waiting.is_empty() && kind == ExitKind::Code(0) {
                        tracing::info!(generation, pid = pid.as_raw(), "zygote exited");
                    } else {
                        tracing::warn!(
                            generation,
                            pid = pid.as_raw(),
                            waiting = waiting.len(),
                            "zygote exited ({kind})"
                        );
                    }
                    self.zygotes.exited(instance);
                    for id in waiting {
                        if let Some(pending) = self.zygotes.take_pending(id) {
                            self.release_cell(pending.cell);
                        }
                        out.push(Event::Exited { id, kind });
                    }
                }
                None => {
                    if self.early_exits.len() == EARLY_EXITS {
                        self.early_exits.pop_front();
                    }
                    self.early_exits.push_back((pid.as_raw(), kind));
                    out.push(Event::OtherExited {
                        pid: pid.as_raw(),
                        kind,
                    });
                }
                // A daemon's, or an orphaned grandchild's (we are a subreaper): the supervisor
                // knows which.
                Some(Owner::Daemon) => out.push(Event::OtherExited {
                    pid: pid.as_raw(),
                    kind,
                }),
            }
        }
        out
    }

    /// Starts the upgrade check; its verdict arrives as [`Event::PreflightDone`]. Returns the
    /// verdict at once if the binary cannot even be started.
    fn preflight(&mut self, binary: PathBuf) -> Option<Event> {
        let mut child = match upgrade::start_preflight(&binary) {
            Ok(c) => c,
            Err(e) => {
                return Some(Event::PreflightDone {
                    binary,
                    result: Err(e),
                });
            }
        };
        let pid = child.id() as i32;
        let (exit_tx, exit_rx) = oneshot::channel();
        self.owners.insert(pid, Owner::Preflight(exit_tx));
        let stdout = child.stdout.take();
        // The reaper collects its status; the handle is dropped unwaited.
        drop(child);
        let events = self.events.clone();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(
                PREFLIGHT_TIMEOUT,
                check_output(stdout, exit_rx),
            )
            .await
            {
                Ok(Ok((exit, out))) => upgrade::judge_preflight(&binary, exit, &out),
                Ok(Err(why)) => Err(upgrade::preflight_failed(&binary, why)),
                Err(_) => {
                    signal(Pid::from_raw(pid), Signal::SIGKILL);
                    Err(upgrade::preflight_failed(
                        &binary,
                        format!("no answer within {}s", PREFLIGHT_TIMEOUT.as_secs()),
                    ))
                }
            };
            let _ = events.send(Event::PreflightDone { binary, result });
        });
        None
    }

    /// Adds the fds to the supervisor's handover.
    fn complete(&self, mut handover: Handover) -> Handover {
        handover.listeners = self
            .listeners
            .iter()
            .map(|l| HandedListener {
                addr: l.addr.clone(),
                fd: l.raw_fd(),
                systemd_name: l.systemd_name.clone(),
                protocol: l.protocol,
            })
            .collect();
        handover.control_fd = self.control_fd;
        handover
            .workers
            .retain_mut(|w| match self.processes.get(&WorkerId(w.id)) {
                Some(p) => {
                    w.control_fd = p.control_fd;
                    true
                }
                None => false,
            });
        handover
    }

    /// In the new image of an upgrade: takes over the running workers' channels. Returns the
    /// workers it could adopt; the others are left to the reaper and replaced by the reload.
    pub fn adopt(&mut self, handover: &Handover) -> Vec<WorkerId> {
        let mut adopted = Vec::new();
        for w in &handover.workers {
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
            self.owners.insert(w.pid, Owner::Worker(id));
            self.processes.insert(
                id,
                Process {
                    pid: Pid::from_raw(w.pid),
                    commands: tx,
                    control_fd: w.control_fd,
                    cell: None,
                },
            );
            adopted.push(id);
        }
        adopted
    }

    /// The listeners, for logging at startup.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }
}

/// Reads the check's whole output (bounded), then its exit status from the reaper.
async fn check_output(
    stdout: Option<std::process::ChildStdout>,
    exit: oneshot::Receiver<ExitKind>,
) -> Result<(ExitKind, String), String> {
    let mut out = Vec::new();
    if let Some(stdout) = stdout {
        let fd = std::os::fd::OwnedFd::from(stdout);
        let pipe =
            tokio::net::unix::pipe::Receiver::from_owned_fd(fd).map_err(|e| e.to_string())?;
        // A check line is short; anything past 4 KiB is not an answer.
        pipe.take(4096)
            .read_to_end(&mut out)
            .await
            .map_err(|e| e.to_string())?;
    }
    let exit = exit
        .await
        .map_err(|_| "its exit status was lost".to_string())?;
    Ok((exit, String::from_utf8_lossy(&out).into_owned()))
}

fn signal(pid: Pid, sig: Signal) {
    if let Err(e) = kill(pid, sig) {
        tracing::debug!(pid = pid.as_raw(), "kill({sig}) failed: {e}");
    }
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
