//! The HTTP decisions about a static file that need no I/O (RFC 9110): its validators, whether
//! a conditional request is answered 304, which byte range a `Range` asks for, and whether the
//! client takes gzip. Pure functions of header values, so every case is a unit test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A strong entity tag from the file's size and modification time (nanoseconds), plus a
/// suffix for the gzip variant, whose bytes differ.
pub fn etag(len: u64, mtime: SystemTime, gzip: bool) -> String {
    let nanos = mtime
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let variant = if gzip { "-gz" } else { "" };
    format!("\"{len:x}-{nanos:x}{variant}\"")
}

/// The modification time as HTTP dates carry it: whole seconds.
pub fn http_seconds(mtime: SystemTime) -> SystemTime {
    let secs = mtime
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Whether `If-None-Match` (a list of tags, or `*`) matches `etag`, by the weak comparison
/// RFC 9110 prescribes for it.
pub fn none_match(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let mine = bare(etag);
    header
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == mine)
}

/// Whether the file is unchanged since `If-Modified-Since` (uWSGI's rule: its mtime is not
/// after the date). An unparsable date is ignored, as the RFC says.
pub fn not_modified_since(header: &str, mtime: SystemTime) -> bool {
    match httpdate::parse_http_date(header.trim()) {
        Ok(since) => http_seconds(mtime) <= since,
        Err(_) => false,
    }
}

/// Whether a 304 answers a GET or HEAD with these headers: `If-None-Match` decides when
/// present, else `If-Modified-Since`.
pub fn is_not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    etag: &str,
    mtime: SystemTime,
) -> bool {
    match (if_none_match, if_modified_since) {
        (Some(inm), _) => none_match(inm, etag),
        (None, Some(ims)) => not_modified_since(ims, mtime),
        (None, None) => false,
    }
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// The whole file: no header, one segue does not understand, several ranges (answered
    /// with the whole file, which RFC 9110 allows), or an `If-Range` that no longer holds.
    Whole,
    /// Bytes `start..start + len` (206).
    Part {
        /// First byte.
        start: u64,
        /// Number of bytes, at least 1.
        len: u64,
    },
    /// Nothing of the file satisfies it (416).
    Unsatisfiable,
}

/// Reads `Range: bytes=...` against a file of `len` bytes.
pub fn range(header: &str, len: u64) -> RangeAsk {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let number = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                RangeAsk::Unsatisfiable
            } else {
                let n = n.min(len);
                RangeAsk::Part {
                    start: len - n,
                    len: n,
                }
            }
        }
        (false, Some(start), end) if last.trim().is_empty() || end.is_some() => {
            if start >= len {
                return RangeAsk::Unsatisfiable;
            }
            let end = end.map_or(len - 1, |e| e.min(len - 1));
            if end < start {
                // first-pos after last-pos: an invalid range, which is ignored.
                return RangeAsk::Whole;
            }
            RangeAsk::Part {
                start,
                len: end - start + 1,
            }
        }
        _ => RangeAsk::Whole,
    }
}

/// Whether an `If-Range` lets the range apply: it must name the current entity tag exactly
/// (strong comparison) or the exact `Last-Modified` date.
pub fn if_range_holds(header: &str, etag: &str, last_modified: &str) -> bool {
    let h = header.trim();
    if h.starts_with('"') {
        h == etag
    } else {
        h == last_modified
    }
}

/// Whether `Accept-Encoding` takes gzip: a `gzip` (or `x-gzip`, or `*`) coding whose q is not 0.
pub fn accepts_gzip(header: &str) -> bool {
    header.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let named = ["gzip", "x-gzip", "*"]
            .iter()
            .any(|c| coding.eq_ignore_ascii_case(c));
        let refused = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .or_else(|| p.strip_prefix("Q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        named && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn etags_change_with_size_time_and_variant() {
        let t = at(1_700_000_000);
        assert_ne!(etag(10, t, false), etag(11, t, false));
        assert_ne!(etag(10, t, false), etag(10, at(1_700_000_001), false));
        assert_ne!(etag(10, t, false), etag(10, t, true));
        assert!(etag(10, t, false).starts_with('"'));
    }

    #[test]
    fn if_none_match_uses_weak_comparison_and_star() {
        let tag = "\"a-1\"";
        assert!(none_match("\"a-1\"", tag));
        assert!(none_match("W/\"a-1\"", tag));
        assert!(none_match("\"x\", \"a-1\"", tag));
        assert!(none_match("*", tag));
        assert!(!none_match("\"a-2\"", tag));
    }

    #[test]
    fn if_modified_since_compares_whole_seconds() {
        let mtime = at(1_700_000_000) + Duration::from_millis(500);
        let same = httpdate::fmt_http_date(at(1_700_000_000));
        let before = httpdate::fmt_http_date(at(1_699_999_999));
        assert!(not_modified_since(&same, mtime));
        assert!(!not_modified_since(&before, mtime));
        assert!(!not_modified_since("yesterday", mtime));
        // If-None-Match wins over If-Modified-Since.
        assert!(!is_not_modified(
            Some("\"other\""),
            Some(&same),
            "\"t\"",
            mtime
        ));
        assert!(is_not_modified(None, Some(&same), "\"t\"", mtime));
    }

    #[test]
    fn single_ranges() {
        let part = |start, len| RangeAsk::Part { start, len };
        assert_eq!(range("bytes=0-9", 100), part(0, 10));
        assert_eq!(range("bytes=90-", 100), part(90, 10));
        assert_eq!(range("bytes=90-1000", 100), part(90, 10));
        assert_eq!(range("bytes=-10", 100), part(90, 10));
        assert_eq!(range("bytes=-1000", 100), part(0, 100));
        assert_eq!(range("bytes=99-99", 100), part(99, 1));
    }

    #[test]
    fn unsatisfiable_and_ignored_ranges() {
        assert_eq!(range("bytes=100-", 100), RangeAsk::Unsatisfiable);
        assert_eq!(range("bytes=200-300", 100), RangeAsk::Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), RangeAsk::Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), RangeAsk::Unsatisfiable);
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=-",
            "bytes=1",
            "bytes=+1-2",
        ] {
            assert_eq!(range(ignored, 100), RangeAsk::Whole, "{ignored}");
        }
    }

    #[test]
    fn if_range_needs_an_exact_validator() {
        let lm = "Tue, 14 Nov 2023 22:13:20 GMT";
        assert!(if_range_holds("\"t\"", "\"t\"", lm));
        assert!(!if_range_holds("W/\"t\"", "\"t\"", lm));
        assert!(if_range_holds(lm, "\"t\"", lm));
        assert!(!if_range_holds(
            "Tue, 14 Nov 2023 22:13:21 GMT",
            "\"t\"",
            lm
        ));
    }

    #[test]
    fn gzip_acceptance() {
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("br, deflate"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("gzipx"));
    }
}
