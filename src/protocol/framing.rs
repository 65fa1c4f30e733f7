//! Length-prefixed JSON frames: a 4-byte big-endian length, then the message.
//!
//! The `Boot` frame is written with `sendmsg` so that its first byte carries the listener fds;
//! the worker reads it with one blocking `recvmsg` loop before anything else runs, so no other
//! read can swallow the ancillary data.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;

use sendfd::{RecvWithFd, SendWithFd};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::messages::{Boot, PROTOCOL_VERSION, ToWorker};

/// Frames larger than this are refused: a corrupted length must not allocate gigabytes.
const MAX_FRAME: usize = 1 << 20;
/// Most fds a Boot may carry (one per listener).
const MAX_FDS: usize = 64;

/// A broken control channel.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the channel (it exited or died).
    #[error("control channel closed by the other side")]
    Closed,
    /// Reading or writing failed.
    #[error("control channel I/O failed: {0}")]
    Io(#[from] io::Error),
    /// A frame did not decode.
    #[error("malformed control message: {0}")]
    Decode(#[from] serde_json::Error),
    /// A length prefix over the limit.
    #[error("control frame of {0} bytes exceeds the {MAX_FRAME} byte limit")]
    TooLarge(usize),
    /// The master speaks another protocol version.
    #[error(
        "control protocol version {got} from the master, this binary speaks {PROTOCOL_VERSION} (restart segue fully after an upgrade)"
    )]
    Version {
        /// What the master sent.
        got: u32,
    },
    /// The first message was not `Boot`.
    #[error("the first control message was not Boot")]
    NotBoot,
}

fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(msg)?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Writes one message.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?).await?;
    Ok(())
}

/// Reads one message; `Err(Closed)` on a clean EOF between frames.
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FrameError::Closed,
        _ => e.into(),
    })?;
    Ok(serde_json::from_slice(&body)?)
}

/// Master side: sends `Boot` with the listeners attached. Blocking; the socket is fresh, so the
/// whole frame fits in its buffer.
pub fn write_boot(sock: &StdUnixStream, boot: &Boot, fds: &[RawFd]) -> Result<(), FrameError> {
    let frame = encode(&ToWorker::Boot(Box::new(boot.clone())))?;
    let sent = sock.send_with_fd(&frame, fds)?;
    // The fds went with the first byte; the rest of a short write is plain data.
    let mut rest = &frame[sent..];
    while !rest.is_empty() {
        let n = io::Write::write(&mut &*sock, rest)?;
        if n == 0 {
            return Err(FrameError::Closed);
        }
        rest = &rest[n..];
    }
    Ok(())
}

/// Worker side: reads the `Boot` frame and the fds that came with it, blocking.
///
/// Every received fd gets FD_CLOEXEC at once: `recvmsg` here runs without MSG_CMSG_CLOEXEC, and
/// an app that spawns a subprocess must not leak the listening sockets into it.
pub fn read_boot(sock: &StdUnixStream) -> Result<(Boot, Vec<OwnedFd>), FrameError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut raw_fds = [0 as RawFd; MAX_FDS];
    let (n, nfds) = sock.recv_with_fd(&mut buf, &mut raw_fds)?;
    // SAFETY: recvmsg just created these descriptors in this process; nothing else owns them.
    let fds: Vec<OwnedFd> = raw_fds[..nfds]
        .iter()
        .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    for fd in &fds {
        set_cloexec(fd.as_raw_fd())?;
    }
    if n == 0 {
        return Err(FrameError::Closed);
    }
    let mut data = buf[..n].to_vec();
    while data.len() < 4 {
        read_more(sock, &mut data)?;
    }
    let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    while data.len() < 4 + len {
        read_more(sock, &mut data)?;
    }
    let msg: ToWorker = serde_json::from_slice(&data[4..4 + len])?;
    let ToWorker::Boot(boot) = msg else {
        return Err(FrameError::NotBoot);
    };
    if boot.protocol != PROTOCOL_VERSION {
        return Err(FrameError::Version { got: boot.protocol });
    }
    Ok((*boot, fds))
}

fn read_more(mut sock: &StdUnixStream, data: &mut Vec<u8>) -> Result<(), FrameError> {
    let mut chunk = [0u8; 16 * 1024];
    let n = sock.read(&mut chunk)?;
    if n == 0 {
        return Err(FrameError::Closed);
    }
    data.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Sets FD_CLOEXEC on `fd`.
pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    // SAFETY: the caller owns `fd` for the duration of the call.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::{Stats, ToMaster};

    #[tokio::test]
    async fn frames_round_trip_and_eof_is_closed() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let (mut a, mut b) = (a, b);
        write_frame(
            &mut a,
            &ToMaster::Heartbeat(Stats {
                requests_started: 3,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
        let got: ToMaster = read_frame(&mut b).await.unwrap();
        assert!(matches!(got, ToMaster::Heartbeat(s) if s.requests_started == 3));
        drop(a);
        assert!(matches!(
            read_frame::<_, ToMaster>(&mut b).await,
            Err(FrameError::Closed)
        ));
    }

    #[tokio::test]
    async fn oversized_length_is_refused() {
        let (mut a, mut b) = tokio::net::UnixStream::pair().unwrap();
        a.write_all(&(u32::MAX).to_be_bytes()).await.unwrap();
        assert!(matches!(
            read_frame::<_, ToMaster>(&mut b).await,
            Err(FrameError::TooLarge(_))
        ));
    }
}
