//! Test harness: starts the real `segue` binary, learns its address and readiness from its
//! control socket (`status`: `listeners`, `ready`), waits on status or log events (never fixed
//! sleeps), and speaks raw HTTP/1.1 over loopback.
#![allow(dead_code)] // each test binary uses a different subset

pub mod oneshot;

pub mod client;
pub mod load;
pub mod log;
pub mod server;

// Each test binary uses a different subset of the harness.
#[allow(unused_imports)]
pub use client::*;
#[allow(unused_imports)]
pub use load::*;
#[allow(unused_imports)]
pub use log::Log;
#[allow(unused_imports)]
pub use server::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a test waits for any single event before failing.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The `segue` that pip installed into the test venv (`scripts/test` builds the wheel and sets
/// `SEGUE_BIN`): the tests run segue as users get it, whose workers run that venv's Python.
pub fn segue_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let bin = std::env::var("SEGUE_BIN").unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/test-venv/bin/segue")
                .display()
                .to_string()
        });
        assert!(
            Path::new(&bin).exists(),
            "no installed segue at {bin} (run scripts/test, which builds the wheel and installs it \
             into target/test-venv, or set SEGUE_BIN)"
        );
        bin
    })
}

pub fn apps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps")
}

/// The virtualenv with Flask and Django that `scripts/test` prepares.
pub fn test_venv() -> PathBuf {
    let venv = std::env::var_os("SEGUE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv"));
    assert!(
        venv.join("bin/python").exists(),
        "no test virtualenv at {} (run scripts/test, which creates it, or set SEGUE_TEST_VENV)",
        venv.display()
    );
    venv
}

struct Stat {
    state: char,
    ppid: i32,
    pgrp: i32,
}

fn read_stat(pid: i32) -> Option<Stat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some(Stat { state, ppid, pgrp })
}

pub fn proc_state(pid: i32) -> Option<char> {
    read_stat(pid).map(|s| s.state)
}

pub fn children_of(ppid: i32) -> Vec<i32> {
    let mut out = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if read_stat(pid).is_some_and(|s| s.ppid == ppid) {
            out.push(pid);
        }
    }
    out.sort();
    out
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes. For state that produces no log
/// event (process tables, files); the answer is still an observed fact, not a guess.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The marker files `kind-w{id}-g{generation}-{pid}` that `tests/apps/hooks.py` leaves in
/// `dir`, as (id, generation, pid, runs); id 0 stands for a zygote's (`wNone`: no worker id).
pub fn marks(dir: &Path, kind: &str) -> Vec<(u64, u64, i32, usize)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&format!("{kind}-w")) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('-').collect();
        let [id, generation, pid] = parts[..] else {
            panic!("odd marker {name}");
        };
        let runs = std::fs::read_to_string(entry.path()).unwrap().len();
        out.push((
            id.parse().unwrap_or(0),
            generation.trim_start_matches('g').parse().unwrap(),
            pid.parse().unwrap(),
            runs,
        ));
    }
    out.sort();
    out
}

pub fn worker_pids(st: &serde_json::Value, generation: u64) -> Vec<(u64, i32)> {
    let mut out: Vec<(u64, i32)> = st["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["generation"] == generation)
        .map(|w| (w["id"].as_u64().unwrap(), w["pid"].as_i64().unwrap() as i32))
        .collect();
    out.sort();
    out
}
