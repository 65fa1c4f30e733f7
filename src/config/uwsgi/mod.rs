//! uWSGI ini files as a configuration source: [`read_ini`] turns `--ini FILE[:SECTION]` into
//! [`Entry`]s the way uWSGI itself reads them (magic variables, placeholders, `$(VAR)`,
//! `@(file)`, includes, `if-*`/`for` blocks), [`option`] knows every uWSGI option name, and
//! [`translate`] says what each one means to segue. The master reads the files; workers
//! never see them. docs/migrating-from-uwsgi.md is the user's side of this module.

mod catalog;
mod expand;
mod ini;
mod logic;
mod magic;
mod rules;
mod translate;

#[cfg(test)]
mod doc;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use catalog::{Kind, UwsgiOption, by_short, names, option};
pub use translate::translate;

use crate::config::entry::{Entry, Origin};

/// Largest ini file (and `@(file)`, `for-readline` file) read: a config is a few KiB, so a
/// bigger file is a mistake (a log, a binary) that should fail at once, not fill memory.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Deepest `ini =`/`include =`/`inherit =` nesting; the top file is depth 0. uWSGI has no
/// limit (a loop recurses until it crashes); 16 is far beyond any real layout.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// Most entries one `--ini` may produce, `for` expansions and includes counted: bounds what a
/// hostile or runaway file (a `for` over a huge list, included many times) can allocate.
pub const MAX_ENTRIES: usize = 100_000;
/// Longest value after placeholder expansion; beyond it (a placeholder that includes itself)
/// reading fails instead of looping for ever as uWSGI does.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most placeholder substitutions in one value, for the same reason.
pub const MAX_EXPANSIONS: usize = 100;

/// What one `--ini` read produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ini {
    /// The options, in uWSGI's order (includes in place, `[segue]` after `[uwsgi]`), values
    /// expanded; reader directives (`ini`, `set-placeholder`, `if-*`, `for`, ...) and keys
    /// used only as placeholders are consumed and not listed.
    pub entries: Vec<Entry>,
    /// Things worth a warning line that uWSGI accepts silently (an inline `;` comment kept in
    /// a value, an unknown placeholder left as written, an unset `$(VAR)`).
    pub warnings: Vec<String>,
    /// Every file read (ini files, `@(file)`, `for-readline`), absolute, so a reload can
    /// re-read the same set.
    pub files: Vec<PathBuf>,
}

