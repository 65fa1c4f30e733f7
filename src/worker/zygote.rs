//! The zygote of a `--preload` generation: imports the app once, freezes the heap, then forks
//! one worker per request of the master (docs/preload.md).
//!
//! The zygote stays single-threaded until it forks (no tokio, no signal handlers, blocking I/O
//! on its channel), because a fork copies only the calling thread: locks other threads held
//! would stay locked in every worker. Each worker is forked twice (zygote → short-lived
//! intermediate → worker), so that it is reparented to the master, which is a subreaper: the
//! master's one reaper then sees every worker's exit as it does for exec'd workers, and the
//! zygote never has children to wait for beyond the intermediate.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::time::Instant;

use pyo3::prelude::*;

use super::{VERSION, boot_app, hooks};
use crate::protocol::zygote::{FromZygote, ZygoteLink};
use crate::protocol::{Boot, BootFailure, CONTROL_FD, FrameError, set_cloexec};
use crate::wsgi::App;

/// How a zygote process ends up.
pub enum Outcome {
    /// The zygote is done (retired, or it could not import): exit with this code.
    Exit(i32),
    /// This process is a newly forked worker, with the app already imported and its own control
    /// channel (from the master, through the fork request) at [`CONTROL_FD`].
    Worker {
        /// The preloaded app.
        app: App,
        /// The worker's channel to the master; its `Boot` is the first thing on it.
        control: StdUnixStream,
        /// When the fork happened (the worker's boot time counts from here).
        forked_at: Instant,
    },
}

/// Runs the zygote described by `boot` on its channel `control`.
pub fn run(boot: Boot, control: StdUnixStream, master_version: &str, exec_at: Instant) -> Outcome {
    let mut link = ZygoteLink::new(control);
    let failed = |link: &ZygoteLink, failure: BootFailure| {
        match &failure.traceback {
            Some(tb) => tracing::error!("{}\n{}", failure.error, tb.trim_end()),
            None => tracing::error!("{}", failure.error),
        }
        match link.send(&FromZygote::BootFailed(failure)) {
            Ok(()) => link.wait_closed(super::LAST_WORD),
            Err(e) => tracing::debug!("the master did not get why the zygote stops: {e}"),
        }
        Outcome::Exit(super::EXIT_BOOT_FAILED)
    };
    if master_version != VERSION {
        return failed(&link, super::version_mismatch(master_version));
    }
    if let Err(failure) = prepare(&boot) {
        return failed(&link, failure);
    }
    let app = match boot_app(&boot.config) {
        Ok(app) => app,
        Err(failure) => return failed(&link, failure),
    };
    let preload = boot.config.preload.unwrap_or(crate::config::Preload {
        gc_freeze: true,
        allow_threads: false,
    });
    if let Err(failure) = Python::attach(|py| freeze(py, preload)) {
        return failed(&link, failure);
    }
    let import_ms = exec_at.elapsed().as_millis() as u64;
    tracing::info!(
        import_ms,
        "zygote ready: the app is imported, forking workers on request"
    );
    if let Err(e) = link.send(&FromZygote::Ready { import_ms }) {
        tracing::debug!("the master is gone before the zygote was ready: {e}");
        return Outcome::Exit(0);
    }
    loop {
        let (worker, fd) = match link.next_fork() {
            Ok(request) => request,
            Err(FrameError::Closed) => {
                tracing::info!("zygote retired: its generation has no more workers to fork");
                return Outcome::Exit(0);
            }
            Err(e) => {
                tracing::error!("zygote channel: {e}");
                return Outcome::Exit(2);
            }
        };
        match fork(fd) {
            Ok(Forked::Parent(pid)) => {
                tracing::debug!(worker, pid, "forked a worker");
                if link.send(&FromZygote::Forked { worker, pid }).is_err() {
                    return Outcome::Exit(0);
                }
            }
            Ok(Forked::Worker(fd)) => return become_worker(link, fd, app),
            Err(error) => {
                tracing::error!(worker, "cannot fork a worker: {error}");
                if link
                    .send(&FromZygote::ForkFailed { worker, error })
                    .is_err()
                {
                    return Outcome::Exit(0);
                }
            }
        }
    }
}

/// What the app may need before its import: the segue module's identity, the compatibility
/// modules, gunicorn's hooks (whose `post_fork` then runs in each worker after the fork).
fn prepare(boot: &Boot) -> Result<(), BootFailure> {
    Python::attach(|py| {
        if let Err(e) = hooks::publish(py, None, boot.generation, true) {
            tracing::warn!("cannot tell the segue module about the zygote: {e}");
        }
        if let Some(compat) = boot.config.uwsgi_compat {
            hooks::install_uwsgi_compat(py, compat).map_err(|e| BootFailure {
                error: format!(
                    "cannot install the uwsgi compatibility modules (--uwsgi-compat): {e}"
                ),
                traceback: None,
            })?;
        }
        if let Some(path) = &boot.config.gunicorn_hooks {
            hooks::install_gunicorn(py, path, true)?;
        }
        Ok(())
    })
}

