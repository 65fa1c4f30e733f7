//! Cron jobs' runs, as decisions (uWSGI's `cron`, `unique-cron`, `cron-harakiri`). Like the
//! supervisor it performs no I/O: once a minute it is told the local time
//! ([`crate::config::WallClock`]) and returns the runs to start; it learns their pids and exits
//! from events.
//!
//! - A job whose schedule matches the minute is started (`/bin/sh -c`, its own process group,
//!   output into the log, as attached daemons are). Runs missed while segue was not running, or
//!   while the clock jumped, are not replayed, as in cron.
//! - `unique-cron`: a run due while the previous one still runs is skipped (and counted).
//! - `--cron-harakiri SECS`: a run still going after SECS is killed (SIGKILL to its group).
//! - On stop, running jobs get SIGTERM, then SIGKILL after `--graceful-timeout`, and the master
//!   waits for them as for daemons.

use std::time::Duration;

use tokio::time::Instant;

use super::effect::{Effect, Timer};
use super::reaper::ExitKind;
use crate::config::{CronSpec, WallClock};
use crate::control::CronReport;

/// Identifies a job for the master's lifetime (a reload that keeps it keeps the id; ids are
/// never reused, so an event about a dropped job cannot reach another).
pub type JobId = u64;

#[derive(Debug)]
struct Job {
    id: JobId,
    spec: CronSpec,
    /// Runs under way: pid and start.
    running: Vec<(i32, Instant)>,
    /// Runs asked for whose pid has not come back yet.
    starting: usize,
    runs: u64,
    skipped: u64,
    last_exit: Option<String>,
    last_duration: Option<Duration>,
    /// Dropped by a reload's configuration: kept only until its runs end.
    retired: bool,
}

impl Job {
    fn new(id: JobId, spec: CronSpec) -> Job {
        Job {
            id,
            spec,
            running: Vec::new(),
            starting: 0,
            runs: 0,
            skipped: 0,
            last_exit: None,
            last_duration: None,
            retired: false,
        }
    }
}

/// Every cron job.
#[derive(Debug, Default)]
pub struct Crons {
    jobs: Vec<Job>,
    next_id: JobId,
    harakiri: Option<Duration>,
    stopping: bool,
}

impl Crons {
    /// The jobs of `specs`; `harakiri` bounds each run.
    pub fn new(specs: &[CronSpec], harakiri: Option<Duration>) -> Crons {
        let mut crons = Crons {
            harakiri,
            ..Crons::default()
        };
        for spec in specs {
            crons.add(spec.clone());
        }
        crons
    }

    fn add(&mut self, spec: CronSpec) {
        let id = self.next_id;
        self.next_id += 1;
        self.jobs.push(Job::new(id, spec));
    }

    fn get_mut(&mut self, id: JobId) -> Option<&mut Job> {
        self.jobs.iter_mut().find(|j| j.id == id)
    }

    /// A promoted reload's configuration: jobs still configured keep their runs and counts,
    /// dropped ones stop being scheduled (a run under way finishes), new ones join.
    pub fn reconfigure(&mut self, specs: &[CronSpec], harakiri: Option<Duration>) {
        self.harakiri = harakiri;
        let mut wanted: Vec<&CronSpec> = specs.iter().collect();
        for job in &mut self.jobs {
            match wanted.iter().position(|s| **s == job.spec) {
                Some(i) => {
                    wanted.remove(i);
                    job.retired = false;
                }
                None => job.retired = true,
            }
        }
        self.jobs
            .retain(|j| !j.retired || j.starting > 0 || !j.running.is_empty());
        for spec in wanted {
            self.add(spec.clone());
        }
    }

    /// A new minute began: starts every job due at `now`.
    pub fn minute(&mut self, now: &WallClock, out: &mut Vec<Effect>) {
        if self.stopping {
            return;
        }
        for job in &mut self.jobs {
            if job.retired || !job.spec.schedule.matches(now) {
                continue;
            }
            if job.spec.unique && (job.starting > 0 || !job.running.is_empty()) {
                job.skipped += 1;
                tracing::warn!(cron = %job.spec.command, "unique cron job still running: this run is skipped");
                continue;
            }
            job.starting += 1;
            out.push(Effect::StartCronJob {
                id: job.id,
                command: job.spec.command.clone(),
            });
        }
    }

