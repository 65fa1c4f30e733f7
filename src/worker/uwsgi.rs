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

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;

use super::acceptor::Held;
use super::drain::{ConnState, DrainWatch, IDLE_GRACE};
use super::service::{Service, Shared};
use super::socket::{HeadStyle, LengthBody, Sock, Writer, response_head};
use crate::gateway::request::{self, Proxy, Reading, RequestError};
use crate::http::body::ResponseBody;
use crate::http::sendfile::FileQueue;
use crate::uwsgi::packet::{self, HEADER_LEN, Header, MODIFIER_STRIP_SCRIPT_NAME, PacketError};
use crate::wsgi::{Local, Peer};

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
    (local, listener): (Local, usize),
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
                listener,
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
                sock.linger().await;
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
    let limit = crate::gateway::variables_limit(&shared.config.limits);
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
    Ok(request::head(
        &vars,
        Reading {
            proxy: Proxy::Uwsgi,
            strip_script_name: header.modifier1 == MODIFIER_STRIP_SCRIPT_NAME,
            trusted,
        },
    )?)
}

async fn write_response(
    sock: &Arc<Sock>,
    response: http::Response<ResponseBody>,
    files: &FileQueue,
    head_request: bool,
) -> io::Result<()> {
    let (parts, mut body) = response.into_parts();
    // Without a Content-Length the close ends the body, as with uWSGI.
    let (head, has_body) = response_head(HeadStyle::StatusLine, &parts, &body, head_request);
    let mut writer = Writer(sock.clone());
    let mut pending = vec![Bytes::from(head)];
    if has_body {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| io::Error::other(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                pending.push(data);
                writer.write_all_bufs(&mut pending, files).await?;
            }
        }
    }
    writer.write_all_bufs(&mut pending, files).await?;
    // Dropping the body counts the request as finished (before the linger).
    drop(body);
    sock.shutdown_write()
}
