//! Attached daemons' lifecycle, as decisions (uWSGI's `attach-daemon`, `smart-attach-daemon`,
//! `smart-attach-daemon2`). Like the supervisor it performs no I/O: it returns [`Effect`]s
//! (start a daemon, signal it, read its pidfile, set a timer) and learns from events what
//! happened.
//!
//! - A plain daemon is started with the master, before the first generation is ready, so a
//!   worker may count on it (a queue consumer, a local cache). One that dies is started again:
//!   at once after an isolated exit, with growing backoff while it keeps dying young. When a
//!   reload is promoted, it is stopped and started again, so it runs the code and the
//!   configuration the new generation runs. A reload that rolls back leaves it alone.
//! - A smart daemon keeps a pidfile. It is started only if the pid in that file is not alive,
//!   and the file is checked once a second; a reload leaves it running. A `smart-attach-daemon`
//!   command puts itself in the background, so its own process exiting is expected. A
//!   `smart-attach-daemon2` command stays in the foreground, as the master's child.
//! - On stop every daemon gets SIGTERM (its whole process group, when it is the master's child),
//!   then SIGKILL after `--graceful-timeout`; a quick stop sends SIGKILL at once. The master
//!   exits only once its daemon children are reaped.
//! - `attach-daemon2`'s keys change these rules per daemon: `stopsignal` replaces SIGTERM,
//!   `reloadsignal` makes a promoted reload signal a plain daemon instead of restarting it,
//!   `control` makes its death stop the whole server, and `touch` files restart it when their
//!   modification time changes (checked with the once-a-second sweep).

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::effect::{Effect, Timer};
use super::reaper::ExitKind;
use super::table::{CRASH_WINDOW, backoff};
use crate::config::DaemonSpec;
use crate::control::DaemonReport;

/// Identifies one daemon for the master's lifetime (a reload that restarts it keeps the id).
pub type DaemonId = u64;

/// What crosses an in-place upgrade of one daemon: the new image adopts its process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandedDaemon {
    /// As configured.
    pub spec: DaemonSpec,
    /// Its process, if it has one.
    pub pid: Option<i32>,
    /// Whether that process is the master's child (else a smart daemon on its own).
    pub child: bool,
    /// Restarts so far.
    pub restarts: u64,
}

/// What a daemon is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Its pidfile is being read, to learn whether it already runs (smart daemons).
    Checking,
    /// Asked for; no pid yet.
    Starting,
    /// A child of the master.
    Running { pid: i32 },
    /// A smart daemon running on its own, known by its pidfile.
    Detached { pid: i32 },
    /// Dead; the restart timer with this token runs.
    Waiting { token: u64 },
    /// Asked to stop; it is started again when reaped, unless `retire`.
    Stopping { pid: i32 },
    /// Stopped for good (the master is stopping, or a reload removed it).
    Done,
}

/// One attached daemon.
#[derive(Debug)]
struct Daemon {
    id: DaemonId,
    spec: DaemonSpec,
    state: State,
    /// When its current process started, for the crash window and status.
    since: Option<Instant>,
    /// Consecutive deaths within [`CRASH_WINDOW`] of their start.
    failures: u32,
    /// Times it was started again after it ended (reloads excluded).
    restarts: u64,
    /// How its last process ended.
    last_exit: Option<String>,
    /// Stop for good once reaped (a reload dropped it from the configuration).
    retire: bool,
    /// The `touch` files' modification times as last seen (`None` before the first look).
    touched: Option<Vec<Option<SystemTime>>>,
}

/// Every attached daemon.
#[derive(Debug, Default)]
pub struct Daemons {
    daemons: Vec<Daemon>,
    next_id: DaemonId,
    next_token: u64,
    /// The master is stopping: nothing is started again.
    stopping: bool,
    /// A `control` daemon ended on its own: why, until the supervisor takes it and stops.
    control_exit: Option<String>,
}

