//! Importing the user's app in a worker, with errors that say what to fix.

use std::path::Path;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::errors::ErrorStream;
use super::file_wrapper::FileWrapper;
use crate::config::{AppSource, WorkerConfig};

/// The imported app and what every environ shares.
pub struct App {
    /// The WSGI callable.
    pub callable: Py<PyAny>,
    /// Keys identical for every request; each environ starts as a copy of it.
    pub base: Py<PyDict>,
}

/// Why the app could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    /// One line naming the app, the failure and the likely fix.
    pub message: String,
    /// The Python traceback, when Python raised.
    pub traceback: Option<String>,
}

/// Formats a Python exception with its traceback, as Python would print it.
pub fn format_exception(py: Python<'_>, err: &PyErr) -> String {
    // Pass the traceback explicitly: on 3.11 a fetched exception's __traceback__ is not set yet.
    let formatted = py
        .import("traceback")
        .and_then(|tb| {
            tb.call_method1(
                "format_exception",
                (err.get_type(py), err.value(py), err.traceback(py)),
            )
        })
        .and_then(|lines| lines.extract::<Vec<String>>());
    match formatted {
        Ok(lines) => lines.concat(),
        Err(_) => err.to_string(),
    }
}

fn exc_summary(py: Python<'_>, err: &PyErr) -> String {
    let ty = err
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    let msg = err
        .value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_default();
    if msg.is_empty() {
        ty
    } else {
        format!("{ty}: {msg}")
    }
}

/// Puts `--chdir` (or the working directory) first on `sys.path`, then `--pythonpath`, as
/// gunicorn and uWSGI do, so `segue hello:app` finds `./hello.py`.
fn prepare_sys_path(py: Python<'_>, config: &WorkerConfig, extra: Option<&Path>) -> PyResult<()> {
    let sys_path = py.import("sys")?.getattr("path")?.cast_into::<PyList>()?;
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut first: Vec<String> = Vec::new();
    if let Some(dir) = extra {
        first.push(dir.display().to_string());
    }
    first.push(
        config
            .chdir
            .as_ref()
            .map_or(cwd, |d| d.display().to_string()),
    );
    first.extend(config.pythonpath.iter().map(|p| p.display().to_string()));
    for (i, entry) in first.iter().enumerate() {
        sys_path.insert(i, entry)?;
    }
    Ok(())
}

fn base_environ(py: Python<'_>, config: &WorkerConfig) -> PyResult<Py<PyDict>> {
    let base = PyDict::new(py);
    base.set_item("wsgi.version", PyTuple::new(py, [1, 0])?)?;
    base.set_item("wsgi.url_scheme", "http")?;
    base.set_item("wsgi.errors", Bound::new(py, ErrorStream::default())?)?;
    base.set_item("wsgi.multithread", config.threads > 1)?;
    base.set_item("wsgi.multiprocess", config.multiprocess)?;
    base.set_item("wsgi.run_once", false)?;
    base.set_item("wsgi.input_terminated", true)?;
    base.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
    base.set_item("SCRIPT_NAME", "")?;
    base.set_item(
        "SERVER_SOFTWARE",
        concat!("segue/", env!("CARGO_PKG_VERSION")),
    )?;
    Ok(base.unbind())
}

/// Imports the app named by `config`.
pub fn load(py: Python<'_>, config: &WorkerConfig) -> Result<App, LoadError> {
    let spec = config.app.to_string();
    let python_err = |err: PyErr, hint: &str| LoadError {
        message: format!("cannot import '{spec}': {}{hint}", exc_summary(py, &err)),
        traceback: Some(format_exception(py, &err)),
    };
    let Some(root) = config.app.mounts.first() else {
        return Err(LoadError {
            message: "no app to serve".into(),
            traceback: None,
        });
    };
    let callable = match &root.source {
        AppSource::Module {
            module,
            attr: callable,
            call: _,
        } => {
            prepare_sys_path(py, config, None).map_err(|e| python_err(e, ""))?;
            let imported = py.import(module.as_str()).map_err(|e| {
                let missing_self = e.is_instance_of::<pyo3::exceptions::PyModuleNotFoundError>(py)
                    && e.value(py)
                        .getattr("name")
                        .ok()
                        .and_then(|n| n.extract::<String>().ok())
                        .is_some_and(|n| module == &n || module.starts_with(&format!("{n}.")));
                let hint = if missing_self {
                    " (did you set --chdir or --pythonpath?)"
                } else {
                    ""
                };
                python_err(e, hint)
            })?;
            let mut obj = imported.into_any();
            for attr in callable.split('.') {
                obj = obj.getattr(attr).map_err(|_| LoadError {
                    message: format!("cannot import '{spec}': module '{module}' has no attribute '{callable}' (name the WSGI callable as {module}:NAME)"),
                    traceback: None,
                })?;
            }
            obj
        }
        AppSource::Eval { .. } => {
            return Err(LoadError {
                message: "eval is not supported yet".into(),
                traceback: None,
            });
        }
        AppSource::File { path, callable: _ } => {
            prepare_sys_path(py, config, path.parent()).map_err(|e| python_err(e, ""))?;
            let globals = py
                .import("runpy")
                .and_then(|runpy| runpy.call_method1("run_path", (path.display().to_string(),)))
                .map_err(|e| python_err(e, ""))?;
            globals.get_item("application").map_err(|_| LoadError {
                message: format!(
                    "cannot load '{spec}': the file defines no 'application' callable"
                ),
                traceback: None,
            })?
        }
    };
    if !callable.is_callable() {
        let ty = callable
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        return Err(LoadError {
            message: format!("cannot serve '{spec}': it is a {ty}, not a WSGI callable"),
            traceback: None,
        });
    }
    let base = base_environ(py, config).map_err(|e| python_err(e, ""))?;
    Ok(App {
        callable: callable.unbind(),
        base,
    })
}
