//! Which Python callables a worker serves, as the master checked their syntax: gunicorn's
//! `module:name`, `module:factory(args)`, uWSGI's `module = pkg.mod:Class()`, `wsgi-file`,
//! `eval`, and `mount` (several apps in one worker, each under a SCRIPT_NAME prefix). The
//! master never imports anything; whether the module exists, and whether a factory's arguments
//! are literals, is the worker's to find out at boot (a boot failure with the reason).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The name uWSGI and gunicorn both look for when no callable is named.
pub const DEFAULT_CALLABLE: &str = "application";

/// Where one WSGI callable comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppSource {
    /// `module[:attr.path][(args)]`, imported with the normal import system.
    Module {
        /// Dotted module name.
        module: String,
        /// Attribute path of the callable (or of the factory) inside the module.
        attr: String,
        /// `Some(text)` when the spec ends in a call: the text between the parentheses (may be
        /// empty), to be parsed as literal positional and keyword arguments in the worker, as
        /// gunicorn does; the result of the call is the WSGI callable.
        call: Option<String>,
    },
    /// A Python file executed as a module (`runpy.run_path`); `callable` is taken from it.
    File {
        /// Absolute path of the file.
        path: PathBuf,
        /// The name of the callable in the file's globals.
        callable: String,
    },
    /// Python source executed as a fresh module (uWSGI's `eval`); `callable` is taken from it.
    Eval {
        /// The code.
        code: String,
        /// The name of the callable in its globals.
        callable: String,
    },
}

/// One app and the URL prefix it answers under; `""` is the root app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// `SCRIPT_NAME` of the app: empty, or starting with `/` and not ending with one.
    pub prefix: String,
    /// The callable.
    pub source: AppSource,
}

/// Everything a worker serves: requests go to the mount with the longest prefix that matches
/// the path at a segment boundary; that prefix becomes `SCRIPT_NAME`, the rest `PATH_INFO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSpec {
    /// At least one mount, longest prefix first.
    pub mounts: Vec<Mount>,
}

/// An app spec that cannot name a callable, whatever gets imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// Not `module`, `module:name` or `module:factory(...)`.
    #[error(
        "invalid app '{0}': expected MODULE, MODULE:NAME or MODULE:FACTORY(ARGS), e.g. 'myproject.wsgi:application' or 'app:create_app()'"
    )]
    BadModule(String),
    /// A mount without `PREFIX=APP`, or with a prefix that is not a path.
    #[error(
        "invalid mount '{0}': expected PREFIX=APP with PREFIX a path such as /admin (or empty for the root), e.g. '/admin=admin.wsgi' or '/api=api:app'"
    )]
    BadMount(String),
    /// Two mounts with the same prefix.
    #[error("two apps are mounted at '{0}': give each mount its own prefix")]
    DuplicateMount(String),
    /// The callable name is not an identifier path.
    #[error("invalid callable '{0}': expected a Python name such as 'application' or 'app'")]
    BadCallable(String),
}

fn dotted(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
                && chars.all(|c| c.is_alphanumeric() || c == '_')
        })
}

impl AppSource {
    /// Parses `module[:attr][(args)]`; `callable` is the attribute used when none is written
    /// (uWSGI's `callable` option, default `application`).
    pub fn module(spec: &str, callable: &str) -> Result<AppSource, AppError> {
        let bad = || AppError::BadModule(spec.to_owned());
        let spec_trimmed = spec.trim();
        let (module, rest) = match spec_trimmed.split_once(':') {
            Some((m, r)) => (m, Some(r.trim())),
            None => (spec_trimmed, None),
        };
        if !dotted(module) {
            return Err(bad());
        }
        let (attr, call) = match rest {
            None => (callable.to_owned(), None),
            Some(rest) => match rest.find('(') {
                Some(open) => {
                    let args = rest[open + 1..].strip_suffix(')').ok_or_else(bad)?;
                    (rest[..open].trim().to_owned(), Some(args.to_owned()))
                }
                None => (rest.to_owned(), None),
            },
        };
        if !dotted(&attr) {
            return Err(bad());
        }
        Ok(AppSource::Module {
            module: module.to_owned(),
            attr,
            call,
        })
    }

    /// A mount's app: a path ending in `.py` or `.wsgi` (or containing `/`) is a file, as uWSGI
    /// decides; anything else is a module spec.
    pub fn file_or_module(
        app: &str,
        callable: &str,
        base: &std::path::Path,
    ) -> Result<AppSource, AppError> {
        let looks_like_file = app.ends_with(".py")
            || app.ends_with(".wsgi")
            || (app.contains('/') && !app.contains(':'));
        if looks_like_file {
            Ok(AppSource::File {
                path: base.join(app),
                callable: callable.to_owned(),
            })
        } else {
            AppSource::module(app, callable)
        }
    }
}

