//! Which mounted app a request goes to (uWSGI's `mount` with `manage-script-name`): the longest
//! prefix that matches the percent-decoded path at a segment boundary. The prefix becomes
//! `SCRIPT_NAME`, the rest `PATH_INFO`. Pure byte matching, so it is unit-tested without Python.

/// The apps of one worker by prefix, longest first; `T` is what a request is routed to.
#[derive(Debug)]
pub struct Mounts<T> {
    /// Prefix bytes (empty for the root app) and the app, longest prefix first so that the
    /// first match is the longest.
    entries: Vec<(Box<[u8]>, T)>,
    /// One app at the root, which is nearly every deployment: routing then compares nothing.
    root_only: bool,
}

impl<T> Mounts<T> {
    /// The apps under their prefixes (`""` or `/x`, no trailing `/`), in any order.
    pub fn new(entries: impl IntoIterator<Item = (String, T)>) -> Mounts<T> {
        let mut entries: Vec<(Box<[u8]>, T)> = entries
            .into_iter()
            .map(|(prefix, app)| (prefix.into_bytes().into_boxed_slice(), app))
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
        let root_only = matches!(entries.as_slice(), [(prefix, _)] if prefix.is_empty());
        Mounts { entries, root_only }
    }

    /// The app for `path` (percent-decoded) and the length of its prefix, which splits `path`
    /// into `SCRIPT_NAME` and `PATH_INFO`; `None` when no prefix matches and no root app exists.
    #[inline]
    pub fn route(&self, path: &[u8]) -> Option<(&T, usize)> {
        if self.root_only {
            return Some((&self.entries[0].1, 0));
        }
        self.entries
            .iter()
            .find(|(prefix, _)| at_boundary(prefix, path))
            .map(|(prefix, app)| (app, prefix.len()))
    }

    /// Every prefix (as bytes) and its app.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &T)> {
        self.entries.iter().map(|(p, t)| (&**p, t))
    }
}

/// `/admin` matches `/admin` and `/admin/x`, never `/administrator`; `""` matches everything.
fn at_boundary(prefix: &[u8], path: &[u8]) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'/' || prefix.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts(prefixes: &[&str]) -> Mounts<String> {
        Mounts::new(prefixes.iter().map(|p| (p.to_string(), p.to_string())))
    }

    fn route<'a>(m: &'a Mounts<String>, path: &'a str) -> Option<(&'a str, &'a str)> {
        m.route(path.as_bytes())
            .map(|(app, split)| (app.as_str(), &path[split..]))
    }

    #[test]
    fn longest_prefix_wins_at_a_segment_boundary() {
        let m = mounts(&["", "/a", "/a/b", "/admin"]);
        assert_eq!(route(&m, "/a"), Some(("/a", "")));
        assert_eq!(route(&m, "/a/"), Some(("/a", "/")));
        assert_eq!(route(&m, "/a/x"), Some(("/a", "/x")));
        assert_eq!(route(&m, "/a/b"), Some(("/a/b", "")));
        assert_eq!(route(&m, "/a/bc"), Some(("/a", "/bc")));
        assert_eq!(route(&m, "/a/b/c"), Some(("/a/b", "/c")));
        assert_eq!(route(&m, "/ab"), Some(("", "/ab")));
        assert_eq!(route(&m, "/admin/x"), Some(("/admin", "/x")));
        assert_eq!(route(&m, "/administrator"), Some(("", "/administrator")));
        assert_eq!(route(&m, "/"), Some(("", "/")));
    }

    #[test]
    fn without_a_root_unmatched_paths_have_no_app() {
        let m = mounts(&["/api", "/admin"]);
        assert_eq!(route(&m, "/api/v1"), Some(("/api", "/v1")));
        assert_eq!(route(&m, "/"), None);
        assert_eq!(route(&m, "/apis"), None);
        assert_eq!(route(&m, "*"), None);
    }

    #[test]
    fn a_single_root_app_takes_every_path() {
        let m = mounts(&[""]);
        assert!(m.root_only);
        assert_eq!(route(&m, "/anything"), Some(("", "/anything")));
        assert_eq!(route(&m, "*"), Some(("", "*")));
        assert!(!mounts(&["/only"]).root_only);
    }
}
