//! The supervisor's rules, decided without processes: a [`Sim`] feeds it events the way the
//! executor would and looks at the effects it returns. Time is tokio's, paused, so boot
//! deadlines, backoff, crash windows and heartbeats are exercised by advancing the clock.

mod cheap;
mod first_start;
mod lifecycle;
mod reconfigure;
mod recycle;
mod reload;
mod scale;
mod upgrade;

use std::path::PathBuf;
use std::sync::Arc;

use super::command::{Command, Outcome, ReloadOutcome, Responder};
use super::effect::{Effect, Event, Timer};
use super::generation::GenerationId;
use super::reaper::ExitKind;
use super::supervisor::Supervisor;
use super::worker::{WorkerId, WorkerState};
use crate::config::Config;
use crate::protocol::{BootFailure, DrainReason, Stats, ToMaster};

/// A configuration as the command line gives it (`hello:application` plus `args`).
pub fn config(args: &[&str]) -> Arc<Config> {
    let argv: Vec<&str> = args.iter().chain(&["hello:application"]).copied().collect();
    let mut config = crate::config::from_args(&argv).expect("test configuration is valid");
    // Reloads re-read the invocation; tests of that set it again (tests/reconfigure.rs).
    config.invocation = None;
    Arc::new(config)
}

/// A supervisor and a fake executor: spawns get pids at once, everything else is recorded.
pub struct Sim {
    pub sup: Supervisor,
    next_pid: i32,
}

impl Sim {
    /// Starts the first generation with `args`; returns the sim and the start's effects.
    pub fn start(args: &[&str]) -> (Sim, Vec<Effect>) {
        let sup = Supervisor::new(config(args), PathBuf::from("/segue"), vec![]);
        let mut sim = Sim {
            sup,
            next_pid: 1000,
        };
        let effects = sim.sup.start().expect("no paths to resolve");
        let effects = sim.settle(effects);
        (sim, effects)
    }

    /// Starts with `args` and makes every first-generation worker ready.
    pub fn serving(args: &[&str]) -> Sim {
        let (mut sim, effects) = Sim::start(args);
        for id in spawned(&effects) {
            sim.ready(id);
        }
        assert!(sim.sup.status().ready);
        sim
    }

    /// Feeds one event; returns every effect, including those of the pids the fake executor
    /// hands back for spawns.
    pub fn feed(&mut self, event: Event) -> Vec<Effect> {
        let effects = self.sup.handle(event);
        self.settle(effects)
    }

    fn settle(&mut self, effects: Vec<Effect>) -> Vec<Effect> {
        let mut all = Vec::new();
        let mut pending = effects;
        while !pending.is_empty() {
            let mut next = Vec::new();
            for e in &pending {
                if let Effect::Spawn { id, .. } = e {
                    self.next_pid += 1;
                    next.extend(self.sup.handle(Event::Spawned {
                        id: *id,
                        pid: self.next_pid,
                    }));
                }
            }
            all.extend(pending);
            pending = next;
        }
        all
    }

    pub fn ready(&mut self, id: WorkerId) -> Vec<Effect> {
        self.feed(Event::FromWorker(id, ToMaster::Ready { boot_ms: 5 }))
    }

    pub fn exit(&mut self, id: WorkerId, code: i32) -> Vec<Effect> {
        self.feed(Event::Exited {
            id,
            kind: ExitKind::Code(code),
        })
    }

    pub fn boot_failed(&mut self, id: WorkerId, error: &str, traceback: Option<&str>) {
        self.feed(Event::FromWorker(
            id,
            ToMaster::BootFailed(BootFailure {
                error: error.into(),
                traceback: traceback.map(Into::into),
            }),
        ));
    }

    /// The first daemon `effects` start gets `pid`, as the executor would report.
    pub fn daemon_started(&mut self, effects: &[Effect], pid: i32) -> Vec<Effect> {
        let id = effects
            .iter()
            .find_map(|e| match e {
                Effect::StartDaemon { id, .. } => Some(*id),
                _ => None,
            })
            .expect("the daemon starts with the master");
        self.feed(Event::DaemonStarted { id, pid })
    }

    pub fn heartbeat(&mut self, id: WorkerId, stats: Stats) -> Vec<Effect> {
        self.feed(Event::FromWorker(id, ToMaster::Heartbeat(stats)))
    }

    pub fn timer(&mut self, timer: Timer) -> Vec<Effect> {
        self.feed(Event::Timer(timer))
    }

    /// A command from a signal (nobody to answer).
    pub fn command(&mut self, command: Command) -> Vec<Effect> {
        self.feed(Event::Command(command, None))
    }

    /// A command from a control client; the answer is among the effects.
    pub fn ask(&mut self, command: Command) -> Vec<Effect> {
        let (responder, _rx) = Responder::pair();
        self.feed(Event::Command(command, Some(responder)))
    }

    /// `segue reload --wait`: a reload whose caller is answered when it is over.
    pub fn wait_reload(&mut self) -> Vec<Effect> {
        self.ask(Command::Reload {
            strategy: None,
            wait: true,
        })
    }

    pub fn reload(&mut self) -> Vec<Effect> {
        self.command(Command::Reload {
            strategy: None,
            wait: false,
        })
    }

    /// Live workers of `generation` in the given state.
    pub fn workers(&self, generation: GenerationId, state: &str) -> Vec<WorkerId> {
        self.sup
            .table
            .ids(|w| w.generation == generation && w.state.name() == state)
    }

    pub fn state(&self, id: WorkerId) -> Option<WorkerState> {
        self.sup.table.get(id).map(|w| w.state)
    }
}

/// The workers a batch of effects starts.
pub fn spawned(effects: &[Effect]) -> Vec<WorkerId> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Spawn { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

/// The generation of every spawn in a batch.
pub fn spawned_generations(effects: &[Effect]) -> Vec<GenerationId> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Spawn { generation, .. } => Some(*generation),
            _ => None,
        })
        .collect()
}

pub fn killed(effects: &[Effect]) -> Vec<WorkerId> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Kill(id) => Some(*id),
            _ => None,
        })
        .collect()
}

pub fn drained(effects: &[Effect]) -> Vec<(WorkerId, DrainReason)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Drain(id, r) => Some((*id, *r)),
            _ => None,
        })
        .collect()
}

pub fn timers(effects: &[Effect]) -> Vec<(std::time::Duration, Timer)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::After(d, t) => Some((*d, t.clone())),
            _ => None,
        })
        .collect()
}

pub fn notifications(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

pub fn replies(effects: &[Effect]) -> Vec<&Outcome> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply(_, o) => Some(o),
            _ => None,
        })
        .collect()
}

/// The reload reports answered in a batch.
pub fn finished_reloads(effects: &[Effect]) -> Vec<crate::control::ReloadReport> {
    replies(effects)
        .into_iter()
        .filter_map(|o| match o {
            Outcome::Reload(ReloadOutcome::Finished(r)) => Some(r.clone()),
            _ => None,
        })
        .collect()
}
