//! segue runs that end by themselves (`--print-config`, `--check-config`, a refused
//! configuration): run to completion with a deadline, in a directory of the test's own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::segue_bin;

/// What a finished run printed and how it ended.
pub struct Ran {
    /// Exit status (`None`: killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// stdout as JSON (`--print-config`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs segue in `dir` with `args` and `env` (nothing else from the test's environment that
/// configures segue), killing it after `limit`.
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Ran {
    let mut cmd = Command::new(segue_bin());
    cmd.current_dir(dir)
        .args(args)
        .env_remove("VIRTUAL_ENV")
        .env_remove("GUNICORN_CMD_ARGS")
        .env_remove("WEB_CONCURRENCY")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("SEGUE_") && !env.iter().any(|(e, _)| *e == k) {
            cmd.env_remove(k);
        }
    }
    let child = cmd.spawn().expect("cannot start segue");
    let pid = child.id() as i32;
    let deadline = Instant::now() + limit;
    let waiter = std::thread::spawn(move || child.wait_with_output());
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            // SAFETY: kill(2) on the child we started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = waiter.join().unwrap().expect("segue's output");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fresh directory for one test's files, removed and recreated.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("segue-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A uWSGI ini in a fresh scratch directory serving `cases:application` from the test apps,
/// with `lines` after it in the `[uwsgi]` section; returns the file's path for `--ini`.
pub fn cases_ini(name: &str, lines: &str) -> String {
    let ini = scratch(name).join("app.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nchdir = {}\nmodule = cases:application\n{lines}",
            super::apps_dir().display()
        ),
    )
    .unwrap();
    ini.display().to_string()
}
