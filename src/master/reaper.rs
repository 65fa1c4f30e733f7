//! The one place that waits for children. `waitpid(-1)` would steal exit statuses from any other
//! waiter, so nothing else in the master waits: `Command` handles are dropped unwaited.

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// It called exit with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl std::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ExitKind::Code(c) => write!(f, "exit code {c}"),
            ExitKind::Signal(s) => {
                let name = nix::sys::signal::Signal::try_from(s)
                    .map(|s| s.as_str())
                    .unwrap_or("unknown");
                write!(f, "signal {s} ({name})")
            }
        }
    }
}

/// Collects every child that has ended, without blocking. Called on SIGCHLD and by a periodic
/// sweep (signals coalesce, so one SIGCHLD may stand for several exits).
pub fn reap() -> Vec<(Pid, ExitKind)> {
    let mut out = Vec::new();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push((pid, ExitKind::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _)) => out.push((pid, ExitKind::Signal(sig as i32))),
            Ok(WaitStatus::StillAlive) => break,
            Ok(_) => continue,
            // ECHILD: no children left. EINTR cannot happen with WNOHANG but is harmless.
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    out
}

/// Makes this process the reaper of orphaned descendants, so a grandchild that an app
/// double-forks is waited for here instead of becoming a zombie under init's care.
pub fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(
            "cannot become child subreaper: {e}; grandchildren of workers will be reaped by init"
        );
    }
}
