//! uWSGI's config logic (`if-env`, `if-exists`, `for`, ..., `else`, `endif`): which lines of
//! a block take effect, decided when the opening line is read, with `%(_)` bound to the
//! block's value. Blocks do not nest, as in uWSGI.

use std::path::{Path, PathBuf};

use super::ini::unsupported;
use super::{Context, IniError};
use crate::config::entry::Origin;

/// One open block.
#[derive(Debug, Clone)]
pub(super) enum Block {
    /// An `if-*`: its lines apply when `passed`, with `%(_)` replaced by `data`.
    If {
        /// Whether the condition held.
        passed: bool,
        /// The value of `%(_)`.
        data: String,
        /// The opening line.
        origin: Origin,
        /// The opening key.
        directive: String,
    },
    /// An `else`: its lines apply when the `if` before it failed.
    Else {
        /// Whether the previous `if` failed.
        run: bool,
    },
    /// A `for*`: each line applies once per item, `%(_)` being the item.
    For {
        /// The values.
        items: Vec<String>,
        /// The opening line.
        origin: Origin,
        /// The opening key.
        directive: String,
        /// For `for-readline`: the file the reader still has to read into `items`.
        source: Option<PathBuf>,
    },
}

/// The opening line of a block and what closes it, for errors.
pub(super) struct Opened<'a> {
    pub origin: &'a Origin,
    pub directive: &'a String,
    is_for: bool,
}

impl Opened<'_> {
    /// `if` or `for`, for "add endif/endfor".
    pub(super) fn kind(&self) -> &'static str {
        if self.is_for { "for" } else { "if" }
    }
}

/// The logic state of one section being read.
#[derive(Debug, Default)]
pub(super) struct Logic {
    block: Option<Block>,
    /// Whether the last `if` failed, for a following `else` (uWSGI's `logic_opt_if_failed`).
    if_failed: bool,
}

impl Logic {
    pub(super) fn current(&self) -> Option<&Block> {
        self.block.as_ref()
    }

    pub(super) fn open(&self) -> Option<Opened<'_>> {
        match self.block.as_ref()? {
            Block::If {
                origin, directive, ..
            } => Some(Opened {
                origin,
                directive,
                is_for: false,
            }),
            Block::For {
                origin, directive, ..
            } => Some(Opened {
                origin,
                directive,
                is_for: true,
            }),
            Block::Else { .. } => None,
        }
    }

    pub(super) fn start(&mut self, block: Block) {
        if let Block::If { passed, .. } = &block {
            self.if_failed = !passed;
        }
        self.block = Some(block);
    }

    /// `else`: ends the current block but keeps whether its `if` failed.
    pub(super) fn otherwise(&mut self) {
        self.block = Some(Block::Else {
            run: self.if_failed,
        });
    }

    /// `endif`/`endfor`: the closed block, if there was one.
    pub(super) fn close(&mut self) -> Option<Block> {
        self.if_failed = false;
        self.block.take()
    }
}

/// Whether `key` opens a block.
pub(super) fn opens(key: &str) -> bool {
    key.starts_with("if-") || key == "for" || key.starts_with("for-")
}

/// The block `key = arg` opens. `lookup` finds an option read so far (for `if-opt`),
/// `path` makes a path absolute.
pub(super) fn evaluate(
    key: &str,
    arg: &str,
    origin: &Origin,
    ctx: &Context<'_>,
    lookup: &dyn Fn(&str) -> Option<String>,
    path: &mut dyn FnMut(&str) -> Result<PathBuf, IniError>,
) -> Result<Block, IniError> {
    let test = |passed: bool, data: &str| Block::If {
        passed,
        data: data.to_owned(),
        origin: origin.clone(),
        directive: key.to_owned(),
    };
    // `NAME` or `NAME=VALUE`: whether NAME is set (and equal), and its value.
    let compare = |found: Option<String>| {
        let expected = arg.split_once('=').map(|(_, v)| v);
        let holds = match (&found, expected) {
            (Some(v), Some(e)) => v == e,
            (Some(_), None) => true,
            (None, _) => false,
        };
        (holds, found.unwrap_or_default())
    };
    let name = arg.split_once('=').map_or(arg, |(n, _)| n);
    let exists = |p: &Path, what: fn(&std::fs::Metadata) -> bool| {
        std::fs::metadata(p).is_ok_and(|m| what(&m))
    };
    Ok(match key {
        "for" => Block::For {
            items: arg
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            origin: origin.clone(),
            directive: key.to_owned(),
            source: None,
        },
        "for-times" => Block::For {
            items: (1..=arg
                .trim()
                .parse::<u32>()
                .unwrap_or(0)
                .min(super::MAX_ENTRIES as u32))
                .map(|i| i.to_string())
                .collect(),
            origin: origin.clone(),
            directive: key.to_owned(),
            source: None,
        },
        "for-readline" => Block::For {
            items: Vec::new(),
            origin: origin.clone(),
            directive: key.to_owned(),
            source: Some(path(arg)?),
        },
        "if-env" | "if-opt" => {
            let found = if key == "if-env" {
                (ctx.env)(name)
            } else {
                lookup(name)
            };
            let (holds, data) = compare(found);
            test(holds, &data)
        }
        "if-not-env" | "if-not-opt" => {
            let found = if key == "if-not-env" {
                (ctx.env)(name)
            } else {
                lookup(name)
            };
            let (holds, data) = compare(found);
            test(!holds, &data)
        }
        "if-exists" => test(exists(&path(arg)?, |_| true), arg),
        "if-not-exists" => test(!exists(&path(arg)?, |_| true), arg),
        "if-file" => test(exists(&path(arg)?, |m| m.is_file()), arg),
        "if-not-file" => test(!exists(&path(arg)?, |m| m.is_file()), arg),
        "if-dir" | "if-directory" => test(exists(&path(arg)?, |m| m.is_dir()), arg),
        "if-not-dir" | "if-not-directory" => test(!exists(&path(arg)?, |m| m.is_dir()), arg),
        "if-reload" => test(ctx.reload, ""),
        "if-not-reload" => test(!ctx.reload, ""),
        "if-hostname" => test(ctx.hostname == arg, arg),
        "if-not-hostname" => test(ctx.hostname != arg, arg),
        // segue has the Python plugin (and HTTP) built in and no other.
        "if-plugin" => test(builtin_plugin(arg), arg),
        "if-not-plugin" => test(!builtin_plugin(arg), arg),
        "for-glob" => {
            return Err(unsupported(
                Some(origin),
                "'for-glob' is not supported: list the values with 'for = a b c'".into(),
            ));
        }
        "if-hostname-match" | "if-not-hostname-match" => {
            return Err(unsupported(
                Some(origin),
                format!(
                    "'{key}' (a regular expression) is not supported: use if-hostname with the exact name, or if-env"
                ),
            ));
        }
        _ => {
            return Err(unsupported(
                Some(origin),
                format!(
                    "'{key}' is not a uWSGI config-logic directive segue knows (see docs/migrating-from-uwsgi.md for the supported if-*/for forms)"
                ),
            ));
        }
    })
}

/// Whether a uWSGI plugin name is one segue has built in.
fn builtin_plugin(name: &str) -> bool {
    let name = name.trim().trim_end_matches("_plugin.so");
    name == "http" || name.starts_with("python")
}
