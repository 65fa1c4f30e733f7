//! Configuration shared by both sides of the process boundary.
//!
//! The master validates the command line into a [`Config`] once. Each worker receives only the
//! [`WorkerConfig`] part, in its `Boot` message, so a worker never parses flags or reads the
//! environment for settings, and never sees the master's own paths or policies.

pub mod address;
pub mod app;
pub mod cli;
pub mod entry;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http::forwarded::{BadProxies, TrustedProxies};

pub use address::ListenAddr;
pub use app::{AppError, AppSource, AppSpec, Mount};
pub use cli::{Cli, Command, ControlArgs, LogFormat, ReloadStrategy, ServeArgs};

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
}

/// Everything the master runs with: its own settings, and the [`WorkerConfig`] each
/// generation's workers get.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// What workers are told.
    pub worker: WorkerConfig,
    /// Addresses the master binds (or takes from systemd) and keeps for life.
    pub listen: Vec<ListenAddr>,
    /// Whether `--http` was given (rather than defaulted): then sockets from systemd must match.
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

/// A configuration mistake, with the fix in the message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The app spec is malformed.
    #[error(transparent)]
    BadApp(#[from] AppError),
    /// No app was named.
    #[error(
        "no app to serve: name one as MODULE:CALLABLE (e.g. 'myproject.wsgi:application'), or give --wsgi-file, --module or --ini"
    )]
    NoApp,
    /// A directory option names something that is not a directory.
    #[error("{option} '{}' is not a directory (check the path)", path.display())]
    NotADirectory {
        /// The flag.
        option: &'static str,
        /// What it was given.
        path: PathBuf,
    },
    /// `--wsgi-file` names no file.
    #[error("--wsgi-file '{}' does not exist", .0.display())]
    NoWsgiFile(PathBuf),
    /// The virtualenv has no interpreter.
    #[error("--virtualenv '{}' has no bin/python (create it with 'python3 -m venv {}')", .0.display(), .0.display())]
    BadVirtualenv(PathBuf),
    /// `--env` without `=`.
    #[error("invalid --env '{0}': expected KEY=VALUE")]
    BadEnv(String),
    /// A count that must be positive is zero.
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    /// `--ready-check` is not an absolute path.
    #[error("invalid --ready-check '{0}': expected a path starting with '/', e.g. /healthz")]
    BadReadyCheck(String),
    /// A duration is negative or not finite.
    #[error("--{0} must be a non-negative number of seconds")]
    BadDuration(&'static str),
    /// `--forwarded-allow-ips` has an entry that is not an address or network.
    #[error(transparent)]
    BadProxies(#[from] BadProxies),
    /// `--chmod-socket` is not an octal mode.
    #[error("invalid --chmod-socket '{0}': expected octal permission bits such as 660 or 0666")]
    BadSocketMode(String),
}

/// Octal permission bits, as chmod(1) takes them.
fn socket_mode(mode: &str) -> Result<u32, Error> {
    u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| Error::BadSocketMode(mode.to_owned()))
}

fn seconds(option: &'static str, secs: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(secs).map_err(|_| Error::BadDuration(option))
}

