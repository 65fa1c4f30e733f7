//! How many workers run when: all of them always (the default), none until a connection arrives
//! (`--cheap`), none again after a quiet spell (`--idle`), or between a minimum and `--workers`
//! as the load asks (`--cheaper`). uWSGI's names and defaults; the rules that act on these live
//! in the master (`master::cheap`, `master::cheaper`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The worker-count settings, checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    /// `--cheap`: start no workers until the first connection waits in a listener's queue.
    pub cheap: bool,
    /// `--idle`: after this long without a request, the workers drain and stop (cheap again).
    pub idle: Option<Duration>,
    /// `--die-on-idle`: at the idle point, stop the whole server gracefully instead.
    pub die_on_idle: bool,
    /// `--cheaper`: adapt the worker count to the load.
    pub cheaper: Option<Cheaper>,
    /// What [`Scaling::check`] adjusted (as uWSGI does, with a warning), logged at start.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `--cheaper N` and its companions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cheaper {
    /// Never fewer workers than this (`--cheaper`, at least 1).
    pub min: usize,
    /// Never more (`--workers`).
    pub max: usize,
    /// Workers at start and after waking (`--cheaper-initial`, default `min`).
    pub initial: usize,
    /// Workers added at once (`--cheaper-step`, default 1).
    pub step: usize,
    /// `spare`: seconds all workers must be busy before adding; `backlog`: the listen-queue
    /// length above which workers are added (`--cheaper-overload`, default 3).
    pub overload: u64,
    /// `backlog`: quiet seconds before a worker is removed (`--cheaper-idle`, default 10).
    pub idle: u64,
    /// How load is judged (`--cheaper-algo`).
    pub algo: CheaperAlgo,
}

/// `--cheaper-algo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheaperAlgo {
    /// uWSGI's default: add `step` workers once every worker has been busy for `overload`
    /// seconds; remove one every `overload` seconds while more than one is free.
    Spare,
    /// Add `step` workers while the listeners' accept queues hold more than `overload`
    /// connections; remove one after `idle` seconds with an empty queue and more than one
    /// worker free.
    Backlog,
}

/// The settings as written, before checking.
#[derive(Debug, Default)]
pub struct Written {
    /// `--cheap`.
    pub cheap: bool,
    /// `--idle` in seconds (0: off).
    pub idle: Duration,
    /// `--die-on-idle`.
    pub die_on_idle: bool,
    /// `--workers`.
    pub workers: usize,
    /// `--cheaper` (0: off).
    pub cheaper: u64,
    /// `--cheaper-initial` (0: unset).
    pub initial: u64,
    /// `--cheaper-step`.
    pub step: u64,
    /// `--cheaper-overload`.
    pub overload: u64,
    /// `--cheaper-idle`.
    pub cheaper_idle: u64,
    /// `--cheaper-algo`.
    pub algo: Option<String>,
}

/// A problem with one option, named by it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Problem {
    /// The option at fault.
    pub option: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn problem(option: &'static str, message: String) -> Problem {
    Problem { option, message }
}