/// Why an ini file cannot be used; each message names the file and line and the fix.
#[derive(Debug, thiserror::Error)]
pub enum IniError {
    /// A file that cannot be opened or read.
    #[error(
        "{at}cannot read {path}: {source} (check the path; relative paths are taken from the working directory, as uWSGI does: use %d for the ini file's own directory)"
    )]
    Read {
        /// Where it was named (empty for the command line).
        at: At,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file over [`MAX_FILE_BYTES`].
    #[error(
        "{at}{path} is {size} bytes, more than the {MAX_FILE_BYTES} an ini file may have (is it the right file?)"
    )]
    TooLarge {
        /// Where it was named.
        at: At,
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// Not UTF-8 text.
    #[error("{at}{path} is not UTF-8 text (save it as UTF-8)")]
    NotText {
        /// Where it was named.
        at: At,
        /// The file.
        path: PathBuf,
    },
    /// The section asked for (or `[uwsgi]`/`[segue]`) is not in the file.
    #[error(
        "{at}{path} has no [{section}] section (add one, or name the section to read as FILE:SECTION)"
    )]
    MissingSection {
        /// Where it was named.
        at: At,
        /// The file.
        path: PathBuf,
        /// The section(s) looked for.
        section: String,
    },
    /// An `if-*` or `for` without its `endif`/`endfor` before the end of the file.
    #[error("{origin}: '{directive}' is never closed (add 'end{kind}' after the lines it covers)")]
    Unterminated {
        /// The opening line.
        origin: Origin,
        /// The opening key.
        directive: String,
        /// `if` or `for`.
        kind: &'static str,
    },
    /// An `if-*` or `for` inside another block, which uWSGI refuses too.
    #[error(
        "{origin}: '{directive}' inside the block opened at {outer}: uWSGI config logic does not nest (close the first block before opening another)"
    )]
    Nested {
        /// The inner opening line.
        origin: Origin,
        /// The inner key.
        directive: String,
        /// The outer opening line.
        outer: Origin,
    },
    /// A file that includes itself, directly or not.
    #[error("{origin}: including {path} again would loop (it is already being read: {chain})")]
    IncludeLoop {
        /// The including line.
        origin: Origin,
        /// The file.
        path: PathBuf,
        /// The files being read, outermost first.
        chain: String,
    },
    /// Includes nested deeper than [`MAX_INCLUDE_DEPTH`].
    #[error("{origin}: includes nest deeper than {MAX_INCLUDE_DEPTH} files (flatten the includes)")]
    TooDeep {
        /// The including line.
        origin: Origin,
    },
    /// More than [`MAX_ENTRIES`] entries.
    #[error("{origin}: more than {MAX_ENTRIES} options (a runaway for loop or include?)")]
    TooManyEntries {
        /// The line that went over.
        origin: Origin,
    },
    /// A directive segue does not support inside ini files, with what to do instead.
    #[error("{origin}: {what}")]
    Unsupported {
        /// The line.
        origin: Origin,
        /// What is refused and the fix.
        what: String,
    },
    /// A directive whose value cannot be used (`set-placeholder = x` without `=`).
    #[error("{origin}: {what}")]
    Invalid {
        /// The line.
        origin: Origin,
        /// What is wrong and the fix.
        what: String,
    },
    /// A placeholder expansion that does not terminate (`a = %(a)x`).
    #[error(
        "{origin}: expanding '{key}' does not terminate (more than {MAX_EXPANSIONS} substitutions or {MAX_VALUE_BYTES} bytes): a placeholder refers to itself"
    )]
    Runaway {
        /// The line.
        origin: Origin,
        /// The key whose value grows.
        key: String,
    },
}

/// Where a file was named, for error messages: an include line, or nothing for `--ini`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct At(pub Option<Origin>);

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(origin) => write!(f, "{origin}: "),
            None => Ok(()),
        }
    }
}

/// What uWSGI's magic variables and `if-*` tests read from the system, injected so that tests
/// are deterministic and so that a reload can say it is one (`if-reload`).
pub struct Context<'a> {
    /// The environment (`$(VAR)`, `if-env`, `UWSGI_*` placeholders).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The working directory: relative paths in includes, `@(file)` and `if-exists` are taken
    /// from it, as uWSGI does (`%v`).
    pub cwd: PathBuf,
    /// `%h` and `if-hostname`.
    pub hostname: String,
    /// `%k`.
    pub cpus: usize,
    /// `%u` and `%U`.
    pub uid: (u32, String),
    /// `%g` and `%G`.
    pub gid: (u32, String),
    /// `%b`: the running binary.
    pub binary: String,
    /// `%t` and `%T`: microseconds since the epoch.
    pub now_micros: u64,
    /// Whether this read is for a reload (`if-reload`).
    pub reload: bool,
}

impl<'a> Context<'a> {
    /// The real system's values, with `env` as the environment.
    pub fn system(env: &'a dyn Fn(&str) -> Option<String>) -> Context<'a> {
        magic::system_context(env)
    }
}

/// Reads `FILE` or `FILE:SECTION` (default: `[uwsgi]`, then `[segue]`) as uWSGI would, with
/// `env` as the environment and the rest of the [`Context`] from the system.
pub fn read_ini(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Ini, IniError> {
    read_ini_with(spec, &Context::system(env))
}

/// [`read_ini`] with every system value injected.
pub fn read_ini_with(spec: &str, ctx: &Context<'_>) -> Result<Ini, IniError> {
    ini::Reader::new(ctx).read(spec)
}