fn directory(option: &'static str, path: PathBuf) -> Result<PathBuf, Error> {
    if path.is_dir() {
        Ok(path)
    } else {
        Err(Error::NotADirectory { option, path })
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

impl ServeArgs {
    /// APP, `--wsgi-file` or `--eval` as the root app, and each `--mount` under its prefix.
    fn app_spec(&self) -> Result<AppSpec, Error> {
        let callable = self.callable.as_str();
        if !callable.split('.').all(|p| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_alphanumeric() || c == '_')
        }) {
            return Err(AppError::BadCallable(callable.to_owned()).into());
        }
        let root = match (&self.app, &self.wsgi_file, &self.eval) {
            (_, Some(file), _) => {
                if !file.is_file() {
                    return Err(Error::NoWsgiFile(file.clone()));
                }
                Some(AppSource::File {
                    path: absolute(file),
                    callable: callable.to_owned(),
                })
            }
            (_, None, Some(code)) => Some(AppSource::Eval {
                code: code.clone(),
                callable: callable.to_owned(),
            }),
            (Some(spec), None, None) => Some(AppSource::module(spec, callable)?),
            (None, None, None) => None,
        };
        // Relative mount files are the worker's, which runs in --chdir.
        let base = match &self.chdir {
            Some(dir) => absolute(dir),
            None => std::env::current_dir().unwrap_or_default(),
        };
        let mut mounts = self
            .mount
            .iter()
            .map(|m| Mount::parse(m, callable, &base))
            .collect::<Result<Vec<_>, _>>()?;
        match (root, mounts.is_empty()) {
            (Some(source), true) => Ok(AppSpec::root(source)),
            (None, true) => Err(Error::NoApp),
            (root, false) => {
                mounts.extend(root.map(|source| Mount {
                    prefix: String::new(),
                    source,
                }));
                Ok(AppSpec::mounted(mounts)?)
            }
        }
    }

    /// Validates the flags into a [`Config`]; every error names the flag and the fix.
    pub fn into_config(self) -> Result<Config, Error> {
        let app = self.app_spec()?;
        if self.workers == 0 {
            return Err(Error::Zero("workers"));
        }
        if self.threads == 0 {
            return Err(Error::Zero("threads"));
        }
        let chdir = self
            .chdir
            .map(|d| directory("--chdir", d))
            .transpose()?
            .map(|d| absolute(&d));
        let pythonpath = self
            .pythonpath
            .into_iter()
            .map(|d| directory("--pythonpath", d).map(|d| absolute(&d)))
            .collect::<Result<_, _>>()?;
        let virtualenv = match self.virtualenv.filter(|v| !v.as_os_str().is_empty()) {
            Some(venv) if venv.join("bin/python").exists() => Some(absolute(&venv)),
            Some(venv) => return Err(Error::BadVirtualenv(venv)),
            None => None,
        };
        let env = self
            .env
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
                _ => Err(Error::BadEnv(kv)),
            })
            .collect::<Result<_, _>>()?;
        let listen_explicit = !self.http.is_empty();
        let listen = if self.http.is_empty() {
            vec![ListenAddr::Tcp(([127, 0, 0, 1], 8000).into())]
        } else {
            self.http
        };
        Ok(Config {
            worker: WorkerConfig {
                app,
                multiprocess: self.workers > 1,
                threads: self.threads,
                chdir,
                pythonpath,
                virtualenv,
                forwarded_allow_ips: self.forwarded_allow_ips.parse()?,
                log: LogConfig {
                    level: self.log_level,
                    format: self.log_format,
                    access_log: self.access_log,
                },
                limits: Limits {
                    request_line: self.limit_request_line,
                    request_fields: self.limit_request_fields,
                    request_field_size: self.limit_request_field_size,
                    request_body: (self.limit_request_body > 0).then_some(self.limit_request_body),
                },
                header_timeout: seconds("header-timeout", self.header_timeout)?,
                worker_connections: (self.worker_connections > 0)
                    .then_some(self.worker_connections),
                socket_timeout: Some(seconds("socket-timeout", self.socket_timeout)?)
                    .filter(|d| !d.is_zero()),
                ready_check: match self.ready_check {
                    Some(p) if !p.starts_with('/') => return Err(Error::BadReadyCheck(p)),
                    other => other,
                },
                boot_timeout: seconds("boot-timeout", self.boot_timeout)?,
                harakiri: Some(seconds("harakiri", self.harakiri)?).filter(|d| !d.is_zero()),
            },
            listen,
            listen_explicit,
            workers: self.workers,
            env,
            backlog: self.backlog,
            socket_mode: self.chmod_socket.map(|m| socket_mode(&m)).transpose()?,
            graceful_timeout: seconds("graceful-timeout", self.graceful_timeout)?,
            pidfile: self.pidfile.map(|p| absolute(&p)),
            reload_strategy: self.reload_strategy,
            reload_surge: match self.reload_surge {
                Some(0) => return Err(Error::Zero("reload-surge")),
                other => other,
            },
            control: self.control.map(|p| absolute(&p)),
            touch_reload: self.touch_reload.map(|p| absolute(&p)),
            master_fifo: self.master_fifo.map(|p| absolute(&p)),
            recycle: Recycle {
                max_requests: (self.max_requests > 0).then_some(self.max_requests),
                max_requests_jitter: self.max_requests_jitter,
                max_lifetime: Some(seconds("max-worker-lifetime", self.max_worker_lifetime)?)
                    .filter(|d| !d.is_zero()),
                max_lifetime_jitter: seconds(
                    "max-worker-lifetime-jitter",
                    self.max_worker_lifetime_jitter,
                )?,
                max_rss_kib: (self.reload_on_rss > 0).then_some(self.reload_on_rss * 1024),
            },
            heartbeat_timeout: seconds("heartbeat-timeout", self.heartbeat_timeout)?,
            python: None,
        })
    }
}
