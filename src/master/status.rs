//! What the master tells the outside about itself: the `segue status` report and the text
//! systemd gets (`READY=1`, `STATUS=`, `WATCHDOG=1`, `EXTEND_TIMEOUT_USEC=`).

use super::effect::Effect;
use super::supervisor::{Phase, Supervisor};
use super::worker::WorkerState;
use crate::control::{CheaperReport, CrashLoop, ScalingReport, StatusReport, WorkerReport};

impl Supervisor {
    /// The cumulative counters: exited workers' (kept in `meters`) plus the live ones'.
    fn metrics(&self) -> crate::control::messages::MetricsReport {
        let mut m = self.meters.clone();
        for w in self.table.workers() {
            m.totals.add_counters(&w.stats);
        }
        m
    }

    /// What `segue status` shows.
    pub fn status(&self) -> StatusReport {
        let workers = self
            .table
            .workers()
            .map(|w| WorkerReport {
                id: w.id.0,
                pid: w.pid.unwrap_or(0),
                generation: w.generation,
                state: w.state.name().into(),
                requests: w.stats.requests_finished,
                uptime_s: w.spawned_at.elapsed().as_secs_f64(),
                rss_kib: w.stats.rss_kib,
                connections: w.stats.connections,
                log_dropped: w.stats.log_dropped,
                in_flight: w
                    .stats
                    .requests_started
                    .saturating_sub(w.stats.requests_finished),
                tx_bytes: w.stats.tx_bytes,
                busy_us: w.stats.busy_us,
                // An app that raised answers 500: the 5xx class.
                errors_5xx: w.stats.by_class[4],
                started_unix: std::time::SystemTime::now()
                    .checked_sub(w.spawned_at.elapsed())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs()),
                respawns: w.respawns,
                queued: w.queued,
                harakiri_count: w.harakiri_count,
                threads: self
                    .generations
                    .get(&w.generation)
                    .map_or(self.base.worker.threads, |c| c.worker.threads),
            })
            .collect();
        StatusReport {
            pid: std::process::id(),
            serving: self.serving,
            workers_wanted: self.table.wanted(),
            ready: self.announced_ready,
            listeners: self.listeners.clone(),
            // A reload whose configuration is still being read is under way too: a client
            // waiting for it (`segue upgrade --wait`) must not take it for over.
            reloading: self
                .reload
                .as_ref()
                .map(|r| format!("reload {} -> generation {}", r.id, r.target))
                .or_else(|| {
                    self.reading
                        .as_ref()
                        .map(|_| format!("reload {}: reading the configuration", self.next_reload))
                }),
            workers,
            reloads: self.history.iter().cloned().collect(),
            upgrades: self.upgrades,
            upgrade_error: self.upgrade_error.clone(),
            daemons: self.daemons.report(),
            crons: self.crons.report(),
            scaling: ScalingReport {
                asleep: self.cheap.asleep(),
                asleep_s: self.cheap.asleep_for().map(|d| d.as_secs_f64()),
                idle_s: self.cheap.idle().map(|d| d.as_secs_f64()),
                quiet_s: self.cheap.quiet_for().map(|d| d.as_secs_f64()),
                cheaper: self.scaler.as_ref().map(|s| CheaperReport {
                    min: s.spec().min,
                    max: s.spec().max,
                    algo: format!("{:?}", s.spec().algo).to_ascii_lowercase(),
                }),
                queued: self.accept_queue,
            },
            metrics: self.metrics(),
            crash_loops: self
                .table
                .slots()
                .iter()
                .enumerate()
                .filter(|(_, s)| s.failures >= 2)
                .map(|(i, s)| CrashLoop {
                    slot: i,
                    failures: s.failures,
                    last_error: s.last_failure.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// `STATUS=` for systemd: what serves, and what is happening.
    pub(super) fn status_line(&self) -> String {
        if self.cheap.asleep() {
            return format!(
                "generation {} asleep (cheap mode): workers start at the next connection",
                self.serving
            );
        }
        let ready = self.table.ready_count(self.serving);
        let mut line = format!(
            "generation {} serving with {ready}/{} workers",
            self.serving,
            self.table.wanted()
        );
        if let Some(run) = &self.reload {
            line += &format!(
                "; reload {} starting generation {} ({:?})",
                run.id, run.target, run.strategy
            );
        }
        line
    }

    /// Once every slot of the first generation is ready: `READY=1` and the log line operators
    /// wait for. Said once; reloads announce their own promotion.
    pub(super) fn maybe_announce_ready(&mut self) {
        if self.announced_ready {
            return;
        }
        let ready = self.table.ready_count(self.serving);
        if ready >= self.table.wanted() {
            self.announced_ready = true;
            let status = self.status_line();
            self.emit(Effect::Notify(format!("READY=1\nSTATUS={status}")));
            tracing::info!(
                generation = self.serving,
                workers = ready,
                "segue ready: all workers serving"
            );
            if self.base.exit_when_ready {
                tracing::info!("--check-config: the app loaded; stopping");
                self.stop_graceful();
            }
        }
    }

    /// `WATCHDOG=1`, but only while the server can serve: at least one ready worker of the
    /// serving generation, or the first generation still booting without a crash loop.
    pub(super) fn watchdog(&mut self) {
        let booting = !self.announced_ready && self.table.slots().iter().all(|s| s.failures < 2);
        // Asleep, the listeners accept into their queues and the first connection wakes
        // the workers: the server is as alive as ever.
        if self.table.ready_count(self.serving) > 0 || booting || self.cheap.asleep() {
            self.emit(Effect::Notify("WATCHDOG=1".into()));
        }
    }

    /// While the first generation boots (a slow import), asks systemd for more start time, so
    /// `TimeoutStartSec=` measures a hung start, not a slow app.
    pub(super) fn extend_start_timeout(&mut self) {
        let booting = self
            .table
            .workers()
            .any(|w| w.state == WorkerState::Starting);
        if !self.announced_ready && booting && self.phase == Phase::Running {
            self.emit(Effect::Notify("EXTEND_TIMEOUT_USEC=5000000".into()));
        }
    }
}