impl Scaling {
    /// Checks the written settings as uWSGI does: `--cheaper` must be below `--workers`
    /// (uWSGI refuses too); `--cheaper-initial` outside `cheaper..=workers` is clamped with a
    /// warning (as uWSGI does), kept in [`Scaling::warnings`].
    pub fn check(w: &Written) -> Result<Scaling, Problem> {
        let mut warnings = Vec::new();
        if w.die_on_idle && w.idle.is_zero() {
            return Err(problem(
                "die-on-idle",
                "needs --idle SECS (how long without a request counts as idle)".into(),
            ));
        }
        let cheaper = if w.cheaper == 0 {
            if let Some(algo) = &w.algo {
                warnings.push(format!(
                    "cheaper-algo '{algo}' has no effect without --cheaper N"
                ));
            }
            None
        } else {
            let min = usize::try_from(w.cheaper).unwrap_or(usize::MAX);
            if min >= w.workers {
                return Err(problem(
                    "cheaper",
                    format!(
                        "--cheaper {min} must be lower than --workers {} (the maximum): raise --workers or lower --cheaper",
                        w.workers
                    ),
                ));
            }
            let algo = match w.algo.as_deref().map(str::trim) {
                None | Some("") | Some("spare") => CheaperAlgo::Spare,
                Some("backlog") => CheaperAlgo::Backlog,
                Some(other) => {
                    return Err(problem(
                        "cheaper-algo",
                        format!(
                            "unknown algorithm '{other}': segue has spare (uWSGI's default) and backlog"
                        ),
                    ));
                }
            };
            if w.step == 0 {
                return Err(problem("cheaper-step", "must be at least 1".into()));
            }
            if w.overload == 0 {
                return Err(problem("cheaper-overload", "must be at least 1".into()));
            }
            let initial = match usize::try_from(w.initial).unwrap_or(usize::MAX) {
                0 => min,
                n if n < min => {
                    warnings.push(format!(
                        "cheaper-initial {n} is below cheaper {min}: starting {min} workers"
                    ));
                    min
                }
                n if n > w.workers => {
                    warnings.push(format!(
                        "cheaper-initial {n} is above workers {}: starting {} workers",
                        w.workers, w.workers
                    ));
                    w.workers
                }
                n => n,
            };
            Some(Cheaper {
                min,
                max: w.workers,
                initial,
                step: usize::try_from(w.step).unwrap_or(usize::MAX),
                overload: w.overload,
                idle: w.cheaper_idle.max(1),
                algo,
            })
        };
        Ok(Scaling {
            cheap: w.cheap,
            idle: Some(w.idle).filter(|d| !d.is_zero()),
            die_on_idle: w.die_on_idle,
            cheaper,
            warnings,
        })
    }

    /// Workers to start at first start and on waking: `--cheaper-initial` with `--cheaper`,
    /// else `workers`.
    pub fn awake_workers(&self, workers: usize) -> usize {
        self.cheaper.as_ref().map_or(workers, |c| c.initial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(workers: usize, cheaper: u64) -> Written {
        Written {
            workers,
            cheaper,
            step: 1,
            overload: 3,
            cheaper_idle: 10,
            ..Written::default()
        }
    }

    #[test]
    fn cheaper_defaults_follow_uwsgi() {
        let s = Scaling::check(&written(4, 1)).unwrap();
        assert!(s.warnings.is_empty());
        let c = s.cheaper.unwrap();
        assert_eq!((c.min, c.max, c.initial, c.step), (1, 4, 1, 1));
        assert_eq!(c.algo, CheaperAlgo::Spare);
        assert_eq!(Scaling::check(&written(4, 0)).unwrap().cheaper, None);
    }

    #[test]
    fn cheaper_at_or_above_workers_is_refused() {
        let e = Scaling::check(&written(2, 2)).unwrap_err();
        assert_eq!(e.option, "cheaper");
        assert!(e.message.contains("lower than --workers 2"), "{e}");
    }

    #[test]
    fn initial_is_clamped_with_a_warning() {
        let mut w = written(4, 2);
        w.initial = 9;
        let s = Scaling::check(&w).unwrap();
        assert_eq!(s.warnings.len(), 1);
        assert_eq!(s.cheaper.unwrap().initial, 4);
        w.initial = 1;
        assert_eq!(Scaling::check(&w).unwrap().cheaper.unwrap().initial, 2);
    }

    #[test]
    fn unknown_algorithm_and_zero_step_are_refused() {
        let mut w = written(4, 1);
        w.algo = Some("busyness".into());
        assert_eq!(Scaling::check(&w).unwrap_err().option, "cheaper-algo");
        w.algo = Some("backlog".into());
        assert_eq!(
            Scaling::check(&w).unwrap().cheaper.unwrap().algo,
            CheaperAlgo::Backlog
        );
        w.step = 0;
        assert_eq!(Scaling::check(&w).unwrap_err().option, "cheaper-step");
    }

    #[test]
    fn die_on_idle_needs_idle() {
        let mut w = written(1, 0);
        w.die_on_idle = true;
        assert_eq!(Scaling::check(&w).unwrap_err().option, "die-on-idle");
        w.idle = Duration::from_secs(5);
        let s = Scaling::check(&w).unwrap();
        assert_eq!(s.idle, Some(Duration::from_secs(5)));
        assert_eq!(s.awake_workers(3), 3);
    }
}
