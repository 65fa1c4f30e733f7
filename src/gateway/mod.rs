//! What a gateway protocol (uwsgi, FastCGI) tells about a request beyond its HTTP
//! head: the CGI variables the front proxy computed (nginx's `SCRIPT_NAME`, `PATH_INFO`,
//! `REMOTE_ADDR`, ...). The connection's protocol layer builds it; it travels with the request
//! as an `http` extension, and the environ takes these values over the ones segue would derive
//! from the HTTP head, because the proxy saw the real client and the original URL.
//! [`request`] turns the variables into the head and these values, for every such protocol.

pub mod request;

pub use request::{Head, Proxy, Reading, RequestError};

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
