//! File bodies sent by the kernel with `sendfile(2)`, through hyper.
//!
//! hyper owns the connection's writer and has no way to hand the socket over for part of a
//! response. It does pass body buffers to the connection's I/O unchanged and in order (vectored
//! writes, which segue's I/O asks for, never copy them). So a file travels through hyper as
//! *placeholders*: slices of one static region that hyper frames and counts like any body bytes.
//! The connection's I/O recognises them by their address and sends the same number of bytes
//! from the file instead. The file regions wait in a per-connection [`FileQueue`], in the order
//! their placeholders were handed to hyper, which is the order hyper writes them.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncWrite, Interest};

/// Bytes one placeholder frame stands for. A file body is that many frames; the region is
/// never read or written, so it costs address space only.
pub const PLACEHOLDER_LEN: usize = 1 << 20;

static PLACEHOLDER: [u8; PLACEHOLDER_LEN] = [0; PLACEHOLDER_LEN];

/// A placeholder frame for `len` (at most [`PLACEHOLDER_LEN`]) file bytes.
pub fn placeholder(len: usize) -> Bytes {
    Bytes::from_static(&PLACEHOLDER[..len])
}

/// Whether `buf` is (the rest of) a placeholder, judged by where it points.
fn is_placeholder(buf: &[u8]) -> bool {
    let base = PLACEHOLDER.as_ptr() as usize;
    let at = buf.as_ptr() as usize;
    !buf.is_empty() && (base..base + PLACEHOLDER_LEN).contains(&at)
}

/// A part of an open file that a response sends.
#[derive(Debug)]
pub struct FileRegion {
    /// Our own descriptor (a duplicate), so the app may close its file object at once.
    file: File,
    /// Where the next byte comes from; the file's own position is never used or moved.
    offset: u64,
    /// Bytes still to send.
    len: u64,
    /// Bytes sent so far, for the log.
    sent: u64,
}

impl FileRegion {
    /// `len` bytes of `file` from `offset`.
    pub fn new(file: File, offset: u64, len: u64) -> Self {
        FileRegion {
            file,
            offset,
            len,
            sent: 0,
        }
    }

    /// Bytes still to send.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sends no more than `len` bytes (a Content-Length the app declared cuts the file).
    pub fn truncate(&mut self, len: u64) {
        self.len = self.len.min(len);
    }
}

/// The file regions whose placeholders hyper holds for one connection, oldest first. The
/// response body pushes; the connection's I/O consumes.
#[derive(Debug, Default)]
pub struct FileQueue {
    // Both sides run on the connection's task, so the lock is never contended.
    regions: Mutex<VecDeque<FileRegion>>,
}

impl FileQueue {
    /// Queues `region`; hyper must next be given exactly `region.len()` placeholder bytes.
    pub fn push(&self, region: FileRegion) {
        self.lock().push_back(region);
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<FileRegion>> {
        self.regions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A socket a file can be spliced into: tokio's readiness API and the raw descriptor.
pub trait FileSink: AsyncWrite + AsRawFd + Unpin {
    /// Waits until the socket may accept more bytes.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Runs a write system call, clearing tokio's readiness if it would block.
    fn try_write_with<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

impl FileSink for tokio::net::TcpStream {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_write_ready(self, cx)
    }
    fn try_write_with<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.try_io(Interest::WRITABLE, f)
    }
}

impl FileSink for tokio::net::UnixStream {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::UnixStream::poll_write_ready(self, cx)
    }
    fn try_write_with<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.try_io(Interest::WRITABLE, f)
    }
}

/// `poll_write_vectored` for a connection that may carry file bodies: ordinary bytes are
/// written as usual, placeholders are replaced by `sendfile` from the queued regions.
pub fn poll_write_vectored<S: FileSink>(
    sock: Pin<&mut S>,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
    files: &FileQueue,
) -> Poll<io::Result<usize>> {
    match bufs.iter().position(|b| is_placeholder(b)) {
        None => sock.poll_write_vectored(cx, bufs),
        // The head (or earlier chunks) first, held back by MSG_MORE so that a small file leaves
        // in the same packet as its head.
        Some(first) if first > 0 => poll_send_more(&*sock, cx, &bufs[..first]),
        Some(_) => poll_sendfile(&*sock, cx, bufs[0].len(), files),
    }
}

/// Runs `call` (a write system call returning a count or -1) once the socket is writable,
/// waiting again whenever it would block.
fn poll_syscall<S: FileSink>(
    sock: &S,
    cx: &mut Context<'_>,
    mut call: impl FnMut() -> isize,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(sock.poll_write_ready(cx))?;
        let result = sock.try_write_with(|| match call() {
            n if n < 0 => Err(io::Error::last_os_error()),
            n => Ok(n as usize),
        });
        match result {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return Poll::Ready(r),
        }
    }
}

fn poll_send_more<S: FileSink>(
    sock: &S,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is guaranteed ABI-compatible with iovec on unix; sendmsg only reads through it.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    let fd = sock.as_raw_fd();
    // SAFETY: fd is the open socket `sock` owns; msg points at buffers alive for this call.
    poll_syscall(sock, cx, || unsafe {
        libc::sendmsg(fd, &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL)
    })
}

fn poll_sendfile<S: FileSink>(
    sock: &S,
    cx: &mut Context<'_>,
    placeholder_len: usize,
    files: &FileQueue,
) -> Poll<io::Result<usize>> {
    let mut regions = files.lock();
    let Some(region) = regions.front_mut() else {
        // Never send the placeholder's zeros as if they were the file.
        return Poll::Ready(Err(io::Error::other(
            "a file body's placeholder reached the socket without its file",
        )));
    };
    let count = usize::try_from(region.len)
        .unwrap_or(usize::MAX)
        .min(placeholder_len);
    let (out, input) = (sock.as_raw_fd(), region.file.as_raw_fd());
    let mut offset = region.offset as libc::off_t;
    // SAFETY: both descriptors are open (the socket, and our own duplicate of the file); offset
    // is a valid pointer, so the file's own position is left alone.
    let sent = ready!(poll_syscall(sock, cx, || unsafe {
        libc::sendfile(out, input, &mut offset, count)
    }))?;
    if sent == 0 {
        // The Content-Length promised more than the file now holds; cutting the connection
        // is how the client learns the body is incomplete.
        return Poll::Ready(Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file shrank while it was being sent",
        )));
    }
    region.offset += sent as u64;
    region.len -= sent as u64;
    region.sent += sent as u64;
    if region.len == 0 {
        tracing::debug!(bytes = region.sent, "file body sent with sendfile(2)");
        regions.pop_front();
    }
    Poll::Ready(Ok(sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_recognised_by_address_only() {
        let p = placeholder(100);
        assert!(is_placeholder(&p));
        assert!(is_placeholder(&p[99..]));
        assert!(
            !is_placeholder(&p[100..]),
            "an empty slice is nothing to send"
        );
        let zeros = vec![0u8; 100];
        assert!(
            !is_placeholder(&zeros),
            "equal bytes elsewhere are ordinary data"
        );
    }
}
