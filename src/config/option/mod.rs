//! segue's own options: one table that the command line, `SEGUE_*` variables, `segue.toml`,
//! `--help` and `--print-config` all read, so an option exists everywhere or nowhere. Names are
//! gunicorn's or uWSGI's where they mean the same thing; the dialects' other names reach these
//! through their own translators (`config::uwsgi`, `config::gunicorn`).

use super::entry::Arity;

/// What kind of value an option takes; decides parsing and `--help`'s placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true/false/1/0/yes/no/on/off`; bare means true.
    Bool,
    /// A whole number.
    Count,
    /// Seconds, fractions allowed.
    Seconds,
    /// Free text (a path, an address, a spec).
    Text,
}

/// What changes when the option changes between reloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReload {
    /// The next generation uses the new value.
    Applies,
    /// Held by the master for its whole life (sockets, its own files): a reload keeps the old
    /// value and says so in its result; restart (or `segue upgrade`) to change it.
    NeedsRestart,
    /// Read before anything else (which files to read, what to print); not a setting.
    Control,
}

/// One of segue's options.
#[derive(Debug)]
pub struct Opt {
    /// The long name, kebab-case; `--NAME`, `SEGUE_NAME`, the `segue.toml` key.
    pub name: &'static str,
    /// The short flag, gunicorn's where it has one.
    pub short: Option<char>,
    /// The value's kind.
    pub kind: Kind,
    /// May be given several times; the values accumulate.
    pub repeat: bool,
    /// The default as `--help` and `--print-config` show it; `None` for unset.
    pub default: Option<&'static str>,
    /// `--help`'s placeholder for the value.
    pub value_name: &'static str,
    /// One line of `--help`.
    pub help: &'static str,
    /// Whether a reload can change it.
    pub on_reload: OnReload,
}

impl Opt {
    /// Whether the command line's next word is this option's value.
    pub fn arity(&self) -> Arity {
        if self.kind == Kind::Bool {
            Arity::Flag
        } else {
            Arity::Value
        }
    }

    /// The `SEGUE_*` environment variable that sets it.
    pub fn env_var(&self) -> String {
        format!("SEGUE_{}", self.name.replace('-', "_").to_ascii_uppercase())
    }
}

/// One table entry, in the order of [`Opt`]'s fields.
macro_rules! opt {
    ($name:literal, $short:expr, $kind:ident, $repeat:literal, $default:expr, $vn:literal, $reload:ident, $help:literal) => {
        Opt {
            name: $name,
            short: $short,
            kind: Kind::$kind,
            repeat: $repeat,
            default: $default,
            value_name: $vn,
            help: $help,
            on_reload: OnReload::$reload,
        }
    };
}

// After the macro, which the tables use.
mod core;
mod processes;

/// Every option, in `--help` order: the server's own, then the other process kinds'.
pub fn all() -> impl Iterator<Item = &'static Opt> {
    core::CORE.iter().chain(processes::PROCESSES.iter())
}

/// The option with this name (kebab-case or snake_case, any case).
pub fn find(name: &str) -> Option<&'static Opt> {
    let name = name.replace('_', "-").to_ascii_lowercase();
    all().find(|o| o.name == name)
}

/// The option with this short flag.
pub fn find_short(c: char) -> Option<&'static Opt> {
    all().find(|o| o.short == Some(c))
}

/// Every option name, for nearest-name suggestions.
pub fn names() -> impl Iterator<Item = &'static str> {
    all().map(|o| o.name)
}

/// Parses a boolean as uWSGI and gunicorn write them.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "y" | "t" => Some(true),
        "false" | "0" | "no" | "off" | "n" | "f" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_shorts_are_unique() {
        let mut names: Vec<_> = names().collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
        let mut shorts: Vec<_> = all().filter_map(|o| o.short).collect();
        shorts.sort_unstable();
        let before = shorts.len();
        shorts.dedup();
        assert_eq!(before, shorts.len());
    }

    #[test]
    fn snake_case_finds_the_same_option() {
        assert_eq!(find("graceful_timeout").unwrap().name, "graceful-timeout");
        assert_eq!(find("Max-Requests").unwrap().name, "max-requests");
        assert_eq!(find_short('w').unwrap().name, "workers");
        assert_eq!(find("workers").unwrap().env_var(), "SEGUE_WORKERS");
    }
}