impl Daemons {
    /// Daemons for `specs`, none started yet.
    pub fn new(specs: &[DaemonSpec]) -> Daemons {
        let mut d = Daemons::default();
        for spec in specs {
            d.add(spec.clone());
        }
        d
    }

    fn add(&mut self, spec: DaemonSpec) -> DaemonId {
        let id = self.next_id;
        self.next_id += 1;
        self.daemons.push(Daemon {
            id,
            spec,
            state: State::Done,
            since: None,
            failures: 0,
            restarts: 0,
            last_exit: None,
            retire: false,
            touched: None,
        });
        id
    }

    fn get_mut(&mut self, id: DaemonId) -> Option<&mut Daemon> {
        self.daemons.iter_mut().find(|d| d.id == id)
    }

    /// Starts every daemon (smart ones once their pidfile says they do not run).
    pub fn start(&mut self, out: &mut Vec<Effect>) {
        let ids: Vec<DaemonId> = self.daemons.iter().map(|d| d.id).collect();
        for id in ids {
            self.launch(id, out);
        }
    }

    /// Starts `id` now (a smart one: checks its pidfile first).
    fn launch(&mut self, id: DaemonId, out: &mut Vec<Effect>) {
        let Some(d) = self.get_mut(id) else {
            return;
        };
        match &d.spec.smart {
            Some(smart) => {
                d.state = State::Checking;
                out.push(Effect::ReadPidfile {
                    id,
                    path: smart.pidfile.clone(),
                });
            }
            None => {
                d.state = State::Starting;
                out.push(Effect::StartDaemon {
                    id,
                    spec: d.spec.clone(),
                });
            }
        }
    }

    /// The executor started `id` as `pid`. One that a stop or a reload dropped while it was
    /// being started is asked to stop at once.
    pub fn started(&mut self, id: DaemonId, pid: i32, out: &mut Vec<Effect>) {
        let stopping = self.stopping;
        let Some(d) = self.get_mut(id) else {
            return;
        };
        d.since = Some(Instant::now());
        if stopping || d.retire {
            d.state = State::Stopping { pid };
            out.push(Effect::SignalProcess {
                pid,
                group: true,
                signal: d.spec.keys.stop_signal,
            });
            return;
        }
        d.state = State::Running { pid };
        tracing::info!(daemon = %d.spec, pid, "{} started", d.spec.option());
    }

    /// The executor could not start `id`.
    pub fn start_failed(&mut self, id: DaemonId, error: &str, out: &mut Vec<Effect>) {
        let Some(d) = self.get_mut(id) else {
            return;
        };
        tracing::error!(daemon = %d.spec, "cannot start {}: {error}", d.spec.option());
        d.last_exit = Some(format!("could not start: {error}"));
        d.since = None;
        self.died(id, out);
    }

    /// The pid of `id`'s pidfile, if that process is alive.
    pub fn pidfile_read(&mut self, id: DaemonId, alive: Option<i32>, out: &mut Vec<Effect>) {
        let stopping = self.stopping;
        let Some(d) = self.get_mut(id) else {
            return;
        };
        match (d.state, alive) {
            (State::Checking | State::Detached { .. }, Some(pid)) => {
                if d.state == State::Checking {
                    tracing::info!(daemon = %d.spec, pid, "{} already runs", d.spec.option());
                }
                d.state = State::Detached { pid };
            }
            (State::Checking, None) if !stopping => {
                d.state = State::Starting;
                out.push(Effect::StartDaemon {
                    id,
                    spec: d.spec.clone(),
                });
            }
            (State::Detached { pid }, None) => {
                d.last_exit = Some(format!("pid {pid} from its pidfile is gone"));
                self.died(id, out);
            }
            _ => {}
        }
    }

