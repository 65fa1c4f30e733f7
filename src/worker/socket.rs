//! An accepted connection that two tasks use at once: the request body's pump reads it while
//! the response is written to it. hyper keeps both directions inside its own connection task;
//! a uwsgi or FastCGI connection is driven by segue itself, so both sides work through tokio's
//! readiness API on a shared socket instead of splitting it (a split half could not
//! `sendfile`). Also what those two protocols' writers share: vectored writes that carry file
//! placeholders, and the lingering close.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncWrite, Interest};

use crate::http::sendfile::{self, FileQueue, FileSink};

/// Most bytes of a request body read from the socket at once.
const BODY_READ: usize = 64 << 10;

/// How long a closing connection still reads (and discards) what the client sends, so that
/// unread request bytes do not turn the close into a reset that destroys the response.
pub const LINGER: Duration = Duration::from_secs(1);

/// Whether a response with this status has no body (RFC 9110 section 6.4.1).
fn bodiless(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// How a gateway protocol's response head starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadStyle {
    /// `HTTP/1.1 200 OK`, as uWSGI answers on a uwsgi socket.
    StatusLine,
    /// `Status: 200 OK`, as a CGI program answers (FastCGI).
    Cgi,
}

/// The head of a response as `style` writes it, and whether a body follows it (not for HEAD,
/// nor for a status without one). A body of known length gets a Content-Length unless the app
/// gave one (then the body may be inexact on purpose).
pub fn response_head(
    style: HeadStyle,
    parts: &http::response::Parts,
    body: &impl Body,
    head_request: bool,
) -> (Vec<u8>, bool) {
    let has_body = !head_request && !bodiless(parts.status);
    let length = (has_body && !parts.headers.contains_key(header::CONTENT_LENGTH))
        .then(|| body.size_hint().exact())
        .flatten();
    let reason = parts
        .extensions
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| r.as_bytes());
    (
        head_bytes(style, parts.status, reason, &parts.headers, length),
        has_body,
    )
}

