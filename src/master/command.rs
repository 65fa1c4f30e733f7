//! The master's one command vocabulary. A signal, a letter on the master FIFO, a touched file and
//! a control-socket request all become a [`Command`]; the supervisor applies every command in one
//! place ([`super::supervisor::Supervisor::handle`]) and answers with a typed [`Outcome`], which
//! only the control socket's edge turns into wire text.
//!
//! This is where a SIGHUP becomes a reload: [`Command::from_signal`].

use std::path::PathBuf;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};
use tokio::sync::oneshot;

use super::generation::GenerationId;
use super::upgrade::UpgradeError;
use crate::config::ReloadStrategy;
use crate::control::{ReloadReport, Reply, Request, StatusReport};

/// Something an operator asks the master to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start a new generation (`strategy: None` takes `--reload-strategy`). With `wait`, the
    /// answer comes once the reload is over (promoted and the old workers gone, or rolled back).
    Reload {
        /// Override of `--reload-strategy` for this reload.
        strategy: Option<ReloadStrategy>,
        /// Answer at the end rather than at the start.
        wait: bool,
    },
    /// Stop: drain every worker first (`graceful`), or kill them now.
    Stop {
        /// Drain within `--graceful-timeout` rather than kill.
        graceful: bool,
    },
    /// One worker more (+1) or less (-1).
    Scale(i32),
    /// Re-execute the master binary in place (default: the one running).
    Upgrade {
        /// The new binary.
        binary: Option<PathBuf>,
    },
    /// Describe the server.
    Status,
    /// Open every log file again, in the master and each worker (SIGUSR1, after logrotate).
    ReopenLogs,
}

impl Command {
    /// What a signal to the master means; `None` for signals that are not commands (SIGCHLD).
    pub fn from_signal(signal: i32) -> Option<Command> {
        Some(match signal {
            SIGHUP => Command::Reload {
                strategy: None,
                wait: false,
            },
            SIGTERM => Command::Stop { graceful: true },
            SIGINT | SIGQUIT => Command::Stop { graceful: false },
            SIGTTIN => Command::Scale(1),
            SIGTTOU => Command::Scale(-1),
            SIGUSR2 => Command::Upgrade { binary: None },
            SIGUSR1 => Command::ReopenLogs,
            _ => return None,
        })
    }

    /// What a letter written to `--master-fifo` means (uWSGI's letters).
    pub fn from_fifo(letter: u8) -> Option<Command> {
        let reload = |strategy| Command::Reload {
            strategy: Some(strategy),
            wait: false,
        };
        Some(match letter {
            b'r' => reload(ReloadStrategy::Respawn),
            b'c' => reload(ReloadStrategy::Chain),
            b'q' => Command::Stop { graceful: true },
            b'Q' => Command::Stop { graceful: false },
            b'+' => Command::Scale(1),
            b'-' => Command::Scale(-1),
            _ => return None,
        })
    }
}

impl From<Request> for Command {
    fn from(request: Request) -> Command {
        match request {
            Request::Reload { strategy, wait } => Command::Reload { strategy, wait },
            Request::Status => Command::Status,
            Request::Stop => Command::Stop { graceful: true },
            Request::Upgrade { binary } => Command::Upgrade { binary },
            Request::Workers { delta } => Command::Scale(delta),
        }
    }
}

/// Where the answer to one command goes (a control client waiting on its connection).
#[derive(Debug)]
pub struct Responder(oneshot::Sender<Reply>);

impl Responder {
    /// Wraps the reply channel of a control call.
    pub fn new(reply: oneshot::Sender<Reply>) -> Responder {
        Responder(reply)
    }

    /// A responder and the receiving end, for tests and in-process callers.
    pub fn pair() -> (Responder, oneshot::Receiver<Reply>) {
        let (tx, rx) = oneshot::channel();
        (Responder(tx), rx)
    }

    /// Answers; a caller that hung up is no error.
    pub fn send(self, outcome: Outcome) {
        let _ = self.0.send(outcome.into());
    }
}

