//! The command line. Flag names follow gunicorn and uWSGI where they mean the same thing, so a
//! user's habits carry over; `Cli::into_config` turns the parsed flags into a validated
//! [`Config`](super::Config).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `segue [OPTIONS] APP`: serve a WSGI application.
#[derive(Debug, Parser)]
#[command(
    name = "segue",
    version,
    about = "A WSGI application server whose reloads never drop a request",
    subcommand_required = true,
    // `--help` prints one line per option, like `-h`; no wrapping, so no option's text moves
    // to a line of its own.
    disable_help_flag = true,
    term_width = 0
)]
pub struct Cli {
    /// A control subcommand (serving has its own parser: `config::resolve`).
    #[command(subcommand)]
    pub command: Command,
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
        /// With --wait, do not print the progress (workers booting, ready, draining, gone) on
        /// stderr: only the result.
        #[arg(long, short)]
        quiet: bool,
        /// Socket and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// A live view of the workers, refreshed every --interval seconds.
    Top {
        /// Seconds between frames.
        #[arg(long, default_value_t = 1.0, value_name = "SECS")]
        interval: f64,
        /// Frames to show, then exit (0: until interrupted).
        #[arg(long, default_value_t = 0, value_name = "N")]
        iterations: u64,
        /// The master's --control socket.
        #[arg(long, value_name = "PATH", env = "SEGUE_CONTROL")]
        control: PathBuf,
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
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "SERVE OPTIONS"
        )]
        serve: Vec<String>,
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
        /// Write a self-contained HTML report with a timeline picture of requests and reloads.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
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
