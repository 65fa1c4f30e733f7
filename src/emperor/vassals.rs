//! The emperor's rules for its vassals, apart from any process or file: inputs (a directory
//! scan, an exit, a vassal's sd_notify message, the clock, a stop) go in, [`Action`]s to carry
//! out come back. The loop executes them; the rules are tested here with paused time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::master::reaper::ExitKind;

/// The first pause before a vassal that died is started again.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);

/// The longest pause between restarts of a vassal that keeps dying before it is ready.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What a scan saw of one config file: a change of any part (a `touch` changes the mtime, an
/// edit within the same second changes the hash) reloads its vassal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// Modification time, in nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Size in bytes.
    pub len: u64,
    /// A hash of the content.
    pub hash: u64,
}

/// One pass over the emperor's directories.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Every vassal file found.
    pub files: Vec<(PathBuf, Fingerprint)>,
    /// Directories that could not be read this time: their vassals are left as they are,
    /// rather than stopped because a permission or a mount blinked.
    pub unreadable: Vec<PathBuf>,
}

/// A signal for a vassal's master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    /// SIGHUP: a graceful, zero-downtime reload that re-reads its file.
    Reload,
    /// SIGTERM: a graceful stop.
    Stop,
    /// SIGKILL to its whole process group: it outlived the stop timeout.
    Kill,
}

/// What the loop must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a vassal for this file, then report its pid with [`Vassals::started`].
    Start(PathBuf),
    /// Signal a vassal.
    Signal {
        /// The vassal master's pid.
        pid: i32,
        /// Which signal.
        sig: Sig,
    },
    /// Every vassal has ended after a stop: exit with this status.
    Exit(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Started; not ready yet.
    Starting,
    /// Ready (`READY=1`).
    Running,
    /// Sent SIGHUP (or said `RELOADING=1`); ready again at the next `READY=1`.
    Reloading,
    /// Sent SIGTERM at `since`.
    Stopping { since: Instant, killed: bool },
    /// Died; started again at `until`.
    Waiting { until: Instant },
}

#[derive(Debug, Clone)]
struct Vassal {
    fingerprint: Fingerprint,
    state: State,
    pid: Option<i32>,
    started: Option<Instant>,
    restarts: u64,
    /// Deaths in a row without a `READY=1`, for the backoff.
    failures: u32,
    last_exit: Option<String>,
    /// The file changed while it was starting: reload once it is ready. (A SIGHUP before its
    /// master has installed its handlers would kill it.)
    reload_pending: bool,
    /// Its file is gone: it is stopped for good.
    removed: bool,
}

impl Vassal {
    /// A ready (or reloading) vassal reloads: its SIGHUP. Others cannot be told yet.
    fn reload(&mut self) -> Option<Action> {
        match (self.state, self.pid) {
            (State::Running | State::Reloading, Some(pid)) => {
                self.state = State::Reloading;
                Some(Action::Signal {
                    pid,
                    sig: Sig::Reload,
                })
            }
            _ => None,
        }
    }

    fn new(fingerprint: Fingerprint) -> Vassal {
        Vassal {
            fingerprint,
            state: State::Starting,
            pid: None,
            started: None,
            restarts: 0,
            failures: 0,
            last_exit: None,
            reload_pending: false,
            removed: false,
        }
    }
}

/// One vassal, for `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct VassalView {
    /// Its config file.
    pub config: PathBuf,
    /// Its master's pid, while it has one.
    pub pid: Option<i32>,
    /// `starting`, `running`, `reloading`, `stopping` or `waiting to restart`.
    pub state: &'static str,
    /// Times it was started again after it died.
    pub restarts: u64,
    /// Seconds since its current process started.
    pub uptime_s: Option<f64>,
    /// How its last process ended.
    pub last_exit: Option<String>,
}

/// Every vassal and the emperor's own stop.
#[derive(Debug)]
pub struct Vassals {
    map: BTreeMap<PathBuf, Vassal>,
    stopping: bool,
    kill_after: Duration,
}

/// The pause before restart number `failures` (1 for the first death).
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (BACKOFF_FIRST * 2u32.pow(doublings)).min(BACKOFF_MAX)
}

