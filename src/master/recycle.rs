//! Replacing one worker at a time: past `--max-requests`, `--reload-on-rss` or
//! `--max-worker-lifetime` (drained at leisure), or stuck past `--harakiri` or
//! `--heartbeat-timeout` (killed shortly). Either way the replacement is started first and the
//! old worker keeps serving until it is ready, so recycling never leaves a slot empty.

use std::time::Duration;

use tokio::time::Instant;

use super::effect::{Effect, Timer};
use super::supervisor::{Phase, Supervisor};
use super::worker::{Worker, WorkerId, WorkerState};
use crate::protocol::DrainReason;

/// After a recycling replacement fails to boot, how long before the next attempt.
pub const RECYCLE_RETRY: Duration = Duration::from_secs(10);
/// How long a stuck worker's other requests get once its replacement serves.
pub const STUCK_GRACE: Duration = Duration::from_secs(1);

impl Supervisor {
    /// After a heartbeat: starts a replacement for a worker past one of its recycling limits.
    pub(super) fn check_recycle(&mut self, id: WorkerId) {
        if self.phase != Phase::Running || self.reload.is_some() {
            return; // a reload replaces every worker anyway
        }
        let Some(w) = self.table.get(id) else {
            return;
        };
        let eligible = w.state == WorkerState::Ready
            && w.generation == self.serving
            && w.replacement.is_none()
            && w.slot < self.table.wanted();
        if !eligible || w.recycle_retry_after.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let max_rss = self
            .generations
            .get(&w.generation)
            .and_then(|c| c.recycle.max_rss_kib);
        let reason = if let Some(limit) = w.max_requests.filter(|&m| w.stats.requests_finished >= m)
        {
            format!(
                "served {} requests (--max-requests {limit})",
                w.stats.requests_finished
            )
        } else if let Some(limit) = max_rss.filter(|&m| w.stats.rss_kib > m) {
            format!(
                "resident memory {} MiB over --reload-on-rss {} MiB",
                w.stats.rss_kib / 1024,
                limit / 1024
            )
        } else if w.retire_at.is_some_and(|t| Instant::now() >= t) {
            format!(
                "{:.0}s old (--max-worker-lifetime)",
                w.spawned_at.elapsed().as_secs_f64()
            )
        } else {
            return;
        };
        tracing::info!(worker = %id, generation = w.generation, "recycling: {reason}; starting its replacement first");
        self.start_replacement(id, reason, false);
    }

    /// Spawns a worker to take over `id`'s slot; when it is ready `id` drains (or, if `kill`,
    /// drains for a short grace and is then killed).
    pub(super) fn start_replacement(&mut self, id: WorkerId, reason: String, kill: bool) {
        let running = self.phase == Phase::Running;
        let (serving, wanted) = (self.serving, self.table.wanted());
        let Some(w) = self.table.get_mut(id) else {
            return;
        };
        w.kill_when_replaced |= kill;
        if w.replacement.is_some() || w.state != WorkerState::Ready || !running {
            return;
        }
        let (slot, generation) = (w.slot, w.generation);
        if generation != serving || slot >= wanted {
            // An old generation's worker: its reload replaces it; a stuck one just goes.
            if kill {
                self.emit(Effect::After(STUCK_GRACE, Timer::KillStuck(id)));
                self.drain(id, DrainReason::Recycle);
            }
            return;
        }
        match self.spawn(slot, serving) {
            Some(new) => {
                if let Some(n) = self.table.get_mut(new) {
                    n.replaces = Some(id);
                }
                if let Some(o) = self.table.get_mut(id) {
                    o.replacement = Some(new);
                }
            }
            None => tracing::warn!(worker = %id, "no replacement could be started ({reason})"),
        }
    }

    /// The sweep: a ready worker silent for `--heartbeat-timeout` is replaced and killed.
    pub(super) fn check_heartbeats(&mut self) {
        let base = self.base.heartbeat_timeout;
        let silent: Vec<(WorkerId, Duration)> = self
            .table
            .workers()
            .filter(|w| w.state == WorkerState::Ready && w.replacement.is_none())
            .filter_map(|w| {
                let timeout = self
                    .generations
                    .get(&w.generation)
                    .map_or(base, |c| c.heartbeat_timeout);
                let quiet = w.last_heartbeat.elapsed();
                (quiet > timeout).then_some((w.id, quiet))
            })
            .collect();
        for (id, quiet) in silent {
            let reason = format!(
                "no heartbeat for {:.0}s (stuck holding the GIL?)",
                quiet.as_secs_f64()
            );
            tracing::error!(worker = %id, "{reason}; replacing the worker, then killing it");
            self.start_replacement(id, reason, true);
        }
    }

    /// A replacement is ready: the worker it replaces drains (a stuck one is killed shortly).
    pub(super) fn finish_recycle(&mut self, new: WorkerId) {
        let Some(old) = self.table.get(new).and_then(|w| w.replaces) else {
            return;
        };
        tracing::info!(worker = %old, replacement = %new, "recycled: the replacement is ready, the old worker drains");
        if self.table.get(old).is_some_and(|w| w.kill_when_replaced) {
            self.emit(Effect::After(STUCK_GRACE, Timer::KillStuck(old)));
        }
        self.drain(old, DrainReason::Recycle);
    }

    /// `dead` never became ready. If it was replacing a worker, that worker keeps serving and
    /// tries again later, unless it is stuck, in which case it goes anyway and the slot is
    /// refilled like after a crash.
    pub(super) fn replacement_failed(&mut self, dead: &Worker) {
        let Some(old) = dead.replaces else { return };
        let Some(o) = self.table.get_mut(old) else {
            return;
        };
        o.replacement = None;
        if o.kill_when_replaced {
            tracing::warn!(worker = %old, "its replacement failed to start; killing the stuck worker anyway");
            self.emit(Effect::Kill(old));
        } else {
            o.recycle_retry_after = Some(Instant::now() + RECYCLE_RETRY);
            tracing::warn!(worker = %old, "its replacement failed to start; it keeps serving, next attempt in {RECYCLE_RETRY:?}");
        }
    }
}

/// A pseudo-random number in `0..=max` (splitmix64 over the clock and `salt`): enough to
/// spread workers' recycling apart, no cryptography needed.
pub(super) fn jitter(max: u64, salt: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut z = nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % (max + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range_and_varies() {
        assert_eq!(jitter(0, 7), 0);
        let draws: std::collections::HashSet<u64> = (0..200).map(|i| jitter(10, i)).collect();
        assert!(draws.iter().all(|&d| d <= 10));
        assert!(draws.len() > 5, "{draws:?}");
    }
}
