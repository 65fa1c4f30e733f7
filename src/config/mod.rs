//! Configuration shared by both sides of the process boundary.
//!
//! The master validates the command line into a [`Config`] once. Each worker receives only the
//! [`WorkerConfig`] part, in its `Boot` message, so a worker never parses flags or reads the
//! environment for settings, and never sees the master's own paths or policies.

pub mod address;
pub mod app;
pub mod argv;
pub mod build;
pub mod cli;
pub mod cron;
pub mod daemon;
pub mod dialect;
pub mod entry;
pub mod gunicorn;
pub mod help;
pub mod native;
pub mod option;
pub mod report;
pub mod resolve;
pub mod scaling;
pub mod static_files;
pub mod uwsgi;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http::forwarded::TrustedProxies;

pub use address::{Endpoint, ListenAddr, Protocol};
pub use app::{AppError, AppSource, AppSpec, Mount};
pub use build::emperor::EmperorConfig;
pub use cli::{Cli, Command, ControlArgs, LogFormat, ReloadStrategy};
pub use cron::{CronSpec, WallClock};
pub use daemon::{DaemonSpec, Smart};
pub use resolve::Invocation;
pub use scaling::{Cheaper, CheaperAlgo, Scaling};
pub use static_files::StaticFiles;

/// Request size limits; exceeding one is answered with 414, 431 or 413, never a crash.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    /// Longest request line (method, target and version) in bytes.
    pub request_line: usize,
    /// Most header fields.
    pub request_fields: usize,
    /// Longest single header field, name plus value, in bytes.
    pub request_field_size: usize,
    /// Largest body in bytes; `None` is unlimited.
    pub request_body: Option<u64>,
    /// Longest whole head (uWSGI's `buffer-size`), when set; otherwise room for the three
    /// limits above.
    #[serde(default)]
    pub head: Option<usize>,
}

/// Logging settings, applied identically in the master and the workers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogConfig {
    /// A tracing filter (`info`, `debug`, `segue=trace`, ...).
    pub level: String,
    /// Text or JSON lines.
    pub format: LogFormat,
    /// Whether every request is logged.
    pub access_log: bool,
    /// Where access lines go (`--access-logfile`); `None`: into the error log.
    #[serde(default)]
    pub access_logfile: Option<LogTarget>,
    /// The access line's format, in gunicorn's atoms (`--access-logformat`).
    #[serde(default = "default_access_format")]
    pub access_format: String,
    /// Where the log goes (`--error-logfile`).
    #[serde(default)]
    pub error_logfile: LogTarget,
    /// Whether the app's stdout and stderr go into the error log file (`--capture-output`).
    #[serde(default)]
    pub capture_output: bool,
}

fn default_access_format() -> String {
    crate::logging::access::COMBINED.to_owned()
}

impl LogConfig {
    /// Whether requests are logged at all.
    pub fn logs_requests(&self) -> bool {
        self.access_log || self.access_logfile.is_some()
    }
}

/// Where a log goes: a standard stream, or a file opened for appending (and opened again on
/// SIGUSR1, after logrotate moved it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogTarget {
    /// The process's stderr.
    #[default]
    Stderr,
    /// The process's stdout (gunicorn's `--access-logfile -`).
    Stdout,
    /// A file.
    File(PathBuf),
}

