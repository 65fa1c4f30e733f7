//! The `segue` binary: parse the command line, then run as the master (or, when the master
//! re-executes us, as a worker).

use anyhow::Context;
use clap::Parser;
use segue::config::{Cli, Command};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Worker) => std::process::exit(segue::worker::run()),
        None => {
            // Before any thread exists: this edits the environment.
            let inherited = segue::systemd::take_listen_fds();
            let config = cli.serve.into_config()?;
            segue::logging::init(&config.log);
            segue::master::run(config, inherited).context("segue cannot start")
        }
    }
}