    /// The reaper collected `pid`; returns whether it was a daemon's.
    pub fn reaped(&mut self, pid: i32, kind: ExitKind, out: &mut Vec<Effect>) -> bool {
        let stopping = self.stopping;
        let Some(d) = self.daemons.iter_mut().find(
            |d| matches!(d.state, State::Running { pid: p } | State::Stopping { pid: p } if p == pid),
        ) else {
            return false;
        };
        let id = d.id;
        let asked = matches!(d.state, State::Stopping { .. });
        d.last_exit = Some(kind.to_string());
        if stopping || d.retire {
            tracing::info!(daemon = %d.spec, pid, "{} stopped ({kind})", d.spec.option());
            d.state = State::Done;
            return true;
        }
        if asked {
            // Stopped by a reload: it starts again at once, on the new configuration.
            tracing::info!(daemon = %d.spec, pid, "{} stopped for the reload ({kind})", d.spec.option());
            d.failures = 0;
            self.launch(id, out);
            return true;
        }
        match &d.spec.smart {
            // A daemonizing command's own process exits once the daemon runs: the pidfile
            // says what became of it.
            Some(smart) if smart.daemonizes && kind == ExitKind::Code(0) => {
                d.state = State::Checking;
                out.push(Effect::ReadPidfile {
                    id,
                    path: smart.pidfile.clone(),
                });
            }
            _ => {
                tracing::warn!(daemon = %d.spec, pid, "{} ended ({kind})", d.spec.option());
                self.died(id, out);
            }
        }
        true
    }

    /// `id` is not running and should be: start it again after the backoff its history earns,
    /// or, for a `control` daemon, have the server stop.
    fn died(&mut self, id: DaemonId, out: &mut Vec<Effect>) {
        let token = self.next_token;
        self.next_token += 1;
        let Some(d) = self.get_mut(id) else {
            return;
        };
        if d.spec.keys.control {
            let why = d.last_exit.clone().unwrap_or_else(|| "it ended".into());
            d.state = State::Done;
            d.since = None;
            self.control_exit = Some(format!("control daemon {} ended ({why})", d.spec));
            return;
        }
        let young = d.since.is_none_or(|s| s.elapsed() < CRASH_WINDOW);
        d.failures = if young { d.failures + 1 } else { 1 };
        d.since = None;
        d.state = State::Waiting { token };
        let delay = backoff(d.failures);
        if delay > Duration::ZERO {
            tracing::warn!(daemon = %d.spec, "starting it again in {delay:?} ({} quick deaths in a row)", d.failures);
        }
        out.push(Effect::After(delay, Timer::DaemonRestart { id, token }));
    }

    /// A restart timer went off.
    pub fn restart_due(&mut self, id: DaemonId, token: u64, out: &mut Vec<Effect>) {
        if self.stopping {
            return;
        }
        let Some(d) = self.get_mut(id) else {
            return;
        };
        if d.state != (State::Waiting { token }) {
            return;
        }
        d.restarts += 1;
        self.launch(id, out);
    }

    /// The once-a-second sweep: smart daemons' pidfiles are read again, `touch` files looked at.
    pub fn tick(&mut self, out: &mut Vec<Effect>) {
        for d in &self.daemons {
            if let (State::Detached { .. }, Some(smart)) = (d.state, &d.spec.smart) {
                out.push(Effect::ReadPidfile {
                    id: d.id,
                    path: smart.pidfile.clone(),
                });
            }
            if !d.spec.keys.touch.is_empty() && !self.stopping && d.state != State::Done {
                out.push(Effect::StatFiles {
                    id: d.id,
                    paths: d.spec.keys.touch.clone(),
                });
            }
        }
    }

