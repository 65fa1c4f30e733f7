//! The command line. Flag names follow gunicorn and uWSGI where they mean the same thing, so a
//! user's habits carry over; `Cli::into_config` turns the parsed flags into a validated
//! [`Config`](super::Config).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::address::ListenAddr;

/// `segue [OPTIONS] APP`: serve a WSGI application.
#[derive(Debug, Parser)]
#[command(
    name = "segue",
    version,
    about = "A WSGI application server whose reloads never drop a request",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    // `--help` prints one line per option, like `-h`; no wrapping, so no option's text moves
    // to a line of its own.
    disable_help_flag = true,
    term_width = 0
)]
pub struct Cli {
    /// A control subcommand; none means "serve".
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The server options used when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Print help (one line per option).
    #[arg(short = 'h', long = "help", action = clap::ArgAction::HelpShort, global = true)]
    help: Option<bool>,
}

/// Where and how long to ask a running master.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The master's --control socket.
    #[arg(long, value_name = "PATH", env = "SEGUE_CONTROL")]
    pub control: PathBuf,
    /// Print the master's reply as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Subcommands besides serving.
#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once at startup; boxing would only add noise"
)]
pub enum Command {
    /// Reload a running server; with --wait, exit 0 only if the new generation took over.
    Reload {
        /// Override the server's --reload-strategy.
        #[arg(long, value_enum)]
        strategy: Option<ReloadStrategy>,
        /// Wait until the new generation serves and the old one is gone (or it rolled back).
        #[arg(long)]
        wait: bool,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 300.0, value_name = "SECS")]
        timeout: f64,
        /// Socket and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Show generations, workers and recent reloads.
    Status {
        /// Socket and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Stop a running server gracefully.
    Stop {
        /// Socket and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Add (+1) or remove (-1) a worker.
    Workers {
        /// +1 or -1.
        #[arg(allow_hyphen_values = true, value_name = "+1|-1")]
        delta: String,
        /// Socket and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Internal: run a master from a configuration in the environment (check-reload's child).
    #[command(name = "__master", hide = true)]
    Master,
    /// Internal: print the upgrade formats this binary reads (checked before an upgrade).
    #[command(name = "__upgrade-check", hide = true)]
    UpgradeCheck,
    /// Re-execute the running master's binary in place (same PID) and replace its workers.
    Upgrade {
        /// The new binary [default: the path the master was started from].
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
        /// Wait until the new workers serve and the old ones are gone (or it rolled back).
        #[arg(long)]
        wait: bool,
        /// Seconds to wait.
        #[arg(long, default_value_t = 300.0, value_name = "SECS")]
        timeout: f64,
        /// Socket and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Prove that an app survives reloads under load with zero failed requests (for CI).
    CheckReload {
        /// The server options and APP, as for serving (--http is replaced by a free port).
        #[command(flatten)]
        serve: ServeArgs,
        /// Reloads to trigger, spread over the run.
        #[arg(long, default_value_t = 3, value_name = "N")]
        reloads: u32,
        /// Seconds of load.
        #[arg(long, default_value_t = 20.0, value_name = "SECS")]
        duration: f64,
        /// Reload strategy to check [default: --reload-strategy].
        #[arg(long, value_enum)]
        strategy: Option<ReloadStrategy>,
        /// Path to GET (repeatable) [default: /].
        #[arg(long = "url", value_name = "PATH")]
        url: Vec<String>,
        /// Concurrent clients, half keep-alive, half a new connection per request.
        #[arg(long, default_value_t = 8, value_name = "C")]
        concurrency: usize,
        /// Write the report as JSON to this file.
        #[arg(long = "json", value_name = "FILE")]
        json_file: Option<PathBuf>,
        /// Write a JUnit XML file with one test case per reload.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Options of the serving mode, one line of `--help` each.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The WSGI app as MODULE[:CALLABLE] or MODULE:FACTORY(LITERAL ARGS) (CALLABLE defaults to --callable).
    #[arg(value_name = "APP", required_unless_present_any = ["wsgi_file", "eval", "mount"])]
    pub app: Option<String>,

    /// Load the app from this Python file (its --callable) instead of APP.
    #[arg(long, value_name = "PATH", conflicts_with = "app")]
    pub wsgi_file: Option<PathBuf>,

    /// Run this Python code as a module and serve its --callable (uWSGI's eval), instead of APP.
    #[arg(long, value_name = "CODE", conflicts_with_all = ["app", "wsgi_file"])]
    pub eval: Option<String>,

    /// The callable's name when APP names none, and of --wsgi-file, --eval and file mounts.
    #[arg(long, value_name = "NAME", default_value = super::app::DEFAULT_CALLABLE)]
    pub callable: String,

    /// Serve APP (a .py/.wsgi file or a module spec) under PREFIX as SCRIPT_NAME (repeatable).
    #[arg(long, value_name = "PREFIX=APP")]
    pub mount: Vec<String>,

    /// Listen on HOST:PORT, :PORT, [::1]:PORT or unix:/path (repeatable; default 127.0.0.1:8000).
    #[arg(long = "http", value_name = "ADDR")]
    pub http: Vec<ListenAddr>,

    /// Number of worker processes.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub workers: usize,

    /// Python threads per worker.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,

    /// Change to this directory before loading the app (also put first on sys.path).
    #[arg(long, value_name = "DIR")]
    pub chdir: Option<PathBuf>,

    /// Add this directory to sys.path (repeatable).
    #[arg(long, value_name = "DIR")]
    pub pythonpath: Vec<PathBuf>,

    /// Run the app in this virtualenv [default: $VIRTUAL_ENV if set].
    #[arg(long, value_name = "DIR", env = "VIRTUAL_ENV")]
    pub virtualenv: Option<PathBuf>,

    /// Set an environment variable in the workers (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Length of the kernel accept queue of each listener.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub backlog: u32,

    /// Addresses or networks (comma-separated, or '*') whose X-Forwarded-Proto, -Protocol and
    /// -Ssl headers set wsgi.url_scheme; unix-socket clients are always trusted.
    #[arg(
        long,
        value_name = "LIST",
        env = "FORWARDED_ALLOW_IPS",
        default_value = "127.0.0.1,::1"
    )]
    pub forwarded_allow_ips: String,

    /// Permissions of the unix sockets segue creates, in octal (e.g. 660 so that a web server
    /// in the socket's group can connect) [default: from the umask].
    #[arg(long, value_name = "MODE")]
    pub chmod_socket: Option<String>,

    /// Seconds a stopping worker may finish its requests before it is killed.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub graceful_timeout: f64,

    /// Write the master's PID to this file (removed on exit).
    #[arg(long, value_name = "PATH")]
    pub pidfile: Option<PathBuf>,

    /// Log level: error, warn, info, debug or trace (or a tracing filter).
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    pub log_level: String,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// Log one line per request.
    #[arg(long)]
    pub access_log: bool,

    /// Longest request line in bytes; longer gets 414.
    #[arg(long, default_value_t = 8190, value_name = "BYTES")]
    pub limit_request_line: usize,

    /// Most header fields in a request; more gets 431.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit_request_fields: usize,

    /// Longest header field (name and value) in bytes; longer gets 431.
    #[arg(long, default_value_t = 8190, value_name = "BYTES")]
    pub limit_request_field_size: usize,

    /// Largest request body in bytes, 0 for no limit; larger gets 413.
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    pub limit_request_body: u64,

    /// Seconds a client has to send a request's headers (also the keep-alive idle limit).
    #[arg(long, default_value_t = 15.0, value_name = "SECS")]
    pub header_timeout: f64,

    /// Most client connections a worker holds open (0: no limit); at the limit it accepts none.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub worker_connections: usize,
    /// Seconds to wait for more of a request body, 0 for ever; then the app's read raises
    /// (unhandled: 408). uWSGI's name.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub socket_timeout: f64,

    /// How a reload swaps generations: chain (new first, then drain old) or respawn (canary).
    #[arg(long, value_enum, default_value_t = ReloadStrategy::Chain, value_name = "STRATEGY")]
    pub reload_strategy: ReloadStrategy,

    /// Chain reloads: new workers booting at once beyond the steady count [default: all].
    #[arg(long, value_name = "K")]
    pub reload_surge: Option<usize>,

    /// A new worker is ready only once its app answers GET PATH with a 2xx, in-process.
    #[arg(long, value_name = "PATH")]
    pub ready_check: Option<String>,

    /// Seconds a new worker has to import the app and pass its ready check.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub boot_timeout: f64,

    /// Unix socket for `segue reload|status|stop|workers --control PATH`.
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,

    /// Reload when this file's modification time changes.
    #[arg(long, value_name = "FILE")]
    pub touch_reload: Option<PathBuf>,

    /// uWSGI-style master FIFO: write r (respawn reload), c (chain reload), q, Q, + or -.
    #[arg(long, value_name = "PATH")]
    pub master_fifo: Option<PathBuf>,

    /// Replace a worker after it served this many requests (0: never); replacement ready first.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_requests: u64,

    /// Add up to this many requests at random to each worker's --max-requests.
    #[arg(long, default_value_t = 0, value_name = "J")]
    pub max_requests_jitter: u64,

    /// Replace a worker after this many seconds (0: never); replacement ready first.
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    pub max_worker_lifetime: f64,

    /// Add up to this many seconds at random to each worker's --max-worker-lifetime.
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    pub max_worker_lifetime_jitter: f64,

    /// Replace a worker whose resident memory exceeds this many MiB (0: never).
    #[arg(long, default_value_t = 0, value_name = "MB")]
    pub reload_on_rss: u64,

    /// A request running longer gets a 504 (if not started), its stack logged, its worker replaced.
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    pub harakiri: f64,

    /// Replace a worker silent this long (e.g. stuck holding the GIL).
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub heartbeat_timeout: f64,
}

/// How a reload replaces the serving generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum ReloadStrategy {
    /// gunicorn-style spawn-then-drain: start new workers (up to the surge), drain an old one
    /// as each becomes ready.
    Chain,
    /// uWSGI-style kill-then-spawn for memory-tight hosts: replace one worker as a canary, then
    /// the rest; connections wait in the backlog meanwhile.
    Respawn,
}
