//! The file-system half of a static lookup, run on a blocking thread (`spawn_blocking`): the
//! canonical path of the candidate, the check that it is under the root (or a
//! `--static-safe` directory), the directory index, the gzip variant, and the open file with
//! its metadata. A FIFO or device under the root is never opened for reading in a way that
//! could block, and a directory is never listed.

use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::resolve::is_allowed;

/// An open regular file ready to be sent.
#[derive(Debug)]
pub struct Opened {
    /// The file, read-only.
    pub file: File,
    /// Its metadata (size, mtime), taken from the open descriptor.
    pub meta: Metadata,
}

/// A file found for a request.
#[derive(Debug)]
pub struct Found {
    /// The canonical path of the file asked for (not its gzip variant): what its type and
    /// `--static-expires` rules are judged by.
    pub path: PathBuf,
    /// What is sent: the file, or its `.gz` variant.
    pub body: Opened,
    /// Whether `body` is the gzip variant.
    pub gzip: bool,
}

/// Why nothing was found; every case lets the request go on to the app.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    /// No such file (or a directory without an index file, or not a regular file).
    NotFound,
    /// The canonical path leaves the root: a symlink out of it, not under `--static-safe`.
    Outside(PathBuf),
}

/// What the lookup needs besides the candidate path.
pub struct Rules<'a> {
    /// The mapping's canonical root.
    pub root: &'a Path,
    /// `--static-safe` directories.
    pub safe: &'a [PathBuf],
    /// `--static-index` names.
    pub index: &'a [String],
    /// Whether to look for `FILE.gz` for the path found (the client takes gzip and a
    /// `--static-gzip` rule matches it).
    pub want_gzip: &'a dyn Fn(&Path) -> bool,
}

/// Finds the file `candidate` names (a directory's index file if it is one).
pub fn find(candidate: &Path, rules: &Rules<'_>) -> Result<Found, Miss> {
    let (path, body) = match open_allowed(candidate, rules)? {
        (path, opened) if opened.meta.is_file() => (path, opened),
        (dir, opened) if opened.meta.is_dir() => {
            drop(opened);
            index(&dir, rules)?
        }
        _ => return Err(Miss::NotFound),
    };
    if (rules.want_gzip)(&path) {
        let mut gz = path.as_os_str().to_owned();
        gz.push(".gz");
        if let Ok((_, opened)) = open_allowed(Path::new(&gz), rules) {
            if opened.meta.is_file() {
                return Ok(Found {
                    path,
                    body: opened,
                    gzip: true,
                });
            }
        }
    }
    Ok(Found {
        path,
        body,
        gzip: false,
    })
}

/// The first `--static-index` file of `dir` that is a regular file under the root.
fn index(dir: &Path, rules: &Rules<'_>) -> Result<(PathBuf, Opened), Miss> {
    let mut outside = None;
    for name in rules.index {
        match open_allowed(&dir.join(name), rules) {
            Ok((path, opened)) if opened.meta.is_file() => return Ok((path, opened)),
            Ok(_) | Err(Miss::NotFound) => {}
            Err(miss) => outside = Some(miss),
        }
    }
    Err(outside.unwrap_or(Miss::NotFound))
}

/// Canonicalises `path`, refuses it outside the root, and opens what it names. The open does
/// not follow a symlink (one swapped in since the check is refused) and does not block on a
/// FIFO; the caller checks the kind of file from the descriptor's metadata.
fn open_allowed(path: &Path, rules: &Rules<'_>) -> Result<(PathBuf, Opened), Miss> {
    let real = std::fs::canonicalize(path).map_err(|_| Miss::NotFound)?;
    if !is_allowed(&real, rules.root, rules.safe) {
        return Err(Miss::Outside(real));
    }
    if real.as_os_str().as_bytes().contains(&0) {
        return Err(Miss::NotFound);
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&real)
        .map_err(|_| Miss::NotFound)?;
    let meta = file.metadata().map_err(|_| Miss::NotFound)?;
    Ok((real, Opened { file, meta }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("segue-lookup-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::canonicalize(dir).unwrap()
    }

    fn rules<'a>(root: &'a Path, safe: &'a [PathBuf], index: &'a [String]) -> Rules<'a> {
        Rules {
            root,
            safe,
            index,
            want_gzip: &|_| true,
        }
    }

    #[test]
    fn files_indexes_and_gzip_variants() {
        let root = scratch("files");
        std::fs::write(root.join("a.css"), "body{}").unwrap();
        std::fs::write(root.join("a.css.gz"), "gz").unwrap();
        std::fs::create_dir(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/index.html"), "<p>").unwrap();
        let index = vec!["missing.html".to_owned(), "index.html".to_owned()];
        let r = rules(&root, &[], &index);
        let found = find(&root.join("a.css"), &r).unwrap();
        assert!(found.gzip);
        assert_eq!(found.path, root.join("a.css"));
        assert_eq!(found.body.meta.len(), 2);
        let found = find(&root.join("docs"), &r).unwrap();
        assert_eq!(found.path, root.join("docs/index.html"));
        let none = rules(&root, &[], &[]);
        assert_eq!(find(&root.join("docs"), &none).unwrap_err(), Miss::NotFound);
        assert_eq!(find(&root.join("nope"), &none).unwrap_err(), Miss::NotFound);
    }

    #[test]
    fn symlinks_out_of_the_root_need_a_safe_dir() {
        let base = scratch("links");
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("dir")).unwrap();
        let r = rules(&root, &[], &[]);
        assert!(matches!(
            find(&root.join("link.txt"), &r),
            Err(Miss::Outside(_))
        ));
        assert!(matches!(
            find(&root.join("dir/secret.txt"), &r),
            Err(Miss::Outside(_))
        ));
        let safe = [outside.clone()];
        let r = rules(&root, &safe, &[]);
        assert_eq!(
            find(&root.join("link.txt"), &r).unwrap().path,
            outside.join("secret.txt")
        );
    }

    #[test]
    fn fifos_are_not_served_and_do_not_block() {
        let root = scratch("fifo");
        let fifo = root.join("pipe");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let r = rules(&root, &[], &[]);
        assert_eq!(find(&fifo, &r).unwrap_err(), Miss::NotFound);
    }
}
