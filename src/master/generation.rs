//! Generations: each reload starts a new one from the configuration, with paths resolved again,
//! so a `--chdir` symlink flipped by a blue-green deploy (`current -> releases/42`) takes effect
//! on reload, while workers that must go back to the old generation (a rollback, a crash of an
//! old worker) still run the release it resolved to. The interpreter is chosen again too, so a
//! reload after `--virtualenv`'s symlink moved runs the new environment's Python.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;

/// A generation's id, monotonic and never reused; logged as `generation`.
pub type GenerationId = u64;

/// Why a generation cannot be started.
#[derive(Debug, thiserror::Error)]
#[error("{option} '{}' cannot be resolved: {source} (did the deploy remove it?)", path.display())]
pub struct ResolveError {
    option: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

fn resolve(option: &'static str, path: &Path) -> Result<PathBuf, ResolveError> {
    std::fs::canonicalize(path).map_err(|source| ResolveError {
        option,
        path: path.to_owned(),
        source,
    })
}

/// The configuration a new generation runs: `base` with its directories resolved now.
pub fn snapshot(base: &Config) -> Result<Arc<Config>, ResolveError> {
    let mut config = base.clone();
    let worker = &mut config.worker;
    if let Some(dir) = &base.worker.chdir {
        worker.chdir = Some(resolve("--chdir", dir)?);
    }
    if let Some(venv) = &base.worker.virtualenv {
        worker.virtualenv = Some(resolve("--virtualenv", venv)?);
    }
    worker.pythonpath = base
        .worker
        .pythonpath
        .iter()
        .map(|p| resolve("--pythonpath", p))
        .collect::<Result<_, _>>()?;
    config.python = Some(match &worker.virtualenv {
        // The venv's own path, not the interpreter it links to: CPython finds `pyvenv.cfg`
        // (and so the venv's site-packages) from the path it was started as.
        Some(venv) => venv.join("bin/python"),
        None => own_python(),
    });
    Ok(Arc::new(config))
}

/// The `python` beside segue's own executable: pip installs `segue` into the `bin/` of the
/// environment whose interpreter then runs the workers.
pub fn own_python() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("python")))
        .unwrap_or_else(|| PathBuf::from("python3"))
}
