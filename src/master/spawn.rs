//! Starting a worker: run the app's Python interpreter (the environment's `bin/python`) on a
//! small bootstrap that imports segue's worker module, with a socketpair at fd 3, then send it
//! `Boot` with the listeners and the scoreboard attached, each under its role in the fd
//! manifest.
//!
//! The interpreter is the environment's own, not one segue was built against, so `sys.prefix`,
//! site-packages and C extensions are what `python` there sees. Exec rather than fork: the
//! master runs tokio threads, and a forked copy of a threaded process inherits locks held by
//! threads that do not exist in the child.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::unistd::Pid;

use crate::protocol::{
    Boot, CONTROL_FD, EXIT_NO_WORKER_MODULE, FrameError, set_cloexec, write_boot,
};

/// What the interpreter runs: import `segue._worker` (or say clearly that this environment has
/// no segue, exiting with [`EXIT_NO_WORKER_MODULE`]) and hand it the process. `sys.path[0]`
/// is the master's working directory under `-c`; it is dropped so that only `--chdir` and
/// `--pythonpath` decide where the app comes from.
const BOOTSTRAP: &str = "\
import sys
master = sys.argv[1]
sys.argv = ['segue']
if sys.path and sys.path[0] == '':
    del sys.path[0]
try:
    from segue import _worker
except ImportError as e:
    sys.stderr.write('segue worker: %s cannot import segue (%s): install it in this environment, '
                     '%s -m pip install segue==%s\\n' % (sys.executable, e, sys.executable, master))
    sys.exit(EXIT)
_worker.run(master)
";

/// A worker process that has been sent its `Boot`.
#[derive(Debug)]
pub struct Spawned {
    /// Its PID; the reaper reports its exit by this.
    pub pid: Pid,
    /// The master's end of the control channel.
    pub control: tokio::net::UnixStream,
}

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// socketpair failed (fd exhaustion, usually).
    #[error("cannot create the control socketpair: {0} (raise the open-files limit, `ulimit -n`)")]
    Socketpair(io::Error),
    /// exec failed.
    #[error("cannot start worker process '{}': {source} (workers run the environment's own python: is --virtualenv right, or was segue installed with pip there?)", exe.display())]
    Exec {
        /// The binary.
        exe: std::path::PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Sending `Boot` failed: the child died at once.
    #[error("cannot send Boot to the new worker: {0}")]
    Boot(#[from] FrameError),
}

/// Starts the interpreter `python` on the bootstrap, with the control channel at
/// [`CONTROL_FD`], and sends it `boot` and its fds: one per `boot.listeners`, in that order,
/// then the scoreboard's if `boot.scoreboard_cell` is set ([`Boot::fd_roles`]). A count that
/// does not match is refused before anything starts. A zygote (`boot.zygote`) also gets
/// `PR_SET_PDEATHSIG`: it has no requests to finish, and one stuck in its import must not
/// outlive the master.
pub fn spawn_worker(
    python: &Path,
    boot: &Boot,
    fds: &[RawFd],
    env: &[(String, String)],
) -> Result<Spawned, Error> {
    let zygote = boot.zygote;
    let roles = boot.fd_roles();
    if roles.len() != fds.len() {
        return Err(Error::Boot(FrameError::FdMismatch {
            expected: roles.len(),
            got: fds.len(),
        }));
    }
    let attached: Vec<_> = roles.into_iter().zip(fds.iter().copied()).collect();
    let (master_end, worker_end) = StdUnixStream::pair().map_err(Error::Socketpair)?;
    let child_fd = worker_end.as_raw_fd();

    let mut cmd = Command::new(python);
    let bootstrap = BOOTSTRAP.replace("EXIT", &EXIT_NO_WORKER_MODULE.to_string());
    cmd.arg("-c")
        .arg(bootstrap)
        .arg(env!("CARGO_PKG_VERSION"))
        .stdin(Stdio::null());
    // systemd talks to the master only; a worker must not send READY=1 on its behalf.
    for var in crate::systemd::MASTER_ONLY_ENV {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl, prctl) run, on fds that
    // are valid in the child because it is a copy of this process.
    unsafe {
        cmd.pre_exec(move || {
            if child_fd == CONTROL_FD {
                // dup2 onto itself keeps FD_CLOEXEC; clear it explicitly.
                set_cloexec(child_fd, false)?;
            } else if libc::dup2(child_fd, CONTROL_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            if zygote && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| Error::Exec {
        exe: python.to_owned(),
        source,
    })?;
    // The reaper collects the exit status with waitpid(-1); the handle is dropped unwaited.
    let pid = Pid::from_raw(child.id() as i32);
    drop(child);
    drop(worker_end);

    write_boot(&master_end, boot, &attached)?;
    master_end.set_nonblocking(true).map_err(FrameError::Io)?;
    let control = tokio::net::UnixStream::from_std(master_end).map_err(FrameError::Io)?;
    Ok(Spawned { pid, control })
}