    /// The modification times of `id`'s `touch` files, in order (`None`: missing). A change
    /// from the last look (a file that appears counts) restarts the daemon with its stop
    /// signal; the first look only records them.
    pub fn files_seen(
        &mut self,
        id: DaemonId,
        mtimes: Vec<Option<SystemTime>>,
        out: &mut Vec<Effect>,
    ) {
        if self.stopping {
            return;
        }
        let Some(d) = self.get_mut(id) else {
            return;
        };
        let before = d.touched.replace(mtimes.clone());
        let changed = before.is_some_and(|b| {
            b.iter()
                .zip(&mtimes)
                .any(|(old, new)| new.is_some() && old != new)
        });
        if !changed {
            return;
        }
        let signal = d.spec.keys.stop_signal;
        match d.state {
            State::Running { pid } => {
                tracing::info!(daemon = %d.spec, pid, "a touch file changed: restarting the daemon");
                d.state = State::Stopping { pid };
                out.push(Effect::SignalProcess {
                    pid,
                    group: true,
                    signal,
                });
            }
            State::Detached { pid } => {
                // Its pidfile check sees it gone and starts it again.
                tracing::info!(daemon = %d.spec, pid, "a touch file changed: restarting the daemon");
                out.push(Effect::SignalProcess {
                    pid,
                    group: false,
                    signal,
                });
            }
            _ => {}
        }
    }

    /// Why a `control` daemon ended, once: the server stops for it.
    pub fn take_control_exit(&mut self) -> Option<String> {
        self.control_exit.take()
    }

    /// A reload was promoted with `specs` as its configuration: plain daemons are stopped and
    /// started again; smart daemons still configured keep running, the others are stopped, new
    /// ones start.
    pub fn reload(&mut self, specs: &[DaemonSpec], out: &mut Vec<Effect>) {
        if self.stopping {
            return;
        }
        let mut wanted: Vec<&DaemonSpec> = specs.iter().collect();
        for d in &mut self.daemons {
            let kept = wanted.iter().position(|s| **s == d.spec);
            let keep = kept.is_some() && d.spec.smart.is_some();
            if let Some(i) = kept {
                wanted.remove(i);
            }
            let reload_signal = d.spec.keys.reload_signal.filter(|_| kept.is_some());
            if let (Some(signal), State::Running { pid } | State::Detached { pid }) =
                (reload_signal, d.state)
            {
                // `reloadsignal`: told, and left running.
                tracing::info!(daemon = %d.spec, pid, signal, "reload: signalling the daemon");
                out.push(Effect::SignalProcess {
                    pid,
                    group: matches!(d.state, State::Running { .. }),
                    signal,
                });
                continue;
            }
            if keep {
                continue;
            }
            d.retire = kept.is_none();
            let signal = d.spec.keys.stop_signal;
            match d.state {
                State::Running { pid } => {
                    d.state = State::Stopping { pid };
                    out.push(Effect::SignalProcess {
                        pid,
                        group: true,
                        signal,
                    });
                }
                State::Detached { pid } if d.retire => {
                    d.state = State::Done;
                    out.push(Effect::SignalProcess {
                        pid,
                        group: false,
                        signal,
                    });
                }
                State::Waiting { .. } | State::Checking if d.retire => d.state = State::Done,
                // Stopped when its pid arrives (`started`).
                State::Starting => {}
                _ => {}
            }
        }
        self.daemons
            .retain(|d| !(d.retire && d.state == State::Done));
        for spec in wanted {
            let id = self.add(spec.clone());
            self.launch(id, out);
        }
    }

    /// The master stops: SIGTERM (`graceful`) or SIGKILL to every daemon, and nothing starts
    /// again. Smart daemons on their own get the signal too: stopping segue stops the service.
    pub fn stop(&mut self, graceful: bool, out: &mut Vec<Effect>) {
        self.stopping = true;
        for d in &mut self.daemons {
            let signal = if graceful {
                d.spec.keys.stop_signal
            } else {
                libc::SIGKILL
            };
            match d.state {
                State::Running { pid } | State::Stopping { pid } => {
                    d.state = State::Stopping { pid };
                    out.push(Effect::SignalProcess {
                        pid,
                        group: true,
                        signal,
                    });
                }
                State::Detached { pid } => {
                    d.state = State::Done;
                    out.push(Effect::SignalProcess {
                        pid,
                        group: false,
                        signal,
                    });
                }
                // One being started is stopped when its pid arrives (`started`).
                State::Starting => {}
                _ => d.state = State::Done,
            }
        }
    }

