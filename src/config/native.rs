//! `segue.toml`: segue's own configuration file. Keys are the option names of `--help`
//! (`workers = 4`, `http = [":8000", "unix:/run/app.sock"]`, `graceful-timeout = 30`;
//! snake_case works too); a table `[segue]`, if present, is read instead of the top level, so
//! the file can live inside a `pyproject.toml`-style document.

use std::path::{Path, PathBuf};

use super::entry::{Entry, Origin};

/// Largest file read; beyond it the file is refused, since a configuration file this large is a
/// mistake (a log or a binary named by accident).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why a `segue.toml` cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TomlError {
    /// Missing or unreadable.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Over [`MAX_FILE_BYTES`].
    #[error("{} is larger than {MAX_FILE_BYTES} bytes: is it really a segue.toml?", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not TOML, or a value segue cannot use (a table where an option's value should be).
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// The parser's message.
        message: String,
    },
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

/// Reads a `segue.toml` into entries: one per scalar, one per element of an array.
pub fn read(path: &Path) -> Result<Vec<Entry>, TomlError> {
    let io = |source| TomlError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        // A FIFO would block the read (and a reload with it); a device may never end.
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(TomlError::TooLarge {
            path: path.to_owned(),
        });
    }
    let mut bytes = Vec::new();
    use std::io::Read;
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(TomlError::TooLarge {
            path: path.to_owned(),
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text",
        ))
    })?;
    parse(path, &text)
}

/// Parses TOML text (separate from [`read`] for tests).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Entry>, TomlError> {
    let syntax = |line, message: String| TomlError::Syntax {
        path: path.to_owned(),
        line,
        message,
    };
    let doc = text.parse::<toml::Table>().map_err(|e| {
        syntax(
            e.span().map_or(0, |s| line_of(text, s.start)),
            e.message().to_owned(),
        )
    })?;
    let table = match doc.get("segue") {
        Some(toml::Value::Table(t)) => t.clone(),
        _ => doc,
    };
    let mut entries = Vec::new();
    for (key, value) in &table {
        let line = find_key_line(text, key);
        let origin = Origin::File {
            path: path.to_owned(),
            line,
        };
        match value {
            toml::Value::Array(items) => {
                for item in items {
                    let v = scalar(item).ok_or_else(|| {
                        syntax(
                            line,
                            format!("'{key}' must be a list of strings or numbers"),
                        )
                    })?;
                    entries.push(Entry::new(key.clone(), v, origin.clone()));
                }
            }
            toml::Value::Table(_) => {
                return Err(syntax(
                    line,
                    format!("'{key}' is a table; segue's options are plain values (key = value)"),
                ));
            }
            scalar_value => {
                let v = scalar(scalar_value).unwrap_or_default();
                entries.push(Entry::new(key.clone(), v, origin));
            }
        }
    }
    Ok(entries)
}

/// The line where `key` is assigned (for `--print-config` and errors); the toml crate's table
/// keeps no positions, and a key appears at the start of its line in any sane file.
fn find_key_line(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix('"').unwrap_or(l);
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(['=', '"']))
        })
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_and_arrays_become_entries_with_lines() {
        let text = "workers = 4\nhttp = [\":8000\", \"unix:/tmp/a.sock\"]\n\naccess-log = true\ngraceful_timeout = 2.5\n";
        let e = parse(Path::new("segue.toml"), text).unwrap();
        let got: Vec<_> = e
            .iter()
            .map(|e| {
                (
                    e.key.as_str(),
                    e.value.as_deref().unwrap(),
                    e.origin.to_string(),
                )
            })
            .collect();
        assert!(got.contains(&("workers", "4", "segue.toml:1".into())));
        assert!(got.contains(&("http", ":8000", "segue.toml:2".into())));
        assert!(got.contains(&("http", "unix:/tmp/a.sock", "segue.toml:2".into())));
        assert!(got.contains(&("access-log", "true", "segue.toml:4".into())));
        assert!(got.contains(&("graceful_timeout", "2.5", "segue.toml:5".into())));
    }

    #[test]
    fn a_segue_table_is_read_and_bad_files_name_the_line() {
        let e = parse(Path::new("p.toml"), "[tool]\nx = 1\n[segue]\nworkers = 2\n").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].key, "workers");
        let err = parse(Path::new("p.toml"), "workers = 4\nthreads = \n").unwrap_err();
        assert!(err.to_string().starts_with("p.toml:2:"), "{err}");
        let err = parse(Path::new("p.toml"), "[env]\nA = 1\n").unwrap_err();
        assert!(err.to_string().contains("'env' is a table"), "{err}");
    }
}
