//! RFC 9112 checks that hyper's parser does not make, and the configured size limits.
//!
//! hyper (via httparse) already answers 400 for malformed request lines, invalid header names,
//! whitespace before a colon, obs-fold, invalid or conflicting Content-Length and bad chunk
//! sizes. It accepts, and so this module rejects: a 1.1 request without Host, several Host
//! fields, a Host that is not `host[:port]` ([`super::host`]); CONNECT (segue is no proxy:
//! 501); request targets in a form the method does not allow (RFC 9112 section 3.2: `*` only
//! for OPTIONS, `host:port` only for CONNECT) or with bytes outside ASCII. What hyper
//! normalises away before we see the head (bare LF line ends, Content-Length together with
//! Transfer-Encoding, ...) is judged on the raw bytes by [`super::framing`].

use http::{HeaderMap, Method, StatusCode, Uri, Version, header};

use super::host::is_host;
use crate::config::Limits;

/// A request refused before the app sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The status to answer with.
    pub status: StatusCode,
    /// A one-line reason, sent as the body and logged at debug level.
    pub reason: &'static str,
}

fn reject(status: StatusCode, reason: &'static str) -> Result<(), Rejection> {
    Err(Rejection { status, reason })
}

/// Checks a request head against RFC 9112 and the limits.
pub fn check(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
    limits: &Limits,
) -> Result<(), Rejection> {
    if method == Method::CONNECT {
        return reject(
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT is not supported (segue serves one app; it is not a proxy)",
        );
    }
    check_target(method, uri)?;
    // "GET " + target + " HTTP/1.1"
    let target_len = uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| {
            a.as_str().len() + uri.scheme_str().map_or(0, str::len) + 3
        });
    if method.as_str().len() + 1 + target_len + 9 > limits.request_line {
        return reject(StatusCode::URI_TOO_LONG, "request line too long");
    }
    if headers.len() > limits.request_fields {
        return reject(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too many header fields",
        );
    }
    if headers
        .iter()
        .any(|(name, value)| name.as_str().len() + 2 + value.len() > limits.request_field_size)
    {
        return reject(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "header field too large",
        );
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => {
            return reject(StatusCode::BAD_REQUEST, "more than one Host header");
        }
        (Some(host), None) if !is_host(host.as_bytes()) => {
            return reject(
                StatusCode::BAD_REQUEST,
                "invalid Host header (expected host[:port], e.g. example.com:8080 or [::1])",
            );
        }
        (None, _) if version == Version::HTTP_11 && uri.authority().is_none() => {
            return reject(
                StatusCode::BAD_REQUEST,
                "HTTP/1.1 request without Host header",
            );
        }
        _ => {}
    }
    if let (Some(limit), Some(len)) = (limits.request_body, content_length(headers)) {
        if len > limit {
            return reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body larger than --limit-request-body",
            );
        }
    }
    Ok(())
}

/// The request-target's form against the method (RFC 9112 section 3.2), and its bytes.
fn check_target(method: &Method, uri: &Uri) -> Result<(), Rejection> {
    match (uri.scheme(), uri.authority()) {
        // absolute-form: its authority stands in for Host, so it obeys Host's grammar (no
        // userinfo either: RFC 9110 section 4.2.4).
        (Some(_), Some(authority)) if !is_host(authority.as_str().as_bytes()) => {
            return reject(
                StatusCode::BAD_REQUEST,
                "invalid host in the absolute-form request target (expected host[:port])",
            );
        }
        // authority-form: only for CONNECT, which is refused before.
        (None, Some(_)) => {
            return reject(
                StatusCode::BAD_REQUEST,
                "authority-form request target (host:port) is only for CONNECT",
            );
        }
        (None, None) if uri.path() == "*" && method != Method::OPTIONS => {
            return reject(
                StatusCode::BAD_REQUEST,
                "the * request target is only for OPTIONS",
            );
        }
        _ => {}
    }
    if !uri.path_and_query().is_none_or(|pq| pq.as_str().is_ascii()) {
        return reject(
            StatusCode::BAD_REQUEST,
            "request target with bytes outside ASCII (percent-encode them)",
        );
    }
    Ok(())
}

/// The declared body length, if there is exactly one valid Content-Length.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Whether the request has a body to read at all (framing per RFC 9112 section 6.3).
pub fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || content_length(headers).is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            request_line: 100,
            request_fields: 3,
            request_field_size: 50,
            request_body: Some(10),
            head: None,
        }
    }

    fn run(version: Version, uri: &str, hs: &[(&str, &str)]) -> Result<(), StatusCode> {
        run_method(Method::GET, version, uri, hs)
    }

    fn run_method(
        method: Method,
        version: Version,
        uri: &str,
        hs: &[(&str, &str)],
    ) -> Result<(), StatusCode> {
        let mut headers = HeaderMap::new();
        for (k, v) in hs {
            headers.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        check(&method, &uri.parse().unwrap(), version, &headers, &limits()).map_err(|r| r.status)
    }

    #[test]
    fn host_rules() {
        assert_eq!(
            run(Version::HTTP_11, "/", &[]),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(run(Version::HTTP_10, "/", &[]), Ok(()));
        assert_eq!(run(Version::HTTP_11, "http://a.example/x", &[]), Ok(()));
        assert_eq!(
            run(Version::HTTP_11, "/", &[("host", "a"), ("host", "b")]),
            Err(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn declared_body_over_the_limit_is_413() {
        let host = ("host", "a");
        assert_eq!(
            run(Version::HTTP_11, "/", &[host, ("content-length", "11")]),
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        );
        assert_eq!(
            run(Version::HTTP_11, "/", &[host, ("content-length", "10")]),
            Ok(())
        );
    }

    #[test]
    fn limits_map_to_414_and_431() {
        let long = format!("/{}", "a".repeat(100));
        assert_eq!(
            run(Version::HTTP_11, &long, &[("host", "a")]),
            Err(StatusCode::URI_TOO_LONG)
        );
        assert_eq!(
            run(
                Version::HTTP_11,
                "/",
                &[("host", "a"), ("a", "1"), ("b", "1"), ("c", "1")]
            ),
            Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        assert_eq!(
            run(
                Version::HTTP_11,
                "/",
                &[("host", "a"), ("x", &"v".repeat(60))]
            ),
            Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }

    #[test]
    fn an_invalid_host_is_400() {
        let h = |host| run(Version::HTTP_11, "/", &[("host", host)]);
        assert_eq!(h("a b c"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(h("u@a"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(h("[::1]:8080"), Ok(()));
        assert_eq!(h(""), Ok(()));
    }

    #[test]
    fn target_forms_follow_the_method() {
        let host = [("host", "a")];
        let go = |m: Method, uri| run_method(m, Version::HTTP_11, uri, &host);
        assert_eq!(go(Method::OPTIONS, "*"), Ok(()));
        assert_eq!(go(Method::GET, "*"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(
            go(Method::GET, "example.com:80"),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            go(Method::CONNECT, "example.com:443"),
            Err(StatusCode::NOT_IMPLEMENTED)
        );
        assert_eq!(go(Method::CONNECT, "/"), Err(StatusCode::NOT_IMPLEMENTED));
        assert_eq!(go(Method::GET, "http://[::1]:8080/x"), Ok(()));
        assert_eq!(
            go(Method::GET, "http://u@a/x"),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(go(Method::GET, "/caf\u{e9}"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(go(Method::GET, "/?q=\u{e9}"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(go(Method::GET, "/caf%C3%A9?q=%C3%A9"), Ok(()));
    }
}
