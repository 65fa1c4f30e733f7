//! The zygote's channel (`--preload`): the master asks a generation's zygote to fork one
//! worker at a time and learns each new worker's pid from it.
//!
//! A zygote is started like a worker, on the same bootstrap with a `Boot` whose `zygote` flag is
//! set, and answers on the same socketpair at [`super::CONTROL_FD`]. After its import it reports
//! [`FromZygote::Ready`] (or `BootFailed`), then serves [`ToZygote::Fork`] requests in order:
//! each carries the new worker's end of a fresh control socketpair as SCM_RIGHTS, so the master
//! talks to a forked worker exactly as to an exec'd one, on a channel it created itself. The
//! zygote stays single-threaded, so its side is blocking I/O with no runtime
//! ([`ZygoteLink`]); the master's side is async ([`ZygoteChannel`]) and never blocks its loop.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::framing::{self, FrameError, encode_frame};
use super::messages::BootFailure;

/// Master to zygote.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ToZygote {
    /// Fork a worker; its end of the control socketpair comes attached (exactly one fd).
    Fork {
        /// The worker id it will be, echoed in the answer.
        worker: u64,
    },
}

/// Zygote to master.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FromZygote {
    /// The app is imported (and the heap frozen); forks are served from now on.
    Ready {
        /// Milliseconds from exec to the end of the import.
        import_ms: u64,
    },
    /// The app cannot be preloaded; the zygote exits right after.
    BootFailed(BootFailure),
    /// Worker `worker` exists as process `pid` (a child of the master: the zygote double-forks).
    Forked {
        /// Which request.
        worker: u64,
        /// The worker's pid.
        pid: i32,
    },
    /// Worker `worker` could not be forked (the zygote keeps serving).
    ForkFailed {
        /// Which request.
        worker: u64,
        /// Why.
        error: String,
    },
}

/// The zygote's side: blocking, single-threaded.
#[derive(Debug)]
pub struct ZygoteLink {
    sock: StdUnixStream,
    /// Bytes read past the last whole frame.
    buf: Vec<u8>,
    /// Fds that came with frames not yet taken.
    fds: VecDeque<OwnedFd>,
}

impl ZygoteLink {
    /// The link over the zygote's end of its channel.
    pub fn new(sock: StdUnixStream) -> ZygoteLink {
        ZygoteLink {
            sock,
            buf: Vec::new(),
            fds: VecDeque::new(),
        }
    }

    /// Writes one message, blocking until it is in the socket.
    pub fn send(&self, msg: &FromZygote) -> Result<(), FrameError> {
        (&self.sock).write_all(&encode_frame(msg)?)?;
        Ok(())
    }

