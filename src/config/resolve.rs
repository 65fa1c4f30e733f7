//! From an [`Invocation`] (the words, the environment, the directory) to resolved settings:
//! every source read into entries, every entry judged by its dialect, then one value per
//! option by precedence — **command line > environment > configuration files > defaults** —
//! with the place each value came from. Reading and judging never fail on a single bad name:
//! all of them are collected, so `--print-config` shows everything and a refusal lists every
//! problem at once. The master runs this again on each reload, from the same invocation, so an
//! edited file takes effect for the new generation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::argv::{self, ArgError};
use super::dialect;
use super::entry::{Entry, Origin, Verdict};
use super::option;
use super::{gunicorn, native, uwsgi};

/// How long a `gunicorn.conf.py` may take to execute before it counts as hung.
pub const CONF_TIMEOUT: Duration = Duration::from_secs(10);

/// What segue was started with: enough to resolve the configuration again on reload, in the
/// master (which never runs Python itself; a `gunicorn.conf.py` runs in a subprocess).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    /// The words after the program name (or after `check-reload`).
    pub args: Vec<String>,
    /// The environment variables that configure segue, as they were at start.
    pub env: BTreeMap<String, String>,
    /// The working directory at start; relative paths resolve against it.
    pub cwd: PathBuf,
}

/// Environment variables segue reads besides `SEGUE_*`.
const FOREIGN_ENV: [&str; 4] = [
    "GUNICORN_CMD_ARGS",
    "WEB_CONCURRENCY",
    "VIRTUAL_ENV",
    "FORWARDED_ALLOW_IPS",
];

impl Invocation {
    /// This process's invocation: `args` and the relevant part of the environment.
    pub fn current(args: Vec<String>) -> Invocation {
        let env = std::env::vars()
            .filter(|(k, _)| k.starts_with("SEGUE_") || FOREIGN_ENV.contains(&k.as_str()))
            .collect();
        Invocation {
            args,
            env,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        }
    }
}

/// Precedence, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    /// `VIRTUAL_ENV`, `FORWARDED_ALLOW_IPS`, `WEB_CONCURRENCY`: defaults taken from the
    /// environment, which any
    /// explicit setting (even in a file) overrides, as in gunicorn.
    EnvDefault,
    /// ini, toml and gunicorn.conf.py files, in the order given.
    File,
    /// `SEGUE_*`, `GUNICORN_CMD_ARGS`.
    Env,
    /// The command line.
    Cli,
}

#[derive(Debug, Clone)]
struct Assign {
    opt: &'static str,
    value: String,
    origin: Origin,
    written: String,
    layer: Layer,
}

/// One option the user wrote that segue accepts without effect, or refuses.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    /// The name as written.
    pub option: String,
    /// Where.
    pub source: Origin,
    /// Why it is implied, what to do instead, or what is wrong with the value.
    pub note: String,
}

/// A name that no dialect knows.
#[derive(Debug, Clone, Serialize)]
pub struct Unknown {
    /// The name as written.
    pub option: String,
    /// Where.
    pub source: Origin,
    /// The closest valid name.
    pub nearest: Option<String>,
    /// Whether serving refuses because of it: always, except a helper variable of a
    /// `gunicorn.conf.py` that is near no setting (gunicorn ignores those too).
    pub fatal: bool,
}

