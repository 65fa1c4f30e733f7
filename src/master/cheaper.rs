//! Adaptive worker counts (`--cheaper`, uWSGI's name): between `--cheaper` and `--workers`
//! workers, judged once a second from the scoreboard (which workers have no free Python thread)
//! and the requests waiting. Waiting counts the listeners' accept queues and the requests a
//! worker has read but no Python thread of its has taken: with `--threads` above 1 segue's
//! acceptors take connections as they come (unlike uWSGI's, which accept only when free), so
//! under load the backlog sits in the workers more than in the kernel; with the app inline a
//! busy worker accepts nothing, and it sits in the kernel.
//!
//! The algorithms are uWSGI's, counted in the master's one-second sweeps as uWSGI counts its
//! master cycles:
//! - `spare` (the default): each sweep where every worker is busy counts one overload, each one
//!   with a free worker takes one back; at `--cheaper-overload` overloads, `--cheaper-step`
//!   workers are added. Once no overload is left, every `--cheaper-overload`th quiet sweep
//!   removes one worker, unless exactly one worker is free (the stable state: one spare).
//! - `backlog`: more than `--cheaper-overload` requests waiting adds
//!   `--cheaper-step` workers; `--cheaper-idle` sweeps in a row with an empty queue and two or
//!   more free workers remove one. (uWSGI's backlog removes one every sweep the queue is short,
//!   even while every worker is busy; requiring free workers keeps it from shrinking under
//!   load.)
//!
//! Adding uses the normal readiness gate; removing drains the last slot's worker. Nothing
//! changes while a reload, a configuration read or an upgrade runs, while a new worker still
//! boots, or while asleep ([`super::cheap`]).

use super::load::Judged;
use super::supervisor::{Phase, Supervisor};
use crate::config::{Cheaper, CheaperAlgo};
use crate::protocol::DrainReason;

/// What one sweep of the algorithm decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep the count.
    Hold,
    /// Add this many workers.
    Grow(usize),
    /// Remove one worker.
    Shrink,
}

/// One sweep's view of the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Live slots (the current count).
    pub active: usize,
    /// Ready workers without a free Python thread.
    pub busy: usize,
    /// Requests waiting (accept queues, and read but not taken by a Python thread).
    pub queued: u32,
    /// Whether workers may be added now (none still booting).
    pub can_spawn: bool,
}

/// The algorithm's settings and counters.
#[derive(Debug)]
pub struct Scaler {
    spec: Cheaper,
    /// `spare`: overloaded sweeps not yet taken back.
    overload: u64,
    /// Quiet sweeps (`spare`: since the overload ran out; `backlog`: in a row).
    idle: u64,
}

impl Scaler {
    /// A scaler for `spec`, with no history.
    pub fn new(spec: Cheaper) -> Scaler {
        Scaler {
            spec,
            overload: 0,
            idle: 0,
        }
    }

    /// The settings.
    pub fn spec(&self) -> &Cheaper {
        &self.spec
    }

    /// One sweep.
    pub fn decide(&mut self, s: Sample) -> Verdict {
        let room = self.spec.max.saturating_sub(s.active);
        let grow = |step: usize| {
            if room == 0 {
                Verdict::Hold
            } else {
                Verdict::Grow(step.min(room))
            }
        };
        match self.spec.algo {
            CheaperAlgo::Spare => {
                if s.busy < s.active {
                    self.overload = self.overload.saturating_sub(1);
                } else {
                    self.overload += 1;
                    self.idle = 0;
                }
                if s.can_spawn && self.overload >= self.spec.overload {
                    self.overload = 0;
                    return grow(self.spec.step);
                }
                if self.overload > 0 {
                    return Verdict::Hold;
                }
                if s.active > s.busy && s.active - s.busy == 1 {
                    return Verdict::Hold;
                }
                self.idle += 1;
                if s.active > self.spec.min && self.idle % self.spec.overload == 0 {
                    Verdict::Shrink
                } else {
                    Verdict::Hold
                }
            }
            CheaperAlgo::Backlog => {
                if u64::from(s.queued) > self.spec.overload {
                    self.idle = 0;
                    return if s.can_spawn {
                        grow(self.spec.step)
                    } else {
                        Verdict::Hold
                    };
                }
                if s.queued == 0 && s.active.saturating_sub(s.busy) >= 2 {
                    self.idle += 1;
                } else {
                    self.idle = 0;
                }
                if self.idle >= self.spec.idle && s.active > self.spec.min {
                    self.idle = 0;
                    Verdict::Shrink
                } else {
                    Verdict::Hold
                }
            }
        }
    }
}