impl Vassals {
    /// No vassals yet; a vassal still running `kill_after` after its SIGTERM is killed.
    pub fn new(kill_after: Duration) -> Vassals {
        Vassals {
            map: BTreeMap::new(),
            stopping: false,
            kill_after,
        }
    }

    /// A scan's result: new files start vassals, changed ones reload theirs, missing ones stop
    /// theirs (unless their directory could not be read).
    pub fn scanned(&mut self, scan: Scan, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopping {
            return out;
        }
        for (path, fp) in &scan.files {
            let Some(v) = self.map.get_mut(path) else {
                self.map.insert(path.clone(), Vassal::new(*fp));
                out.push(Action::Start(path.clone()));
                continue;
            };
            let changed = v.fingerprint != *fp;
            v.fingerprint = *fp;
            if v.removed {
                // Back before its old process ended: started again once it has.
                v.removed = false;
                continue;
            }
            if !changed {
                continue;
            }
            if let Some(signal) = v.reload() {
                out.push(signal);
                continue;
            }
            match v.state {
                State::Waiting { .. } => {
                    // A fix to a crashing vassal's file is tried at once.
                    v.state = State::Starting;
                    v.failures = 0;
                    out.push(Action::Start(path.clone()));
                }
                _ => v.reload_pending = true,
            }
        }
        let gone: Vec<PathBuf> = self
            .map
            .keys()
            .filter(|p| !scan.files.iter().any(|(f, _)| f == *p))
            .filter(|p| {
                !scan
                    .unreadable
                    .iter()
                    .any(|d| p.parent() == Some(d.as_path()))
            })
            .cloned()
            .collect();
        for path in gone {
            out.extend(self.remove(&path, now));
        }
        out
    }

    fn remove(&mut self, path: &Path, now: Instant) -> Vec<Action> {
        let Some(v) = self.map.get_mut(path) else {
            return Vec::new();
        };
        if v.removed {
            return Vec::new();
        }
        v.removed = true;
        match (v.state, v.pid) {
            // Already on its way out; `died` forgets it.
            (State::Stopping { .. }, _) => Vec::new(),
            (State::Waiting { .. }, _) => {
                self.map.remove(path);
                Vec::new()
            }
            // Being started: `started` stops it as soon as its pid is known.
            (_, None) => Vec::new(),
            (_, Some(pid)) => {
                v.state = State::Stopping {
                    since: now,
                    killed: false,
                };
                vec![Action::Signal {
                    pid,
                    sig: Sig::Stop,
                }]
            }
        }
    }

    /// The loop started `path`'s vassal (`Ok(pid)`) or could not (`Err(why)`).
    pub fn started(
        &mut self,
        path: &Path,
        result: Result<i32, String>,
        now: Instant,
    ) -> Vec<Action> {
        let Some(v) = self.map.get_mut(path) else {
            return Vec::new();
        };
        match result {
            Ok(pid) => {
                v.pid = Some(pid);
                v.started = Some(now);
                if v.removed || self.stopping {
                    v.state = State::Stopping {
                        since: now,
                        killed: false,
                    };
                    return vec![Action::Signal {
                        pid,
                        sig: Sig::Stop,
                    }];
                }
                Vec::new()
            }
            Err(why) => {
                v.last_exit = Some(format!("could not start: {why}"));
                self.died(path, now)
            }
        }
    }

    /// A vassal's process ended after the pause its failures earned, or is gone for good.
    fn died(&mut self, path: &Path, now: Instant) -> Vec<Action> {
        let Some(v) = self.map.get_mut(path) else {
            return Vec::new();
        };
        v.pid = None;
        v.started = None;
        if self.stopping || v.removed {
            self.map.remove(path);
            return self.exit_if_done();
        }
        let asked = matches!(v.state, State::Stopping { .. });
        if asked {
            // Stopped because its file went away, and the file came back meanwhile.
            v.state = State::Starting;
            v.reload_pending = false;
            return vec![Action::Start(path.to_owned())];
        }
        v.failures = v.failures.saturating_add(1);
        v.restarts += 1;
        v.state = State::Waiting {
            until: now + backoff(v.failures),
        };
        Vec::new()
    }

