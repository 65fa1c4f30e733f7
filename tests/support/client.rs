//! Raw HTTP/1.1 over loopback: one response at a time (`Conn`), or one request per
//! connection (`get`, `exchange`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::*;

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body came chunked.
    pub chunked: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A client connection that reads responses one at a time (keep-alive, pipelining).
pub struct Conn {
    pub(super) reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
        Conn {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.reader.get_mut().write_all(raw).unwrap();
    }

    pub fn set_read_timeout(&mut self, t: Duration) {
        self.reader.get_mut().set_read_timeout(Some(t)).unwrap();
    }

    /// Bounds each write, so a test uploading to a server that stopped reading fails instead of
    /// hanging.
    pub fn set_write_timeout(&mut self, t: Duration) {
        self.reader.get_mut().set_write_timeout(Some(t)).unwrap();
    }

    /// Reads one response; `head` says the request was HEAD (no body follows).
    pub fn read_response(&mut self, head: bool) -> Response {
        self.try_read_response(head)
            .unwrap_or_else(|e| panic!("reading response: {e}"))
    }

    pub fn try_read_response(&mut self, head: bool) -> Result<Response, String> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before a response".into());
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_string();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let reason = parts.next().unwrap_or("").to_string();
        let mut headers = vec![];
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).map_err(|e| e.to_string())?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| format!("bad header {h:?}"))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let mut resp = Response {
            version,
            status,
            reason,
            headers,
            body: vec![],
            chunked: false,
        };
        if head || status < 200 || status == 204 || status == 304 {
            return Ok(resp);
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            resp.chunked = true;
            loop {
                let mut size = String::new();
                self.reader
                    .read_line(&mut size)
                    .map_err(|e| e.to_string())?;
                let size = usize::from_str_radix(size.trim(), 16).map_err(|_| {
                    format!(
                        "bad chunk size {size:?} (body so far {:?})",
                        String::from_utf8_lossy(&resp.body)
                    )
                })?;
                let mut chunk = vec![0; size + 2];
                self.reader
                    .read_exact(&mut chunk)
                    .map_err(|e| format!("chunk: {e}"))?;
                if size == 0 {
                    break;
                }
                resp.body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().map_err(|_| "bad content-length")?;
            let mut body = vec![0; len];
            self.reader
                .read_exact(&mut body)
                .map_err(|e| format!("body: {e}"))?;
            resp.body = body;
        } else {
            self.reader
                .read_to_end(&mut resp.body)
                .map_err(|e| e.to_string())?;
        }
        Ok(resp)
    }

    /// Reads whatever arrives next, at most `max` bytes.
    pub fn read_some(&mut self, max: usize) -> Vec<u8> {
        let mut buf = vec![0; max];
        let n = self.reader.read(&mut buf).unwrap_or(0);
        buf.truncate(n);
        buf
    }

    /// One read into `buf`; 0 at EOF or on error.
    pub fn read_raw(&mut self, buf: &mut [u8]) -> usize {
        self.reader.read(buf).unwrap_or(0)
    }

    /// True if the server closed the connection (EOF) within the read timeout.
    pub fn closed_by_server(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
            || matches!(self.reader.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
    }
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    let mut c = Conn::open(addr);
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    c.read_response(false)
}

/// Sends `raw` and returns everything the server sends until it closes.
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut c = Conn::open(addr);
    c.send(raw);
    let mut out = vec![];
    let _ = c.reader.read_to_end(&mut out);
    out
}

/// The status code of the first response in `raw`.
pub fn status_of(raw: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(raw);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

/// `GET path` on a fresh connection, reporting failures instead of panicking.
pub fn try_get(addr: SocketAddr, path: &str) -> Result<Response, String> {
    try_get_within(addr, path, EVENT_TIMEOUT)
}

/// `GET path` on a fresh connection whose every read gives up after `timeout`.
pub fn try_get_within(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut c = Conn {
        reader: BufReader::new(stream),
    };
    c.reader
        .get_mut()
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .map_err(|e| format!("send: {e}"))?;
    c.try_read_response(false)
}
