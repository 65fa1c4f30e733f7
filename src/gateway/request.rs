//! The request a gateway's CGI variables describe (a uwsgi packet's block, FastCGI's PARAMS),
//! as an HTTP head for segue's service plus the variables nginx computed ([`Gateway`]). The
//! head is what the service validates and routes like any HTTP request; the gateway variables
//! are what the environ reports.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version, header};

use super::Gateway;

/// Which protocol carried the variables: for messages, which name the params file nginx needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxy {
    /// The uwsgi protocol (`uwsgi_pass`).
    Uwsgi,
    /// FastCGI (`fastcgi_pass`).
    FastCgi,
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proxy::Uwsgi => "uwsgi",
            Proxy::FastCgi => "fastcgi",
        })
    }
}

/// How to read the variables.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// The protocol, for messages.
    pub proxy: Proxy,
    /// Remove `SCRIPT_NAME` from the front of `PATH_INFO` (uwsgi's modifier1 30).
    pub strip_script_name: bool,
    /// Whether the peer may claim HTTPS (a unix socket, or `--forwarded-allow-ips`).
    pub trusted: bool,
}

/// A request read from a gateway's variables.
#[derive(Debug)]
pub struct Head {
    /// `REQUEST_METHOD`.
    pub method: Method,
    /// `REQUEST_URI` (or `PATH_INFO` and `QUERY_STRING`), bytes a URI cannot hold
    /// percent-encoded.
    pub uri: Uri,
    /// From `SERVER_PROTOCOL`: HTTP/1.0, or HTTP/1.1 for anything else.
    pub version: Version,
    /// `HTTP_*` variables as header fields, and `CONTENT_TYPE`/`CONTENT_LENGTH`.
    pub headers: HeaderMap,
    /// Bytes of body after the packet (`CONTENT_LENGTH`, 0 when empty or absent).
    pub content_length: u64,
    /// What the environ takes from nginx rather than from the head.
    pub gateway: Gateway,
}

/// Why the variables do not describe a request segue can serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No `REQUEST_METHOD`, or not a method token.
    #[error(
        "{0} request without a valid REQUEST_METHOD ({1:?}): add `include {0}_params;` to the nginx location"
    )]
    Method(Proxy, String),
    /// The target cannot be a URI even percent-encoded.
    #[error("{0} request with an unusable REQUEST_URI/PATH_INFO ({1:?})")]
    Uri(Proxy, String),
    /// An `HTTP_*` variable that cannot be a header field.
    #[error("{0} variable {1} cannot be an HTTP header field")]
    Header(Proxy, String),
    /// `CONTENT_LENGTH` is not a number.
    #[error("{0} request with CONTENT_LENGTH {1:?}: expected a number of bytes")]
    ContentLength(Proxy, String),
}

/// Variables the head or the gateway fields carry; everything else goes to `extra`.
const HANDLED: &[&str] = &[
    "REQUEST_METHOD",
    "REQUEST_URI",
    "QUERY_STRING",
    "PATH_INFO",
    "SCRIPT_NAME",
    "SERVER_PROTOCOL",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SERVER_NAME",
    "SERVER_PORT",
];

