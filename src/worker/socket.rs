//! An accepted connection that two tasks use at once: the request body's pump reads it while
//! the response is written to it. hyper keeps both directions inside its own connection task;
//! a uwsgi connection is driven by segue itself, so both sides work through tokio's readiness
//! API on a shared socket instead of splitting it (a split half could not `sendfile`).

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncWrite, Interest};

use crate::http::sendfile::FileSink;

/// Most bytes of a request body read from the socket at once.
const BODY_READ: usize = 64 << 10;

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
