//! What goes into the supervisor ([`Event`]) and what comes out ([`Effect`]).
//!
//! The supervisor never touches a process, a socket or a clock's sleep: it turns events into
//! effects, and the executor ([`super::executor`]) carries them out and reports back with more
//! events. That split is what lets every rule be unit-tested with paused time and no processes,
//! and what keeps the master's loop from ever blocking.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::command::{Command, Outcome, Responder};
use super::cron::JobId;
use super::daemons::DaemonId;
use super::generation::GenerationId;
use super::reaper::ExitKind;
use super::upgrade::UpgradeError;
use super::worker::WorkerId;
use crate::config::{Config, DaemonSpec, Invocation, WallClock};
use crate::protocol::scoreboard::CellLoad;
use crate::protocol::{DrainReason, ToMaster};

/// Something the supervisor reacts to.
#[derive(Debug)]
pub enum Event {
    /// An operator's command, with the caller to answer if there is one.
    Command(Command, Option<Responder>),
    /// The executor started a worker asked for by [`Effect::Spawn`].
    Spawned {
        /// Which.
        id: WorkerId,
        /// Its process id.
        pid: i32,
    },
    /// The executor could not start a worker (exec failed, fds ran out).
    SpawnFailed {
        /// Which.
        id: WorkerId,
        /// Why, in words that name the fix.
        error: String,
    },
    /// A worker said something.
    FromWorker(WorkerId, ToMaster),
    /// A worker's control channel closed (it is exiting or dead; the reaper will tell).
    ChannelClosed(WorkerId),
    /// The reaper collected a worker.
    Exited {
        /// Which.
        id: WorkerId,
        /// How it ended.
        kind: ExitKind,
    },
    /// A timer the supervisor set went off.
    Timer(Timer),
    /// The once-a-second sweep: heartbeats, systemd start-timeout extension.
    Tick,
    /// Time to tell systemd's watchdog we are alive (if we are).
    Watchdog,
    /// The new binary's `__upgrade-check` finished.
    PreflightDone {
        /// The binary checked.
        binary: PathBuf,
        /// Whether it passed.
        result: Result<(), UpgradeError>,
    },
    /// The in-place exec failed; this image keeps running.
    ExecFailed(UpgradeError),
    /// The configuration asked for by [`Effect::ReadConfig`], or why it cannot be used.
    ConfigRead(Result<Box<Config>, String>),
    /// The executor started an attached daemon asked for by [`Effect::StartDaemon`].
    DaemonStarted {
        /// Which.
        id: DaemonId,
        /// Its process id (and process group).
        pid: i32,
    },
    /// The executor could not start an attached daemon.
    DaemonStartFailed {
        /// Which.
        id: DaemonId,
        /// Why.
        error: String,
    },
    /// The reaper collected a child that is not a worker (an attached daemon's, if any
    /// daemon has that pid).
    OtherExited {
        /// Its pid.
        pid: i32,
        /// How it ended.
        kind: ExitKind,
    },
    /// A new minute of local time began (cron jobs are checked against it).
    Minute(WallClock),
    /// The executor started a cron run asked for by [`Effect::StartCronJob`].
    CronStarted {
        /// Which job.
        id: JobId,
        /// The run's pid (and process group).
        pid: i32,
    },
    /// The executor could not start a cron run.
    CronStartFailed {
        /// Which job.
        id: JobId,
        /// Why.
        error: String,
    },
    /// The once-a-second load sample, taken after [`Event::Tick`].
    Load {
        /// What each worker with a scoreboard cell posts there.
        workers: Vec<(WorkerId, CellLoad)>,
        /// Connections waiting in the TCP listeners' accept queues.
        accept_queue: u32,
    },
    /// The modification times [`Effect::StatFiles`] asked for, in order (`None`: missing).
    FilesSeen {
        /// Which daemon.
        id: DaemonId,
        /// The times.
        mtimes: Vec<Option<std::time::SystemTime>>,
    },
    /// A connection waits in a listener's queue while [`Effect::WatchListeners`] watches.
    ConnectionWaiting,
    /// A zygote's task reports (`--preload`); the executor consumes it before the supervisor
    /// could see it ([`super::executor::Executor::absorb`]).
    Zygote(super::zygote::News),
    /// A smart daemon's pidfile, read as [`Effect::ReadPidfile`] asked: the pid in it, if that
    /// process is alive.
    PidfileRead {
        /// Which daemon.
        id: DaemonId,
        /// The live pid, or `None` (no file, no number, no such process).
        alive: Option<i32>,
    },
}

