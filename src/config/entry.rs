//! One option as a user wrote it, before it means anything: the common currency of every
//! configuration source (the command line, `SEGUE_*` variables, `segue.toml`, uWSGI ini files,
//! `gunicorn.conf.py`). Each source turns its text into [`Entry`]s; each dialect turns an entry
//! into a [`Verdict`]; only then does [`resolve`](super::resolve) build a `Config`. Keeping the
//! name as written and its [`Origin`] is what lets `--print-config` and every error point at
//! the exact line or flag.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// Where an entry came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of a configuration file (1-based); `line` is 0 when the source cannot tell (a
    /// gunicorn setting assigned indirectly, say).
    File {
        /// The file, as it was named (after `%d`-style expansion, absolute where known).
        path: PathBuf,
        /// The line.
        line: usize,
    },
    /// A command-line flag, as typed (`-w`, `--bind`).
    Flag(String),
    /// An environment variable (`SEGUE_WORKERS`, `GUNICORN_CMD_ARGS`, `WEB_CONCURRENCY`).
    Env(String),
    /// segue's own default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line: 0 } => write!(f, "{}", path.display()),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Flag(flag) => write!(f, "command line {flag}"),
            Origin::Env(var) => write!(f, "environment {var}"),
            Origin::Default => f.write_str("default"),
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One `key = value` (or `--key value`, or a bare `key`) as found in a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The option's name exactly as written (`processes`, `-w`, `worker_class`).
    pub key: String,
    /// Its value after the source's own expansion (placeholders, `$(VAR)`); `None` for a bare
    /// flag (`master` alone on an ini line, `--enable-threads` on the command line).
    pub value: Option<String>,
    /// Where it was written.
    pub origin: Origin,
}

impl Entry {
    /// An entry with a value.
    pub fn new(key: impl Into<String>, value: impl Into<String>, origin: Origin) -> Self {
        Entry {
            key: key.into(),
            value: Some(value.into()),
            origin,
        }
    }
}

/// What a dialect (uWSGI, gunicorn, segue's own names) makes of one entry. Every name a user
/// can write ends in exactly one of these, so nothing is silently dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Set these segue options (canonical names from [`option`](super::option)) to these
    /// values, written as segue's command line would take them. One entry may set several
    /// options (gunicorn's `timeout`), or append to a repeatable one.
    Applied(Vec<(&'static str, String)>),
    /// Accepted without effect because segue always behaves so; the text says why, for one
    /// info line (`master`: "segue always runs a master").
    Implied(&'static str),
    /// A real option of the dialect that segue does not have (yet); the text says what to do
    /// instead, or which release brings it. Serving refuses unless `--ignore-unsupported`.
    Unsupported(&'static str),
    /// Not an option of the dialect at all: a typo. `nearest` is the closest valid name.
    Unknown {
        /// The closest valid name, when one is close enough to be a likely fix.
        nearest: Option<String>,
    },
    /// A known, supported option whose value cannot be used; the text names the fix.
    Invalid(String),
}

/// Whether an option takes a value on a command line, so that a parser knows whether the next
/// word belongs to it (`--master wsgi.py` vs `--processes 4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// A bare flag (`--master`); `--flag=value` still passes a value.
    Flag,
    /// Always takes a value (`--processes 4`, `--processes=4`).
    Value,
    /// Takes a value only as `--opt=value`; alone it is a flag (uWSGI's optional_argument).
    Optional,
}

/// The closest of `candidates` to `typed`, if it is close enough to be a likely typo
/// (Damerau-Levenshtein distance at most a third of the name, and at least 1 edit allowed).
pub fn nearest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let typed = typed.trim_start_matches('-').to_ascii_lowercase();
    let limit = (typed.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(&typed, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c.to_owned())
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and transpositions
/// of neighbours each cost 1, so `procesess` is 1 from `processes` (deletion) and `wokrers` is
/// 1 from `workers`; `-` and `_` count as the same character.
pub fn distance(a: &str, b: &str) -> usize {
    let norm = |c: char| if c == '_' { '-' } else { c };
    let a: Vec<char> = a.chars().map(norm).collect();
    let b: Vec<char> = b.chars().map(norm).collect();
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (prev[j] + 1).min(row[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, row);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_the_option_meant() {
        let names = ["processes", "threads", "pythonpath", "harakiri", "workers"];
        assert_eq!(nearest("procesess", names).as_deref(), Some("processes"));
        assert_eq!(nearest("wokrers", names).as_deref(), Some("workers"));
        assert_eq!(nearest("python_path", names).as_deref(), Some("pythonpath"));
        assert_eq!(nearest("zzz", names), None);
    }

    #[test]
    fn distance_counts_transpositions_once() {
        assert_eq!(distance("ab", "ba"), 1);
        assert_eq!(distance("grateful-timeout", "graceful-timeout"), 1);
        assert_eq!(distance("keep_alive", "keep-alive"), 0);
        assert_eq!(distance("", "abc"), 3);
    }
}