    /// Waits for the next fork request: the worker id and its control fd. `Err(Closed)` when
    /// the master closed the channel (the generation is retired, or the master is gone).
    pub fn next_fork(&mut self) -> Result<(u64, OwnedFd), FrameError> {
        loop {
            if let Some(prefix) = self.buf.first_chunk::<4>() {
                let len = framing::body_len(*prefix)?;
                if self.buf.len() >= 4 + len {
                    let msg: ToZygote = serde_json::from_slice(&self.buf[4..4 + len])?;
                    self.buf.drain(..4 + len);
                    let ToZygote::Fork { worker } = msg;
                    let fd = self.fds.pop_front().ok_or(FrameError::FdMismatch {
                        expected: 1,
                        got: 0,
                    })?;
                    return Ok((worker, fd));
                }
            }
            let mut chunk = [0u8; 4096];
            let (n, fds, truncated) = framing::recv_with_fds(&self.sock, &mut chunk)?;
            if truncated {
                return Err(FrameError::FdsTruncated { got: fds.len() });
            }
            if n == 0 {
                return Err(FrameError::Closed);
            }
            self.fds.extend(fds);
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// After the last message: waits (at most `limit`) until the master closes its side, which
    /// it does once that message is queued for its supervisor, so that the zygote's exit can
    /// never overtake why it exits.
    pub fn wait_closed(&self, limit: std::time::Duration) {
        if self.sock.set_read_timeout(Some(limit)).is_err() {
            return;
        }
        let mut chunk = [0u8; 512];
        // Fork requests that crossed the last word no longer matter.
        while matches!(std::io::Read::read(&mut &self.sock, &mut chunk), Ok(n) if n > 0) {}
    }

    /// Gives up the socket without closing it (a forked worker reuses its fd number) and
    /// closes the fds of requests meant for other workers.
    pub fn into_raw_fd(self) -> RawFd {
        std::os::fd::IntoRawFd::into_raw_fd(self.sock)
    }
}

/// The master's side: async, split into a reader and a writer for two tasks.
pub struct ZygoteChannel;

impl ZygoteChannel {
    /// Splits the master's end of a zygote's channel.
    pub fn split(stream: UnixStream) -> (ZygoteReader, ZygoteWriter) {
        let (r, w) = stream.into_split();
        (ZygoteReader(r), ZygoteWriter(w))
    }
}

/// Reads what a zygote says.
pub struct ZygoteReader(OwnedReadHalf);

impl ZygoteReader {
    /// The next message; `Err(Closed)` once the zygote has exited.
    pub async fn recv(&mut self) -> Result<FromZygote, FrameError> {
        framing::read_frame(&mut self.0).await
    }
}

/// Sends fork requests to a zygote.
pub struct ZygoteWriter(OwnedWriteHalf);

impl ZygoteWriter {
    /// Asks for worker `worker`, attaching `fd` (its end of its control socketpair).
    pub async fn fork(&mut self, worker: u64, fd: RawFd) -> Result<(), FrameError> {
        let frame = encode_frame(&ToZygote::Fork { worker })?;
        let stream: &UnixStream = self.0.as_ref();
        let raw = stream.as_raw_fd();
        let sent = stream
            .async_io(Interest::WRITABLE, || send_nonblocking(raw, &frame, fd))
            .await?;
        // The fd went with the first byte; the rest of a short write is plain data.
        self.0.write_all(&frame[sent..]).await?;
        Ok(())
    }
}

/// One non-blocking `sendmsg` of `frame` with `fd` attached; the bytes it took.
fn send_nonblocking(sock: RawFd, frame: &[u8], fd: RawFd) -> io::Result<usize> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let fds = [fd];
    let rights = [ControlMessage::ScmRights(&fds)];
    loop {
        match sendmsg::<()>(
            sock,
            &[io::IoSlice::new(frame)],
            &rights,
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fork_requests_arrive_in_order_each_with_its_fd() {
        let (master, zygote) = UnixStream::pair().unwrap();
        let zygote = zygote.into_std().unwrap();
        zygote.set_nonblocking(false).unwrap();
        let (mut reader, mut writer) = ZygoteChannel::split(master);
        // Two requests back to back: the link must not mix up their fds.
        let (a, a_peer) = StdUnixStream::pair().unwrap();
        let (b, b_peer) = StdUnixStream::pair().unwrap();
        writer.fork(7, a_peer.as_raw_fd()).await.unwrap();
        writer.fork(8, b_peer.as_raw_fd()).await.unwrap();
        let got = tokio::task::spawn_blocking(move || {
            let mut link = ZygoteLink::new(zygote);
            let first = link.next_fork().unwrap();
            let second = link.next_fork().unwrap();
            link.send(&FromZygote::Forked {
                worker: 7,
                pid: 1234,
            })
            .unwrap();
            (first, second, link)
        })
        .await
        .unwrap();
        let ((w1, fd1), (w2, fd2), link) = got;
        assert_eq!((w1, w2), (7, 8));
        // Each fd is the peer of the socket the master kept for that worker.
        for (fd, mine) in [(fd1, &a), (fd2, &b)] {
            let mut peer = StdUnixStream::from(fd);
            peer.write_all(b"x").unwrap();
            let mut byte = [0u8; 1];
            std::io::Read::read_exact(&mut &*mine, &mut byte).unwrap();
        }
        assert!(matches!(
            reader.recv().await.unwrap(),
            FromZygote::Forked {
                worker: 7,
                pid: 1234
            }
        ));
        drop(writer);
        drop(reader);
        let mut link = link;
        assert!(matches!(link.next_fork(), Err(FrameError::Closed)));
    }
}