impl Mount {
    /// Parses uWSGI's `PREFIX=APP`.
    pub fn parse(text: &str, callable: &str, base: &std::path::Path) -> Result<Mount, AppError> {
        let bad = || AppError::BadMount(text.to_owned());
        let (prefix, app) = text.split_once('=').ok_or_else(bad)?;
        let prefix = prefix.trim().trim_end_matches('/');
        if !(prefix.is_empty() || prefix.starts_with('/')) || app.trim().is_empty() {
            return Err(bad());
        }
        Ok(Mount {
            prefix: prefix.to_owned(),
            source: AppSource::file_or_module(app.trim(), callable, base)?,
        })
    }
}

impl AppSpec {
    /// A single app at the root.
    pub fn root(source: AppSource) -> AppSpec {
        AppSpec {
            mounts: vec![Mount {
                prefix: String::new(),
                source,
            }],
        }
    }

    /// Several mounts, checked for duplicate prefixes and sorted longest first.
    pub fn mounted(mut mounts: Vec<Mount>) -> Result<AppSpec, AppError> {
        mounts.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.prefix.cmp(&b.prefix))
        });
        if let Some(pair) = mounts.windows(2).find(|w| w[0].prefix == w[1].prefix) {
            return Err(AppError::DuplicateMount(pair[0].prefix.clone()));
        }
        Ok(AppSpec { mounts })
    }
}

impl fmt::Display for AppSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppSource::Module {
                module,
                attr,
                call: None,
            } => write!(f, "{module}:{attr}"),
            AppSource::Module {
                module,
                attr,
                call: Some(args),
            } => write!(f, "{module}:{attr}({args})"),
            AppSource::File { path, callable } if callable == DEFAULT_CALLABLE => {
                write!(f, "{}", path.display())
            }
            AppSource::File { path, callable } => write!(f, "{}:{callable}", path.display()),
            AppSource::Eval { callable, .. } => write!(f, "eval:{callable}"),
        }
    }
}

impl fmt::Display for AppSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.mounts.iter().rev().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if m.prefix.is_empty() && self.mounts.len() == 1 {
                write!(f, "{}", m.source)?;
            } else {
                write!(
                    f,
                    "{}={}",
                    if m.prefix.is_empty() { "/" } else { &m.prefix },
                    m.source
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(m: &str, a: &str, call: Option<&str>) -> AppSource {
        AppSource::Module {
            module: m.into(),
            attr: a.into(),
            call: call.map(Into::into),
        }
    }

    #[test]
    fn module_specs_follow_gunicorn_and_uwsgi() {
        let p = |s| AppSource::module(s, DEFAULT_CALLABLE);
        assert_eq!(p("hello").unwrap(), module("hello", "application", None));
        assert_eq!(p("a.b:c.d").unwrap(), module("a.b", "c.d", None));
        assert_eq!(
            p("app:create_app()").unwrap(),
            module("app", "create_app", Some(""))
        );
        assert_eq!(
            p("app:create_app('prod', debug=False)").unwrap(),
            module("app", "create_app", Some("'prod', debug=False"))
        );
        assert_eq!(
            p("django.core.handlers.wsgi:WSGIHandler()").unwrap(),
            module("django.core.handlers.wsgi", "WSGIHandler", Some(""))
        );
        assert_eq!(
            AppSource::module("wsgi", "app").unwrap(),
            module("wsgi", "app", None)
        );
        for bad in ["a:", ":x", "a..b", "a:b(", "1a:b", "a b:c", "a:b c"] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mounts_sort_longest_prefix_first_and_refuse_duplicates() {
        let base = std::path::Path::new("/srv");
        let m = |s| Mount::parse(s, DEFAULT_CALLABLE, base).unwrap();
        assert_eq!(
            m("/admin=admin.wsgi").source,
            AppSource::File {
                path: "/srv/admin.wsgi".into(),
                callable: "application".into()
            }
        );
        assert_eq!(m("/api/=api:app").prefix, "/api");
        let spec = AppSpec::mounted(vec![m("=root:app"), m("/a=a:app"), m("/a/b=b:app")]).unwrap();
        let prefixes: Vec<_> = spec.mounts.iter().map(|m| m.prefix.as_str()).collect();
        assert_eq!(prefixes, ["/a/b", "/a", ""]);
        assert!(AppSpec::mounted(vec![m("/a=a:app"), m("/a/=b:app")]).is_err());
        assert!(Mount::parse("admin=x:app", DEFAULT_CALLABLE, base).is_err());
        assert!(Mount::parse("/admin", DEFAULT_CALLABLE, base).is_err());
    }
}
