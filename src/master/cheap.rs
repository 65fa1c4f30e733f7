//! Cheap and idle modes (`--cheap`, `--idle`, `--die-on-idle`, uWSGI's names): a server that
//! holds no workers while nobody uses it, for rarely used apps.
//!
//! Asleep, the master keeps listening and watches its listeners for a waiting connection
//! without accepting it ([`Effect::WatchListeners`]); the first one wakes the workers, and the
//! connection waits in the kernel's accept queue until a worker is ready, so it is served, never
//! refused. Awake with `--idle`, the master sleeps again once no request has started or run
//! for that long: no change in the workers' request counts (from their heartbeats) and no
//! request running or queued on the scoreboard (uWSGI counts requests the same way). The
//! workers drain, never killed in flight.
//!
//! A reload or an upgrade while asleep wakes the server: the new code has to pass the readiness
//! gate, and `--idle` puts it back to sleep. While asleep, `READY=1` holds (the server accepts
//! connections) and systemd's watchdog is fed.

use std::time::Duration;

use tokio::time::Instant;

use super::effect::Effect;
use super::supervisor::{Phase, Supervisor};
use crate::protocol::DrainReason;

/// Whether workers run, and since when nothing happened.
#[derive(Debug)]
pub struct Cheap {
    /// `--idle`.
    idle: Option<Duration>,
    /// `--die-on-idle`.
    die_on_idle: bool,
    /// Awake or asleep.
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Workers run.
    Awake {
        /// When the last request was seen (or the workers woke).
        quiet_since: Instant,
        /// The request count then, from the heartbeats.
        requests: u64,
    },
    /// No workers; the listeners are watched.
    Asleep {
        /// Since when.
        since: Instant,
        /// How many workers to start on waking.
        workers: usize,
    },
}

/// What the idle check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Stay,
    /// Quiet for `--idle`: stop the workers.
    Sleep,
    /// Quiet for `--idle` with `--die-on-idle`: stop the server.
    Die,
}

impl Cheap {
    /// Awake, counting quiet time from now.
    pub fn new(idle: Option<Duration>, die_on_idle: bool) -> Cheap {
        Cheap {
            idle,
            die_on_idle,
            state: State::Awake {
                quiet_since: Instant::now(),
                requests: 0,
            },
        }
    }

    /// Whether no workers run until the next connection.
    pub fn asleep(&self) -> bool {
        matches!(self.state, State::Asleep { .. })
    }

    /// How long it has been asleep, for status.
    pub fn asleep_for(&self) -> Option<Duration> {
        match self.state {
            State::Asleep { since, .. } => Some(since.elapsed()),
            State::Awake { .. } => None,
        }
    }

    /// Seconds without a request so far, while awake with `--idle`.
    pub fn quiet_for(&self) -> Option<Duration> {
        match (self.state, self.idle) {
            (State::Awake { quiet_since, .. }, Some(_)) => Some(quiet_since.elapsed()),
            _ => None,
        }
    }

    /// `--idle`, for status.
    pub fn idle(&self) -> Option<Duration> {
        self.idle
    }

    /// Goes to sleep; `workers` start on waking.
    pub fn sleep(&mut self, workers: usize) {
        self.state = State::Asleep {
            since: Instant::now(),
            workers,
        };
    }

    /// Wakes; returns how many workers to start (`None` if it was awake).
    pub fn wake(&mut self, requests: u64) -> Option<usize> {
        let State::Asleep { workers, .. } = self.state else {
            return None;
        };
        self.state = State::Awake {
            quiet_since: Instant::now(),
            requests,
        };
        Some(workers)
    }

    /// Once a second while awake: `requests` is the workers' request count (any change is
    /// activity; it may go down when a worker exits), `busy` whether a request runs now.
    pub fn observe(&mut self, requests: u64, busy: bool) -> Verdict {
        let State::Awake {
            quiet_since,
            requests: seen,
        } = &mut self.state
        else {
            return Verdict::Stay;
        };
        let Some(idle) = self.idle else {
            return Verdict::Stay;
        };
        if busy || *seen != requests {
            *quiet_since = Instant::now();
            *seen = requests;
            return Verdict::Stay;
        }
        if quiet_since.elapsed() < idle {
            Verdict::Stay
        } else if self.die_on_idle {
            Verdict::Die
        } else {
            Verdict::Sleep
        }
    }
}

