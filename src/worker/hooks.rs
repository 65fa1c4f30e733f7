//! The app's own hooks (`import segue`: `segue.postfork`, `segue.on_drain`,
//! `segue.worker_exit`) and what the app may ask about its worker (`segue.worker_id()`,
//! `segue.generation()`, `segue.preloaded()`). The registry lives in Python
//! (`python/segue/_hooks.py`), so that registering costs an app nothing and works without
//! segue; the worker fills in its identity before the import and runs the hooks at each point
//! of its life. See docs/python-api.md.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::UwsgiCompat;
use crate::protocol::BootFailure;

/// When hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// In the worker's own process, after the app import, before it reports ready.
    Postfork,
    /// When the worker starts draining.
    Drain,
    /// After the drain, before `atexit`.
    Exit,
    /// At a quick stop (SIGINT, SIGQUIT): gunicorn's `worker_int`.
    Quick,
}

impl Hook {
    fn key(self) -> &'static str {
        match self {
            Hook::Postfork => "postfork",
            Hook::Drain => "drain",
            Hook::Exit => "exit",
            Hook::Quick => "quick",
        }
    }
}

/// Tells `segue` who this worker is, before the app is imported (an app may ask at import).
/// A zygote has no worker id (`None`); its workers publish again after the fork. The master's
/// pid is this process's parent now, before any fork (`uwsgi.masterpid()` reads it).
pub fn publish(
    py: Python<'_>,
    worker_id: Option<u64>,
    generation: u64,
    preloaded: bool,
) -> PyResult<()> {
    let info = PyDict::new(py);
    info.set_item("worker_id", worker_id)?;
    if worker_id.is_none() || !preloaded {
        info.set_item("master_pid", nix::unistd::getppid().as_raw())?;
    } else if let Ok(old) = py.import("segue._hooks")?.getattr("_info") {
        // Forked from the zygote: the parent may still be the intermediate process.
        if let Ok(Some(pid)) = old
            .get_item("master_pid")
            .and_then(|p| p.extract::<Option<i32>>())
        {
            info.set_item("master_pid", pid)?;
        }
    }
    info.set_item("generation", generation)?;
    info.set_item("preloaded", preloaded)?;
    py.import("segue._hooks")?.setattr("_info", info)
}

/// `--uwsgi-compat`: puts the stand-in `uwsgi` and `uwsgidecorators` modules in place, before
/// the app is imported; `uwsgi.post_fork_hook` then runs as a postfork hook.
pub fn install_uwsgi_compat(py: Python<'_>, compat: UwsgiCompat) -> PyResult<()> {
    py.import("segue._uwsgi_compat")?
        .call_method1("install", (compat.numproc, compat.threads))
        .map(drop)
}

/// gunicorn's worker-side server hooks from the config file at `path`: runs the file and
/// registers its hooks, before the app import. `post_fork` runs now in a worker that imports
/// the app itself, and after the fork in each worker of a zygote (`preloaded`), as gunicorn
/// runs it with `--preload`. An exception (in the file or in `post_fork`) is a boot failure
/// with its traceback.
pub fn install_gunicorn(
    py: Python<'_>,
    path: &std::path::Path,
    preloaded: bool,
) -> Result<(), BootFailure> {
    py.import("segue._gunicorn_hooks")
        .and_then(|m| m.call_method1("install", (path, preloaded)))
        .map(drop)
        .map_err(|e| BootFailure {
            error: format!("the gunicorn server hooks in {} raised {e}", path.display()),
            traceback: Some(crate::wsgi::app::format_exception(py, &e)),
        })
}

/// Runs the `postfork` hooks; the first exception is a boot failure with its traceback.
pub fn postfork(py: Python<'_>) -> Result<(), BootFailure> {
    let run = py
        .import("segue._hooks")
        .and_then(|m| m.call_method1("_run", (Hook::Postfork.key(), true)));
    match run {
        Ok(_) => Ok(()),
        Err(e) => Err(BootFailure {
            error: format!("a segue.postfork hook raised {e}"),
            traceback: Some(crate::wsgi::app::format_exception(py, &e)),
        }),
    }
}

/// Runs the hooks of `hook` (drain or exit), logging each exception; the others still run.
pub fn run_logged(py: Python<'_>, hook: Hook) {
    let errors = py
        .import("segue._hooks")
        .and_then(|m| m.call_method1("_run", (hook.key(), false)))
        .and_then(|r| r.extract::<Vec<String>>());
    match errors {
        Ok(errors) => {
            for tb in errors {
                tracing::error!("a segue {} hook raised:\n{}", hook.key(), tb.trim_end());
            }
        }
        Err(e) => tracing::error!("cannot run the segue {} hooks: {e}", hook.key()),
    }
}
