//! A FastCGI client written from the specification, for what nginx never sends: several
//! requests on one connection by hand, FCGI_GET_VALUES, FCGI_ABORT_REQUEST, a second request
//! at once, other roles, malformed records.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;
pub const UNKNOWN_TYPE: u8 = 11;

/// One record, unpadded.
pub fn record(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    assert!(content.len() <= 65535);
    let mut r = vec![1, kind];
    r.extend_from_slice(&id.to_be_bytes());
    r.extend_from_slice(&(content.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0]);
    r.extend_from_slice(content);
    r
}

/// Name-value pairs.
pub fn pairs(vars: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = |n: usize, out: &mut Vec<u8>| {
        if n < 128 {
            out.push(n as u8);
        } else {
            out.extend_from_slice(&(n as u32 | 0x8000_0000).to_be_bytes());
        }
    };
    for (k, v) in vars {
        len(k.len(), &mut out);
        len(v.len(), &mut out);
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// `FCGI_BEGIN_REQUEST` for `role` (1: Responder).
pub fn begin(id: u16, role: u16, keep_conn: bool) -> Vec<u8> {
    let r = role.to_be_bytes();
    record(
        BEGIN_REQUEST,
        id,
        &[r[0], r[1], u8::from(keep_conn), 0, 0, 0, 0, 0],
    )
}

/// A whole Responder request: BEGIN, the params, the body in records of `chunk` bytes, and
/// both streams' empty records.
pub fn request(
    id: u16,
    keep_conn: bool,
    vars: &[(&str, &str)],
    body: &[u8],
    chunk: usize,
) -> Vec<u8> {
    let mut out = begin(id, 1, keep_conn);
    let p = pairs(vars);
    for piece in p.chunks(65535) {
        out.extend(record(PARAMS, id, piece));
    }
    out.extend(record(PARAMS, id, b""));
    for piece in body.chunks(chunk.max(1)) {
        out.extend(record(STDIN, id, piece));
    }
    out.extend(record(STDIN, id, b""));
    out
}

/// The CGI variables of a GET of `uri`, as nginx would send them.
pub fn get_vars(uri: &str) -> Vec<(&str, &str)> {
    let path = uri.split('?').next().unwrap();
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    vec![
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", uri),
        ("DOCUMENT_URI", path),
        ("SCRIPT_NAME", path),
        ("QUERY_STRING", query),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "fcgi-test"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "192.0.2.7"),
        ("HTTP_HOST", "fcgi-test"),
    ]
}

/// A record as read: type, request id, content.
pub type Record = (u8, u16, Vec<u8>);

/// A connection to a FastCGI listener.
pub struct Client {
    pub stream: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next record, or `None` when the server closed the connection.
    pub fn record(&mut self) -> Option<Record> {
        let mut head = [0u8; 8];
        if self.stream.read_exact(&mut head).is_err() {
            return None;
        }
        assert_eq!(head[0], 1, "version byte of a record from segue");
        let id = u16::from_be_bytes([head[2], head[3]]);
        let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
        let mut content = vec![0u8; len + usize::from(head[6])];
        self.stream.read_exact(&mut content).unwrap();
        content.truncate(len);
        Some((head[1], id, content))
    }

    /// Reads request `id`'s response: its STDOUT stream and its END_REQUEST's app and protocol
    /// statuses (`None` if the connection closed first). Other records go to `others`.
    pub fn response(&mut self, id: u16, others: &mut Vec<Record>) -> (Vec<u8>, Option<(u32, u8)>) {
        let mut stdout = Vec::new();
        let mut stdout_ended = false;
        while let Some((kind, rid, content)) = self.record() {
            match kind {
                STDOUT if rid == id => {
                    assert!(!stdout_ended, "STDOUT after its empty record");
                    if content.is_empty() {
                        stdout_ended = true;
                    }
                    stdout.extend(content);
                }
                END_REQUEST if rid == id => {
                    let app = u32::from_be_bytes(content[..4].try_into().unwrap());
                    return (stdout, Some((app, content[4])));
                }
                _ => others.push((kind, rid, content)),
            }
        }
        (stdout, None)
    }

    /// Whether the server has closed the connection (reads EOF within the timeout).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0))
    }
}

/// Splits a CGI response into its status code, header lines and body.
pub fn split(stdout: &[u8]) -> (u16, Vec<String>, Vec<u8>) {
    let end = stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(stdout)));
    let head = String::from_utf8_lossy(&stdout[..end]).into_owned();
    let mut lines: Vec<String> = head.split("\r\n").map(str::to_owned).collect();
    let status = lines.remove(0);
    let code = status
        .strip_prefix("Status: ")
        .and_then(|s| s.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no Status line first: {status:?}"));
    (code, lines, stdout[end + 4..].to_vec())
}
