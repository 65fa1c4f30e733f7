//! Requests and replies on the control socket. Stable field names: `--json` prints them as
//! they are, and deploy tooling parses them.

use serde::{Deserialize, Serialize};

use crate::config::ReloadStrategy;

/// What the CLI asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Start a reload; with `wait`, reply when it is over.
    Reload {
        /// Override `--reload-strategy` for this reload.
        strategy: Option<ReloadStrategy>,
        /// Reply after promotion and the old workers' exit, or after the rollback.
        wait: bool,
    },
    /// Describe generations, workers and recent reloads.
    Status,
    /// Stop gracefully, as SIGTERM does.
    Stop,
    /// Re-execute the master binary in place (the same PID), then replace the workers.
    Upgrade {
        /// The new binary; default: the path the master was started from.
        binary: Option<std::path::PathBuf>,
    },
    /// Add (`1`) or remove (`-1`) a worker.
    Workers {
        /// +1 or -1.
        delta: i32,
    },
}

/// The outcome of one reload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Reload sequence number.
    pub reload: u64,
    /// The generation that was serving.
    pub from: u64,
    /// The generation started by this reload.
    pub generation: u64,
    /// Strategy used.
    pub strategy: ReloadStrategy,
    /// True if the new generation serves; false if it was rolled back.
    pub ok: bool,
    /// Milliseconds from start to promotion (or rollback).
    pub took_ms: u64,
    /// Boot time of each new worker, in ms.
    pub boot_ms: Vec<u64>,
    /// Why it was rolled back.
    pub reason: Option<String>,
    /// The Python traceback of the failure, if any.
    pub traceback: Option<String>,
    /// Settings the re-read configuration changed that the reload could not apply (the
    /// listeners, say, which the master holds for life).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The cumulative counters behind `--metrics`: they only grow over the master's life (exited
/// workers' counts are kept).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MetricsReport {
    /// Every worker's request counters added up, live and exited.
    pub totals: crate::protocol::Stats,
    /// Reloads promoted.
    pub reloads_promoted: u64,
    /// Reloads rolled back.
    pub reloads_rolled_back: u64,
    /// How long reloads took, start to promotion or rollback.
    pub reload_seconds: crate::metrics::histogram::Histogram,
    /// How long new workers took to become ready.
    pub boot_seconds: crate::metrics::histogram::Histogram,
    /// Workers that died without being asked to (while booting or serving).
    pub crashes: u64,
    /// Requests that ran past `--harakiri`.
    pub harakiri: u64,
}

/// One worker in a status reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerReport {
    /// Worker id.
    pub id: u64,
    /// OS process id.
    pub pid: i32,
    /// Its generation.
    pub generation: u64,
    /// `starting`, `ready`, `draining` or `discarded`.
    pub state: String,
    /// Requests it has finished.
    pub requests: u64,
    /// Seconds since it was spawned.
    pub uptime_s: f64,
    /// Resident memory in KiB, from its last heartbeat.
    #[serde(default)]
    pub rss_kib: u64,
    /// Open client connections, from its last heartbeat.
    #[serde(default)]
    pub connections: u64,
    /// Log lines it dropped because a log file could not keep up.
    #[serde(default)]
    pub log_dropped: u64,
    /// Requests it has started and not finished.
    #[serde(default)]
    pub in_flight: u64,
    /// Response body bytes it sent.
    #[serde(default)]
    pub tx_bytes: u64,
    /// Microseconds it spent on finished requests.
    #[serde(default)]
    pub busy_us: u64,
    /// Its responses with a 5xx status.
    #[serde(default)]
    pub errors_5xx: u64,
    /// When it was started, in seconds since the epoch.
    #[serde(default)]
    pub started_unix: u64,
    /// Workers its slot had before it.
    #[serde(default)]
    pub respawns: u64,
    /// Its requests that ran past `--harakiri`.
    #[serde(default)]
    pub harakiri_count: u64,
    /// Its Python threads.
    #[serde(default)]
    pub threads: usize,
    /// Its requests waiting for a free Python thread (sampled once a second).
    #[serde(default)]
    pub queued: u64,
}

