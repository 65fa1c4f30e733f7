//! App factories named with their arguments, gunicorn's `module:create_app('prod', debug=False)`
//! and uWSGI's `module = django.core.handlers.wsgi:WSGIHandler()`. The text between the
//! parentheses is parsed by Python's own `ast` as call arguments and each one must be a literal
//! (`ast.literal_eval`): an app spec on a command line or in a unit file is configuration, not
//! code, so a name, a call or an f-string there is refused at boot rather than evaluated.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// The placeholder callee the argument text is parsed under; never looked up.
const CALLEE: &str = "__segue_factory__";

/// Why a factory's argument text cannot be turned into arguments; the message says which
/// argument and what would be accepted.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// The text is not a list of call arguments at all.
    #[error(
        "'({text})' is not a list of call arguments ({reason}); write literal arguments, e.g. create_app('prod', debug=False)"
    )]
    Syntax {
        /// The argument text as written.
        text: String,
        /// Python's reason.
        reason: String,
    },
    /// One argument is an expression other than a literal.
    #[error(
        "argument '{0}' is not a literal (factory arguments must be Python literals: strings, bytes, numbers, True, False, None, and tuples, lists, dicts or sets of them; compute anything else inside the factory, from os.environ say)"
    )]
    NotLiteral(String),
    /// Python failed while parsing (not the user's text).
    #[error("cannot parse the factory arguments: {0}")]
    Internal(String),
}

impl From<PyErr> for ArgsError {
    fn from(err: PyErr) -> Self {
        ArgsError::Internal(err.to_string())
    }
}

/// A factory's positional and keyword arguments as Python objects.
pub struct Arguments<'py> {
    /// Positional arguments, in order.
    pub args: Bound<'py, PyTuple>,
    /// Keyword arguments.
    pub kwargs: Bound<'py, PyDict>,
}

/// Parses `text` (what stood between the parentheses, possibly empty) into literal arguments.
pub fn parse<'py>(py: Python<'py>, text: &str) -> Result<Arguments<'py>, ArgsError> {
    let ast = py.import("ast")?;
    let source = format!("{CALLEE}({text})");
    let syntax = |reason: String| ArgsError::Syntax {
        text: text.to_owned(),
        reason,
    };
    let tree = ast
        .call_method1("parse", (&source, "<app spec>", "eval"))
        .map_err(|e| {
            let value = e.value(py);
            let reason = value
                .getattr("msg")
                .and_then(|m| m.extract::<String>())
                .or_else(|_| value.str().map(|s| s.to_string()))
                .unwrap_or_else(|_| "invalid syntax".into());
            syntax(reason)
        })?;
    let body = tree.getattr("body")?;
    // `1), g(2` or `1)(2` parse as something other than one call of the placeholder.
    let is_our_call = body.is_instance(&ast.getattr("Call")?)? && {
        let func = body.getattr("func")?;
        func.is_instance(&ast.getattr("Name")?)?
            && func.getattr("id")?.extract::<String>()? == CALLEE
    };
    if !is_our_call {
        return Err(syntax("unbalanced parentheses".into()));
    }
    let written = |node: &Bound<'py, PyAny>| -> String {
        ast.call_method1("get_source_segment", (&source, node))
            .and_then(|s| s.extract::<String>())
            .unwrap_or_else(|_| text.to_owned())
    };
    let literal_eval = ast.getattr("literal_eval")?;
    let starred = ast.getattr("Starred")?;
    let mut args = Vec::new();
    for node in body.getattr("args")?.try_iter()? {
        let node = node?;
        // `*x` is no literal, and literal_eval would not say so by name.
        if node.is_instance(&starred)? {
            return Err(ArgsError::NotLiteral(written(&node)));
        }
        let value = literal_eval
            .call1((&node,))
            .map_err(|_| ArgsError::NotLiteral(written(&node)))?;
        args.push(value);
    }
    let kwargs = PyDict::new(py);
    for keyword in body.getattr("keywords")?.try_iter()? {
        let keyword = keyword?;
        let name = keyword.getattr("arg")?;
        if name.is_none() {
            return Err(ArgsError::NotLiteral(written(&keyword))); // `**x`
        }
        let value = literal_eval
            .call1((keyword.getattr("value")?,))
            .map_err(|_| ArgsError::NotLiteral(written(&keyword)))?;
        kwargs.set_item(name, value)?;
    }
    Ok(Arguments {
        args: PyTuple::new(py, args)?,
        kwargs,
    })
}

/// How calling a factory failed.
#[derive(Debug)]
pub enum CallError {
    /// The arguments do not fit the factory's signature: Python's message says how, and a
    /// traceback would only point into segue.
    WrongArguments(String),
    /// The factory ran and raised.
    Raised(PyErr),
}

/// Calls `factory` with `arguments`.
pub fn call<'py>(
    factory: &Bound<'py, PyAny>,
    arguments: &Arguments<'py>,
) -> Result<Bound<'py, PyAny>, CallError> {
    let py = factory.py();
    factory
        .call(&arguments.args, Some(&arguments.kwargs))
        .map_err(|err| {
            // A TypeError from binding the arguments is raised before any frame of the factory
            // runs, so it has no traceback; one raised inside the factory has.
            if err.is_instance_of::<PyTypeError>(py) && err.traceback(py).is_none() {
                let msg = err
                    .value(py)
                    .str()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                CallError::WrongArguments(msg)
            } else {
                CallError::Raised(err)
            }
        })
}
