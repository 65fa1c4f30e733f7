//! The ini reader: files to lines to raw items, as uWSGI's `uwsgi_ini_config` and
//! `add_exported_option` do it. Magic variables are applied per line, includes are read in
//! place, `if-*`/`for` blocks are run as the lines arrive; placeholders, `$(VAR)` and
//! `@(file)` are left to [`expand`](super::expand), which needs every item first.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::logic::{self, Block, Logic};
use super::magic::Magic;
use super::{At, Context, Ini, IniError, MAX_ENTRIES, MAX_FILE_BYTES, MAX_INCLUDE_DEPTH};
use crate::config::entry::{Entry, Origin};

/// One option as read, before expansion.
#[derive(Debug, Clone)]
pub(super) struct Item {
    /// The key as written (or the name a `set`/`set-placeholder` gave).
    pub key: String,
    /// The value; `None` for a bare key.
    pub value: Option<String>,
    /// Where it was written.
    pub origin: Origin,
    /// Set by `set-placeholder`/`set-ph`: a value for `%(key)` only, never an option.
    pub placeholder: bool,
}

/// One file being read, for loop detection and `ini = :section`.
struct Frame {
    path: PathBuf,
    section: Option<String>,
}

/// The state of one `--ini` read.
pub(super) struct Reader<'c, 'e> {
    pub(super) ctx: &'c Context<'e>,
    pub(super) items: Vec<Item>,
    pub(super) warnings: Vec<String>,
    pub(super) files: Vec<PathBuf>,
    /// Names looked up as placeholders by `if-opt`/`if-not-opt` (the `%` pass adds the rest).
    pub(super) referenced: HashSet<String>,
    stack: Vec<Frame>,
    first_magic: Option<Magic>,
}

/// Keys that end a block in uWSGI (`add_exported_option`).
const ENDS: &[&str] = &["end", "endif", "end-if", "endfor", "end-for"];

impl<'c, 'e> Reader<'c, 'e> {
    /// `%(name)` and `if-opt`'s view of an option: `UWSGI_NAME` from the environment, else
    /// the first value read under that name, as uWSGI looks placeholders up.
    pub(super) fn option_value(&self, name: &str) -> Option<String> {
        let env_name = format!("UWSGI_{}", name.to_ascii_uppercase().replace('-', "_"));
        (self.ctx.env)(&env_name).or_else(|| {
            self.items
                .iter()
                .find(|i| i.key == name)
                .map(|i| i.value.clone().unwrap_or_default())
        })
    }

    pub(super) fn new(ctx: &'c Context<'e>) -> Self {
        Reader {
            ctx,
            items: Vec::new(),
            warnings: Vec::new(),
            files: Vec::new(),
            referenced: HashSet::new(),
            stack: Vec::new(),
            first_magic: None,
        }
    }

    /// Reads `spec` and everything it includes, then expands and filters the items.
    pub(super) fn read(mut self, spec: &str) -> Result<Ini, IniError> {
        self.load(spec, None, 0)?;
        self.expand()?;
        let entries = self.entries();
        Ok(Ini {
            entries,
            warnings: self.warnings,
            files: self.files,
        })
    }