/// After the import: refuses to fork if the app started threads (unless allowed), then freezes
/// the heap so that the collector in each worker leaves the shared pages alone.
fn freeze(py: Python<'_>, preload: crate::config::Preload) -> Result<(), BootFailure> {
    let threads = thread_count();
    if threads > 1 && !preload.allow_threads {
        let names = py
            .import("threading")
            .and_then(|t| {
                let main = t.call_method0("main_thread")?;
                let mut names = Vec::new();
                for thread in t.call_method0("enumerate")?.try_iter()? {
                    let thread = thread?;
                    if !thread.is(&main) {
                        names.push(thread.getattr("name")?.extract::<String>()?);
                    }
                }
                Ok::<_, PyErr>(names)
            })
            .unwrap_or_default();
        let which = if names.is_empty() {
            "native threads (started by an extension module, not by threading)".to_string()
        } else {
            names
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(BootFailure {
            error: format!(
                "--preload: the app started {} thread(s) at import ({which}); a fork copies only \
                 the forking thread, so these would not exist in the workers and locks they hold \
                 would stay locked. Start them in a @segue.postfork hook (or uWSGI's \
                 @postfork) instead, or pass --preload-allow-threads if they are safe to lose",
                threads - 1
            ),
            traceback: None,
        });
    }
    if preload.gc_freeze {
        py.import("gc")
            .and_then(|gc| gc.call_method0("freeze"))
            .map_err(|e| BootFailure {
                error: format!("gc.freeze() failed in the zygote: {e} (pass --no-gc-freeze)"),
                traceback: None,
            })?;
    }
    Ok(())
}

/// Threads of this process, from `/proc/self/task`.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count())
}

enum Forked {
    /// In the zygote: the worker's pid.
    Parent(i32),
    /// In the new worker: its control fd.
    Worker(OwnedFd),
}

/// Forks the worker whose control fd is `fd`: `os.fork()` (which runs Python's at-fork
/// handlers and resets the interpreter's locks in the child) into an intermediate process,
/// which forks the worker and exits at once after telling the zygote the worker's pid.
fn fork(fd: OwnedFd) -> Result<Forked, String> {
    let (pid_in, pid_out) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (mut pid_in, pid_out) = (std::fs::File::from(pid_in), std::fs::File::from(pid_out));
    let first = Python::attach(|py| {
        py.import("os")
            .and_then(|os| os.call_method0("fork"))
            .and_then(|pid| pid.extract::<i32>())
            .map_err(|e| format!("os.fork(): {e}"))
    })?;
    if first == 0 {
        // The intermediate: single-threaded (a fork copies one thread), so a plain fork is
        // safe; the worker inherits the interpreter state os.fork() just made consistent.
        drop(pid_in);
        // SAFETY: this process has one thread; the child continues in Rust and Python code
        // that does not depend on other threads.
        let worker = unsafe { libc::fork() };
        if worker == 0 {
            drop(pid_out);
            return Ok(Forked::Worker(fd));
        }
        let answer: i32 = if worker < 0 {
            -std::io::Error::last_os_error().raw_os_error().unwrap_or(1)
        } else {
            worker
        };
        let _ = std::io::Write::write_all(&mut &pid_out, &answer.to_ne_bytes());
        // SAFETY: _exit ends the intermediate without running atexit handlers or flushing
        // buffers that belong to the zygote.
        unsafe { libc::_exit(0) };
    }
    drop(pid_out);
    drop(fd);
    let mut answer = [0u8; 4];
    let read = pid_in.read_exact(&mut answer);
    // The intermediate exits right after writing; collect it so it leaves no zombie.
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(first), None);
    read.map_err(|e| format!("the intermediate process died before naming the worker: {e}"))?;
    match i32::from_ne_bytes(answer) {
        pid if pid > 0 => Ok(Forked::Parent(pid)),
        errno => Err(format!(
            "fork(): {}",
            std::io::Error::from_raw_os_error(-errno)
        )),
    }
}

/// In the forked worker: puts its control fd at [`CONTROL_FD`] (replacing the zygote's channel
/// there) and hands the process to the worker code.
fn become_worker(link: ZygoteLink, fd: OwnedFd, app: App) -> Outcome {
    let forked_at = Instant::now();
    // The zygote's socket sits at CONTROL_FD; dup2 below replaces it, so it must not be closed
    // by a drop too. Fds of other workers' requests still queued in the link are closed.
    let zygote_fd = link.into_raw_fd();
    debug_assert_eq!(zygote_fd, CONTROL_FD);
    // SAFETY: dup2 onto CONTROL_FD, which this process owns (the zygote's channel, given up
    // above); `fd` is ours and closed after.
    if unsafe { libc::dup2(fd.as_raw_fd(), CONTROL_FD) } < 0 {
        eprintln!(
            "segue worker: cannot move the control channel into place: {}",
            std::io::Error::last_os_error()
        );
        return Outcome::Exit(2);
    }
    drop(fd);
    let _ = set_cloexec(CONTROL_FD, true);
    // SAFETY: CONTROL_FD now refers to this worker's channel and nothing else owns it.
    let control = unsafe { StdUnixStream::from_raw_fd(CONTROL_FD) };
    Outcome::Worker {
        app,
        control,
        forked_at,
    }
}
