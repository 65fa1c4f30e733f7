//! Which dialect a name belongs to, per source: on the command line segue's own names come
//! first, then gunicorn's flags, then uWSGI's options (a migrating user types either); an ini
//! file speaks uWSGI, a `gunicorn.conf.py` gunicorn, `segue.toml` and `SEGUE_*` segue only.
//! A name no dialect knows is a typo, answered with the nearest name of any of them.

use std::path::Path;

use super::entry::{self, Arity, Verdict};
use super::option;
use super::{gunicorn, uwsgi};

/// A segue option set to `value` (bare: `true` for a boolean, an error otherwise).
pub fn segue(opt: &'static option::Opt, value: Option<&str>) -> Verdict {
    match value {
        Some(v) => Verdict::Applied(vec![(opt.name, v.to_owned())]),
        None if opt.kind == option::Kind::Bool => Verdict::Applied(vec![(opt.name, "true".into())]),
        None => Verdict::Invalid(format!("{} needs a value ({})", opt.name, opt.value_name)),
    }
}

/// Whether a command-line flag, as typed, takes the next word as its value.
pub fn cli_arity(flag: &str) -> Option<Arity> {
    if let Some(long) = flag.strip_prefix("--") {
        if let Some(opt) = option::find(long).filter(|_| !long.contains('_')) {
            return Some(opt.arity());
        }
        if long == "help" || long == "version" {
            return Some(Arity::Flag);
        }
        if let Some(s) = gunicorn::flag(flag) {
            return Some(s.arity);
        }
        return uwsgi::option(long).map(|o| o.arity);
    }
    let short = flag.strip_prefix('-')?.chars().next()?;
    if let Some(opt) = option::find_short(short).filter(|_| flag.len() == 2) {
        return Some(opt.arity());
    }
    if flag == "-h" || flag == "-v" || flag == "-V" {
        return Some(Arity::Flag);
    }
    gunicorn::flag(flag).map(|s| s.arity)
}

/// What a command-line flag means; `base` resolves uWSGI's relative paths.
pub fn cli(flag: &str, value: Option<&str>, base: &Path) -> Verdict {
    if let Some(long) = flag.strip_prefix("--") {
        if let Some(opt) = option::find(long).filter(|_| !long.contains('_')) {
            return segue(opt, value);
        }
        if let Some(s) = gunicorn::flag(flag) {
            return gunicorn::translate(s.name, value);
        }
        if uwsgi::option(long).is_some() {
            return uwsgi::translate(long, value, base);
        }
        let candidates = option::names()
            .map(|n| n.to_owned())
            .chain(
                gunicorn::names()
                    .filter(|n| n.starts_with("--"))
                    .map(|n| n.trim_start_matches('-').to_owned()),
            )
            .chain(uwsgi::names().map(str::to_owned))
            .collect::<Vec<_>>();
        return Verdict::Unknown {
            nearest: entry::nearest(long, candidates.iter().map(String::as_str))
                .map(|n| format!("--{n}")),
        };
    }
    if let Some(opt) = flag
        .strip_prefix('-')
        .and_then(|s| s.chars().next())
        .and_then(option::find_short)
        .filter(|_| flag.len() == 2)
    {
        return segue(opt, value);
    }
    match gunicorn::flag(flag) {
        Some(s) => gunicorn::translate(s.name, value),
        None => Verdict::Unknown { nearest: None },
    }
}

/// What a key of `segue.toml` or a `SEGUE_*` variable means: segue's names only.
pub fn native(key: &str, value: Option<&str>) -> Verdict {
    match option::find(key) {
        Some(opt) => segue(opt, value),
        None => Verdict::Unknown {
            nearest: entry::nearest(key, option::names()),
        },
    }
}

/// What a uWSGI ini key means.
pub fn ini(key: &str, value: Option<&str>, base: &Path) -> Verdict {
    uwsgi::translate(key, value, base)
}

/// What a gunicorn setting from a `gunicorn.conf.py` means. gunicorn itself ignores names
/// that are not settings, and such files often hold helper variables (`workers_per_core`),
/// so only a name within two edits of a setting is taken for a typo; other names are
/// reported as unknown without a suggestion and, unlike typos, do not stop the server.
pub fn gunicorn_conf(setting: &str, value: Option<&str>) -> Verdict {
    if gunicorn::setting(setting).is_some() {
        return gunicorn::translate(setting, value);
    }
    let nearest = gunicorn::names()
        .filter(|n| !n.starts_with('-'))
        .map(|n| (entry::distance(setting, n), n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n.to_owned());
    Verdict::Unknown { nearest }
}
