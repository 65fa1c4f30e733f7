//! Static files served by the worker itself, on its tokio thread, before the app is called
//! (uWSGI's `static-map`, `check-static` and their options): a GET or HEAD whose path falls
//! under a mapping and names a regular file is answered from the file system with `sendfile`,
//! without a Python thread or the GIL. Anything else (no such file, a directory without an
//! index file, a path refused by [`resolve`] or leaving the root) goes on to the app, as in
//! uWSGI.
//!
//! [`resolve`] turns the path into a candidate file without I/O; [`lookup`] checks and opens it
//! on a blocking thread; [`conditional`] decides 304, 206 and 416; [`mime`] names the type.

pub mod conditional;
pub mod lookup;
pub mod mime;
pub mod resolve;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use regex::Regex;

use super::body::ResponseBody;
use super::sendfile::FileRegion;
use crate::config::static_files::{ExpiresOn, StaticFiles, StaticMap};
use conditional::RangeAsk;
use lookup::{Found, Miss, Rules};

/// A static answer, for the service to send like any reply.
#[derive(Debug)]
pub struct StaticReply {
    /// 200, 206, 304 or 416.
    pub status: StatusCode,
    /// The response's header fields.
    pub headers: HeaderMap,
    /// The file region, or nothing (HEAD, 304, 416).
    pub body: ResponseBody,
}

/// A worker's static-file settings, with the regular expressions compiled once at start.
#[derive(Debug)]
pub struct StaticServer {
    maps: Vec<StaticMap>,
    index: Vec<String>,
    safe: Vec<PathBuf>,
    expires: Vec<(ExpiresOn, Regex, u64)>,
    gzip: Vec<Regex>,
    gzip_all: bool,
}