    /// A run of `id` started as `pid`.
    pub fn started(&mut self, id: JobId, pid: i32, out: &mut Vec<Effect>) {
        let stopping = self.stopping;
        let harakiri = self.harakiri;
        let Some(job) = self.get_mut(id) else {
            return;
        };
        job.starting = job.starting.saturating_sub(1);
        job.runs += 1;
        job.running.push((pid, Instant::now()));
        tracing::info!(cron = %job.spec.command, pid, schedule = %job.spec.schedule, "cron job started");
        if stopping {
            out.push(Effect::SignalProcess {
                pid,
                group: true,
                signal: libc::SIGTERM,
            });
        } else if let Some(h) = harakiri {
            out.push(Effect::After(h, Timer::CronHarakiri { pid }));
        }
    }

    /// A run of `id` could not start.
    pub fn start_failed(&mut self, id: JobId, error: &str) {
        if let Some(job) = self.get_mut(id) {
            job.starting = job.starting.saturating_sub(1);
            job.last_exit = Some(format!("could not start: {error}"));
            tracing::error!(cron = %job.spec.command, "cannot start the cron job: {error}");
        }
    }

    /// The reaper collected `pid`; returns whether it was a run's.
    pub fn reaped(&mut self, pid: i32, kind: ExitKind) -> bool {
        for job in &mut self.jobs {
            if let Some(i) = job.running.iter().position(|(p, _)| *p == pid) {
                let (_, since) = job.running.remove(i);
                let took = since.elapsed();
                job.last_exit = Some(kind.to_string());
                job.last_duration = Some(took);
                if kind == ExitKind::Code(0) {
                    tracing::info!(cron = %job.spec.command, pid, took_ms = took.as_millis() as u64, "cron job finished ({kind})");
                } else {
                    tracing::warn!(cron = %job.spec.command, pid, took_ms = took.as_millis() as u64, "cron job failed ({kind})");
                }
                self.jobs
                    .retain(|j| !j.retired || j.starting > 0 || !j.running.is_empty());
                return true;
            }
        }
        false
    }

    /// A run's `--cron-harakiri` elapsed: killed if it still runs.
    pub fn harakiri_due(&mut self, pid: i32, out: &mut Vec<Effect>) {
        for job in &self.jobs {
            if job.running.iter().any(|(p, _)| *p == pid) {
                tracing::warn!(cron = %job.spec.command, pid, "cron job still running after --cron-harakiri: SIGKILL");
                out.push(Effect::SignalProcess {
                    pid,
                    group: true,
                    signal: libc::SIGKILL,
                });
            }
        }
    }

    /// The master stops: SIGTERM (`graceful`) or SIGKILL to every run, and nothing starts.
    pub fn stop(&mut self, graceful: bool, out: &mut Vec<Effect>) {
        self.stopping = true;
        let signal = if graceful {
            libc::SIGTERM
        } else {
            libc::SIGKILL
        };
        for job in &self.jobs {
            for &(pid, _) in &job.running {
                out.push(Effect::SignalProcess {
                    pid,
                    group: true,
                    signal,
                });
            }
        }
    }

    /// The graceful timeout passed during a stop: SIGKILL what still runs.
    pub fn kill_remaining(&mut self, out: &mut Vec<Effect>) {
        for job in &self.jobs {
            for &(pid, _) in &job.running {
                out.push(Effect::SignalProcess {
                    pid,
                    group: true,
                    signal: libc::SIGKILL,
                });
            }
        }
    }

    /// Whether a run is going or being started (the master waits for them when it stops).
    pub fn any_running(&self) -> bool {
        self.jobs
            .iter()
            .any(|j| j.starting > 0 || !j.running.is_empty())
    }