/// Variables that claim HTTPS: passed on only from a trusted peer.
const SCHEME_VARS: &[&str] = &["HTTPS", "REQUEST_SCHEME", "UWSGI_SCHEME", "wsgi.url_scheme"];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A CGI variable name segue passes on: upper-case ASCII letters, digits and `_`.
fn is_cgi_name(key: &[u8]) -> bool {
    key.first().is_some_and(u8::is_ascii_uppercase)
        && key
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// `bytes` with every byte a URI may not hold percent-encoded.
fn uri_safe(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The request `vars` describe, read as `how` says.
pub fn head(vars: &[(&[u8], &[u8])], how: Reading) -> Result<Head, RequestError> {
    let Reading {
        proxy,
        strip_script_name,
        trusted,
    } = how;
    let last = |name: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| *k == name.as_bytes())
            .map(|(_, v)| *v)
    };
    let method_text = last("REQUEST_METHOD").unwrap_or_default();
    let method = Method::from_bytes(method_text)
        .ok()
        .filter(|_| !method_text.is_empty())
        .ok_or_else(|| RequestError::Method(proxy, text(method_text)))?;
    let mut script_name = last("SCRIPT_NAME").unwrap_or_default().to_vec();
    let mut path_info = last("PATH_INFO").map(<[u8]>::to_vec);
    if strip_script_name {
        if let Some(p) = &mut path_info {
            if !script_name.is_empty() && p.starts_with(&script_name) {
                p.drain(..script_name.len());
            }
        }
    }
    // FastCGI params without PATH_INFO (nginx's `fastcgi_params` has none): the path is
    // DOCUMENT_URI. A SCRIPT_NAME equal to all of it is `$fastcgi_script_name` from that file
    // alone, an app at the root (what a WSGI user means by it), not one mounted at every path;
    // a SCRIPT_NAME that is a leading segment of it is a mount prefix, the rest PATH_INFO. An
    // explicit PATH_INFO is taken as given.
    if proxy == Proxy::FastCgi && path_info.is_none() && !script_name.is_empty() {
        if let Some(doc) = last("DOCUMENT_URI") {
            if doc == script_name.as_slice() {
                path_info = Some(std::mem::take(&mut script_name));
            } else if doc.starts_with(&script_name) && doc.get(script_name.len()) == Some(&b'/') {
                path_info = Some(doc[script_name.len()..].to_vec());
            }
        }
    }
    let query = last("QUERY_STRING").unwrap_or_default();
    let target = match last("REQUEST_URI").filter(|u| !u.is_empty()) {
        Some(uri) => uri_safe(uri),
        None => {
            let mut t = uri_safe(&script_name);
            t.push_str(&uri_safe(path_info.as_deref().unwrap_or(b"/")));
            if !t.starts_with('/') {
                t.insert(0, '/');
            }
            if !query.is_empty() {
                t.push('?');
                t.push_str(&uri_safe(query));
            }
            t
        }
    };
    let uri: Uri = target
        .parse()
        .map_err(|_| RequestError::Uri(proxy, target.clone()))?;
    let version = match last("SERVER_PROTOCOL") {
        Some(b"HTTP/1.0") => Version::HTTP_10,
        _ => Version::HTTP_11,
    };

    let mut headers = HeaderMap::new();
    let mut gateway = Gateway::default();
    for (key, value) in vars {
        let Some(name) = key.strip_prefix(b"HTTP_") else {
            let Ok(name) = std::str::from_utf8(key) else {
                continue;
            };
            let scheme = SCHEME_VARS.contains(&name);
            if HANDLED.contains(&name) || !is_cgi_name(key) || (scheme && !trusted) {
                continue;
            }
            gateway.extra.push((name.to_owned(), value.to_vec()));
            continue;
        };
        let name = String::from_utf8_lossy(name)
            .to_ascii_lowercase()
            .replace('_', "-");
        // The body is CONTENT_LENGTH bytes as nginx sends it, never chunked: nginx's own copies
        // of these fields would contradict it.
        if ["content-length", "content-type", "transfer-encoding"].contains(&name.as_str()) {
            continue;
        }
        let bad = || RequestError::Header(proxy, text(key));
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        let value = HeaderValue::from_bytes(value).map_err(|_| bad())?;
        if name == header::HOST {
            // nginx's `uwsgi_param HTTP_HOST $host` may come beside the client's own Host.
            headers.insert(name, value);
        } else {
            headers.append(name, value);
        }
    }
    let length = last("CONTENT_LENGTH").unwrap_or_default();
    let content_length = if length.is_empty() {
        0
    } else {
        std::str::from_utf8(length)
            .ok()
            .filter(|l| l.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|l| l.parse::<u64>().ok())
            .ok_or_else(|| RequestError::ContentLength(proxy, text(length)))?
    };
    if content_length > 0 {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(content_length));
    }
    if let Some(ct) = last("CONTENT_TYPE").filter(|c| !c.is_empty()) {
        let ct = HeaderValue::from_bytes(ct)
            .map_err(|_| RequestError::Header(proxy, "CONTENT_TYPE".into()))?;
        headers.insert(header::CONTENT_TYPE, ct);
    }

    let https_claimed = last("HTTPS").is_some_and(|v| {
        ["on", "1", "true", "yes"]
            .iter()
            .any(|t| v.eq_ignore_ascii_case(t.as_bytes()))
    }) || last("REQUEST_SCHEME")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"https"))
        || last("UWSGI_SCHEME").is_some_and(|v| v.eq_ignore_ascii_case(b"https"));
    let given = |name: &str| last(name).filter(|v| !v.is_empty()).map(<[u8]>::to_vec);
    gateway.script_name = script_name;
    gateway.path_info = path_info;
    gateway.remote_addr = given("REMOTE_ADDR");
    gateway.remote_port = given("REMOTE_PORT");
    gateway.server_name = given("SERVER_NAME");
    gateway.server_port = given("SERVER_PORT");
    gateway.server_protocol = given("SERVER_PROTOCOL");
    gateway.request_uri = given("REQUEST_URI");
    gateway.https = https_claimed && trusted;
    Ok(Head {
        method,
        uri,
        version,
        headers,
        content_length,
        gateway,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(trusted: bool) -> Reading {
        Reading {
            proxy: Proxy::Uwsgi,
            strip_script_name: false,
            trusted,
        }
    }

    fn nginx(extra: &[(&'static str, &'static str)]) -> Vec<(&'static [u8], &'static [u8])> {
        let mut v: Vec<(&[u8], &[u8])> = vec![
            (b"QUERY_STRING", b"a=1&b=%C3%A9"),
            (b"REQUEST_METHOD", b"POST"),
            (b"CONTENT_TYPE", b"text/plain"),
            (b"CONTENT_LENGTH", b"5"),
            (b"REQUEST_URI", b"/caf%C3%A9/x?a=1&b=%C3%A9"),
            (b"PATH_INFO", "/café/x".as_bytes()),
            (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
            (b"REMOTE_ADDR", b"203.0.113.9"),
            (b"REMOTE_PORT", b"51000"),
            (b"SERVER_PORT", b"8080"),
            (b"SERVER_NAME", b"example.com"),
            (b"HTTP_HOST", b"example.com:8080"),
            (b"HTTP_CONTENT_LENGTH", b"5"),
            (b"HTTP_X_TRACE", b"1"),
            (b"HTTP_X_TRACE", b"2"),
        ];
        v.extend(extra.iter().map(|(k, val)| (k.as_bytes(), val.as_bytes())));
        v
    }

    #[test]
    fn nginx_params_become_a_head_and_gateway_variables() {
        let h = head(&nginx(&[]), read(false)).unwrap();
        assert_eq!(h.method, Method::POST);
        assert_eq!(h.uri, "/caf%C3%A9/x?a=1&b=%C3%A9");
        assert_eq!(h.version, Version::HTTP_11);
        assert_eq!(h.content_length, 5);
        assert_eq!(h.headers[header::CONTENT_LENGTH], "5");
        assert_eq!(h.headers.get_all(header::CONTENT_LENGTH).iter().count(), 1);
        assert_eq!(h.headers[header::CONTENT_TYPE], "text/plain");
        assert_eq!(h.headers[header::HOST], "example.com:8080");
        assert_eq!(h.headers.get_all("x-trace").iter().count(), 2);
        let g = &h.gateway;
        assert_eq!(g.path_info.as_deref(), Some("/café/x".as_bytes()));
        assert_eq!(g.remote_addr.as_deref(), Some(&b"203.0.113.9"[..]));
        assert_eq!(g.server_name.as_deref(), Some(&b"example.com"[..]));
        assert_eq!(
            g.extra,
            vec![(
                "DOCUMENT_ROOT".to_owned(),
                b"/usr/share/nginx/html".to_vec()
            )]
        );
        assert!(!g.https);
    }

    #[test]
    fn https_counts_only_from_a_trusted_peer() {
        let vars = nginx(&[("HTTPS", "on")]);
        assert!(head(&vars, read(true)).unwrap().gateway.https);
        let untrusted = head(&vars, read(false)).unwrap().gateway;
        assert!(!untrusted.https);
        assert!(untrusted.extra.iter().all(|(k, _)| k != "HTTPS"));
        let scheme = nginx(&[("REQUEST_SCHEME", "https")]);
        assert!(head(&scheme, read(true)).unwrap().gateway.https);
    }

    #[test]
    fn modifier1_30_strips_script_name_from_path_info() {
        let vars: Vec<(&[u8], &[u8])> = vec![
            (b"REQUEST_METHOD", b"GET"),
            (b"SCRIPT_NAME", b"/app"),
            (b"PATH_INFO", b"/app/env"),
        ];
        let h = head(
            &vars,
            Reading {
                strip_script_name: true,
                ..read(false)
            },
        )
        .unwrap();
        assert_eq!(h.gateway.path_info.as_deref(), Some(&b"/env"[..]));
        assert_eq!(h.uri, "/app/env");
        let h = head(&vars, read(false)).unwrap();
        assert_eq!(h.gateway.path_info.as_deref(), Some(&b"/app/env"[..]));
    }

    #[test]
    fn fastcgi_params_alone_mean_an_app_at_the_root() {
        let fastcgi = |trusted| Reading {
            proxy: Proxy::FastCgi,
            ..read(trusted)
        };
        let vars: Vec<(&[u8], &[u8])> = vec![
            (b"REQUEST_METHOD", b"GET"),
            (b"SCRIPT_NAME", b"/a/b"),
            (b"DOCUMENT_URI", b"/a/b"),
            (b"REQUEST_URI", b"/a/b?x"),
        ];
        let g = head(&vars, fastcgi(false)).unwrap().gateway;
        assert_eq!(g.script_name, b"");
        assert_eq!(g.path_info.as_deref(), Some(&b"/a/b"[..]));
        // The same variables over uwsgi mean what they say.
        let g = head(&vars, read(false)).unwrap().gateway;
        assert_eq!(g.script_name, b"/a/b");
        // A SCRIPT_NAME that is a leading segment of the path is a prefix; one that is not is
        // left alone.
        let mut prefix = vars.clone();
        prefix[1] = (b"SCRIPT_NAME", b"/a");
        let g = head(&prefix, fastcgi(false)).unwrap().gateway;
        assert_eq!(g.script_name, b"/a");
        assert_eq!(g.path_info.as_deref(), Some(&b"/b"[..]));
        prefix[1] = (b"SCRIPT_NAME", b"/a/");
        prefix[2] = (b"DOCUMENT_URI", b"/a/b");
        assert_eq!(
            head(&prefix, fastcgi(false)).unwrap().gateway.path_info,
            None
        );
        prefix[1] = (b"SCRIPT_NAME", b"/");
        assert_eq!(
            head(&prefix, fastcgi(false)).unwrap().gateway.path_info,
            None,
            "no segment boundary after '/'"
        );
        // An explicit split is kept.
        let mut split = vars.clone();
        split[1] = (b"SCRIPT_NAME", b"/a");
        split.push((b"PATH_INFO", b"/b"));
        let g = head(&split, fastcgi(false)).unwrap().gateway;
        assert_eq!(g.script_name, b"/a");
        assert_eq!(g.path_info.as_deref(), Some(&b"/b"[..]));
    }

    #[test]
    fn a_target_is_built_when_request_uri_is_missing() {
        let vars: Vec<(&[u8], &[u8])> = vec![
            (b"REQUEST_METHOD", b"GET"),
            (b"PATH_INFO", "/a b/é".as_bytes()),
            (b"QUERY_STRING", b"x=1"),
            (b"SERVER_PROTOCOL", b"HTTP/1.0"),
        ];
        let h = head(&vars, read(false)).unwrap();
        assert_eq!(h.uri, "/a%20b/%C3%A9?x=1");
        assert_eq!(h.version, Version::HTTP_10);
        assert_eq!(h.content_length, 0);
        assert!(h.headers.is_empty());
    }

    #[test]
    fn bad_variables_are_refused() {
        let no_method: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_URI", b"/")];
        assert!(matches!(
            head(&no_method, read(false)),
            Err(RequestError::Method(..))
        ));
        let bad_len = nginx(&[("CONTENT_LENGTH", "-1")]);
        assert!(matches!(
            head(&bad_len, read(false)),
            Err(RequestError::ContentLength(..))
        ));
        let bad_header: Vec<(&[u8], &[u8])> =
            vec![(b"REQUEST_METHOD", b"GET"), (b"HTTP_X", b"a\nb")];
        assert!(matches!(
            head(&bad_header, read(false)),
            Err(RequestError::Header(..))
        ));
    }
}
