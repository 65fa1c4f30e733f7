//! Building the PEP 3333 environ for one request.
//!
//! Strings follow PEP 3333's "native string" rule: bytes from the wire become `str` by latin-1,
//! so every byte survives (PATH_INFO is percent-decoded first; QUERY_STRING stays raw). Header
//! fields with `_` in the name are dropped, because `X_User` and `X-User` would both map to
//! `HTTP_X_USER` and a client could spoof a header a proxy set.

use http::{HeaderMap, HeaderName, Method, Version, header};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::app::Mounted;
use super::input::Input;
use super::strings::Strings;
pub use super::strings::latin1;
use super::{Local, Peer, Request};
use crate::http::request_body::RequestBody;

/// Splits `host[:port]` (with `[v6]` literals) into name and port.
fn split_host(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let port = rest[end + 1..].strip_prefix(':');
            return (&host[..end + 2], port);
        }
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, Some(port)),
        _ => (host, None),
    }
}

/// A field's value for the environ: the bytes of a single value as they are, or all values
/// joined (`, `, or `; ` for Cookie).
fn joined<'a>(headers: &'a HeaderMap, name: &HeaderName) -> std::borrow::Cow<'a, [u8]> {
    let mut values = headers.get_all(name).iter();
    let first = values.next().map_or(&b""[..], |v| v.as_bytes());
    let Some(second) = values.next() else {
        return std::borrow::Cow::Borrowed(first);
    };
    let sep: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
    let mut out = first.to_vec();
    for v in std::iter::once(second).chain(values) {
        out.extend_from_slice(sep);
        out.extend_from_slice(v.as_bytes());
    }
    std::borrow::Cow::Owned(out)
}

/// The request path percent-decoded (borrowed when it has no `%`): what mounts are matched
/// against and `PATH_INFO` is cut from.
/// A gateway's `PATH_INFO` (nginx decoded it already) stands for the path when there is one.
pub fn decoded_path(request: &Request) -> std::borrow::Cow<'_, [u8]> {
    if let Some(path) = request
        .gateway
        .as_ref()
        .and_then(|g| g.path_info.as_deref())
    {
        return std::borrow::Cow::Borrowed(path);
    }
    percent_encoding::percent_decode(request.uri.path().as_bytes()).into()
}

/// What a gateway protocol computed replaces what segue derived from the head: nginx saw the
/// real client, the original target and its own `SCRIPT_NAME` (the app's mount prefix, if
/// any, goes after it).
fn apply_gateway(env: &Bound<'_, PyDict>, gateway: &crate::gateway::Gateway) -> PyResult<()> {
    use pyo3::intern;
    let py = env.py();
    if !gateway.script_name.is_empty() {
        let mount: String = match env.get_item(intern!(py, "SCRIPT_NAME"))? {
            Some(v) => v.extract()?,
            None => String::new(),
        };
        let mut name: String = gateway.script_name.iter().map(|&b| b as char).collect();
        name.push_str(&mount);
        env.set_item(intern!(py, "SCRIPT_NAME"), name)?;
    }
    let fields = [
        (intern!(py, "REQUEST_URI"), &gateway.request_uri),
        (intern!(py, "SERVER_PROTOCOL"), &gateway.server_protocol),
        (intern!(py, "SERVER_NAME"), &gateway.server_name),
        (intern!(py, "SERVER_PORT"), &gateway.server_port),
        (intern!(py, "REMOTE_ADDR"), &gateway.remote_addr),
        (intern!(py, "REMOTE_PORT"), &gateway.remote_port),
    ];
    for (key, value) in fields {
        if let Some(v) = value {
            env.set_item(key, latin1(py, v))?;
        }
    }
    if let Some(uri) = &gateway.request_uri {
        env.set_item(intern!(py, "RAW_URI"), latin1(py, uri))?;
    }
    for (key, value) in &gateway.extra {
        env.set_item(key.as_str(), latin1(py, value))?;
    }
    if gateway.https {
        env.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "https"))?;
    }
    Ok(())
}

/// `REQUEST_METHOD`: the common methods are one interned string each.
fn method<'py>(py: Python<'py>, method: &Method) -> Bound<'py, PyString> {
    use pyo3::intern;
    let known = match *method {
        Method::GET => intern!(py, "GET"),
        Method::POST => intern!(py, "POST"),
        Method::HEAD => intern!(py, "HEAD"),
        Method::PUT => intern!(py, "PUT"),
        Method::DELETE => intern!(py, "DELETE"),
        Method::PATCH => intern!(py, "PATCH"),
        Method::OPTIONS => intern!(py, "OPTIONS"),
        _ => return PyString::new(py, method.as_str()),
    };
    known.clone()
}

