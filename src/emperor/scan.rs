//! Looking at the emperor's directories: every `*.ini` (uWSGI format) and `*.toml` (segue's)
//! file in them, with a fingerprint that changes when the file is edited or touched. Blocking
//! file-system work: the loop runs it with `spawn_blocking`.

use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::vassals::{Fingerprint, Scan};

/// Files up to this size are hashed, so an edit that keeps the size and the mtime's second is
/// still seen; larger ones (no real config is) are fingerprinted by mtime and size alone.
pub const MAX_HASHED: u64 = 1 << 20;

/// How a vassal file is read, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `*.ini`: `segue --ini FILE`.
    Ini,
    /// `*.toml`: `segue --config FILE`.
    Toml,
}

impl Format {
    /// The format a file name says, if it is a vassal file at all. Hidden files (an editor's
    /// `.app.ini.swp`, a half-written `.app.ini.tmp`) never are.
    pub fn of(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?;
        if name.starts_with('.') {
            return None;
        }
        match path.extension()?.to_str()? {
            "ini" => Some(Format::Ini),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }

    /// The flag that makes segue read a file of this format.
    pub fn flag(self) -> &'static str {
        match self {
            Format::Ini => "--ini",
            Format::Toml => "--config",
        }
    }
}

/// Splits an `--emperor` value into the directory to list and the file-name pattern, if its
/// last component is a glob (`/etc/segue/*.ini`).
fn split(pattern: &Path) -> (PathBuf, Option<String>) {
    let name = pattern.file_name().and_then(|n| n.to_str());
    match (name, pattern.parent()) {
        (Some(n), Some(dir)) if n.contains(['*', '?']) => (dir.to_owned(), Some(n.to_owned())),
        _ => (pattern.to_owned(), None),
    }
}

/// `*` (any run of characters) and `?` (one character) against a whole file name.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // The classic two-pointer match with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// One pass over every pattern; each problem (a directory that cannot be listed) comes back
/// as a line to log.
pub fn scan(patterns: &[PathBuf]) -> (Scan, Vec<String>) {
    let mut out = Scan::default();
    let mut problems = Vec::new();
    for pattern in patterns {
        let (dir, glob) = split(pattern);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!(
                    "cannot list the vassal directory {}: {e}; its vassals are left as they are",
                    dir.display()
                ));
                out.unreadable.push(dir);
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if Format::of(&path).is_none() {
                continue;
            }
            let name = entry.file_name();
            if let Some(g) = &glob {
                if !name.to_str().is_some_and(|n| glob_match(g, n)) {
                    continue;
                }
            }
            if out.files.iter().any(|(p, _)| *p == path) {
                continue;
            }
            // A file that vanished or cannot be read between the listing and now is simply
            // not there this time.
            if let Some(fp) = fingerprint(&path) {
                out.files.push((path, fp));
            }
        }
    }
    out.files.sort_by(|a, b| a.0.cmp(&b.0));
    (out, problems)
}

/// The file's mtime, size and (up to [`MAX_HASHED`]) content hash; `None` unless it is a
/// readable regular file (symlinks followed).
pub fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    if meta.len() <= MAX_HASHED {
        let mut content = Vec::with_capacity(meta.len() as usize);
        std::fs::File::open(path)
            .ok()?
            .take(MAX_HASHED)
            .read_to_end(&mut content)
            .ok()?;
        content.hash(&mut hasher);
    }
    Some(Fingerprint {
        mtime_ns,
        len: meta.len(),
        hash: hasher.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        for (p, n) in [
            ("*.ini", "app.ini"),
            ("*", "x"),
            ("a?c.toml", "abc.toml"),
            ("*web*.ini", "my-web-1.ini"),
            ("*.ini", ".ini"),
        ] {
            assert!(glob_match(p, n), "{p} {n}");
        }
        for (p, n) in [
            ("*.ini", "app.toml"),
            ("a?c", "ac"),
            ("web*", "my-web"),
            ("*.ini", "app.ini.bak"),
        ] {
            assert!(!glob_match(p, n), "{p} {n}");
        }
    }

    #[test]
    fn a_scan_finds_vassal_files_and_sees_edits() {
        let dir = std::env::temp_dir().join(format!("segue-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["a.ini", "b.toml", "c.txt", ".d.ini"] {
            std::fs::write(dir.join(name), "x").unwrap();
        }
        std::fs::create_dir(dir.join("sub.ini")).unwrap();
        let (s, problems) = scan(std::slice::from_ref(&dir));
        assert!(problems.is_empty());
        let names: Vec<_> = s
            .files
            .iter()
            .map(|(p, _)| p.file_name().unwrap())
            .collect();
        assert_eq!(names, ["a.ini", "b.toml"]);
        let (only, _) = scan(&[dir.join("*.toml")]);
        assert_eq!(only.files.len(), 1);

        // Same size, other content: the hash tells even within the mtime's granularity.
        let before = fingerprint(&dir.join("a.ini")).unwrap();
        std::fs::write(dir.join("a.ini"), "y").unwrap();
        let after = fingerprint(&dir.join("a.ini")).unwrap();
        assert_ne!(before.hash, after.hash);

        let (gone, problems) = scan(&[dir.join("missing")]);
        assert_eq!(gone.unreadable, [dir.join("missing")]);
        assert_eq!(problems.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
