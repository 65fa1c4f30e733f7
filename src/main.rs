//! The `segue` binary: parse the command line, then run as the master, as a control client, or
//! (when the master re-executes us) as a worker.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use segue::config::{Cli, Command, ControlArgs};
use segue::control::{Request, client};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (request, control, timeout) = match cli.command {
        None => {
            // Before any thread exists: this edits the environment.
            let inherited = segue::systemd::take_listen_fds();
            let config = cli.serve.into_config()?;
            segue::logging::init(&config.log);
            return segue::master::run(config, inherited).context("segue cannot start");
        }
        Some(Command::Worker) => std::process::exit(segue::worker::run()),
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
    std::process::exit(client::render(&reply, json));
}