/// How a reload request went, as far as it has gone when answered.
#[derive(Debug, Clone)]
pub enum ReloadOutcome {
    /// A new generation is booting.
    Started {
        /// The reload's number.
        reload: u64,
        /// The generation being started.
        generation: GenerationId,
        /// How.
        strategy: ReloadStrategy,
    },
    /// Another reload runs; this one will follow it (further requests coalesce into it).
    Queued {
        /// The reload running now.
        behind: u64,
    },
    /// Over: promoted or rolled back (`ok` says which). Also the answer to a reload refused
    /// before it began (its paths did not resolve).
    Finished(ReloadReport),
}

/// Why the worker count did not change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    /// The server is stopping.
    #[error("the server is stopping")]
    Stopping,
    /// A reload runs; its slots are fixed until it ends.
    #[error("reload {0} is running: change the worker count after it finishes")]
    Reloading(u64),
    /// Cheap mode: no workers run until the next connection.
    #[error("the workers are asleep (cheap mode): they start at the next connection")]
    Asleep,
    /// `--cheaper` sets the range.
    #[error("--cheaper keeps the worker count between {min} and {max} (--workers)")]
    Bounds {
        /// `--cheaper`.
        min: usize,
        /// `--workers`.
        max: usize,
    },
    /// At least one worker always runs.
    #[error("cannot go below 1 worker")]
    Minimum,
    /// Only single steps exist.
    #[error("workers can change by +1 or -1, not {0:+}")]
    Step(i32),
}

/// The answer to a command.
#[derive(Debug)]
pub enum Outcome {
    /// To `Reload`.
    Reload(ReloadOutcome),
    /// To `Stop`.
    Stopping {
        /// Whether the workers drain first.
        graceful: bool,
    },
    /// To `Scale`: the wanted worker count now, or why it did not change.
    Scale(Result<usize, ScaleError>),
    /// To `Upgrade`: the binary that will be executed (after its check passed), or why not.
    Upgrade(Result<PathBuf, UpgradeError>),
    /// To `Status`.
    Status(Box<StatusReport>),
    /// Any command while the server is stopping.
    Stopped,
}

impl From<Outcome> for Reply {
    fn from(outcome: Outcome) -> Reply {
        let ok = |message: String| Reply::Ok { message };
        let error = |message: String| Reply::Error { message };
        match outcome {
            Outcome::Reload(ReloadOutcome::Started {
                reload,
                generation,
                strategy,
            }) => Reply::ReloadStarted {
                message: format!("reload {reload} started: generation {generation} ({strategy:?})"),
            },
            Outcome::Reload(ReloadOutcome::Queued { behind }) => Reply::ReloadStarted {
                message: format!(
                    "reload {behind} is running: this reload is queued (further requests coalesce into it)"
                ),
            },
            Outcome::Reload(ReloadOutcome::Finished(report)) => Reply::Reload(report),
            Outcome::Stopping { graceful: true } => ok("stopping gracefully".into()),
            Outcome::Stopping { graceful: false } => ok("stopping now".into()),
            Outcome::Scale(Ok(n)) => ok(format!("workers: {n}")),
            Outcome::Scale(Err(e)) => error(e.to_string()),
            Outcome::Upgrade(Ok(binary)) => ok(format!(
                "upgrading: re-executing {} as pid {}",
                binary.display(),
                std::process::id()
            )),
            Outcome::Upgrade(Err(e)) => error(e.to_string()),
            Outcome::Status(report) => Reply::Status(*report),
            Outcome::Stopped => error("the server is stopping".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_and_fifo_letters_share_the_vocabulary() {
        assert_eq!(
            Command::from_signal(SIGHUP),
            Some(Command::Reload {
                strategy: None,
                wait: false
            })
        );
        assert_eq!(
            Command::from_signal(SIGQUIT),
            Command::from_fifo(b'Q'),
            "SIGQUIT and Q both stop at once"
        );
        assert_eq!(Command::from_signal(SIGTTOU), Command::from_fifo(b'-'));
        assert_eq!(Command::from_fifo(b'x'), None);
        assert_eq!(
            Command::from(Request::Stop),
            Command::Stop { graceful: true }
        );
    }
}
