//! From a request path to a file under a mapped root, without touching the file system: the
//! pure half of the security of static files. The path is percent-decoded once (as uWSGI's
//! `PATH_INFO` is), then taken apart into segments; anything that could name a file outside
//! the root is refused here, before any `stat`. The file-system half ([`super::lookup`])
//! then checks the canonical path, which is what catches symlinks.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::config::static_files::StaticMap;

/// Why a path under a mapping was not turned into a file path. Either way the request goes on
/// to the app, as in uWSGI (which logs a security error and falls through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A NUL byte (`%00`): no file name holds one, and C libraries would cut the name there.
    Nul,
    /// A backslash: a name character on Linux, but a separator to Windows tools and to some
    /// proxies' normalisation; never a static file's name.
    Backslash,
    /// `..` climbing above the mapped root.
    Escapes,
    /// A file mapping (`/robots.txt=...`) asked for something below it.
    BelowFile,
}

/// The mapping of `maps` a decoded path falls under, and the rest of the path after its
/// prefix, for each mapping in the order they are tried. A prefix matches at a segment
/// boundary only: `/static` covers `/static` and `/static/x`, not `/staticx`.
pub fn candidates<'a>(
    maps: &'a [StaticMap],
    path: &'a [u8],
) -> impl Iterator<Item = (&'a StaticMap, &'a [u8])> + 'a {
    maps.iter().filter_map(move |m| {
        let prefix = m.prefix.as_bytes();
        if prefix.is_empty() || prefix == b"/" {
            return Some((m, path));
        }
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest[0] == b'/').then_some((m, rest))
    })
}

/// The file `rest` (what follows a mapping's prefix in the decoded path) names under `map`:
/// the root joined with the normalised segments. `.` and empty segments are dropped, `..`
/// removes the segment before it and may not climb above the root.
pub fn file_path(map: &StaticMap, rest: &[u8]) -> Result<PathBuf, Refused> {
    if rest.contains(&0) {
        return Err(Refused::Nul);
    }
    if rest.contains(&b'\\') {
        return Err(Refused::Backslash);
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in rest.split(|b| *b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                if segments.pop().is_none() {
                    return Err(Refused::Escapes);
                }
            }
            s => segments.push(s),
        }
    }
    if map.is_file {
        return if segments.is_empty() {
            Ok(map.root.clone())
        } else {
            Err(Refused::BelowFile)
        };
    }
    let mut path = map.root.clone();
    for s in segments {
        path.push(OsStr::from_bytes(s));
    }
    Ok(path)
}

