//! gunicorn's arbiter hooks (`on_starting`, `when_ready`, `on_reload`, `on_exit`,
//! `child_exit` in `-c gunicorn.conf.py`). The master never runs Python, so each runs in a
//! short-lived process of the app's own interpreter that runs the config file and calls the
//! hook with a `server` stand-in (and for `child_exit` a `worker` one). When the moment-hooks
//! run follows the master's own sd_notify messages, which already mark those moments: the
//! first `READY=1`, each `RELOADING=1`, and `STOPPING=1`; the master does not wait for them.
//! `child_exit` runs when the reaper collects a worker, not waited for either. `on_starting`
//! is the exception: it runs before the first worker starts and the master waits for it
//! (at most [`ON_STARTING_TIMEOUT`]), since what it prepares (a directory, a cleared metrics
//! store) is what the workers then use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::daemon_process::{self, Launch, Side};
use crate::config::Config;

/// What the interpreter runs: the hook `argv[2]` of the config file `argv[1]`, for the master
/// whose pid is `argv[3]` (given, since `on_exit`'s process may outlive it), and for
/// `child_exit` the worker's pid and id in `argv[4]` and `argv[5]`.
const RUNNER: &str = "import sys\n\
if sys.path and sys.path[0] == '':\n    del sys.path[0]\n\
from segue import _gunicorn_hooks\n\
_gunicorn_hooks.run_master_hook(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:]))\n";

/// Longest the master waits for gunicorn's `on_starting` before it starts the workers anyway
/// (the hook's process group is then killed).
pub const ON_STARTING_TIMEOUT: Duration = Duration::from_secs(30);

/// Why `on_starting` stops segue from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartingError {
    /// The hook's process could not be started.
    #[error("cannot run gunicorn's on_starting hook: {0}")]
    Spawn(String),
    /// The hook raised (its traceback is in the log, with the field hook=on_starting).
    #[error(
        "gunicorn's on_starting hook failed ({0}); its traceback is in the log above (hook=on_starting)"
    )]
    Failed(String),
}

/// The hooks an sd_notify `message` stands for; `ready_seen` makes `when_ready` run once
/// (later `READY=1`s end reloads).
pub fn hooks_for(message: &str, ready_seen: &mut bool) -> Vec<&'static str> {
    let mut out = Vec::new();
    for line in message.lines() {
        match line {
            "READY=1" if !*ready_seen => {
                *ready_seen = true;
                out.push("when_ready");
            }
            "RELOADING=1" => out.push("on_reload"),
            "STOPPING=1" => out.push("on_exit"),
            _ => {}
        }
    }
    out
}

/// The interpreter gunicorn's arbiter hooks run in: the app's.
pub fn hook_python(base: &Config) -> PathBuf {
    match &base.worker.virtualenv {
        Some(venv) => venv.join("bin/python"),
        None => super::generation::own_python(),
    }
}

/// Starts the hooks of `base`'s gunicorn file that the sd_notify `message` stands for; the
/// pids of the processes started.
pub fn at_notify(base: &Config, message: &str, ready_seen: &mut bool) -> Vec<i32> {
    let Some(file) = &base.worker.gunicorn_hooks else {
        return Vec::new();
    };
    hooks_for(message, ready_seen)
        .into_iter()
        .filter(|hook| base.master_hooks.iter().any(|h| h == hook))
        .filter_map(|hook| {
            run(
                &hook_python(base),
                file,
                hook,
                base.worker.chdir.as_deref(),
                None,
            )
        })
        .collect()
}

/// Starts `child_exit` for the worker `id` (process `pid`) just reaped, if `base`'s gunicorn
/// file has it; the hook process's pid.
pub fn child_exit(base: &Config, pid: i32, id: u64) -> Option<i32> {
    let file = base.worker.gunicorn_hooks.as_ref()?;
    if !base.master_hooks.iter().any(|h| h == "child_exit") {
        return None;
    }
    run(
        &hook_python(base),
        file,
        "child_exit",
        base.worker.chdir.as_deref(),
        Some((pid, id)),
    )
}

/// Starts `python` on the hook `hook` of `file` in `dir`; its output goes into the log. A
/// failure to start is logged: a hook never stops the server. `worker` (pid, id) is the worker
/// `child_exit` is about.
pub fn run(
    python: &Path,
    file: &Path,
    hook: &'static str,
    dir: Option<&Path>,
    worker: Option<(i32, u64)>,
) -> Option<i32> {
    let mut cmd = Command::new(python);
    cmd.arg("-c")
        .arg(RUNNER)
        .arg(file)
        .arg(hook)
        .arg(std::process::id().to_string());
    if let Some((pid, id)) = worker {
        cmd.arg(pid.to_string()).arg(id.to_string());
    }
    for var in crate::systemd::MASTER_ONLY_ENV {
        cmd.env_remove(var);
    }
    let how = Launch {
        dir,
        // on_exit runs as the master leaves; the others end with it, like a daemon.
        outlives_master: hook == "on_exit",
        ..Default::default()
    };
    match daemon_process::spawn(cmd, Side::Hook, Arc::from(hook), how) {
        Ok(pid) => {
            tracing::info!(hook, pid, "running gunicorn's {hook} hook");
            Some(pid)
        }
        Err(e) => {
            tracing::warn!(
                hook,
                "cannot run gunicorn's {hook} hook with {}: {e}",
                python.display()
            );
            None
        }
    }
}

/// Runs `on_starting` and waits for it (before the master's loop runs, so nothing else waits
/// meanwhile; the wait sleeps on the runtime so that the hook's output is still logged). A
/// hook that raises stops the start, as in gunicorn; one that runs past
/// [`ON_STARTING_TIMEOUT`] is killed and the start goes on, with an error logged.
pub async fn on_starting(
    python: &Path,
    file: &Path,
    dir: Option<&Path>,
) -> Result<(), StartingError> {
    let Some(pid) = run(python, file, "on_starting", dir, None) else {
        return Err(StartingError::Spawn(format!(
            "{} could not be started",
            python.display()
        )));
    };
    let deadline = tokio::time::Instant::now() + ON_STARTING_TIMEOUT;
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, 0)) => return Ok(()),
            Ok(WaitStatus::Exited(_, code)) => {
                output_drained().await;
                return Err(StartingError::Failed(format!("exit code {code}")));
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                output_drained().await;
                return Err(StartingError::Failed(format!("killed by {sig}")));
            }
            Ok(_) => {}
            Err(e) => return Err(StartingError::Spawn(format!("waiting for it: {e}"))),
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::error!(
                hook = "on_starting",
                "gunicorn's on_starting hook still runs after {}s: killing it and starting anyway",
                ON_STARTING_TIMEOUT.as_secs()
            );
            let _ = nix::sys::signal::killpg(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Gives the tasks that copy a finished hook's output into the log a moment to take its last
/// lines (the traceback) before the master exits: they run on this runtime.
async fn output_drained() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_runs_once_and_reloads_and_stops_each_time() {
        let mut seen = false;
        assert_eq!(hooks_for("READY=1\nSTATUS=x", &mut seen), ["when_ready"]);
        assert!(hooks_for("READY=1", &mut seen).is_empty());
        assert_eq!(
            hooks_for("RELOADING=1\nMONOTONIC_USEC=5", &mut seen),
            ["on_reload"]
        );
        assert_eq!(
            hooks_for("STOPPING=1\nSTATUS=stopping", &mut seen),
            ["on_exit"]
        );
        assert!(hooks_for("WATCHDOG=1", &mut seen).is_empty());
    }
}
