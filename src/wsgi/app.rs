//! Loading the user's apps in a worker at boot: every mount's source (a module attribute or a
//! factory's result, a file, uWSGI's `eval` code), with errors that name the spec as the user
//! wrote it, what failed and the fix. A failure here is the worker's `BootFailed`.

use std::ffi::CString;
use std::path::Path;

use pyo3::exceptions::{PyAttributeError, PyModuleNotFoundError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyModule, PyTuple, PyType};

use super::environ::latin1;
use super::errors::ErrorStream;
use super::factory::{self, CallError};
use super::file_wrapper::FileWrapper;
use super::mounts::Mounts;
use crate::config::{AppSource, Mount, WorkerConfig};

/// One loaded app and the environ keys its requests share.
pub struct Mounted {
    /// The WSGI callable.
    pub callable: Py<PyAny>,
    /// Keys identical for every request to this app, `SCRIPT_NAME` (its prefix) included;
    /// each environ starts as a copy of it, so a mount costs a request nothing.
    pub base: Py<PyDict>,
}

/// Everything a worker serves, by mount prefix.
pub struct App {
    /// The loaded apps; a request goes to the longest prefix matching its path.
    pub mounts: Mounts<Mounted>,
    /// An app called `write()` while running inline: its requests then go to a Python thread
    /// of their own, where `write()` output streams instead of waiting for the app to return.
    pub uses_write: std::sync::atomic::AtomicBool,
    /// The `str` objects environs share.
    pub strings: super::strings::Strings,
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

impl LoadError {
    fn plain(message: String) -> LoadError {
        LoadError {
            message,
            traceback: None,
        }
    }

    fn python(py: Python<'_>, message: String, err: &PyErr) -> LoadError {
        LoadError {
            message,
            traceback: Some(format_exception(py, err)),
        }
    }
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

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// `None`, or "a value of type str": what stood where a callable should.
fn what_it_is(obj: &Bound<'_, PyAny>) -> String {
    if obj.is_none() {
        "None".into()
    } else {
        format!("a value of type {}", type_name(obj))
    }
}

/// Puts `--chdir` (or the working directory) first on `sys.path`, then `--pythonpath`, as
/// gunicorn and uWSGI do, so `segue hello:app` finds `./hello.py`. Done once for all mounts.
fn prepare_sys_path(py: Python<'_>, config: &WorkerConfig) -> PyResult<()> {
    let sys_path = sys_path(py)?;
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut first = vec![
        config
            .chdir
            .as_ref()
            .map_or(cwd, |d| d.display().to_string()),
    ];
    first.extend(config.pythonpath.iter().map(|p| p.display().to_string()));
    for (i, entry) in first.iter().enumerate() {
        sys_path.insert(i, entry)?;
    }
    Ok(())
}

fn sys_path(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    Ok(py.import("sys")?.getattr("path")?.cast_into::<PyList>()?)
}

/// The environ keys every request of every mount shares; each mount copies it and adds its
/// `SCRIPT_NAME`.
fn base_environ<'py>(py: Python<'py>, config: &WorkerConfig) -> PyResult<Bound<'py, PyDict>> {
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
    // Keys every request sets (environ::build), held by None until then: each environ, a copy
    // of this dict, starts with room for them and replaces values instead of inserting keys
    // (which grew the table once per request). Interned, as build's own keys are, so each
    // replacement finds its key by identity.
    for key in [
        "REQUEST_METHOD",
        "PATH_INFO",
        "QUERY_STRING",
        "RAW_URI",
        "REQUEST_URI",
        "SERVER_PROTOCOL",
        "SERVER_NAME",
        "SERVER_PORT",
        "REMOTE_ADDR",
        "wsgi.input",
    ] {
        base.set_item(pyo3::types::PyString::intern(py, key), py.None())?;
    }
    Ok(base)
}

/// Loads every mount named by `config`; the first failure, naming its mount when there are
/// several, is the worker's boot failure.
pub fn load(py: Python<'_>, config: &WorkerConfig) -> Result<App, LoadError> {
    let internal = |what: &str, e: PyErr| {
        LoadError::python(py, format!("cannot {what}: {}", exc_summary(py, &e)), &e)
    };
    if config.app.mounts.is_empty() {
        return Err(LoadError::plain(
            "no app to serve: the configuration names none".into(),
        ));
    }
    prepare_sys_path(py, config).map_err(|e| internal("set up sys.path", e))?;
    let template = base_environ(py, config).map_err(|e| internal("build the environ", e))?;
    let several = config.app.mounts.len() > 1;
    let mut loaded = Vec::with_capacity(config.app.mounts.len());
    for (index, mount) in config.app.mounts.iter().enumerate() {
        let callable = load_source(py, &mount.source, index).map_err(|mut e| {
            if several {
                e.message = format!("mount '{}': {}", shown_prefix(mount), e.message);
            }
            e
        })?;
        // Hooks that run around every request (gunicorn's pre_request, post_request) wrap the
        // callable; without any this returns it as it is.
        let callable = py
            .import("segue._hooks")
            .and_then(|m| m.call_method1("_wrap_app", (callable,)))
            .map_err(|e| internal("wrap the app in its request hooks", e))?;
        let base = template
            .copy()
            .and_then(|b| {
                b.set_item("SCRIPT_NAME", latin1(py, mount.prefix.as_bytes()))?;
                Ok(b)
            })
            .map_err(|e| internal("build the environ", e))?;
        loaded.push((
            mount.prefix.clone(),
            Mounted {
                callable: callable.unbind(),
                base: base.unbind(),
            },
        ));
    }
    Ok(App {
        mounts: Mounts::new(loaded),
        uses_write: Default::default(),
        strings: Default::default(),
    })
}