impl StaticServer {
    /// The server for `config`, or `None` when it maps nothing (the request path then pays
    /// nothing for the feature). A pattern that does not compile (the master checked them
    /// all) is logged and left out.
    pub fn new(config: &StaticFiles) -> Option<Arc<Self>> {
        if !config.is_enabled() {
            return None;
        }
        let compile = |p: &str| match Regex::new(p) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("static files: ignoring the pattern '{p}': {e}");
                None
            }
        };
        Some(Arc::new(StaticServer {
            maps: config.maps.clone(),
            index: config.index.clone(),
            safe: config.safe.clone(),
            expires: config
                .expires
                .iter()
                .filter_map(|r| Some((r.on, compile(&r.pattern)?, r.seconds)))
                .collect(),
            gzip: config.gzip.iter().filter_map(|p| compile(p)).collect(),
            gzip_all: config.gzip_all,
        }))
    }

    /// Whether a request may be a static one: GET or HEAD under some mapping. Cheap and
    /// without I/O, so that every other request goes straight to the app.
    pub fn may_serve(&self, method: &Method, uri: &Uri) -> bool {
        if method != Method::GET && method != Method::HEAD {
            return false;
        }
        let path = percent_encoding::percent_decode(uri.path().as_bytes()).collect::<Vec<u8>>();
        resolve::candidates(&self.maps, &path).next().is_some()
    }

    /// Answers the request from the file system, or `None` when it is the app's to answer.
    pub async fn serve(
        self: Arc<Self>,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Option<StaticReply> {
        let path = percent_encoding::percent_decode(uri.path().as_bytes()).collect::<Vec<u8>>();
        let mut tries = Vec::new();
        for (map, rest) in resolve::candidates(&self.maps, &path) {
            match resolve::file_path(map, rest) {
                Ok(file) => tries.push((map.root.clone(), file)),
                Err(why) => tracing::info!(
                    target: "segue::static",
                    "not serving {} from {}: {why:?} (the app answers it)",
                    uri.path(),
                    map.root.display()
                ),
            }
        }
        if tries.is_empty() {
            return None;
        }
        let gzip_ok =
            header_str(headers, header::ACCEPT_ENCODING).is_some_and(conditional::accepts_gzip);
        let this = self.clone();
        let found = tokio::task::spawn_blocking(move || this.find(&tries, gzip_ok))
            .await
            .ok()??;
        Some(self.respond(found, method, uri, headers, SystemTime::now()))
    }

    /// The first of `tries` (root, candidate file) that is served; runs on a blocking thread.
    fn find(&self, tries: &[(PathBuf, PathBuf)], gzip_ok: bool) -> Option<Found> {
        let want_gzip = |p: &Path| gzip_ok && self.gzips(p);
        for (root, file) in tries {
            let rules = Rules {
                root,
                safe: &self.safe,
                index: &self.index,
                want_gzip: &want_gzip,
            };
            match lookup::find(file, &rules) {
                Ok(found) => return Some(found),
                Err(Miss::NotFound) => {}
                Err(Miss::Outside(real)) => tracing::warn!(
                    target: "segue::static",
                    "not serving {}: it is {}, outside {} and every --static-safe directory (the app answers it)",
                    file.display(),
                    real.display(),
                    root.display()
                ),
            }
        }
        None
    }

    /// Whether a `FILE.gz` is looked for beside `path`.
    fn gzips(&self, path: &Path) -> bool {
        let text = path.to_string_lossy();
        self.gzip_all || self.gzip.iter().any(|r| r.is_match(&text))
    }

    /// The first matching `--static-expires` (file) rule, then `--static-expires-uri`.
    fn expiry(&self, path: &Path, uri: &Uri) -> Option<u64> {
        let file = path.to_string_lossy();
        let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
        [ExpiresOn::File, ExpiresOn::Uri]
            .into_iter()
            .find_map(|on| {
                let subject: &str = if on == ExpiresOn::File { &file } else { target };
                self.expires
                    .iter()
                    .find(|(o, r, _)| *o == on && r.is_match(subject))
                    .map(|(_, _, secs)| *secs)
            })
    }

    /// The response for a found file: validators, conditionals, range, caching headers.
    fn respond(
        &self,
        found: Found,
        method: &Method,
        uri: &Uri,
        req: &HeaderMap,
        now: SystemTime,
    ) -> StaticReply {
        let Found { path, body, gzip } = found;
        let len = body.meta.len();
        let mtime = body.meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let etag = conditional::etag(len, mtime, gzip);
        let last_modified = httpdate::fmt_http_date(conditional::http_seconds(mtime));
        let mut headers = HeaderMap::new();
        let name = path.file_name().map_or(&b""[..], |n| n.as_bytes());
        insert(&mut headers, header::CONTENT_TYPE, mime::content_type(name));
        insert(&mut headers, header::ETAG, &etag);
        insert(&mut headers, header::LAST_MODIFIED, &last_modified);
        insert(&mut headers, header::ACCEPT_RANGES, "bytes");
        if self.gzips(&path) {
            insert(&mut headers, header::VARY, "Accept-Encoding");
        }
        if gzip {
            insert(&mut headers, header::CONTENT_ENCODING, "gzip");
        }
        if let Some(secs) = self.expiry(&path, uri) {
            let when = now + Duration::from_secs(secs);
            insert(
                &mut headers,
                header::EXPIRES,
                &httpdate::fmt_http_date(when),
            );
            insert(
                &mut headers,
                header::CACHE_CONTROL,
                &format!("max-age={secs}"),
            );
        }
        let empty = || ResponseBody::full(Bytes::new());
        if conditional::is_not_modified(
            header_str(req, header::IF_NONE_MATCH),
            header_str(req, header::IF_MODIFIED_SINCE),
            &etag,
            mtime,
        ) {
            return StaticReply {
                status: StatusCode::NOT_MODIFIED,
                headers,
                body: empty(),
            };
        }
        let ask = match header_str(req, header::RANGE) {
            Some(range) if method == Method::GET => {
                let holds = header_str(req, header::IF_RANGE)
                    .is_none_or(|ir| conditional::if_range_holds(ir, &etag, &last_modified));
                if holds {
                    conditional::range(range, len)
                } else {
                    RangeAsk::Whole
                }
            }
            _ => RangeAsk::Whole,
        };
        let (status, start, count) = match ask {
            RangeAsk::Whole => (StatusCode::OK, 0, len),
            RangeAsk::Part { start, len: count } => {
                let last = start + count - 1;
                insert(
                    &mut headers,
                    header::CONTENT_RANGE,
                    &format!("bytes {start}-{last}/{len}"),
                );
                (StatusCode::PARTIAL_CONTENT, start, count)
            }
            RangeAsk::Unsatisfiable => {
                insert(
                    &mut headers,
                    header::CONTENT_RANGE,
                    &format!("bytes */{len}"),
                );
                headers.remove(header::CONTENT_TYPE);
                headers.remove(header::CONTENT_ENCODING);
                return StaticReply {
                    status: StatusCode::RANGE_NOT_SATISFIABLE,
                    headers,
                    body: empty(),
                };
            }
        };
        insert(&mut headers, header::CONTENT_LENGTH, &count.to_string());
        let body = if method == Method::HEAD || count == 0 {
            empty()
        } else {
            ResponseBody::file(FileRegion::new(body.file, start, count))
        };
        StaticReply {
            status,
            headers,
            body,
        }
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn insert(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::static_files::ExpiresRule;

    fn server(expires: Vec<ExpiresRule>) -> Arc<StaticServer> {
        StaticServer::new(&StaticFiles {
            maps: vec![StaticMap {
                prefix: "/static".into(),
                root: "/srv/s".into(),
                is_file: false,
            }],
            expires,
            ..Default::default()
        })
        .unwrap()
    }

    fn rule(on: ExpiresOn, pattern: &str, seconds: u64) -> ExpiresRule {
        ExpiresRule {
            on,
            pattern: pattern.into(),
            seconds,
        }
    }

    #[test]
    fn only_get_and_head_under_a_mapping_may_be_static() {
        let s = server(vec![]);
        let uri: Uri = "/static/a.css".parse().unwrap();
        assert!(s.may_serve(&Method::GET, &uri));
        assert!(s.may_serve(&Method::HEAD, &uri));
        assert!(!s.may_serve(&Method::POST, &uri));
        assert!(!s.may_serve(&Method::GET, &"/app".parse().unwrap()));
        assert!(StaticServer::new(&StaticFiles::default()).is_none());
    }

    #[test]
    fn the_seeds_expires_uri_is_an_unanchored_regex() {
        // `/static/build/*` is `/static/build` then any number of `/`, found anywhere.
        let s = server(vec![rule(ExpiresOn::Uri, "/static/build/*", 2592000)]);
        let file = Path::new("/srv/s/x");
        let at = |u: &str| s.expiry(file, &u.parse().unwrap());
        assert_eq!(at("/static/build/app.js"), Some(2592000));
        assert_eq!(at("/static/build"), Some(2592000));
        assert_eq!(at("/static/buildings.png"), Some(2592000));
        assert_eq!(at("/static/x.js?v=/static/build"), Some(2592000));
        assert_eq!(at("/static/app.js"), None);
    }

    #[test]
    fn file_rules_come_before_uri_rules() {
        let s = server(vec![
            rule(ExpiresOn::Uri, "^/static/", 60),
            rule(ExpiresOn::File, "\\.css$", 86400),
        ]);
        let uri: Uri = "/static/a.css".parse().unwrap();
        assert_eq!(s.expiry(Path::new("/srv/s/a.css"), &uri), Some(86400));
        assert_eq!(s.expiry(Path::new("/srv/s/a.js"), &uri), Some(60));
    }
}