    /// Whether there are jobs at all.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// What `segue status` shows of each job.
    pub fn report(&self) -> Vec<CronReport> {
        self.jobs
            .iter()
            .map(|j| CronReport {
                schedule: j.spec.schedule.to_string(),
                command: j.spec.command.clone(),
                unique: j.spec.unique,
                running: j.running.iter().map(|(p, _)| *p).collect(),
                runs: j.runs,
                skipped: j.skipped,
                last_exit: j.last_exit.clone(),
                last_duration_ms: j.last_duration.map(|d| d.as_millis() as u64),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: u32) -> WallClock {
        WallClock {
            minute,
            hour: 12,
            mday: 1,
            month: 1,
            wday: 1,
        }
    }

    fn starts(out: &[Effect]) -> usize {
        out.iter()
            .filter(|e| matches!(e, Effect::StartCronJob { .. }))
            .count()
    }

    #[tokio::test(start_paused = true)]
    async fn due_jobs_start_and_a_unique_one_never_runs_twice_at_once() {
        let every = CronSpec::parse("-1 -1 -1 -1 -1 work", false).unwrap();
        let unique = CronSpec::parse("* * * * * once", true).unwrap();
        let odd = CronSpec::parse("-2 -1 -1 -1 -1 even", false).unwrap();
        let mut c = Crons::new(&[every, unique, odd], Some(Duration::from_secs(30)));
        let mut out = Vec::new();
        c.minute(&at(1), &mut out);
        assert_eq!(starts(&out), 2, "{out:?}");
        out.clear();
        c.started(0, 10, &mut out);
        c.started(1, 11, &mut out);
        assert!(matches!(
            out.as_slice(),
            [
                Effect::After(_, Timer::CronHarakiri { pid: 10 }),
                Effect::After(_, Timer::CronHarakiri { pid: 11 })
            ]
        ));
        out.clear();
        // Both still run a minute later: the plain job starts again, the unique one is skipped.
        c.minute(&at(2), &mut out);
        assert_eq!(starts(&out), 2, "work and even");
        assert_eq!(c.report()[1].skipped, 1);
        assert!(c.reaped(11, ExitKind::Code(0)));
        assert_eq!(c.report()[1].last_exit.as_deref(), Some("exit code 0"));
        assert!(!c.reaped(999, ExitKind::Code(0)), "not a run's pid");
        out.clear();
        c.harakiri_due(10, &mut out);
        assert!(matches!(
            out.as_slice(),
            [Effect::SignalProcess {
                pid: 10,
                signal: libc::SIGKILL,
                ..
            }]
        ));
        out.clear();
        c.harakiri_due(11, &mut out);
        assert!(out.is_empty(), "a finished run is left alone");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_keeps_jobs_it_still_has_and_lets_a_dropped_run_finish() {
        let a = CronSpec::parse("* * * * * a", false).unwrap();
        let b = CronSpec::parse("* * * * * b", false).unwrap();
        let new = CronSpec::parse("* * * * * new", false).unwrap();
        let mut c = Crons::new(&[a, b.clone()], None);
        let mut out = Vec::new();
        c.minute(&at(0), &mut out);
        c.started(0, 10, &mut out);
        c.started(1, 11, &mut out);
        c.reconfigure(&[b, new], None);
        let r = c.report();
        assert_eq!(r.len(), 3, "the dropped job stays while its run goes on");
        out.clear();
        c.minute(&at(1), &mut out);
        let ids: Vec<JobId> = out
            .iter()
            .filter_map(|e| match e {
                Effect::StartCronJob { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(
            ids,
            vec![1, 2],
            "b keeps its id, the new job gets a fresh one"
        );
        assert!(c.reaped(10, ExitKind::Code(0)));
        let r = c.report();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].command, "b");
        assert_eq!(r[0].runs, 1, "b keeps its count");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_signals_runs_and_starts_nothing_more() {
        let mut c = Crons::new(&[CronSpec::parse("* * * * * x", false).unwrap()], None);
        let mut out = Vec::new();
        c.minute(&at(0), &mut out);
        c.started(0, 10, &mut out);
        out.clear();
        c.stop(true, &mut out);
        assert_eq!(out.len(), 1);
        assert!(c.any_running());
        out.clear();
        c.minute(&at(1), &mut out);
        assert!(out.is_empty());
        c.reaped(10, ExitKind::Signal(15));
        assert!(!c.any_running());
    }
}