fn shown_prefix(mount: &Mount) -> &str {
    if mount.prefix.is_empty() {
        "/"
    } else {
        &mount.prefix
    }
}

/// The spec as the user wrote it, quoted, for messages.
fn written(source: &AppSource) -> String {
    match source {
        AppSource::Eval { .. } => "the --eval code".into(),
        other => format!("'{other}'"),
    }
}

/// Imports, runs or calls what `source` names and checks the result is callable.
fn load_source<'py>(
    py: Python<'py>,
    source: &AppSource,
    index: usize,
) -> Result<Bound<'py, PyAny>, LoadError> {
    let spec = written(source);
    let callable = match source {
        AppSource::Module { module, attr, call } => {
            load_module(py, &spec, module, attr, call.as_deref())?
        }
        AppSource::File { path, callable } => load_file(py, &spec, path, callable)?,
        AppSource::Eval { code, callable } => load_eval(py, code, callable, index)?,
    };
    if !callable.is_callable() {
        return Err(LoadError::plain(format!(
            "cannot serve {spec}: it is {}, not a WSGI callable (name the app object, or the factory followed by '()')",
            what_it_is(&callable)
        )));
    }
    Ok(callable)
}

fn load_module<'py>(
    py: Python<'py>,
    spec: &str,
    module: &str,
    attr: &str,
    call: Option<&str>,
) -> Result<Bound<'py, PyAny>, LoadError> {
    let imported = py.import(module).map_err(|e| {
        let missing_self = e.is_instance_of::<PyModuleNotFoundError>(py)
            && e.value(py)
                .getattr("name")
                .ok()
                .and_then(|n| n.extract::<String>().ok())
                .is_some_and(|n| module == n || module.starts_with(&format!("{n}.")));
        let hint = if missing_self {
            " (did you set --chdir or --pythonpath?)"
        } else {
            ""
        };
        LoadError::python(
            py,
            format!("cannot import {spec}: {}{hint}", exc_summary(py, &e)),
            &e,
        )
    })?;
    // Parse the arguments before touching the attribute: a refused argument is the user's
    // spec, whatever the module holds.
    let arguments = call
        .map(|text| factory::parse(py, text))
        .transpose()
        .map_err(|e| LoadError::plain(format!("cannot import {spec}: {e}")))?;
    let target = lookup(py, spec, &imported.dict(), Namespace::Module(module), attr)?;
    let Some(arguments) = arguments else {
        return Ok(target);
    };
    let shown = format!("{attr}({})", call.unwrap_or_default());
    let made = factory::call(&target, &arguments).map_err(|e| match e {
        CallError::WrongArguments(msg) => LoadError::plain(format!(
            "cannot import {spec}: {shown} does not fit the factory: TypeError: {msg} (pass the arguments {attr} takes)"
        )),
        CallError::Raised(err) => LoadError::python(
            py,
            format!(
                "cannot import {spec}: the factory raised {}",
                exc_summary(py, &err)
            ),
            &err,
        ),
    })?;
    if !made.is_callable() {
        return Err(LoadError::plain(format!(
            "cannot serve {spec}: {shown} returned {}, not a WSGI callable (the factory must return the app, e.g. 'return app')",
            what_it_is(&made)
        )));
    }
    Ok(made)
}

/// Where a callable is looked up, for the message when it is missing.
enum Namespace<'a> {
    /// An imported module, by name.
    Module(&'a str),
    /// The globals of a `--wsgi-file` or a mount's file.
    File,
    /// The globals of the `--eval` code.
    Eval,
}