/// A source that could not be read at all: then nothing is resolved.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Malformed command line (or `GUNICORN_CMD_ARGS`).
    #[error("{0}")]
    Args(#[from] ArgError),
    /// `GUNICORN_CMD_ARGS` is not a shell word list.
    #[error("GUNICORN_CMD_ARGS cannot be split into words: {0}")]
    CmdArgs(String),
    /// An ini file.
    #[error(transparent)]
    Ini(#[from] uwsgi::IniError),
    /// A `gunicorn.conf.py`.
    #[error(transparent)]
    Gunicorn(#[from] gunicorn::ConfError),
    /// A `segue.toml`.
    #[error(transparent)]
    Toml(#[from] native::TomlError),
}

/// The outcome of resolution.
#[derive(Debug, Default)]
pub struct Resolved {
    assigns: Vec<Assign>,
    /// Accepted without effect.
    pub implied: Vec<Note>,
    /// Refused unless `--ignore-unsupported`.
    pub unsupported: Vec<Note>,
    /// Typos.
    pub unknown: Vec<Unknown>,
    /// Supported options whose value cannot be used.
    pub invalid: Vec<Note>,
    /// Things worth a warning line (an ini value with inline `;` text, say).
    pub warnings: Vec<String>,
    /// Every configuration file read, in order.
    pub files: Vec<PathBuf>,
    /// The directory relative paths resolve against.
    pub cwd: PathBuf,
}

/// One resolved option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The values (one, or several for a repeatable option); empty for unset.
    pub values: Vec<String>,
    /// Where the (last) value came from.
    pub origin: Origin,
    /// The name it was written as (`processes` for `workers`).
    pub written: String,
}

/// The options that name the root app: they override each other as one, so `segue app:x`
/// on the command line replaces an ini file's `wsgi-file` instead of clashing with it.
const APP_GROUP: [&str; 3] = ["app", "wsgi-file", "eval"];

fn split_list(opt: &option::Opt, value: &str) -> Vec<String> {
    // Lists in one environment variable: commas for paths and addresses, newlines for values
    // that may hold commas themselves (KEY=VALUE, mounts).
    let sep: &[char] = match opt.name {
        "http" | "pythonpath" | "ini" => &[',', '\n'],
        _ => &['\n'],
    };
    value
        .split(sep)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Resolved {
    fn judge(&mut self, entry: &Entry, verdict: Verdict, layer: Layer) {
        let note = |text: String| Note {
            option: entry.key.clone(),
            source: entry.origin.clone(),
            note: text,
        };
        match verdict {
            Verdict::Applied(pairs) => {
                for (opt, value) in pairs {
                    self.assigns.push(Assign {
                        opt,
                        value,
                        origin: entry.origin.clone(),
                        written: entry.key.clone(),
                        layer,
                    });
                }
            }
            Verdict::Implied(why) => self.implied.push(note(why.to_owned())),
            Verdict::Unsupported(what) => self.unsupported.push(note(what.to_owned())),
            Verdict::Invalid(why) => self.invalid.push(note(why)),
            Verdict::Unknown { nearest } => self.unknown.push(Unknown {
                option: entry.key.clone(),
                source: entry.origin.clone(),
                fatal: true,
                nearest,
            }),
        }
    }

    fn push(
        &mut self,
        opt: &'static str,
        value: &str,
        origin: Origin,
        written: &str,
        layer: Layer,
    ) {
        self.assigns.push(Assign {
            opt,
            value: value.to_owned(),
            origin,
            written: written.to_owned(),
            layer,
        });
    }

    /// The assignments of `name` that count: those of the highest-precedence layer.
    fn chosen(&self, name: &str) -> Vec<&Assign> {
        let group: &[&str] = if APP_GROUP.contains(&name) {
            &APP_GROUP
        } else {
            std::slice::from_ref(&name)
        };
        let Some(top) = self
            .assigns
            .iter()
            .filter(|a| group.contains(&a.opt))
            .map(|a| a.layer)
            .max()
        else {
            return Vec::new();
        };
        self.assigns
            .iter()
            .filter(|a| a.opt == name && a.layer == top)
            .collect()
    }

    /// Where each value of `name` came from (one origin per value of a repeatable option).
    pub fn origins(&self, name: &str) -> Vec<Origin> {
        self.chosen(name).iter().map(|a| a.origin.clone()).collect()
    }

    /// The highest-precedence values of `name`.
    pub fn get(&self, name: &str) -> Option<Setting> {
        let chosen = self.chosen(name);
        let last = chosen.last()?;
        let repeat = option::find(name).is_some_and(|o| o.repeat);
        let values = if repeat {
            chosen.iter().map(|a| a.value.clone()).collect()
        } else {
            vec![last.value.clone()]
        };
        Some(Setting {
            values,
            origin: last.origin.clone(),
            written: last.written.clone(),
        })
    }

    /// Every option given a value by some source (not by its default), each once.
    pub fn set_options(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.assigns.iter().map(|a| a.opt).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// A single value, if set anywhere.
    pub fn value(&self, name: &str) -> Option<String> {
        self.get(name).and_then(|s| s.values.last().cloned())
    }

    /// A boolean control option (`--print-config`): set and true.
    pub fn flag(&self, name: &str) -> bool {
        self.value(name)
            .and_then(|v| option::parse_bool(&v))
            .unwrap_or(false)
    }

    /// Every option with its value and source, defaults included, for `--print-config` and
    /// the building of a `Config`.
    pub fn settings(&self) -> Vec<(&'static option::Opt, Setting)> {
        option::all()
            .map(|opt| {
                let s = self.get(opt.name).unwrap_or_else(|| Setting {
                    values: opt.default.map(|d| vec![d.to_owned()]).unwrap_or_default(),
                    origin: Origin::Default,
                    written: opt.name.to_owned(),
                });
                (opt, s)
            })
            .collect()
    }
}

/// Reads every source of `inv` and judges every entry.
pub fn resolve(inv: &Invocation) -> Result<Resolved, ReadError> {
    let mut r = Resolved {
        cwd: inv.cwd.clone(),
        ..Resolved::default()
    };
    let cwd = inv.cwd.clone();

    // The command line.
    let parsed = argv::parse(&inv.args, None, &dialect::cli_arity)?;
    for entry in &parsed.entries {
        if matches!(
            entry.key.as_str(),
            "--help" | "-h" | "--version" | "-v" | "-V"
        ) {
            continue;
        }
        let verdict = dialect::cli(&entry.key, entry.value.as_deref(), &cwd);
        r.judge(entry, split_cli_lists(verdict), Layer::Cli);
    }
    match parsed.positional.as_slice() {
        [] => {}
        [one] => positional(&mut r, one, Origin::Flag("APP".into()), Layer::Cli),
        [a, b, ..] => {
            positional(&mut r, a, Origin::Flag("APP".into()), Layer::Cli);
            r.invalid.push(Note {
            option: b.clone(),
            source: Origin::Flag("APP".into()),
            note: format!(
                "more than one APP given ('{a}' and '{b}'): name one app (or --mount PREFIX=APP for several); a misspelt option before them takes no value"
            ),
            })
        }
    }

    // The environment.
    for (var, value) in &inv.env {
        match var.as_str() {
            "GUNICORN_CMD_ARGS" => {
                let words = gunicorn::split_cmd_args(value).map_err(ReadError::CmdArgs)?;
                let parsed = argv::parse(&words, Some(var), &dialect::cli_arity)?;
                for entry in &parsed.entries {
                    let verdict = dialect::cli(&entry.key, entry.value.as_deref(), &cwd);
                    r.judge(entry, split_cli_lists(verdict), Layer::Env);
                }
                if let Some(app) = parsed.positional.last() {
                    positional(&mut r, app, Origin::Env(var.clone()), Layer::Env);
                }
            }
            // gunicorn takes WEB_CONCURRENCY as the default worker count: a file overrides it.
            "WEB_CONCURRENCY" => r.push(
                "workers",
                value,
                Origin::Env(var.clone()),
                var,
                Layer::EnvDefault,
            ),
            "VIRTUAL_ENV" if !value.is_empty() => r.push(
                "virtualenv",
                value,
                Origin::Env(var.clone()),
                var,
                Layer::EnvDefault,
            ),
            "FORWARDED_ALLOW_IPS" => r.push(
                "forwarded-allow-ips",
                value,
                Origin::Env(var.clone()),
                var,
                Layer::EnvDefault,
            ),
            _ => {
                // Only variables named after an option: SEGUE_CONTROL (the control client's) and
                // the test harness's own SEGUE_* must not read as typos.
                let Some(opt) = option::all().find(|o| o.env_var() == *var) else {
                    continue;
                };
                if matches!(opt.name, "print-config" | "check-config") {
                    continue;
                }
                let values = if opt.repeat {
                    split_list(opt, value)
                } else {
                    vec![value.clone()]
                };
                for v in values {
                    let entry = Entry::new(var.clone(), v.clone(), Origin::Env(var.clone()));
                    r.judge(&entry, dialect::segue(opt, Some(&v)), Layer::Env);
                }
            }
        }
    }

    // Configuration files, named on the command line or in the environment (env first, then
    // the command line, each in its order), or gunicorn's default file.
    let mut files: Vec<(String, bool, Origin)> = r
        .assigns
        .iter()
        .filter(|a| a.opt == "ini" || a.opt == "config")
        .map(|a| (a.value.clone(), a.opt == "ini", a.origin.clone()))
        .collect();
    files.sort_by_key(|(_, _, o)| matches!(o, Origin::Flag(_)));
    if files.is_empty() {
        if let Some(default) = gunicorn::default_conf(&cwd) {
            files.push((default.display().to_string(), false, Origin::Default));
        }
    }
    for (name, is_ini, _) in files {
        read_file(&mut r, inv, &name, is_ini)?;
    }
    Ok(r)
}

/// On the command line a comma separates several `--pythonpath` directories, as in gunicorn.
fn split_cli_lists(verdict: Verdict) -> Verdict {
    match verdict {
        Verdict::Applied(pairs) => Verdict::Applied(
            pairs
                .into_iter()
                .flat_map(|(opt, v)| {
                    if opt == "pythonpath" {
                        v.split(',')
                            .filter(|s| !s.is_empty())
                            .map(|s| (opt, s.to_owned()))
                            .collect()
                    } else {
                        vec![(opt, v)]
                    }
                })
                .collect(),
        ),
        other => other,
    }
}

/// A bare word: an ini or toml file, a Python file (uWSGI's `uwsgi wsgi.py`), or the app.
fn positional(r: &mut Resolved, word: &str, origin: Origin, layer: Layer) {
    let opt = if word.ends_with(".ini") && !word.contains(':') {
        "ini"
    } else if word.ends_with(".toml") {
        "config"
    } else if (word.ends_with(".py") || word.ends_with(".wsgi")) && !word.contains(':') {
        "wsgi-file"
    } else {
        "app"
    };
    r.push(opt, word, origin, opt, layer);
}

fn read_file(
    r: &mut Resolved,
    inv: &Invocation,
    name: &str,
    is_ini: bool,
) -> Result<(), ReadError> {
    let env = |k: &str| inv.env.get(k).cloned().or_else(|| std::env::var(k).ok());
    let path = inv.cwd.join(name);
    if is_ini || name.ends_with(".ini") {
        let ini = uwsgi::read_ini(&absolute_spec(&inv.cwd, name), &env)?;
        r.warnings.extend(ini.warnings);
        r.files.extend(ini.files);
        for entry in &ini.entries {
            let verdict = dialect::ini(&entry.key, entry.value.as_deref(), &inv.cwd);
            r.judge(entry, verdict, Layer::File);
        }
    } else if name.ends_with(".toml") {
        let entries = native::read(&path)?;
        r.files.push(path);
        for entry in &entries {
            r.judge(
                entry,
                dialect::native(&entry.key, entry.value.as_deref()),
                Layer::File,
            );
        }
    } else {
        let python = interpreter(r);
        let target = if name.starts_with("python:") {
            name.to_owned()
        } else {
            path.display().to_string()
        };
        let conf = gunicorn::read_conf(&python, &target, CONF_TIMEOUT)?;
        match conf.file {
            gunicorn::ConfSource::File(path)
            | gunicorn::ConfSource::Module {
                path: Some(path), ..
            } => r.files.push(path),
            gunicorn::ConfSource::Module { path: None, .. } => {}
        }
        for entry in &conf.entries {
            let verdict = dialect::gunicorn_conf(&entry.key, entry.value.as_deref());
            match verdict {
                Verdict::Unknown { nearest: None } => r.unknown.push(Unknown {
                    option: entry.key.clone(),
                    source: entry.origin.clone(),
                    nearest: None,
                    fatal: false,
                }),
                v => r.judge(entry, v, Layer::File),
            }
        }
    }
    Ok(())
}

/// `FILE[:SECTION]` with FILE made absolute.
fn absolute_spec(cwd: &Path, spec: &str) -> String {
    cwd.join(spec).display().to_string()
}

/// The interpreter a `gunicorn.conf.py` runs in: the app's, so the file can import what the
/// app's environment has. Chosen from what is known before any file is read.
fn interpreter(r: &Resolved) -> PathBuf {
    match r.value("virtualenv") {
        Some(venv) => r.cwd.join(venv).join("bin/python"),
        None => crate::master::generation::own_python(),
    }
}