impl Supervisor {
    /// The requests the workers have started, from their heartbeats.
    fn requests_started(&self) -> u64 {
        self.table.workers().map(|w| w.stats.requests_started).sum()
    }

    /// `--cheap` at first start: no workers, the listeners watched, ready at once. Returns
    /// whether it applies (not with `--check-config`, which must import the app).
    pub(super) fn start_asleep(&mut self) -> bool {
        if !self.base.scaling.cheap || self.base.exit_when_ready {
            return false;
        }
        let workers = self.table.wanted();
        self.table.set_wanted(0);
        self.cheap.sleep(workers);
        self.emit(Effect::WatchListeners);
        tracing::info!(
            generation = self.serving,
            "cheap mode: no workers until a connection arrives ({workers} then)"
        );
        self.maybe_announce_ready();
        true
    }

    /// A connection waits in a listener's queue: wake if asleep.
    pub(super) fn on_connection_waiting(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let Some(workers) = self.cheap.wake(self.requests_started()) else {
            return;
        };
        tracing::info!(
            generation = self.serving,
            "cheap mode: a connection is waiting; starting {workers} workers"
        );
        self.table.set_wanted(workers);
        for slot in 0..workers {
            self.spawn(slot, self.serving);
        }
        let status = self.status_line();
        self.emit(Effect::Notify(format!("STATUS={status}")));
    }

    /// A reload or upgrade while asleep: the slots come back empty for the reload to fill
    /// with the new generation (the old one has no workers to replace).
    pub(super) fn wake_for_reload(&mut self) {
        if let Some(workers) = self.cheap.wake(self.requests_started()) {
            tracing::info!(
                generation = self.serving,
                "cheap mode: waking for the reload ({workers} workers)"
            );
            self.table.set_wanted(workers);
            self.emit(Effect::UnwatchListeners);
        }
    }

    /// The once-a-second idle check: sleeps (or stops, with `--die-on-idle`) after `--idle`
    /// without a request. Not while a reload, a configuration read or an upgrade runs.
    pub(super) fn check_idle(&mut self, running: bool) {
        if self.phase != Phase::Running
            || self.reload.is_some()
            || self.reading.is_some()
            || self.upgrade.is_some()
        {
            return;
        }
        match self.cheap.observe(self.requests_started(), running) {
            Verdict::Stay => {}
            Verdict::Die => {
                tracing::info!(
                    "idle for {:.0}s with --die-on-idle: stopping",
                    self.cheap.idle().unwrap_or_default().as_secs_f64()
                );
                self.stop_graceful();
            }
            Verdict::Sleep => self.fall_asleep(),
        }
    }

    fn fall_asleep(&mut self) {
        let workers = self.table.wanted();
        tracing::info!(
            generation = self.serving,
            "idle for {:.0}s: stopping the {workers} workers until the next connection (cheap mode)",
            self.cheap.idle().unwrap_or_default().as_secs_f64()
        );
        for id in self.table.ids(|w| w.fills_slot()) {
            self.drain(id, DrainReason::ScaleDown);
        }
        self.table.set_wanted(0);
        self.cheap.sleep(workers);
        self.emit(Effect::WatchListeners);
        let status = self.status_line();
        self.emit(Effect::Notify(format!("STATUS={status}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_counts_quiet_time_from_the_last_change() {
        let mut c = Cheap::new(Some(Duration::from_secs(5)), false);
        assert_eq!(c.observe(0, false), Verdict::Stay);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(c.observe(3, false), Verdict::Stay, "requests came");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(c.observe(3, false), Verdict::Stay);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(c.observe(3, false), Verdict::Sleep);
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_request_is_never_idle() {
        let mut c = Cheap::new(Some(Duration::from_secs(1)), true);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(c.observe(0, true), Verdict::Stay);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(c.observe(0, false), Verdict::Die);
    }

    #[tokio::test(start_paused = true)]
    async fn asleep_it_remembers_the_count_and_wakes_once() {
        let mut c = Cheap::new(None, false);
        assert_eq!(c.observe(0, false), Verdict::Stay, "no --idle: never");
        c.sleep(3);
        assert!(c.asleep());
        assert_eq!(c.observe(0, false), Verdict::Stay);
        assert_eq!(c.wake(7), Some(3));
        assert_eq!(c.wake(7), None);
        assert!(!c.asleep());
    }
}
