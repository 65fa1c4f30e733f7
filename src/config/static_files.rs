//! The static-file settings a worker serves from before calling the app (uWSGI's `static-map`,
//! `check-static`, `static-expires*`, `static-index`, `static-safe`, `static-gzip*`), in the
//! form the master validates and sends in `Boot`. Regular expressions travel as their source
//! text: the master compiles each once to refuse a bad one, the worker compiles them again.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything about static files; the default serves none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticFiles {
    /// URL prefixes and the directory (or file) each maps to, in the order they are tried:
    /// `check-static` directories first, then `static-map`s longest prefix first.
    #[serde(default)]
    pub maps: Vec<StaticMap>,
    /// `Expires` / `Cache-Control: max-age` rules, in the order they are tried.
    #[serde(default)]
    pub expires: Vec<ExpiresRule>,
    /// File names tried, in order, when a mapped path is a directory (`static-index`).
    #[serde(default)]
    pub index: Vec<String>,
    /// Directories a symlink under a mapped root may lead into (`static-safe`), canonical.
    #[serde(default)]
    pub safe: Vec<PathBuf>,
    /// Regular expressions on the file's path that make segue look for `FILE.gz`
    /// (`static-gzip`).
    #[serde(default)]
    pub gzip: Vec<String>,
    /// Look for `FILE.gz` for every file (`static-gzip-all`).
    #[serde(default)]
    pub gzip_all: bool,
}

impl StaticFiles {
    /// Whether any request may be served from the file system at all: the worker's hot path
    /// skips every static check when not.
    pub fn is_enabled(&self) -> bool {
        !self.maps.is_empty()
    }
}

/// One URL prefix served from the file system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticMap {
    /// The decoded URL path prefix (`/static`); empty for `check-static`, which sees every
    /// path.
    pub prefix: String,
    /// The canonical directory (or file) it maps to; nothing outside it is served.
    pub root: PathBuf,
    /// Whether `root` is one file (`static-map = /robots.txt=static/robots.txt`): then only
    /// the prefix itself is served.
    pub is_file: bool,
}

/// What an `Expires` rule's regular expression is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpiresOn {
    /// The served file's canonical path (`static-expires`).
    File,
    /// The request target as the client sent it, path and query (`static-expires-uri`,
    /// uWSGI's `REQUEST_URI`).
    Uri,
}

/// `REGEX SECONDS`: a response whose subject matches expires that many seconds from now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiresRule {
    /// What the pattern is matched against.
    pub on: ExpiresOn,
    /// The pattern, unanchored as in uWSGI (PCRE's search): anchor it with `^`/`$` to match
    /// whole.
    pub pattern: String,
    /// Seconds from the request's time.
    pub seconds: u64,
}

/// Parses uWSGI's `PREFIX=PATH`: the prefix before the first `=`.
pub fn parse_map(text: &str) -> Result<(String, String), String> {
    let Some((prefix, path)) = text.split_once('=') else {
        return Err(format!(
            "invalid value '{text}': expected PREFIX=DIR, e.g. /static=/srv/app/static"
        ));
    };
    let prefix = prefix.trim();
    let path = path.trim();
    if !prefix.starts_with('/') {
        return Err(format!(
            "invalid value '{text}': the URL prefix must start with '/', e.g. /static=/srv/app/static"
        ));
    }
    if path.is_empty() {
        return Err(format!(
            "invalid value '{text}': no directory after '=', e.g. /static=/srv/app/static"
        ));
    }
    // `/static/` and `/static` mean the same prefix (matched at a segment boundary).
    let prefix = match prefix.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    Ok((prefix.to_owned(), path.to_owned()))
}

/// Parses uWSGI's `REGEX SECONDS` (split at the first space, as uWSGI does), checking that the
/// pattern compiles.
pub fn parse_expires(text: &str, on: ExpiresOn) -> Result<ExpiresRule, String> {
    let Some((pattern, seconds)) = text.trim().split_once(' ') else {
        return Err(format!(
            "invalid value '{text}': expected 'REGEX SECONDS', e.g. '\\.css$ 86400'"
        ));
    };
    let Ok(seconds) = seconds.trim().parse::<u64>() else {
        return Err(format!(
            "invalid value '{text}': '{}' is not a whole number of seconds",
            seconds.trim()
        ));
    };
    check_regex(pattern)?;
    Ok(ExpiresRule {
        on,
        pattern: pattern.to_owned(),
        seconds,
    })
}

/// Refuses a pattern the `regex` crate cannot compile (PCRE's look-arounds and back-references
/// are not in its syntax), with the reason.
pub fn check_regex(pattern: &str) -> Result<(), String> {
    regex::Regex::new(pattern).map(drop).map_err(|e| {
        let why = e.to_string();
        let last = why.lines().last().unwrap_or("").trim().to_owned();
        format!("'{pattern}' is not a regular expression segue can use: {last}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_map("/static=/srv/a=b"),
            Ok(("/static".into(), "/srv/a=b".into()))
        );
        assert_eq!(
            parse_map("/static/=dir"),
            Ok(("/static".into(), "dir".into()))
        );
        assert_eq!(parse_map("/=dir"), Ok(("/".into(), "dir".into())));
        assert!(parse_map("/static").is_err());
        assert!(parse_map("static=/srv").is_err());
        assert!(parse_map("/static=").is_err());
    }

    #[test]
    fn expires_take_a_regex_then_seconds() {
        let rule = parse_expires("/static/build/* 2592000", ExpiresOn::Uri).unwrap();
        assert_eq!(rule.pattern, "/static/build/*");
        assert_eq!(rule.seconds, 2592000);
        assert!(parse_expires("\\.css$", ExpiresOn::File).is_err());
        assert!(parse_expires("\\.css$ soon", ExpiresOn::File).is_err());
        let bad = parse_expires("(unclosed 60", ExpiresOn::File).unwrap_err();
        assert!(bad.contains("(unclosed"), "{bad}");
    }
}