fn head_bytes(
    style: HeadStyle,
    status: StatusCode,
    reason: Option<&[u8]>,
    headers: &HeaderMap,
    length: Option<u64>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let start = match style {
        HeadStyle::StatusLine => "HTTP/1.1",
        HeadStyle::Cgi => "Status:",
    };
    out.extend_from_slice(format!("{start} {} ", status.as_u16()).as_bytes());
    out.extend_from_slice(reason.unwrap_or(status.canonical_reason().unwrap_or("").as_bytes()));
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        // Hop-by-hop fields are the gateway's business (a uwsgi connection closes after this
        // response whatever they say); a CGI `Status` field would contradict the first line.
        if name == header::CONNECTION
            || name.as_str() == "keep-alive"
            || (style == HeadStyle::Cgi && name.as_str() == "status")
        {
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

/// A connection socket of either kind.
#[derive(Debug)]
pub enum Sock {
    /// A TCP client.
    Tcp(tokio::net::TcpStream),
    /// A unix-socket client.
    Unix(tokio::net::UnixStream),
}

impl Sock {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Sock::Tcp(s) => s.poll_read_ready(cx),
            Sock::Unix(s) => s.poll_read_ready(cx),
        }
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.try_read(buf),
            Sock::Unix(s) => s.try_read(buf),
        }
    }

    /// Reads what is there into `buf`, waiting until something is (0: the peer closed).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_read_ready(cx))?;
            match self.try_read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    /// Reads exactly `buf.len()` bytes; `got` counts them as they come, for the drain.
    pub async fn read_exact(
        &self,
        buf: &mut [u8],
        got: &std::sync::atomic::AtomicUsize,
    ) -> io::Result<()> {
        let mut at = 0;
        while at < buf.len() {
            match self.read(&mut buf[at..]).await? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => {
                    at += n;
                    got.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Ends the sending direction: the client reads the end of the response.
    pub fn shutdown_write(&self) -> io::Result<()> {
        socket2::SockRef::from(self).shutdown(std::net::Shutdown::Write)
    }

    /// Reads and discards what the client still sends until it closes or [`LINGER`] passes.
    pub async fn linger(&self) {
        let mut sink = vec![0u8; 16 << 10];
        let _ = tokio::time::timeout(LINGER, async {
            while matches!(self.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

impl AsRawFd for Sock {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Sock::Tcp(s) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl std::os::fd::AsFd for Sock {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Sock::Tcp(s) => s.as_fd(),
            Sock::Unix(s) => s.as_fd(),
        }
    }
}

/// The writing side of a shared [`Sock`], able to carry file bodies
/// ([`crate::http::sendfile`]).
#[derive(Debug, Clone)]
pub struct Writer(pub Arc<Sock>);

impl Writer {
    /// Writes every buffer of `bufs` (emptying it), file placeholders with `sendfile`.
    pub async fn write_all_bufs(
        &mut self,
        bufs: &mut Vec<Bytes>,
        files: &FileQueue,
    ) -> io::Result<()> {
        bufs.retain(|b| !b.is_empty());
        while !bufs.is_empty() {
            let n = std::future::poll_fn(|cx| {
                let slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
                sendfile::poll_write_vectored(Pin::new(&mut *self), cx, &slices, files)
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
}

impl AsRawFd for Writer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(FileSink::poll_write_ready(&*self, cx))?;
            let r = match &*self.0 {
                Sock::Tcp(s) => s.try_write_vectored(bufs),
                Sock::Unix(s) => s.try_write_vectored(bufs),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.shutdown_write())
    }
}

impl FileSink for Writer {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &*self.0 {
            Sock::Tcp(s) => s.poll_write_ready(cx),
            Sock::Unix(s) => s.poll_write_ready(cx),
        }
    }

    fn try_write_with<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match &*self.0 {
            Sock::Tcp(s) => s.try_io(Interest::WRITABLE, f),
            Sock::Unix(s) => s.try_io(Interest::WRITABLE, f),
        }
    }
}

/// A request body of known length read straight from the socket: what follows a uwsgi packet.
#[derive(Debug)]
pub struct LengthBody {
    sock: Arc<Sock>,
    remaining: u64,
}

impl LengthBody {
    /// The next `len` bytes of `sock`.
    pub fn new(sock: Arc<Sock>, len: u64) -> Self {
        LengthBody {
            sock,
            remaining: len,
        }
    }
}

impl Body for LengthBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining)
            .unwrap_or(usize::MAX)
            .min(BODY_READ);
        let mut buf = BytesMut::zeroed(want);
        let n = match ready!(this.sock.poll_read(cx, &mut buf)) {
            Ok(0) => {
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the client closed the connection {} bytes before the end of the body",
                        this.remaining
                    ),
                ))));
            }
            Ok(n) => n,
            Err(e) => return Poll::Ready(Some(Err(e))),
        };
        this.remaining -= n as u64;
        buf.truncate(n);
        Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_written_as_uwsgi_and_cgi_programs_do() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        h.insert(header::CONNECTION, "close".parse().unwrap());
        h.insert("status", "500".parse().unwrap());
        let bytes = head_bytes(HeadStyle::StatusLine, StatusCode::OK, None, &h, Some(3));
        assert_eq!(
            bytes,
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nstatus: 500\r\ncontent-length: 3\r\n\r\n"
        );
        let bytes = head_bytes(HeadStyle::Cgi, StatusCode::OK, None, &h, Some(3));
        assert_eq!(
            bytes,
            b"Status: 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\n"
        );
        let bytes = head_bytes(
            HeadStyle::Cgi,
            StatusCode::NOT_FOUND,
            Some(b"Gone Fishing"),
            &h,
            None,
        );
        assert!(bytes.starts_with(b"Status: 404 Gone Fishing\r\n"));
    }
}
