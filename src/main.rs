//! The `segue` binary: parse the command line, then run as the master, as a control client, or
//! (when the master re-executes us) as a worker.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use segue::config::{Cli, Command, ControlArgs};
use segue::control::{Request, client};
use segue::master::Start;

/// mimalloc instead of glibc's malloc for Rust's allocations (Python keeps its own). Buffers and
/// bodies are allocated on the I/O thread and freed on a Python thread and back; glibc's arenas
/// spent about a sixth of a worker's CPU on that in a hello-world profile (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // SAFETY: first thing in main, before any thread exists.
    let handover = unsafe { segue::master::upgrade::take_from_env() };
    let cli = Cli::parse();
    let (request, control, timeout) = match cli.command {
        None => {
            // Before any thread exists: this edits the environment.
            let start = match handover {
                Some(Ok(h)) => Start::Upgraded(h),
                Some(Err(why)) => anyhow::bail!("in-place upgrade failed in the new binary: {why}"),
                None => Start::Fresh(segue::systemd::take_listen_fds()),
            };
            let config = cli.serve.into_config()?;
            segue::logging::init(&config.worker.log);
            let status = segue::master::run(config, start).context("segue cannot start")?;
            std::process::exit(status);
        }
        Some(Command::UpgradeCheck) => {
            println!("{}", segue::master::upgrade::check_line());
            return Ok(());
        }
        Some(Command::Upgrade {
            binary,
            wait,
            timeout,
            control,
        }) => {
            let timeout = Duration::try_from_secs_f64(timeout)
                .context("--timeout must be a positive number of seconds")?;
            let mut printer = client::Printer::stdio(control.json);
            let code = client::upgrade(&control.control, binary, wait, timeout, &mut printer)?;
            std::process::exit(printer.finish(code));
        }
        Some(Command::Master) => {
            let json = std::env::var(segue::check::MASTER_CONFIG_ENV)
                .context("__master is internal to check-reload")?;
            let config: segue::config::Config =
                serde_json::from_str(&json).context("bad master configuration")?;
            segue::logging::init(&config.worker.log);
            let status = segue::master::run(config, Start::Fresh(Vec::new()))
                .context("segue cannot start")?;
            std::process::exit(status);
        }
        Some(Command::CheckReload {
            serve,
            reloads,
            duration,
            strategy,
            url,
            concurrency,
            json_file,
            junit,
        }) => {
            let mut config = serve.into_config()?;
            if let Some(s) = strategy {
                config.reload_strategy = s;
            }
            let urls = if url.is_empty() {
                vec!["/".to_string()]
            } else {
                url
            };
            if let Some(bad) = urls.iter().find(|u| !u.starts_with('/')) {
                anyhow::bail!(
                    "--url '{bad}' must be a path starting with '/' (check-reload only talks to 127.0.0.1)"
                );
            }
            let duration = Duration::try_from_secs_f64(duration)
                .ok()
                .filter(|d| !d.is_zero())
                .context("--duration must be a positive number of seconds")?;
            let plan = segue::check::Plan {
                reloads,
                duration,
                urls,
                concurrency,
                json: json_file,
                junit,
            };
            let code = segue::check::run(config, plan)?;
            std::process::exit(code);
        }
        Some(Command::Reload {
            strategy,
            wait,
            timeout,
            control,
        }) => (Request::Reload { strategy, wait }, control, timeout),
        Some(Command::Status { control }) => (Request::Status, control, 10.0),
        Some(Command::Stop { control }) => (Request::Stop, control, 10.0),
        Some(Command::Workers { delta, control }) => {
            let delta = match delta.as_str() {
                "+1" | "1" => 1,
                "-1" => -1,
                other => anyhow::bail!("segue workers takes +1 or -1, not '{other}'"),
            };
            (Request::Workers { delta }, control, 10.0)
        }
    };
    let ControlArgs { control, json } = control;
    let timeout = Duration::try_from_secs_f64(timeout)
        .context("--timeout must be a positive number of seconds")?;
    let reply = client::call(&control, &request, timeout)?;
    // Through a fallible printer: a closed pipe or a full disk is an exit code, not a panic.
    let mut printer = client::Printer::stdio(json);
    let code = printer.reply(&reply);
    std::process::exit(printer.finish(code));
}