/// The environ for `request` to the app `mount`, whose `PATH_INFO` is `path_info` (the decoded
/// path after the mount's prefix); `body` becomes `wsgi.input`. `strings` holds the `str`
/// objects that repeat from request to request.
pub fn build<'py>(
    py: Python<'py>,
    strings: &Strings,
    mount: &Mounted,
    request: &Request,
    path_info: &[u8],
    body: Option<RequestBody>,
) -> PyResult<Bound<'py, PyDict>> {
    use pyo3::intern;
    let mut strings = strings.lock();
    let env = mount.base.bind(py).copy()?;
    env.set_item(intern!(py, "REQUEST_METHOD"), method(py, &request.method))?;

    let path = request.uri.path();
    env.set_item(intern!(py, "PATH_INFO"), latin1(py, path_info))?;
    match request.uri.query() {
        Some(query) if !query.is_empty() => env.set_item(intern!(py, "QUERY_STRING"), query)?,
        _ => env.set_item(intern!(py, "QUERY_STRING"), intern!(py, ""))?,
    }
    let raw_uri = request.uri.path_and_query().map_or(path, |pq| pq.as_str());
    let raw_uri = latin1(py, raw_uri.as_bytes());
    env.set_item(intern!(py, "RAW_URI"), &raw_uri)?;
    env.set_item(intern!(py, "REQUEST_URI"), &raw_uri)?;
    let protocol = match request.version {
        Version::HTTP_10 => intern!(py, "HTTP/1.0"),
        Version::HTTP_09 => intern!(py, "HTTP/0.9"),
        _ => intern!(py, "HTTP/1.1"),
    };
    env.set_item(intern!(py, "SERVER_PROTOCOL"), protocol)?;

    for name in request.headers.keys() {
        if name == header::HOST && request.uri.authority().is_some() {
            continue; // absolute-form: the target's authority wins (RFC 9112 section 3.2.2)
        }
        if let Some((key, value)) = strings.header(py, name, &joined(&request.headers, name)) {
            env.set_item(key, value)?;
        }
    }

    // Host: the absolute-form authority, else the Host field, else the listener's address.
    let host = match request.uri.authority() {
        Some(auth) => {
            env.set_item(intern!(py, "HTTP_HOST"), auth.as_str())?;
            Some(auth.as_str().to_owned())
        }
        None => request
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned),
    };
    let (server_name, server_port) = match (&host, &request.local) {
        (Some(h), _) => strings.server(py, h, request.https, split_host),
        (None, Local::Tcp(addr)) => (
            PyString::new(py, &addr.ip().to_string()),
            PyString::new(py, itoa::Buffer::new().format(addr.port())),
        ),
        (None, Local::Unix) => (intern!(py, "localhost").clone(), intern!(py, "0").clone()),
    };
    env.set_item(intern!(py, "SERVER_NAME"), server_name)?;
    env.set_item(intern!(py, "SERVER_PORT"), server_port)?;
    match &request.peer {
        Peer::Tcp(addr) => {
            env.set_item(intern!(py, "REMOTE_ADDR"), strings.remote_ip(py, addr.ip()))?;
            let mut port = itoa::Buffer::new();
            env.set_item(
                intern!(py, "REMOTE_PORT"),
                PyString::new(py, port.format(addr.port())),
            )?;
        }
        Peer::Unix => env.set_item(intern!(py, "REMOTE_ADDR"), intern!(py, ""))?,
    }
    if request.https {
        env.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "https"))?;
    }
    if let Some(gateway) = &request.gateway {
        apply_gateway(&env, gateway)?;
    }
    env.set_item(intern!(py, "wsgi.input"), Bound::new(py, Input::new(body))?)?;
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_values_are_borrowed_and_repeated_ones_joined() {
        let mut h = HeaderMap::new();
        h.append(header::ACCEPT, "a".parse().unwrap());
        assert!(matches!(
            joined(&h, &header::ACCEPT),
            std::borrow::Cow::Borrowed(b"a")
        ));
        h.append(header::ACCEPT, "b".parse().unwrap());
        h.append(header::COOKIE, "x=1".parse().unwrap());
        h.append(header::COOKIE, "y=2".parse().unwrap());
        assert_eq!(&*joined(&h, &header::ACCEPT), b"a, b");
        assert_eq!(&*joined(&h, &header::COOKIE), b"x=1; y=2");
    }

    #[test]
    fn host_splitting() {
        assert_eq!(
            split_host("example.com:8080"),
            ("example.com", Some("8080"))
        );
        assert_eq!(split_host("example.com"), ("example.com", None));
        assert_eq!(split_host("[::1]:81"), ("[::1]", Some("81")));
        assert_eq!(split_host("[::1]"), ("[::1]", None));
    }
}
