//! The emperor (`--emperor DIR`): one segue master per config file in a directory, started,
//! supervised, reloaded when its file changes and stopped when it goes away. Like the master,
//! the emperor never runs Python: a vassal is this binary run on its file.
//!
//! [`vassals`] decides, [`scan`] looks at the directories, [`launch`] starts processes; this
//! loop feeds the rules their inputs (scans, exits, sd_notify messages, signals, the control
//! socket, the clock) and carries out what they return.

pub mod launch;
pub mod scan;
pub mod vassals;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{EmperorConfig, LogFormat};
use crate::control::messages::{EmperorReport, Reply, Request, VassalReport};
use crate::control::server::Call;
use crate::master::reaper;
use crate::systemd::Notifier;
use vassals::{Action, Scan, Sig, Vassals};

/// sd_notify messages from vassals waiting for the loop; beyond this the readers wait.
const NOTES_QUEUE: usize = 256;

/// Why the emperor could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// Our own binary's path is unknown (vassals run it).
    #[error("cannot find segue's own executable to start vassals: {0}")]
    Exe(std::io::Error),
    /// Tyrant mode without root.
    #[error(
        "emperor-tyrant runs each vassal as its file's owner, which needs root; run the emperor as root or drop emperor-tyrant"
    )]
    TyrantNotRoot,
    /// The pidfile could not be written.
    #[error("cannot write --pidfile '{}': {source}", path.display())]
    Pidfile {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The control socket could not be bound.
    #[error("cannot bind --control '{}': {source}", path.display())]
    Control {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the emperor's event loop: {0}")]
    Runtime(std::io::Error),
}

/// Runs the emperor until it is stopped and its last vassal has ended; returns the exit status.
pub fn run(config: EmperorConfig) -> Result<i32, Error> {
    let exe = std::env::current_exe().map_err(Error::Exe)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if config.tyrant && unsafe { libc::geteuid() } != 0 {
        return Err(Error::TyrantNotRoot);
    }
    if let Some(path) = &config.pidfile {
        crate::master::write_pidfile(path).map_err(|source| Error::Pidfile {
            path: path.clone(),
            source,
        })?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let result = runtime.block_on(serve(&config, exe));
    if let Some(path) = &config.pidfile {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// The loop's state beside the rules: what the OS side needs to carry out their actions.
struct Emperor<'a> {
    config: &'a EmperorConfig,
    exe: PathBuf,
    vassals: Vassals,
    /// The notify-socket reader of each running vassal, by pid.
    listeners: HashMap<i32, tokio::task::JoinHandle<()>>,
    notes: mpsc::Sender<launch::Notified>,
    notifier: Option<Notifier>,
    exit: Option<i32>,
}

async fn serve(config: &EmperorConfig, exe: PathBuf) -> Result<i32, Error> {
    // Workers orphaned by a vassal master that died are reaped here rather than by init.
    reaper::become_subreaper();
    let mut signals =
        Signals::new([SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM]).map_err(Error::Signals)?;
    let (calls_tx, mut calls) = mpsc::unbounded_channel::<Call>();
    let _control = match &config.control {
        Some(path) => Some(
            crate::control::server::serve(path, calls_tx).map_err(|source| Error::Control {
                path: path.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let (notes_tx, mut notes) = mpsc::channel(NOTES_QUEUE);
    let (scans_tx, mut scans) = mpsc::channel::<(Scan, Vec<String>)>(1);
    tokio::spawn(scanner(config.dirs.clone(), config.freq, scans_tx));
    let mut emperor = Emperor {
        config,
        exe,
        vassals: Vassals::new(config.kill_after),
        listeners: HashMap::new(),
        notes: notes_tx,
        notifier: Notifier::from_env(),
        exit: None,
    };
    let dirs: Vec<String> = config
        .dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    tracing::info!(pid = std::process::id(), dirs = %dirs.join(", "), "emperor started");
    for name in &config.ignored {
        tracing::warn!(
            "{name}: ignored by the emperor: it is a vassal's setting; put it in the vassal files"
        );
    }
    let mut first_scan = true;
    let mut problems: Vec<String> = Vec::new();
    // Signals coalesce, so a periodic sweep catches exits whose SIGCHLD merged with another.
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        if let Some(status) = emperor.exit {
            tracing::info!("emperor exiting: every vassal has ended");
            return Ok(status);
        }
        let deadline = emperor
            .vassals
            .next_deadline()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let actions = tokio::select! {
            Some(sig) = signals.next() => match sig {
                SIGCHLD => emperor.reap(Instant::now()),
                SIGHUP => {
                    tracing::info!("SIGHUP: reloading every vassal");
                    emperor.vassals.reload_all()
                }
                _ => emperor.stop(Instant::now()),
            },
            Some((scan, found)) = scans.recv() => {
                for p in found.iter().filter(|p| !problems.contains(p)) {
                    tracing::warn!("{p}");
                }
                problems = found;
                let actions = emperor.vassals.scanned(scan, Instant::now());
                if std::mem::take(&mut first_scan) {
                    emperor.notify("READY=1");
                }
                actions
            }
            Some(note) = notes.recv() => emperor.vassals.notified(note.pid, &note.text),
            Some(call) = calls.recv() => emperor.answer(call, Instant::now()),
            _ = tokio::time::sleep_until(deadline) => emperor.vassals.tick(Instant::now()),
            _ = sweep.tick() => emperor.reap(Instant::now()),
        };
        emperor.carry_out(actions);
    }
}

/// Scans the directories every `freq`, off the loop; a slow file system delays scans, never
/// the loop (the channel holds one scan, and the next waits for it to be taken).
async fn scanner(dirs: Vec<PathBuf>, freq: Duration, out: mpsc::Sender<(Scan, Vec<String>)>) {
    let mut every = tokio::time::interval(freq);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let dirs = dirs.clone();
        let Ok(result) = tokio::task::spawn_blocking(move || scan::scan(&dirs)).await else {
            continue;
        };
        if out.send(result).await.is_err() {
            return;
        }
    }
}

impl Emperor<'_> {
    fn notify(&self, message: &str) {
        if let Some(n) = &self.notifier {
            n.send(message);
        }
    }

    fn stop(&mut self, now: Instant) -> Vec<Action> {
        tracing::info!("stopping every vassal");
        self.notify("STOPPING=1");
        self.vassals.stop(now)
    }

    fn reap(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for (pid, how) in reaper::reap() {
            let pid = pid.as_raw();
            let (ours, actions) = self.vassals.exited(pid, how, now);
            if ours {
                tracing::info!(pid, "vassal ended: {how}");
                if let Some(task) = self.listeners.remove(&pid) {
                    task.abort();
                }
            }
            out.extend(actions);
        }
        out
    }

    fn answer(&mut self, call: Call, now: Instant) -> Vec<Action> {
        let (reply, actions) = match call.request {
            Request::Status => (Reply::Emperor(self.report(now)), Vec::new()),
            Request::Stop => (
                Reply::Ok {
                    message: "the emperor is stopping its vassals".to_owned(),
                },
                self.stop(now),
            ),
            Request::Reload { .. } => {
                let actions = self.vassals.reload_all();
                let n = actions.len();
                (
                    Reply::ReloadStarted {
                        message: format!(
                            "reloading {n} vassals; each reloads on its own (segue status shows them)"
                        ),
                    },
                    actions,
                )
            }
            Request::Upgrade { .. } | Request::Workers { .. } => (
                Reply::Error {
                    message: "this is an emperor: send upgrade and workers to a vassal's own --control socket".to_owned(),
                },
                Vec::new(),
            ),
        };
        let _ = call.reply.send(reply);
        actions
    }

    fn report(&self, now: Instant) -> EmperorReport {
        EmperorReport {
            pid: std::process::id(),
            dirs: self.config.dirs.clone(),
            vassals: self
                .vassals
                .report(now)
                .into_iter()
                .map(|v| VassalReport {
                    config: v.config,
                    pid: v.pid,
                    state: v.state.to_owned(),
                    restarts: v.restarts,
                    uptime_s: v.uptime_s,
                    last_exit: v.last_exit,
                })
                .collect(),
        }
    }

    /// Carries out actions, and the actions their results lead to.
    fn carry_out(&mut self, actions: Vec<Action>) {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Start(path) => {
                    let result = self.start(&path);
                    queue.extend(self.vassals.started(&path, result, Instant::now()));
                }
                Action::Signal { pid, sig } => signal(pid, sig),
                Action::Exit(status) => self.exit = Some(status),
            }
        }
        let report = self.vassals.report(Instant::now());
        let running = report.iter().filter(|v| v.state == "running").count();
        self.notify(&format!(
            "STATUS={running} of {} vassals running",
            report.len()
        ));
    }

    fn start(&mut self, path: &std::path::Path) -> Result<i32, String> {
        let owner = if self.config.tyrant {
            Some(launch::tyrant_owner(path)?)
        } else {
            None
        };
        let raw = self.config.log.format == LogFormat::Json;
        match launch::start(&self.exe, path, owner, raw, self.notes.clone()) {
            Ok(started) => {
                tracing::info!(pid = started.pid, vassal = %path.display(), "vassal started");
                self.listeners.insert(started.pid, started.listener);
                Ok(started.pid)
            }
            Err(e) => {
                tracing::warn!(vassal = %path.display(), "cannot start the vassal: {e}");
                Err(e.to_string())
            }
        }
    }
}

fn signal(pid: i32, sig: Sig) {
    let target = Pid::from_raw(pid);
    let (result, what) = match sig {
        Sig::Reload => (kill(target, Signal::SIGHUP), "reload (SIGHUP)"),
        Sig::Stop => (kill(target, Signal::SIGTERM), "stop (SIGTERM)"),
        Sig::Kill => (
            killpg(target, Signal::SIGKILL),
            "kill (SIGKILL to its process group): it outlived its stop timeout",
        ),
    };
    match result {
        Ok(()) => tracing::info!(pid, "vassal: {what}"),
        // Already gone: the reaper reports it.
        Err(e) => tracing::debug!(pid, "vassal: {what} failed: {e}"),
    }
}