/// A timer's purpose. Every timer names what it is about; one naming a worker, slot or run that
/// is gone by the time it fires is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer {
    /// A slot's respawn backoff elapsed.
    Respawn {
        /// Which slot.
        slot: usize,
        /// The slot's pending-respawn token when the timer was set.
        token: u64,
    },
    /// A worker's `--boot-timeout` elapsed.
    BootDeadline(WorkerId),
    /// A draining worker's `--graceful-timeout` elapsed.
    DrainDeadline(WorkerId),
    /// A stuck worker's grace after its replacement became ready elapsed.
    KillStuck(WorkerId),
    /// The upgrade's reply has had time to leave: re-execute now.
    Exec(PathBuf),
    /// A daemon's restart backoff elapsed.
    DaemonRestart {
        /// Which daemon.
        id: DaemonId,
        /// The daemon's pending-restart token when the timer was set.
        token: u64,
    },
    /// A graceful stop's `--graceful-timeout` elapsed: daemons and cron jobs still running get
    /// SIGKILL.
    KillSideProcesses,
    /// A cron run's `--cron-harakiri` elapsed.
    CronHarakiri {
        /// The run's pid.
        pid: i32,
    },
}

/// Something the executor must do.
#[derive(Debug)]
pub enum Effect {
    /// Start a worker process for `generation` in `slot`.
    Spawn {
        /// Its id (already in the table, `Starting`).
        id: WorkerId,
        /// Its generation.
        generation: GenerationId,
        /// The generation's configuration.
        config: Arc<Config>,
        /// Whether other workers serve beside it.
        multiprocess: bool,
        /// Its request limit with jitter (`--max-requests`).
        max_requests: Option<u64>,
    },
    /// Tell a worker to drain.
    Drain(WorkerId, DrainReason),
    /// SIGKILL a worker.
    Kill(WorkerId),
    /// Send [`Event::Timer`] after a delay.
    After(Duration, Timer),
    /// A message for systemd's notify socket (`READY=1`, `STATUS=...`).
    Notify(String),
    /// Answer a caller.
    Reply(Responder, Outcome),
    /// Run `binary __upgrade-check` off the loop; the answer comes back as
    /// [`Event::PreflightDone`].
    Preflight(PathBuf),
    /// Re-execute `binary` in place with the supervisor's handover.
    Exec(PathBuf),
    /// Resolve the configuration again from this invocation, off the loop; the answer comes
    /// back as [`Event::ConfigRead`].
    ReadConfig(Invocation),
    /// Every worker is reaped after a stop: the master leaves its loop and exits with this
    /// status (0, or [`super::EXIT_BOOT_FAILED`] when the app did not boot at first start).
    Exit(i32),
    /// Start an attached daemon: `/bin/sh -c` its command in a process group of its own, its
    /// output into the log; the pid comes back as [`Event::DaemonStarted`].
    StartDaemon {
        /// Which.
        id: DaemonId,
        /// What to run.
        spec: DaemonSpec,
    },
    /// Send `signal` to a daemon or a cron run: to its whole process group when `group` (a
    /// child of ours), else to the pid alone (a smart daemon running on its own).
    SignalProcess {
        /// The pid (and, with `group`, the process group).
        pid: i32,
        /// Whether to signal the group.
        group: bool,
        /// The signal.
        signal: i32,
    },
    /// Start a run of a cron job, as a daemon is started; the pid comes back as
    /// [`Event::CronStarted`].
    StartCronJob {
        /// Which job.
        id: JobId,
        /// Its command line.
        command: String,
    },
    /// Look up the modification times of a daemon's `touch` files off the loop; they come
    /// back as [`Event::FilesSeen`].
    StatFiles {
        /// Which daemon.
        id: DaemonId,
        /// The files.
        paths: Vec<PathBuf>,
    },
    /// Watch every listener for a waiting connection without accepting it (cheap mode);
    /// the first one comes back as [`Event::ConnectionWaiting`], once. Replaces any watch
    /// already running.
    WatchListeners,
    /// Stop the watch [`Effect::WatchListeners`] started, if it still runs.
    UnwatchListeners,
    /// Open the master's log files again and tell every worker to (SIGUSR1).
    ReopenLogs,
    /// The generation is forgotten (it has no workers and gets no more): its zygote, if it
    /// has one (`--preload`), can go.
    Retire(GenerationId),
    /// Read a smart daemon's pidfile off the loop and check whether its pid is alive; the
    /// answer comes back as [`Event::PidfileRead`].
    ReadPidfile {
        /// Which daemon.
        id: DaemonId,
        /// The pidfile.
        path: PathBuf,
    },
}
