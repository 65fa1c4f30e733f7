//! Serving a connection of a uwsgi listener (`--socket`, nginx's `uwsgi_pass`): one request per
//! connection, as nginx uses it. The packet is read under strict limits, its variables become
//! an HTTP request for the same service HTTP connections use (validation, the Python pool,
//! harakiri, the body pump), and the response goes back as uWSGI writes it: an HTTP/1.1 status
//! line and header fields, then the body, ended by closing the connection.
//!
//! Drain: the acceptor stops exactly as for HTTP listeners. A connection already accepted is
//! always served; one whose packet has not started to arrive is given the same grace as an
//! idle HTTP keep-alive connection ([`IDLE_GRACE`]) before it is closed, so a request already
//! in the kernel's buffer is never dropped.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{HeaderMap, Method, StatusCode, header};
use http_body::Body;
use http_body_util::BodyExt;

use super::acceptor::Held;
use super::drain::{ConnState, DrainWatch, IDLE_GRACE};
use super::service::{Service, Shared};
use super::socket::{LengthBody, Sock, Writer};
use crate::config::Limits;
use crate::http::body::ResponseBody;
use crate::http::sendfile::{self, FileQueue};
use crate::uwsgi::packet::{self, HEADER_LEN, Header, MAX_VARS, PacketError};
use crate::uwsgi::request::{self, RequestError};
use crate::wsgi::{Local, Peer};

/// The least `--buffer-size` counts for on a uwsgi listener: uWSGI's own default, which
/// nginx's default parameters fit.
const MIN_VARS: usize = 4096;

/// How long a closing connection still reads (and discards) what the client sends, so that
/// unread request bytes do not turn the close into a reset that destroys the response.
const LINGER: Duration = Duration::from_secs(1);

/// The largest variables block a uwsgi listener accepts: the protocol's 65535 bytes, or
/// `--buffer-size` (at least [`MIN_VARS`]) when set, as in uWSGI.
pub fn vars_limit(limits: &Limits) -> usize {
    limits
        .head
        .map_or(MAX_VARS, |h| h.clamp(MIN_VARS, MAX_VARS))
}

