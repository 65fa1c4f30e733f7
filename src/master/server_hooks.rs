//! gunicorn's arbiter hooks (`when_ready`, `on_reload`, `on_exit` in `-c gunicorn.conf.py`).
//! The master never runs Python, so each runs in a short-lived process of the app's own
//! interpreter that runs the config file and calls the hook with a `server` stand-in; the
//! master does not wait for it. When each runs follows the master's own sd_notify
//! messages, which already mark those moments: the first `READY=1`, each `RELOADING=1`, and
//! `STOPPING=1`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use super::daemon_process::{self, Launch, Side};

/// What the interpreter runs: the hook `argv[2]` of the config file `argv[1]`, for the master
/// whose pid is `argv[3]` (given, since `on_exit`'s process may outlive it).
const RUNNER: &str = "import sys\n\
if sys.path and sys.path[0] == '':\n    del sys.path[0]\n\
from segue import _gunicorn_hooks\n\
_gunicorn_hooks.run_master_hook(sys.argv[1], sys.argv[2], int(sys.argv[3]))\n";

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

/// Starts `python` on the hook `hook` of `file` in `dir`; its output goes into the log. A
/// failure to start is logged: a hook never stops the server.
pub fn run(python: &Path, file: &Path, hook: &'static str, dir: Option<&Path>) -> Option<i32> {
    let mut cmd = Command::new(python);
    cmd.arg("-c")
        .arg(RUNNER)
        .arg(file)
        .arg(hook)
        .arg(std::process::id().to_string());
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