    /// Makes an absolute path of one named in the config (relative to the working directory,
    /// as uWSGI's `open` takes it).
    pub(super) fn path(&self, named: &str) -> PathBuf {
        let p = Path::new(named);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.ctx.cwd.join(p)
        }
    }

    /// Reads a whole file named in the config, bounded by [`MAX_FILE_BYTES`].
    pub(super) fn read_file(&mut self, path: &Path, at: &At) -> Result<String, IniError> {
        let meta = std::fs::metadata(path).map_err(|source| IniError::Read {
            at: at.clone(),
            path: path.to_owned(),
            source,
        })?;
        if !meta.is_file() {
            // A FIFO would block the read (and a reload with it); a device may never end.
            return Err(IniError::Read {
                at: at.clone(),
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            });
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(IniError::TooLarge {
                at: at.clone(),
                path: path.to_owned(),
                size: meta.len(),
            });
        }
        let mut bytes = Vec::new();
        use std::io::Read;
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|source| IniError::Read {
                at: at.clone(),
                path: path.to_owned(),
                source,
            })?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            // A file that grew, or a device that never ends (/dev/zero).
            return Err(IniError::TooLarge {
                at: at.clone(),
                path: path.to_owned(),
                size: bytes.len() as u64,
            });
        }
        self.files.push(path.to_owned());
        let text = String::from_utf8(bytes).map_err(|_| IniError::NotText {
            at: at.clone(),
            path: path.to_owned(),
        })?;
        Ok(match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_owned(),
            None => text,
        })
    }

    /// Reads `FILE[:SECTION]` (`:SECTION` alone: the file being read) named at `at`.
    fn load(&mut self, spec: &str, at: Option<&Origin>, depth: usize) -> Result<(), IniError> {
        let at_ = At(at.cloned());
        if spec.contains("://") || spec == "-" {
            return Err(unsupported(
                at,
                format!(
                    "'{spec}': segue reads ini files from paths only, not from URLs, commands or stdin (save it to a file)"
                ),
            ));
        }
        let (file, section) = match spec.rfind(':') {
            Some(colon) => (
                &spec[..colon],
                Some(&spec[colon + 1..]).filter(|s| !s.is_empty()),
            ),
            None => (spec, None),
        };
        let path = if file.is_empty() {
            match self.stack.last() {
                Some(frame) => frame.path.clone(),
                None => self.path(file),
            }
        } else {
            self.path(file)
        };
        if let Some(origin) = at {
            if depth > MAX_INCLUDE_DEPTH {
                return Err(IniError::TooDeep {
                    origin: origin.clone(),
                });
            }
            let key = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
            if self
                .stack
                .iter()
                .any(|f| key(&f.path) == key(&path) && f.section.as_deref() == section)
            {
                let chain: Vec<String> = self
                    .stack
                    .iter()
                    .map(|f| f.path.display().to_string())
                    .collect();
                return Err(IniError::IncludeLoop {
                    origin: origin.clone(),
                    path,
                    chain: chain.join(" -> "),
                });
            }
        }
        let text = self.read_file(&path, &at_)?;
        // %p is the real path (symlinks resolved) unless the file itself is a link, as in uWSGI.
        let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        let abs = if is_link {
            path.clone()
        } else {
            std::fs::canonicalize(&path).unwrap_or(path.clone())
        };
        let magic = Magic::for_file(spec, &abs, section, self.ctx, self.first_magic.as_ref());
        if self.first_magic.is_none() {
            self.first_magic = Some(magic.clone());
        }
        let wanted: Vec<&str> = match section {
            Some(s) => vec![s],
            None => vec!["uwsgi", "segue"],
        };
        let mut lines: Vec<Vec<(usize, String)>> = vec![Vec::new(); wanted.len()];
        let mut seen = false;
        let mut current: Option<usize> = None;
        for (n, raw) in text.split('\n').enumerate() {
            let (line, unknown) = magic.apply(raw);
            let line = line.trim_matches([' ', '\t', '\r']);
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                // uWSGI drops the last character whatever it is.
                let name = rest.get(..rest.len().saturating_sub(1)).unwrap_or("");
                current = wanted.iter().position(|w| *w == name);
                seen |= current.is_some();
                continue;
            }
            if let Some(i) = current {
                for letter in unknown {
                    self.warnings.push(format!(
                        "{}:{}: %{letter} is not a uWSGI magic variable: it was replaced by nothing, as uWSGI does (write %% for a literal %)",
                        abs.display(),
                        n + 1
                    ));
                }
                lines[i].push((n + 1, line.to_owned()));
            }
        }
        if !seen {
            return Err(IniError::MissingSection {
                at: at_,
                path: abs,
                section: wanted.join("] or ["),
            });
        }
        self.stack.push(Frame {
            path: path.clone(),
            section: section.map(str::to_owned),
        });
        for section_lines in lines {
            let mut logic = Logic::default();
            for (n, line) in section_lines {
                let origin = Origin::File {
                    path: abs.clone(),
                    line: n,
                };
                let (key, value) = match line.split_once('=') {
                    Some((k, v)) => (
                        k.trim_end_matches([' ', '\t']),
                        Some(v.trim_matches([' ', '\t'])),
                    ),
                    None => (line.as_str(), None),
                };
                if key.is_empty() {
                    self.warnings.push(format!(
                        "{origin}: a line without a key is ignored, as uWSGI does"
                    ));
                    continue;
                }
                if let Some(v) = value {
                    if v.contains(" ;")
                        || v.contains(" #")
                        || v.contains("\t;")
                        || v.contains("\t#")
                    {
                        self.warnings.push(format!(
                            "{origin}: the value of '{key}' contains ' ;' or ' #': uWSGI has no inline comments, so it is part of the value (move the comment to its own line)"
                        ));
                    }
                }
                self.line(&mut logic, key, value.map(str::to_owned), origin, depth)?;
            }
            if let Some(open) = logic.open() {
                return Err(IniError::Unterminated {
                    origin: open.origin.clone(),
                    directive: open.directive.clone(),
                    kind: open.kind(),
                });
            }
        }
        self.stack.pop();
        Ok(())
    }

    /// One `key = value` line through the config logic, as `add_exported_option` runs it.
    fn line(
        &mut self,
        logic: &mut Logic,
        key: &str,
        value: Option<String>,
        origin: Origin,
        depth: usize,
    ) -> Result<(), IniError> {
        if ENDS.contains(&key) {
            if logic.close().is_none() {
                self.warnings.push(format!(
                    "{origin}: '{key}' without an open block is ignored, as uWSGI does"
                ));
            }
            return Ok(());
        }
        if key == "else" {
            logic.otherwise();
            return Ok(());
        }
        if logic::opens(key) {
            if let Some(open) = logic.open() {
                return Err(IniError::Nested {
                    origin,
                    directive: key.to_owned(),
                    outer: open.origin.clone(),
                });
            }
            let arg = value.unwrap_or_default();
            if arg.contains("%(") || arg.contains("$(") {
                self.warnings.push(format!(
                    "{origin}: uWSGI does not expand placeholders or $(VAR) in the argument of '{key}': '{arg}' is taken literally"
                ));
            }
            let block = self.evaluate(key, &arg, &origin)?;
            logic.start(block);
            return Ok(());
        }
        match logic.current() {
            None => self.directive(key, value, origin, depth),
            Some(Block::If { passed: false, .. }) | Some(Block::Else { run: false, .. }) => Ok(()),
            Some(Block::If { data, .. }) => {
                let data = data.clone();
                let value = value.map(|v| v.replace("%(_)", &data));
                self.directive(key, value, origin, depth)
            }
            Some(Block::Else { .. }) => self.directive(key, value, origin, depth),
            Some(Block::For { items, .. }) => {
                for item in items.clone() {
                    let value = value.as_ref().map(|v| v.replace("%(_)", &item));
                    self.directive(key, value, origin.clone(), depth)?;
                }
                Ok(())
            }
        }
    }

    /// An `if-*` or `for*` line: the block it opens, decided now, as uWSGI decides it (with
    /// the options read so far, unexpanded).
    fn evaluate(&mut self, key: &str, arg: &str, origin: &Origin) -> Result<Block, IniError> {
        if key == "if-opt" || key == "if-not-opt" {
            let name = arg.split_once('=').map_or(arg, |(n, _)| n);
            self.referenced.insert(name.to_owned());
        }
        let lookup = |name: &str| self.option_value(name);
        let block = logic::evaluate(key, arg, origin, self.ctx, &lookup, &mut |path| {
            Ok(self.path(path))
        })?;
        if let Block::For {
            source: Some(file), ..
        } = &block
        {
            let file = file.clone();
            let text = self.read_file(&file, &At(Some(origin.clone())))?;
            let items = text
                .lines()
                .map(|l| l.trim_end().to_owned())
                .filter(|l| !l.is_empty())
                .collect();
            return Ok(Block::For {
                items,
                origin: origin.clone(),
                directive: key.to_owned(),
                source: None,
            });
        }
        Ok(block)
    }

    /// A line that survived the logic: a reader directive done now, or an item.
    fn directive(
        &mut self,
        key: &str,
        value: Option<String>,
        origin: Origin,
        depth: usize,
    ) -> Result<(), IniError> {
        match key {
            "ini" | "include" | "inherit" => {
                let Some(spec) = value.filter(|v| !v.is_empty()) else {
                    return Err(invalid(
                        &origin,
                        format!("'{key}' needs a file: {key} = other.ini[:section]"),
                    ));
                };
                let file = spec.rfind(':').map_or(spec.as_str(), |c| &spec[..c]);
                if key != "ini" && !file.is_empty() && !file.ends_with(".ini") {
                    return Err(unsupported(
                        Some(&origin),
                        format!(
                            "'{key} = {spec}': segue reads ini files only (convert it to ini, or use ini = FILE to read it as one)"
                        ),
                    ));
                }
                self.load(&spec, Some(&origin), depth + 1)
            }
            "set-placeholder" | "set-ph" | "set" => {
                let Some((name, v)) = value.as_deref().and_then(|v| v.split_once('=')) else {
                    return Err(invalid(
                        &origin,
                        format!("'{key}' needs NAME=VALUE, e.g. {key} = app_dir=/srv/app"),
                    ));
                };
                let placeholder = key != "set";
                if placeholder && super::option(name).is_some() {
                    return Err(invalid(
                        &origin,
                        format!(
                            "'{name}' is a uWSGI option, so it cannot be a placeholder (as in uWSGI): pick another name, or write {name} = {v}"
                        ),
                    ));
                }
                self.push(Item {
                    key: name.trim().to_owned(),
                    value: Some(v.trim().to_owned()),
                    origin,
                    placeholder,
                })
            }
            _ => self.push(Item {
                key: key.to_owned(),
                value,
                origin,
                placeholder: false,
            }),
        }
    }

    fn push(&mut self, item: Item) -> Result<(), IniError> {
        if self.items.len() >= MAX_ENTRIES {
            return Err(IniError::TooManyEntries {
                origin: item.origin,
            });
        }
        self.items.push(item);
        Ok(())
    }

    /// The items that are options: uWSGI takes any unknown key as a placeholder, so a key that
    /// is neither a uWSGI nor a segue option is dropped when something uses it as one, kept
    /// (for an Unknown verdict) when it looks like a typo of an option, and otherwise dropped
    /// with a warning.
    fn entries(&mut self) -> Vec<Entry> {
        let known =
            |k: &str| super::option(k).is_some() || crate::config::option::find(k).is_some();
        let mut entries = Vec::new();
        for item in std::mem::take(&mut self.items) {
            if item.placeholder {
                continue;
            }
            if !known(&item.key) {
                if self.referenced.contains(&item.key) {
                    continue;
                }
                let nearest = crate::config::entry::nearest(
                    &item.key,
                    super::names().chain(crate::config::option::names()),
                );
                if nearest.is_none() {
                    self.warnings.push(format!(
                        "{}: '{}' is not a uWSGI option and nothing uses it as a placeholder: ignored, as uWSGI ignores it (a typo?)",
                        item.origin, item.key
                    ));
                    continue;
                }
            }
            entries.push(Entry {
                key: item.key,
                value: item.value,
                origin: item.origin,
            });
        }
        entries
    }
}

pub(super) fn unsupported(at: Option<&Origin>, what: String) -> IniError {
    IniError::Unsupported {
        origin: at.cloned().unwrap_or(Origin::Flag("--ini".into())),
        what,
    }
}

pub(super) fn invalid(origin: &Origin, what: String) -> IniError {
    IniError::Invalid {
        origin: origin.clone(),
        what,
    }
}