/// Why a connection ended without a request being served.
#[derive(Debug, thiserror::Error)]
enum Refused {
    /// Closed before sending a byte (or closed during the drain's grace period).
    #[error("closed before sending a request")]
    Idle,
    /// Nothing complete within `--header-timeout`.
    #[error("no complete uwsgi packet within {0:?} (--header-timeout)")]
    Timeout(Duration),
    /// The socket failed, or the client closed mid-packet.
    #[error("reading the uwsgi packet failed: {0}")]
    Io(#[from] io::Error),
    /// The header or the variables are malformed.
    #[error(transparent)]
    Packet(#[from] PacketError),
    /// The variables do not describe a servable request.
    #[error(transparent)]
    Request(#[from] RequestError),
}

/// Serves the one request of a uwsgi connection, then closes it.
pub async fn serve_connection(
    sock: Sock,
    // Held until the connection ends: this worker's count, for its limit and the scoreboard.
    _held: Held,
    peer: Peer,
    local: Local,
    shared: Arc<Shared>,
    mut watch: DrainWatch,
) {
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
    let sock = Arc::new(sock);
    match read_request(&sock, &peer, &shared, &mut watch).await {
        Ok(head) => {
            let method = head.method.clone();
            let files = Arc::new(FileQueue::default());
            let service = Service {
                shared: shared.clone(),
                conn: Arc::new(ConnState::default()),
                files: files.clone(),
                drain: watch.clone(),
                peer: peer.clone(),
                local,
            };
            let mut req = http::Request::new(LengthBody::new(sock.clone(), head.content_length));
            *req.method_mut() = head.method;
            *req.uri_mut() = head.uri;
            *req.version_mut() = head.version;
            *req.headers_mut() = head.headers;
            req.extensions_mut().insert(head.gateway);
            let response = match hyper::service::Service::call(&service, req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            if let Err(e) = write_response(&sock, response, &files, method == Method::HEAD).await {
                tracing::debug!("uwsgi response to {peer:?} cut short: {e}");
            } else {
                linger(&sock).await;
            }
        }
        Err(Refused::Idle) => {}
        Err(e) => tracing::warn!("uwsgi connection from {peer:?} closed: {e}"),
    }
    shared.counters.connections.fetch_sub(1, Ordering::Relaxed);
}

/// Reads the packet (bounded in size and time, with the drain's grace) and makes it a request.
async fn read_request(
    sock: &Sock,
    peer: &Peer,
    shared: &Shared,
    watch: &mut DrainWatch,
) -> Result<request::Head, Refused> {
    let limit = vars_limit(&shared.config.limits);
    let got = AtomicUsize::new(0);
    let reading = async {
        let mut header = [0u8; HEADER_LEN];
        match sock.read_exact(&mut header, &got).await {
            Err(e)
                if e.kind() == io::ErrorKind::UnexpectedEof && got.load(Ordering::Relaxed) == 0 =>
            {
                return Err(Refused::Idle);
            }
            r => r?,
        }
        let header = Header::parse(header, limit)?;
        let mut block = vec![0u8; header.datasize];
        sock.read_exact(&mut block, &got).await?;
        Ok::<_, Refused>((header, block))
    };
    tokio::pin!(reading);
    let timeout = shared.config.header_timeout;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut grace = None;
    let (header, block) = loop {
        tokio::select! {
            r = &mut reading => break r?,
            _ = &mut deadline => return Err(Refused::Timeout(timeout)),
            _ = watch.started(), if grace.is_none() => {
                grace = Some(tokio::time::Instant::now() + IDLE_GRACE);
            }
            _ = tokio::time::sleep_until(grace.unwrap_or_else(tokio::time::Instant::now)), if grace.is_some() => {
                if got.load(Ordering::Relaxed) == 0 {
                    return Err(Refused::Idle);
                }
                // The packet has started: it is served whatever the drain.
                grace = Some(tokio::time::Instant::now() + timeout);
            }
        }
    };
    let vars = packet::parse_vars(&block)?;
    let trusted = shared.config.forwarded_allow_ips.trusts(peer);
    Ok(request::head(&vars, header.modifier1, trusted)?)
}

/// Whether a response with this status has no body (RFC 9110 section 6.4.1).
fn bodiless(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// The status line and header fields, as uWSGI writes them for nginx to parse.
fn head_bytes(
    status: StatusCode,
    reason: Option<&[u8]>,
    headers: &HeaderMap,
    length: Option<u64>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(format!("HTTP/1.1 {} ", status.as_u16()).as_bytes());
    out.extend_from_slice(reason.unwrap_or(status.canonical_reason().unwrap_or("").as_bytes()));
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        // The connection closes after this response whatever these say.
        if name == header::CONNECTION || name.as_str() == "keep-alive" {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(n) = length {
        out.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

async fn write_response(
    sock: &Arc<Sock>,
    response: http::Response<ResponseBody>,
    files: &FileQueue,
    head_request: bool,
) -> io::Result<()> {
    let (parts, mut body) = response.into_parts();
    let no_body = head_request || bodiless(parts.status);
    // A body of known length gets a Content-Length unless the app gave one (then the body may
    // be inexact on purpose); otherwise the close ends it, as with uWSGI.
    let length = (!no_body && !parts.headers.contains_key(header::CONTENT_LENGTH))
        .then(|| body.size_hint().exact())
        .flatten();
    let reason = parts
        .extensions
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| r.as_bytes());
    let mut writer = Writer(sock.clone());
    let mut pending = vec![Bytes::from(head_bytes(
        parts.status,
        reason,
        &parts.headers,
        length,
    ))];
    if !no_body {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| io::Error::other(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                pending.push(data);
                write_all(&mut writer, &mut pending, files).await?;
            }
        }
    }
    write_all(&mut writer, &mut pending, files).await?;
    // Dropping the body counts the request as finished (before the linger).
    drop(body);
    sock.shutdown_write()
}

/// Writes every buffer of `bufs`, file placeholders with `sendfile`.
async fn write_all(
    writer: &mut Writer,
    bufs: &mut Vec<Bytes>,
    files: &FileQueue,
) -> io::Result<()> {
    bufs.retain(|b| !b.is_empty());
    while !bufs.is_empty() {
        let n = std::future::poll_fn(|cx| {
            let slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
            sendfile::poll_write_vectored(Pin::new(&mut *writer), cx, &slices, files)
        })
        .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut left = n;
        while left > 0 {
            let first = &mut bufs[0];
            let take = left.min(first.len());
            first.advance(take);
            left -= take;
            if first.is_empty() {
                bufs.remove(0);
            }
        }
    }
    Ok(())
}

/// Reads and discards what the client still sends until it closes or [`LINGER`] passes.
async fn linger(sock: &Sock) {
    let mut sink = vec![0u8; 16 << 10];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_written_as_uwsgi_does() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        h.insert(header::CONNECTION, "close".parse().unwrap());
        let bytes = head_bytes(StatusCode::OK, None, &h, Some(3));
        assert_eq!(
            bytes,
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\n"
        );
        let bytes = head_bytes(StatusCode::NOT_FOUND, Some(b"Gone Fishing"), &h, None);
        assert!(bytes.starts_with(b"HTTP/1.1 404 Gone Fishing\r\n"));
    }

    #[test]
    fn the_vars_limit_follows_buffer_size() {
        let mut limits = Limits {
            request_line: 8190,
            request_fields: 100,
            request_field_size: 8190,
            request_body: None,
            head: None,
        };
        assert_eq!(vars_limit(&limits), 65535);
        limits.head = Some(100);
        assert_eq!(vars_limit(&limits), 4096);
        limits.head = Some(32768);
        assert_eq!(vars_limit(&limits), 32768);
        limits.head = Some(1 << 20);
        assert_eq!(vars_limit(&limits), 65535);
    }
}
