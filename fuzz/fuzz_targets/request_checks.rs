//! The checks on a parsed head (`segue::http::validate`, `segue::http::host`), on heads built
//! from raw bytes the way hyper builds them.
//!
//! Input: a limits byte, then a request head. Invariants:
//! - `is_host` agrees with an RFC 3986 `host [":" port]` matcher written apart from it (on the
//!   Host value, and on the raw input as a candidate);
//! - whatever `validate::check` lets through obeys every rule it stands for: no CONNECT, `*`
//!   only with OPTIONS, no authority-form, an ASCII target, at most one Host and a valid one
//!   (or the absolute-form's authority), a Host for HTTP/1.1, and the size limits;
//! - it never panics, whatever hyper would hand it.
#![cfg_attr(feature = "libfuzzer", no_main)]

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use segue::config::Limits;
use segue::http::host::is_host;
use segue::http::validate;

segue_fuzz::fuzz_target!(|data| {
    let Some((&limits_byte, head)) = data.split_first() else {
        return;
    };
    assert_eq!(
        is_host(head),
        rfc3986_host(head),
        "is_host({:?})",
        String::from_utf8_lossy(head)
    );
    let Some((method, uri, version, headers)) = parse_like_hyper(head) else {
        return;
    };
    for host in headers.get_all(http::header::HOST) {
        let v = host.as_bytes();
        assert_eq!(
            is_host(v),
            rfc3986_host(v),
            "is_host({:?})",
            String::from_utf8_lossy(v)
        );
    }
    let limits = Limits {
        request_line: 16 + usize::from(limits_byte & 0x3f) * 64,
        request_fields: 1 + usize::from(limits_byte >> 6) * 8,
        request_field_size: 8190,
        request_body: Some(100),
        head: None,
    };
    if validate::check(&method, &uri, version, &headers, &limits).is_err() {
        return;
    }
    assert_ne!(method, Method::CONNECT);
    match (uri.scheme(), uri.authority()) {
        (None, None) if uri.path() == "*" => assert_eq!(method, Method::OPTIONS),
        (None, None) => {}
        (Some(_), Some(a)) => assert!(rfc3986_host(a.as_str().as_bytes()), "authority {a}"),
        (None, Some(a)) => panic!("authority-form {a} let through"),
        (Some(_), None) => unreachable!("http::Uri has no scheme without authority"),
    }
    assert!(
        uri.path_and_query().is_none_or(|pq| pq.as_str().is_ascii()),
        "{uri}"
    );
    let hosts: Vec<&HeaderValue> = headers.get_all(http::header::HOST).iter().collect();
    assert!(hosts.len() <= 1, "{hosts:?}");
    if let Some(host) = hosts.first() {
        assert!(rfc3986_host(host.as_bytes()), "{host:?}");
    } else if version == Version::HTTP_11 {
        assert!(
            uri.authority().is_some(),
            "HTTP/1.1 without Host let through"
        );
    }
    assert!(headers.len() <= limits.request_fields);
});

/// The head as hyper hands it to the service: `None` where httparse or the http types refuse it.
fn parse_like_hyper(head: &[u8]) -> Option<(Method, Uri, Version, HeaderMap)> {
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut fields);
    let httparse::Status::Complete(_) = req.parse(head).ok()? else {
        return None;
    };
    let method = Method::from_bytes(req.method?.as_bytes()).ok()?;
    let uri = Uri::try_from(req.path?.as_bytes()).ok()?;
    let version = if req.version? == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let mut headers = HeaderMap::new();
    for h in req.headers.iter() {
        headers.append(
            HeaderName::from_bytes(h.name.as_bytes()).ok()?,
            HeaderValue::from_bytes(h.value).ok()?,
        );
    }
    Some((method, uri, version, headers))
}

/// RFC 3986 `host [":" port]`, matched from the right: a port after the last colon outside
/// brackets, then an IP literal or a reg-name.
fn rfc3986_host(v: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    let (host, port) = match s.rfind(':') {
        Some(i) if !s[i..].contains(']') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    };
    if port.is_some_and(|p| !p.chars().all(|c| c.is_ascii_digit())) {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[') {
        let Some(inner) = inner.strip_suffix(']') else {
            return false;
        };
        if let Some(future) = inner.strip_prefix(['v', 'V']) {
            let Some((ver, text)) = future.split_once('.') else {
                return false;
            };
            return !ver.is_empty()
                && ver.chars().all(|c| c.is_ascii_hexdigit())
                && !text.is_empty()
                && text
                    .chars()
                    .all(|c| unreserved(c) || sub_delim(c) || c == ':');
        }
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    // reg-name: every '%' starts a two-digit escape; every other char is allowed as is.
    let mut chars = host.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let (a, b) = (chars.next(), chars.next());
            if !a.is_some_and(|a| a.is_ascii_hexdigit())
                || !b.is_some_and(|b| b.is_ascii_hexdigit())
            {
                return false;
            }
        } else if !(unreserved(c) || sub_delim(c)) {
            return false;
        }
    }
    true
}

fn unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~".contains(c)
}

fn sub_delim(c: char) -> bool {
    "!$&'()*+,;=".contains(c)
}