impl Supervisor {
    /// The once-a-second scaling sweep, with the sample judged.
    pub(super) fn adapt(&mut self, load: Judged) {
        if self.phase != Phase::Running
            || self.reload.is_some()
            || self.reading.is_some()
            || self.upgrade.is_some()
            || self.cheap.asleep()
        {
            return;
        }
        let can_spawn = !self.table.any_starting();
        let Some(scaler) = self.scaler.as_mut() else {
            return;
        };
        let (serving, busy, queued) = (self.serving, load.busy, load.queued);
        let sample = Sample {
            active: self.table.wanted(),
            busy,
            queued,
            can_spawn,
        };
        match scaler.decide(sample) {
            Verdict::Hold => {}
            Verdict::Grow(n) => {
                tracing::info!(
                    busy,
                    queued,
                    "cheaper: {busy} of {} workers busy, {queued} requests waiting: adding {n}",
                    sample.active
                );
                for _ in 0..n {
                    let slot = self.table.push_slot();
                    self.spawn(slot, serving);
                }
            }
            Verdict::Shrink => {
                if let Some(slot) = self.table.pop_slot() {
                    tracing::info!(
                        "cheaper: {busy} of {} workers busy: removing one",
                        sample.active
                    );
                    for id in self.table.ids(|w| w.slot == slot) {
                        self.drain(id, DrainReason::ScaleDown);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(algo: CheaperAlgo) -> Cheaper {
        Cheaper {
            min: 1,
            max: 4,
            initial: 1,
            step: 2,
            overload: 3,
            idle: 2,
            algo,
        }
    }

    fn sample(active: usize, busy: usize, queued: u32) -> Sample {
        Sample {
            active,
            busy,
            queued,
            can_spawn: true,
        }
    }

    #[test]
    fn spare_grows_after_overload_sweeps_of_all_busy_by_step_up_to_max() {
        let mut s = Scaler::new(spec(CheaperAlgo::Spare));
        assert_eq!(s.decide(sample(1, 1, 0)), Verdict::Hold);
        assert_eq!(s.decide(sample(1, 1, 0)), Verdict::Hold);
        assert_eq!(s.decide(sample(1, 1, 0)), Verdict::Grow(2));
        for _ in 0..2 {
            assert_eq!(s.decide(sample(3, 3, 0)), Verdict::Hold);
        }
        assert_eq!(
            s.decide(sample(3, 3, 0)),
            Verdict::Grow(1),
            "only room for one"
        );
        for _ in 0..5 {
            assert_eq!(s.decide(sample(4, 4, 0)), Verdict::Hold, "at max");
        }
    }

    #[test]
    fn spare_waits_while_a_worker_still_boots() {
        let mut s = Scaler::new(spec(CheaperAlgo::Spare));
        let booting = Sample {
            can_spawn: false,
            ..sample(2, 2, 0)
        };
        for _ in 0..5 {
            assert_eq!(s.decide(booting), Verdict::Hold);
        }
        assert_eq!(s.decide(sample(2, 2, 0)), Verdict::Grow(2));
    }

    #[test]
    fn spare_shrinks_every_overload_quiet_sweeps_down_to_min_keeping_one_spare() {
        let mut s = Scaler::new(spec(CheaperAlgo::Spare));
        // One free worker of four: the stable state.
        for _ in 0..6 {
            assert_eq!(s.decide(sample(4, 3, 0)), Verdict::Hold);
        }
        let verdicts: Vec<_> = (0..6).map(|_| s.decide(sample(4, 0, 0))).collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Shrink).count(),
            2,
            "{verdicts:?}"
        );
        for _ in 0..6 {
            assert_ne!(s.decide(sample(1, 0, 0)), Verdict::Shrink, "at min");
        }
    }

    #[test]
    fn spare_overload_must_be_taken_back_before_shrinking() {
        let mut s = Scaler::new(spec(CheaperAlgo::Spare));
        s.decide(sample(3, 3, 0));
        s.decide(sample(3, 3, 0));
        // The first quiet sweep takes the overload back to one, the second to none (its
        // first quiet sweep counted); the third counted quiet sweep removes a worker.
        assert_eq!(s.decide(sample(3, 0, 0)), Verdict::Hold);
        assert_eq!(s.decide(sample(3, 0, 0)), Verdict::Hold);
        assert_eq!(s.decide(sample(3, 0, 0)), Verdict::Hold);
        assert_eq!(s.decide(sample(3, 0, 0)), Verdict::Shrink);
    }

    #[test]
    fn backlog_grows_with_the_queue_and_shrinks_only_with_free_workers() {
        let mut s = Scaler::new(spec(CheaperAlgo::Backlog));
        assert_eq!(s.decide(sample(1, 1, 3)), Verdict::Hold, "not above 3");
        assert_eq!(s.decide(sample(1, 1, 4)), Verdict::Grow(2));
        // Empty queue but every worker busy: no shrinking.
        for _ in 0..5 {
            assert_eq!(s.decide(sample(3, 3, 0)), Verdict::Hold);
        }
        assert_eq!(s.decide(sample(3, 1, 0)), Verdict::Hold);
        assert_eq!(s.decide(sample(3, 1, 0)), Verdict::Shrink);
        assert_eq!(s.decide(sample(2, 0, 0)), Verdict::Hold);
        assert_eq!(s.decide(sample(2, 0, 0)), Verdict::Shrink);
        for _ in 0..5 {
            assert_eq!(s.decide(sample(1, 0, 0)), Verdict::Hold, "at min");
        }
    }
}