/// The status reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// Master PID.
    pub pid: u32,
    /// The generation behind the server.
    pub serving: u64,
    /// Configured worker count.
    pub workers_wanted: usize,
    /// True once every slot of the first generation has been ready (systemd's `READY=1`):
    /// from then on the server serves, whatever reloads do. Tests and deploy tools wait on this.
    #[serde(default)]
    pub ready: bool,
    /// The listening sockets as bound, e.g. `127.0.0.1:41234` (a requested port 0 shows the
    /// kernel's choice) or `unix:/run/app.sock`.
    #[serde(default)]
    pub listeners: Vec<String>,
    /// A reload in progress, as "reload N -> generation G" (or "reload N: reading the
    /// configuration" before its generation starts).
    pub reloading: Option<String>,
    /// Every worker process.
    pub workers: Vec<WorkerReport>,
    /// Recent reloads, oldest first.
    pub reloads: Vec<ReloadReport>,
    /// Slots whose workers keep dying young (respawned with backoff).
    pub crash_loops: Vec<CrashLoop>,
    /// In-place upgrades of the master binary so far.
    #[serde(default)]
    pub upgrades: u64,
    /// Why the last upgrade attempt failed, if it did.
    #[serde(default)]
    pub upgrade_error: Option<String>,
    /// Attached daemons (`--attach-daemon` and the smart kinds).
    #[serde(default)]
    pub daemons: Vec<DaemonReport>,
    /// Cron jobs (`--cron`, `--unique-cron`).
    #[serde(default)]
    pub crons: Vec<CronReport>,
    /// How the worker count moves (`--cheap`, `--idle`, `--cheaper`).
    #[serde(default)]
    pub scaling: ScalingReport,
    /// Cumulative counters (`--metrics`).
    #[serde(default)]
    pub metrics: MetricsReport,
}

/// Cheap, idle and cheaper mode in a status reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScalingReport {
    /// No workers run until the next connection (cheap mode).
    pub asleep: bool,
    /// Seconds asleep so far.
    pub asleep_s: Option<f64>,
    /// `--idle` in seconds, if set.
    pub idle_s: Option<f64>,
    /// Seconds without a request so far (awake, with `--idle`).
    pub quiet_s: Option<f64>,
    /// `--cheaper`'s bounds and algorithm, if set.
    pub cheaper: Option<CheaperReport>,
    /// Requests waiting at the last sample: connections in the TCP listeners' accept queues,
    /// plus requests workers have read that no Python thread has taken yet.
    pub queued: u32,
}

/// `--cheaper` in a status reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheaperReport {
    /// The fewest workers.
    pub min: usize,
    /// The most workers (`--workers`).
    pub max: usize,
    /// `spare` or `backlog`.
    pub algo: String,
}

/// One cron job in a status reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CronReport {
    /// Its schedule, as written.
    pub schedule: String,
    /// Its command line.
    pub command: String,
    /// `unique-cron`.
    pub unique: bool,
    /// Pids of its runs under way.
    pub running: Vec<i32>,
    /// Runs started so far.
    pub runs: u64,
    /// Runs skipped because the previous one still ran (`unique-cron`).
    pub skipped: u64,
    /// How the last run ended.
    pub last_exit: Option<String>,
    /// How long the last run took, in milliseconds.
    pub last_duration_ms: Option<u64>,
}

/// One attached daemon in a status reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonReport {
    /// The option that configures it: `attach-daemon`, `smart-attach-daemon` or
    /// `smart-attach-daemon2`.
    pub kind: String,
    /// Its command line.
    pub command: String,
    /// `running`, `running (detached)`, `starting`, `checking`, `waiting to restart`,
    /// `stopping` or `stopped`.
    pub state: String,
    /// Its process id, while it has one.
    pub pid: Option<i32>,
    /// Seconds since its current process started (`None` for one running on its own, or not
    /// at all).
    pub uptime_s: Option<f64>,
    /// Times it was started again after it ended (restarts for a reload do not count).
    pub restarts: u64,
    /// How its last process ended.
    pub last_exit: Option<String>,
}

/// A slot in a crash loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrashLoop {
    /// The slot.
    pub slot: usize,
    /// Consecutive early deaths.
    pub failures: u32,
    /// Why the last one died.
    pub last_error: String,
}

/// One vassal of an emperor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VassalReport {
    /// Its config file.
    pub config: std::path::PathBuf,
    /// Its master's pid, while it has one.
    pub pid: Option<i32>,
    /// `starting`, `running`, `reloading`, `stopping` or `waiting to restart`.
    pub state: String,
    /// Times it was started again after it died.
    pub restarts: u64,
    /// Seconds since its current process started.
    pub uptime_s: Option<f64>,
    /// How its last process ended.
    pub last_exit: Option<String>,
}

/// An emperor's status: what it watches and every vassal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmperorReport {
    /// The emperor's pid.
    pub pid: u32,
    /// The directories (or globs) it scans.
    pub dirs: Vec<std::path::PathBuf>,
    /// Every vassal, by config path.
    pub vassals: Vec<VassalReport>,
}

/// The master's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// A reload started (or was queued behind a running one) and the CLI did not wait.
    ReloadStarted {
        /// What happened, in words.
        message: String,
    },
    /// A waited-for reload is over.
    Reload(ReloadReport),
    /// Status.
    Status(StatusReport),
    /// An emperor's status.
    Emperor(EmperorReport),
    /// Done.
    Ok {
        /// What happened, in words.
        message: String,
    },
    /// Refused.
    Error {
        /// Why, and what to do.
        message: String,
    },
}