    /// The graceful timeout passed during a stop: SIGKILL what is left.
    pub fn kill_remaining(&mut self, out: &mut Vec<Effect>) {
        for d in &self.daemons {
            if let State::Stopping { pid } = d.state {
                tracing::warn!(daemon = %d.spec, pid, "{} did not stop within the graceful timeout: SIGKILL", d.spec.option());
                out.push(Effect::SignalProcess {
                    pid,
                    group: true,
                    signal: libc::SIGKILL,
                });
            }
        }
    }

    /// Whether a daemon may still start or is a child the master has yet to reap.
    pub fn any_alive(&self) -> bool {
        self.daemons.iter().any(|d| {
            matches!(
                d.state,
                State::Starting | State::Running { .. } | State::Stopping { .. }
            )
        })
    }

    /// What an in-place upgrade hands to the new image.
    pub fn handover(&self) -> Vec<HandedDaemon> {
        self.daemons
            .iter()
            .map(|d| {
                let (pid, child) = match d.state {
                    State::Running { pid } | State::Stopping { pid } => (Some(pid), true),
                    State::Detached { pid } => (Some(pid), false),
                    _ => (None, false),
                };
                HandedDaemon {
                    spec: d.spec.clone(),
                    pid,
                    child,
                    restarts: d.restarts,
                }
            })
            .collect()
    }

    /// In the new image after an in-place upgrade: the old image's daemons that are still
    /// configured are adopted with their processes; the others are stopped; configured ones
    /// the old image did not run are started.
    pub fn adopt(&mut self, handed: &[HandedDaemon], out: &mut Vec<Effect>) {
        let mut claimed: Vec<DaemonId> = Vec::new();
        for h in handed {
            let entry = self
                .daemons
                .iter_mut()
                .find(|d| d.spec == h.spec && !claimed.contains(&d.id));
            match (entry, h.pid) {
                (Some(d), pid) => {
                    claimed.push(d.id);
                    d.restarts = h.restarts;
                    match pid {
                        Some(pid) if h.child => {
                            d.state = State::Running { pid };
                            d.since = Some(Instant::now());
                        }
                        Some(pid) => d.state = State::Detached { pid },
                        None => {
                            let id = d.id;
                            self.launch(id, out);
                        }
                    }
                }
                (None, Some(pid)) => {
                    // No longer configured: stopped, and reaped as a daemon if it is a child.
                    if h.child {
                        let id = self.add(h.spec.clone());
                        claimed.push(id);
                        if let Some(d) = self.get_mut(id) {
                            d.state = State::Stopping { pid };
                            d.retire = true;
                        }
                    }
                    out.push(Effect::SignalProcess {
                        pid,
                        group: h.child,
                        signal: libc::SIGTERM,
                    });
                }
                (None, None) => {}
            }
        }
        let fresh: Vec<DaemonId> = self
            .daemons
            .iter()
            .filter(|d| !claimed.contains(&d.id))
            .map(|d| d.id)
            .collect();
        for id in fresh {
            self.launch(id, out);
        }
    }

    /// Whether there are daemons at all.
    pub fn is_empty(&self) -> bool {
        self.daemons.is_empty()
    }

    /// What `segue status` shows of each daemon.
    pub fn report(&self) -> Vec<DaemonReport> {
        self.daemons
            .iter()
            .map(|d| {
                let (state, pid) = match d.state {
                    State::Checking => ("checking", None),
                    State::Starting => ("starting", None),
                    State::Running { pid } => ("running", Some(pid)),
                    State::Detached { pid } => ("running (detached)", Some(pid)),
                    State::Waiting { .. } => ("waiting to restart", None),
                    State::Stopping { pid } => ("stopping", Some(pid)),
                    State::Done => ("stopped", None),
                };
                DaemonReport {
                    kind: d.spec.option().to_owned(),
                    command: d.spec.command.clone(),
                    state: state.to_owned(),
                    pid,
                    uptime_s: d.since.map(|s| s.elapsed().as_secs_f64()),
                    restarts: d.restarts,
                    last_exit: d.last_exit.clone(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