/// What a worker is told in its `Boot`: how to import and serve the app. Nothing the master
/// alone acts on (its sockets' paths, pidfile, FIFO, reload policy) crosses the boundary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// The app to import.
    pub app: AppSpec,
    /// Whether other worker processes serve beside this one (`wsgi.multiprocess`).
    pub multiprocess: bool,
    /// Python threads per worker.
    pub threads: usize,
    /// `--no-inline`: with one thread, run the app on a Python thread of its own rather than on
    /// the connection's thread.
    #[serde(default)]
    pub no_inline: bool,
    /// Working directory, also first on `sys.path`.
    pub chdir: Option<PathBuf>,
    /// Extra `sys.path` entries.
    pub pythonpath: Vec<PathBuf>,
    /// Virtualenv whose interpreter view the worker takes.
    pub virtualenv: Option<PathBuf>,
    /// Peers whose scheme headers are believed (`--forwarded-allow-ips`).
    #[serde(default)]
    pub forwarded_allow_ips: TrustedProxies,
    /// Logging.
    pub log: LogConfig,
    /// Request limits.
    pub limits: Limits,
    /// Time a client has to send a complete request head.
    pub header_timeout: Duration,
    /// Most client connections one worker holds open (`--worker-connections`); `None` is
    /// unlimited.
    #[serde(default)]
    pub worker_connections: Option<usize>,
    /// Longest wait for more of a request body (`--socket-timeout`); `None` waits forever. A
    /// client that stops sending mid-body would otherwise hold a Python thread for good.
    #[serde(default)]
    pub socket_timeout: Option<Duration>,
    /// Path the app must answer with a 2xx before the worker reports ready.
    pub ready_check: Option<String>,
    /// Time to become ready (the ready check's budget; the master enforces it too).
    pub boot_timeout: Duration,
    /// Longest a request may run (`--harakiri`).
    pub harakiri: Option<Duration>,
    /// `--name`: the start of the workers' process names.
    #[serde(default)]
    pub name: Option<String>,
    /// Files served from the file system before the app (`--static-map` and friends); the
    /// default serves none, so a `Boot` from an older master still deserializes.
    #[serde(default)]
    pub static_files: StaticFiles,
    /// `--uwsgi-compat`: the stand-in `uwsgi` module's figures, when it is on.
    #[serde(default)]
    pub uwsgi_compat: Option<UwsgiCompat>,
    /// The gunicorn config file whose worker-side server hooks the workers run.
    #[serde(default)]
    pub gunicorn_hooks: Option<PathBuf>,
    /// `--preload`: the app is imported once per generation by a zygote that forks the
    /// workers; `None` imports it in each worker.
    #[serde(default)]
    pub preload: Option<Preload>,
}

/// How the zygote of a `--preload` generation prepares to fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preload {
    /// Call `gc.freeze()` after the import (`--no-gc-freeze` clears it), so that collections
    /// in the workers leave the shared pages alone.
    pub gc_freeze: bool,
    /// Fork although the app started threads at import (`--preload-allow-threads`).
    pub allow_threads: bool,
}

/// What `--uwsgi-compat`'s `uwsgi` module tells the app (`uwsgi.numproc`, `uwsgi.opt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UwsgiCompat {
    /// `--workers` (the most there can be).
    pub numproc: usize,
    /// `--threads`.
    pub threads: usize,
}