    fn exit_if_done(&self) -> Vec<Action> {
        if self.stopping && self.map.is_empty() {
            vec![Action::Exit(0)]
        } else {
            Vec::new()
        }
    }

    /// A child ended; `false` if it was none of the vassals (the loop logs it).
    pub fn exited(&mut self, pid: i32, how: ExitKind, now: Instant) -> (bool, Vec<Action>) {
        let Some(path) = self
            .map
            .iter()
            .find(|(_, v)| v.pid == Some(pid))
            .map(|(p, _)| p.clone())
        else {
            return (false, Vec::new());
        };
        if let Some(v) = self.map.get_mut(&path) {
            v.last_exit = Some(how.to_string());
        }
        (true, self.died(&path, now))
    }

    /// A vassal's sd_notify datagram (its own `NOTIFY_SOCKET`), from process `pid`.
    pub fn notified(&mut self, pid: i32, text: &str) -> Vec<Action> {
        let Some(v) = self.map.values_mut().find(|v| v.pid == Some(pid)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for line in text.lines() {
            match (line.trim(), v.state) {
                ("READY=1", State::Starting | State::Reloading) => {
                    v.state = State::Running;
                    v.failures = 0;
                    if std::mem::take(&mut v.reload_pending) {
                        v.state = State::Reloading;
                        out.push(Action::Signal {
                            pid,
                            sig: Sig::Reload,
                        });
                    }
                }
                ("RELOADING=1", State::Running) => v.state = State::Reloading,
                _ => {}
            }
        }
        out
    }

    /// The clock: restarts that are due, kills of vassals that outlived their stop.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for (path, v) in &mut self.map {
            match v.state {
                State::Waiting { until } if until <= now && !self.stopping => {
                    v.state = State::Starting;
                    out.push(Action::Start(path.clone()));
                }
                State::Stopping {
                    since,
                    killed: false,
                } if since + self.kill_after <= now => {
                    if let Some(pid) = v.pid {
                        v.state = State::Stopping {
                            since,
                            killed: true,
                        };
                        out.push(Action::Signal {
                            pid,
                            sig: Sig::Kill,
                        });
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// When [`Vassals::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.map
            .values()
            .filter_map(|v| match v.state {
                State::Waiting { until } if !self.stopping => Some(until),
                State::Stopping {
                    since,
                    killed: false,
                } => Some(since + self.kill_after),
                _ => None,
            })
            .min()
    }

    /// The emperor stops: every vassal is stopped gracefully; [`Action::Exit`] comes once the
    /// last one has ended.
    pub fn stop(&mut self, now: Instant) -> Vec<Action> {
        self.stopping = true;
        let mut out = Vec::new();
        // A vassal waiting to restart is simply forgotten; one being started (no pid yet) stays,
        // and `started` stops it as soon as its pid is known.
        self.map
            .retain(|_, v| !matches!(v.state, State::Waiting { .. }));
        for v in self.map.values_mut() {
            if let (Some(pid), false) = (v.pid, matches!(v.state, State::Stopping { .. })) {
                v.state = State::Stopping {
                    since: now,
                    killed: false,
                };
                out.push(Action::Signal {
                    pid,
                    sig: Sig::Stop,
                });
            }
        }
        out.extend(self.exit_if_done());
        out
    }

    /// `segue reload` on the emperor: every ready vassal reloads; starting ones reload once
    /// they are ready.
    pub fn reload_all(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopping {
            return out;
        }
        for v in self.map.values_mut().filter(|v| !v.removed) {
            match v.reload() {
                Some(signal) => out.push(signal),
                None if v.state == State::Starting => v.reload_pending = true,
                None => {}
            }
        }
        out
    }

    /// Every vassal, by config path.
    pub fn report(&self, now: Instant) -> Vec<VassalView> {
        self.map
            .iter()
            .map(|(path, v)| VassalView {
                config: path.clone(),
                pid: v.pid,
                state: match v.state {
                    State::Starting => "starting",
                    State::Running => "running",
                    State::Reloading => "reloading",
                    State::Stopping { .. } => "stopping",
                    State::Waiting { .. } => "waiting to restart",
                },
                restarts: v.restarts,
                uptime_s: v.started.map(|s| now.duration_since(s).as_secs_f64()),
                last_exit: v.last_exit.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
