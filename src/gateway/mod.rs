//! What a gateway protocol (uwsgi, FastCGI) tells about a request beyond its HTTP
//! head: the CGI variables the front proxy computed (nginx's `SCRIPT_NAME`, `PATH_INFO`,
//! `REMOTE_ADDR`, ...). The connection's protocol layer builds it; it travels with the request
//! as an `http` extension, and the environ takes these values over the ones segue would derive
//! from the HTTP head, because the proxy saw the real client and the original URL.
//! [`request`] turns the variables into the head and these values, for every such protocol.

pub mod request;

pub use request::{Head, Proxy, Reading, RequestError};

use crate::config::Limits;

/// The largest variables block by default: the uwsgi protocol's 65535 bytes (its sizes are 16
/// bits), which FastCGI params are held to as well.
pub const MAX_VARIABLES: usize = u16::MAX as usize;

/// The least `--buffer-size` counts for: uWSGI's own default, which nginx's default
/// parameters fit.
const MIN_VARIABLES: usize = 4096;

/// The largest variables block (a uwsgi packet's, a FastCGI request's params) a listener
/// accepts: [`MAX_VARIABLES`], or `--buffer-size` (at least 4096) when set, as in uWSGI.
pub fn variables_limit(limits: &Limits) -> usize {
    limits
        .head
        .map_or(MAX_VARIABLES, |h| h.clamp(MIN_VARIABLES, MAX_VARIABLES))
}

/// CGI variables from a gateway, for the environ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gateway {
    /// `SCRIPT_NAME` as the proxy set it (a location prefix); the app's mount prefix, if any,
    /// is appended to it.
    pub script_name: Vec<u8>,
    /// `PATH_INFO` as the proxy set it (already decoded, under `script_name`); `None` derives
    /// it from the request target as for HTTP.
    pub path_info: Option<Vec<u8>>,
    /// `REMOTE_ADDR`: the proxy's client.
    pub remote_addr: Option<Vec<u8>>,
    /// `REMOTE_PORT`.
    pub remote_port: Option<Vec<u8>>,
    /// `SERVER_NAME`.
    pub server_name: Option<Vec<u8>>,
    /// `SERVER_PORT`.
    pub server_port: Option<Vec<u8>>,
    /// `SERVER_PROTOCOL` (nginx's client may have spoken HTTP/2).
    pub server_protocol: Option<Vec<u8>>,
    /// `REQUEST_URI` as the client sent it (raw bytes, possibly not a valid URI for segue).
    pub request_uri: Option<Vec<u8>>,
    /// The proxy says the client used HTTPS (`HTTPS=on`, `REQUEST_SCHEME=https`), and the
    /// connection is from a peer `--forwarded-allow-ips` trusts.
    pub https: bool,
    /// Other CGI variables (`DOCUMENT_ROOT`, `REMOTE_USER`, `HTTPS`, ...), passed to the
    /// environ as they are.
    pub extra: Vec<(String, Vec<u8>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variables_limit_follows_buffer_size() {
        let mut limits = Limits {
            request_line: 8190,
            request_fields: 100,
            request_field_size: 8190,
            request_body: None,
            head: None,
        };
        assert_eq!(variables_limit(&limits), 65535);
        limits.head = Some(100);
        assert_eq!(variables_limit(&limits), 4096);
        limits.head = Some(32768);
        assert_eq!(variables_limit(&limits), 32768);
        limits.head = Some(1 << 20);
        assert_eq!(variables_limit(&limits), 65535);
    }
}