/// Everything the master runs with: its own settings, and the [`WorkerConfig`] each
/// generation's workers get.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// What workers are told.
    pub worker: WorkerConfig,
    /// Listeners the master binds (or takes from systemd) and keeps for life, each with the
    /// protocol it speaks (`--http`, then `--socket`).
    pub listen: Vec<Endpoint>,
    /// Listening sockets inherited as file descriptors (gunicorn's `--bind fd://N`), adopted
    /// beside `listen`.
    #[serde(default)]
    pub listen_fds: Vec<i32>,
    /// Whether `--http` or `--socket` was given (rather than defaulted): then sockets from
    /// systemd must match.
    #[serde(default)]
    pub listen_explicit: bool,
    /// Worker processes at start (`segue workers +1/-1` changes the live count, not this).
    pub workers: usize,
    /// Environment variables set in the workers' processes.
    pub env: Vec<(String, String)>,
    /// Accept-queue length of each listener.
    pub backlog: u32,
    /// Permission bits for the unix sockets segue binds (`--chmod-socket`).
    #[serde(default)]
    pub socket_mode: Option<u32>,
    /// How long draining workers get before they are killed.
    pub graceful_timeout: Duration,
    /// Where the master writes its PID.
    pub pidfile: Option<PathBuf>,
    /// How SIGHUP swaps generations.
    pub reload_strategy: ReloadStrategy,
    /// Chain reloads: new workers booting at once (at least 1); `None` boots every slot at
    /// once, whatever the live worker count is by then.
    pub reload_surge: Option<usize>,
    /// The control socket's path.
    pub control: Option<PathBuf>,
    /// `--stats`: where uWSGI's stats JSON is served.
    #[serde(default)]
    pub stats: Option<ListenAddr>,
    /// `--stats-http`: as an HTTP response.
    #[serde(default)]
    pub stats_http: bool,
    /// `--metrics`: where Prometheus metrics and the health checks are served.
    #[serde(default)]
    pub metrics: Option<ListenAddr>,
    /// A file whose mtime change triggers a reload.
    pub touch_reload: Option<PathBuf>,
    /// The uWSGI-style master FIFO.
    pub master_fifo: Option<PathBuf>,
    /// When workers are replaced by their own age, traffic or size.
    pub recycle: Recycle,
    /// Longest a worker may go without a heartbeat.
    pub heartbeat_timeout: Duration,
    /// The interpreter workers run: `<virtualenv>/bin/python`, or the `python` beside segue in
    /// the environment pip installed it into. Set for each generation when it starts.
    #[serde(default)]
    pub python: Option<PathBuf>,
    /// What segue was started with, to resolve the configuration again on reload; `None` for
    /// a configuration built otherwise (check-reload's child gets the resolved JSON).
    #[serde(default)]
    pub invocation: Option<Invocation>,
    /// `--check-config`: stop as soon as the first generation is ready (the app imported).
    #[serde(default)]
    pub exit_when_ready: bool,
    /// Commands the master runs beside the workers (`--attach-daemon` and the smart kinds).
    #[serde(default)]
    pub daemons: Vec<DaemonSpec>,
    /// gunicorn's arbiter hooks the `--gunicorn-hooks` file defines (`when_ready`,
    /// `on_reload`, `on_exit`): each runs in a short-lived process of the app's interpreter.
    #[serde(default)]
    pub master_hooks: Vec<String>,
    /// Commands the master runs on a schedule (`--cron`, `--unique-cron`).
    #[serde(default)]
    pub crons: Vec<CronSpec>,
    /// Longest a cron run may take (`--cron-harakiri`); `None` is no limit.
    #[serde(default)]
    pub cron_harakiri: Option<Duration>,
    /// How many workers run when (`--cheap`, `--idle`, `--cheaper`).
    #[serde(default)]
    pub scaling: Scaling,
}

/// Worker recycling limits; a worker past one is replaced surge-style (replacement ready first).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Recycle {
    /// Requests per worker, `None` for no limit.
    pub max_requests: Option<u64>,
    /// Random extra requests per worker, so workers do not all recycle at once.
    pub max_requests_jitter: u64,
    /// Age per worker.
    pub max_lifetime: Option<Duration>,
    /// Random extra age per worker.
    pub max_lifetime_jitter: Duration,
    /// Resident memory in KiB.
    pub max_rss_kib: Option<u64>,
}

/// A configuration that cannot be used, with the fix in the message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No app was named.
    #[error(
        "no app to serve: name one as MODULE:NAME (e.g. 'myproject.wsgi:application'), or give --wsgi-file, --module, --mount or --ini"
    )]
    NoApp,
    /// A source could not be read at all.
    #[error(transparent)]
    Read(#[from] resolve::ReadError),
    /// Read, but with problems: every one of them.
    #[error(transparent)]
    Refused(#[from] build::Refusal),
}

/// Resolves `args` (as after the program name) with no environment, in the current directory:
/// what tests and internal callers use to get a [`Config`] from flags.
pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<Config, Error> {
    let inv = Invocation {
        args: args.iter().map(|a| a.as_ref().to_owned()).collect(),
        env: Default::default(),
        cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
    };
    load(&inv)
}

/// Resolves an invocation into a [`Config`] that remembers it (for reloads).
pub fn load(inv: &Invocation) -> Result<Config, Error> {
    let resolved = resolve::resolve(inv)?;
    let mut config = resolved.config()?;
    config.invocation = Some(inv.clone());
    Ok(config)
}