/// Finds the dotted `path` among `namespace`'s globals (a module's, a file's, the eval code's);
/// a missing name lists the callables the namespace does define.
fn lookup<'py>(
    py: Python<'py>,
    spec: &str,
    namespace: &Bound<'py, PyDict>,
    kind: Namespace<'_>,
    path: &str,
) -> Result<Bound<'py, PyAny>, LoadError> {
    let mut parts = path.split('.');
    let first = parts.next().unwrap_or_default();
    let missing = || {
        let hint = callables_hint(py, namespace);
        LoadError::plain(match kind {
            Namespace::Module(module) => format!(
                "cannot import {spec}: module '{module}' has no attribute '{first}' ({hint}; name the WSGI callable as {module}:NAME)"
            ),
            Namespace::File => format!(
                "cannot load {spec}: the file defines no '{first}' ({hint}; name the one to serve with --callable NAME)"
            ),
            Namespace::Eval => format!(
                "cannot run {spec}: it defines no '{first}' ({hint}; assign the app to '{first}', or name it with --callable NAME)"
            ),
        })
    };
    let mut obj = match namespace.get_item(first) {
        Ok(Some(obj)) => obj,
        _ => return Err(missing()),
    };
    let mut walked = first.to_owned();
    for part in parts {
        obj = match obj.getattr(part) {
            Ok(next) => next,
            Err(e) if e.is_instance_of::<PyAttributeError>(py) => {
                return Err(LoadError::plain(format!(
                    "cannot import {spec}: '{walked}' (a {}) has no attribute '{part}' (check the attribute path '{path}')",
                    type_name(&obj)
                )));
            }
            Err(e) => {
                return Err(LoadError::python(
                    py,
                    format!(
                        "cannot import {spec}: reading '{walked}.{part}' raised {}",
                        exc_summary(py, &e)
                    ),
                    &e,
                ));
            }
        };
        walked.push('.');
        walked.push_str(part);
    }
    Ok(obj)
}

/// "it defines these callables: app, create_app": the public callables the namespace itself
/// made (instances, and functions or classes defined there, not ones it imported).
fn callables_hint(py: Python<'_>, namespace: &Bound<'_, PyDict>) -> String {
    const SHOWN: usize = 8;
    let home = namespace
        .get_item("__name__")
        .ok()
        .flatten()
        .and_then(|n| n.extract::<String>().ok());
    let isroutine = py
        .import("inspect")
        .and_then(|i| i.getattr("isroutine"))
        .ok();
    let mut names: Vec<String> = namespace
        .iter()
        .filter_map(|(name, obj)| {
            let name = name.extract::<String>().ok()?;
            if name.starts_with('_') || !obj.is_callable() || obj.is_instance_of::<PyModule>() {
                return None;
            }
            let declared = obj.is_instance_of::<PyType>()
                || isroutine
                    .as_ref()
                    .and_then(|f| f.call1((&obj,)).ok())
                    .is_some_and(|r| r.is_truthy().unwrap_or(false));
            let defined_here = || {
                obj.getattr("__module__")
                    .ok()
                    .and_then(|m| m.extract::<String>().ok())
                    == home
            };
            (!declared || defined_here()).then_some(name)
        })
        .collect();
    names.sort();
    match names.len() {
        0 => "it defines no callable".into(),
        n if n > SHOWN => format!(
            "it defines these callables: {}, and {} more",
            names[..SHOWN].join(", "),
            n - SHOWN
        ),
        _ => format!("it defines these callables: {}", names.join(", ")),
    }
}

fn load_file<'py>(
    py: Python<'py>,
    spec: &str,
    path: &Path,
    callable: &str,
) -> Result<Bound<'py, PyAny>, LoadError> {
    let failed = |e: PyErr| {
        LoadError::python(
            py,
            format!("cannot load {spec}: {}", exc_summary(py, &e)),
            &e,
        )
    };
    // The file's directory comes first, as for `python path/app.py`, so its siblings import.
    if let Some(dir) = path.parent() {
        let dir = dir.display().to_string();
        let sys_path = sys_path(py).map_err(failed)?;
        if !sys_path.contains(&dir).map_err(failed)? {
            sys_path.insert(0, dir).map_err(failed)?;
        }
    }
    let globals = py
        .import("runpy")
        .and_then(|runpy| runpy.call_method1("run_path", (path.display().to_string(),)))
        .and_then(|g| Ok(g.cast_into::<PyDict>()?))
        .map_err(failed)?;
    lookup(py, spec, &globals, Namespace::File, callable)
}

/// uWSGI's `eval`: the code is compiled and executed as the source of a fresh module (as its
/// `uwsgi_eval_loader` does with `PyImport_ExecCodeModule`), and `callable` is taken from it.
fn load_eval<'py>(
    py: Python<'py>,
    code: &str,
    callable: &str,
    index: usize,
) -> Result<Bound<'py, PyAny>, LoadError> {
    let name = match index {
        0 => "segue_eval".to_owned(),
        n => format!("segue_eval_{n}"),
    };
    let c_code = CString::new(code).map_err(|_| {
        LoadError::plain("cannot run the --eval code: it contains a NUL byte".into())
    })?;
    let c_name = CString::new(name.as_str()).unwrap_or_default();
    let module = PyModule::from_code(py, &c_code, c"<eval>", &c_name).map_err(|e| {
        LoadError::python(
            py,
            format!("cannot run the --eval code: {}", exc_summary(py, &e)),
            &e,
        )
    })?;
    lookup(
        py,
        "the --eval code",
        &module.dict(),
        Namespace::Eval,
        callable,
    )
}