/// Whether `real` (a canonical path) is `root` itself or below it, or below one of the
/// `safe` directories; compared by whole components, so `/srv/static2` is not under
/// `/srv/static`.
pub fn is_allowed(real: &Path, root: &Path, safe: &[PathBuf]) -> bool {
    let normal = real
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    normal && (real.starts_with(root) || safe.iter().any(|s| real.starts_with(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(prefix: &str, root: &str) -> StaticMap {
        StaticMap {
            prefix: prefix.into(),
            root: root.into(),
            is_file: false,
        }
    }

    fn decoded(raw: &str) -> Vec<u8> {
        percent_encoding::percent_decode(raw.as_bytes()).collect()
    }

    /// The file a raw (still encoded) request path names under `/static=/srv/s`.
    fn resolve(raw: &str) -> Result<PathBuf, Refused> {
        let maps = [dir("/static", "/srv/s")];
        let path = decoded(raw);
        let (m, rest) = candidates(&maps, &path).next().expect("under /static");
        file_path(m, rest)
    }

    #[test]
    fn plain_paths_join_the_root() {
        assert_eq!(resolve("/static/a.css"), Ok("/srv/s/a.css".into()));
        assert_eq!(resolve("/static/css/a.css"), Ok("/srv/s/css/a.css".into()));
        assert_eq!(resolve("/static"), Ok("/srv/s".into()));
        assert_eq!(resolve("/static/"), Ok("/srv/s".into()));
        assert_eq!(resolve("/static//a//b"), Ok("/srv/s/a/b".into()));
        assert_eq!(resolve("/static/./a"), Ok("/srv/s/a".into()));
        assert_eq!(resolve("/static/a%20b.txt"), Ok("/srv/s/a b.txt".into()));
    }

    #[test]
    fn dot_dot_stays_inside_or_is_refused() {
        assert_eq!(resolve("/static/a/../b"), Ok("/srv/s/b".into()));
        assert_eq!(resolve("/static/a/b/../../c"), Ok("/srv/s/c".into()));
        for hostile in [
            "/static/..",
            "/static/../Cargo.toml",
            "/static/a/../../x",
            "/static/%2e%2e/x",
            "/static/%2E%2E/x",
            "/static/.%2e/x",
            "/static/..%2fx",
            "/static/..%2Fx",
            "/static/%2e%2e%2fetc%2fpasswd",
            "/static/a/%2e%2e/%2e%2e/x",
        ] {
            assert_eq!(resolve(hostile), Err(Refused::Escapes), "{hostile}");
        }
    }

    #[test]
    fn double_encoding_is_decoded_once_into_a_literal_name() {
        // %252e is "%2e" after one decoding: a file literally named "%2e%2e", inside the root.
        assert_eq!(
            resolve("/static/%252e%252e/x"),
            Ok("/srv/s/%2e%2e/x".into())
        );
        assert_eq!(resolve("/static/..%252fx"), Ok("/srv/s/..%2fx".into()));
    }

    #[test]
    fn nul_and_backslashes_are_refused() {
        assert_eq!(resolve("/static/a%00b"), Err(Refused::Nul));
        assert_eq!(resolve("/static/a.css%00.png"), Err(Refused::Nul));
        assert_eq!(resolve("/static/..\\x"), Err(Refused::Backslash));
        assert_eq!(resolve("/static/..%5cx"), Err(Refused::Backslash));
        assert_eq!(resolve("/static/a%5Cb"), Err(Refused::Backslash));
    }

    #[test]
    fn prefixes_match_at_segment_boundaries() {
        let maps = [dir("/static", "/srv/s"), dir("/", "/srv/root")];
        let path = b"/staticx/a".to_vec();
        let hits: Vec<_> = candidates(&maps, &path)
            .map(|(m, _)| m.root.clone())
            .collect();
        assert_eq!(hits, [PathBuf::from("/srv/root")]);
        let path = b"/static/a".to_vec();
        let hits: Vec<_> = candidates(&maps, &path)
            .map(|(m, r)| (m.root.clone(), r))
            .collect();
        assert_eq!(
            hits,
            [
                (PathBuf::from("/srv/s"), &b"/a"[..]),
                (PathBuf::from("/srv/root"), &b"/static/a"[..])
            ]
        );
        let check = [dir("", "/srv/c")];
        assert_eq!(candidates(&check, b"/x").count(), 1);
        assert_eq!(candidates(&[dir("/static", "/s")], b"/other").count(), 0);
    }

    #[test]
    fn file_maps_serve_only_their_own_path() {
        let map = StaticMap {
            prefix: "/robots.txt".into(),
            root: "/srv/robots.txt".into(),
            is_file: true,
        };
        assert_eq!(file_path(&map, b""), Ok("/srv/robots.txt".into()));
        assert_eq!(file_path(&map, b"/"), Ok("/srv/robots.txt".into()));
        assert_eq!(file_path(&map, b"/x"), Err(Refused::BelowFile));
    }

    #[test]
    fn canonical_paths_must_stay_under_the_root_or_a_safe_dir() {
        let root = Path::new("/srv/static");
        let safe = [PathBuf::from("/opt/shared")];
        assert!(is_allowed(Path::new("/srv/static"), root, &[]));
        assert!(is_allowed(Path::new("/srv/static/a/b.css"), root, &[]));
        assert!(!is_allowed(Path::new("/srv/static2/a"), root, &[]));
        assert!(!is_allowed(Path::new("/srv"), root, &[]));
        assert!(!is_allowed(Path::new("/etc/passwd"), root, &[]));
        assert!(!is_allowed(Path::new("/srv/static/../x"), root, &[]));
        assert!(is_allowed(Path::new("/opt/shared/x.js"), root, &safe));
        assert!(!is_allowed(Path::new("/opt/sharedx/x.js"), root, &safe));
    }
}
