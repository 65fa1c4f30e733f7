//! Length-prefixed JSON frames: a 4-byte big-endian length, then the message.
//!
//! The `Boot` frame is written with `sendmsg` so that its first byte carries the fds its
//! manifest names; the worker reads it with one blocking `recvmsg` loop before anything else
//! runs, so no other read can swallow the ancillary data. The receiver checks what arrived
//! against the manifest: a control buffer the kernel had to truncate (`MSG_CTRUNC`) or a count
//! that differs is an error, never a listener silently missing or bound to the wrong address.

use std::io::{self, IoSlice, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::fd::{FdRole, Fds};
use super::messages::{Boot, PROTOCOL_VERSION, ToWorker};

/// Frames larger than this are refused: a corrupted length must not allocate gigabytes.
const MAX_FRAME: usize = 1 << 20;
/// Most fds one frame may carry: the receiver's control buffer holds this many.
pub const MAX_FDS: usize = 64;

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
    /// The fds attached to a frame are not as many as its manifest declares.
    #[error(
        "the fd manifest declares {expected} descriptors but {got} came with the frame (master and worker disagree on what Boot carries: restart segue fully; if it persists, it is a bug)"
    )]
    FdMismatch {
        /// How many the manifest declares.
        expected: usize,
        /// How many were attached.
        got: usize,
    },
    /// The kernel dropped fds because more came than the receive buffer holds.
    #[error(
        "more descriptors came with the frame than the {MAX_FDS} a worker accepts; {got} arrived and the kernel dropped the rest (use fewer --http listeners)"
    )]
    FdsTruncated {
        /// How many arrived before the kernel ran out of room.
        got: usize,
    },
    /// The sender was asked to attach more fds than a receiver accepts.
    #[error(
        "cannot pass {0} descriptors to a worker, at most {MAX_FDS} (use fewer --http listeners)"
    )]
    TooManyFds(usize),
    /// The manifest names one role twice.
    #[error("the fd manifest names {0} twice")]
    FdTwice(FdRole),
    /// `Boot` names something whose fd the manifest does not declare.
    #[error("Boot names {0} but no descriptor came for it")]
    FdMissing(FdRole),
}

/// One message as a frame: the bytes [`write_frame`] sends. Public, with [`decode_frame`], so
/// that the fuzz targets (`fuzz/`) can check that what one side writes the other reads back.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(msg)?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// The body length a frame's prefix declares, refused over [`MAX_FRAME`] before anything is
/// allocated for it.
pub(super) fn body_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Decodes the first frame in `bytes` by the same steps as the channel's read path, without a
/// socket: the message and the bytes after its frame. `Err(Closed)` if `bytes` ends before
/// the frame does. For tests and the fuzz targets, which feed it untrusted bytes.
pub fn decode_frame<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, &[u8]), FrameError> {
    let (prefix, rest) = bytes.split_first_chunk::<4>().ok_or(FrameError::Closed)?;
    let len = body_len(*prefix)?;
    let body = rest.get(..len).ok_or(FrameError::Closed)?;
    Ok((serde_json::from_slice(body)?, &rest[len..]))
}

/// Writes one message.
pub(super) async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), FrameError> {
    w.write_all(&encode_frame(msg)?).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one message; `Err(Closed)` on a clean EOF between frames.
pub(super) async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> Result<T, FrameError> {
    let mut prefix = [0u8; 4];
    match r.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let mut body = vec![0u8; body_len(prefix)?];
    r.read_exact(&mut body).await.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FrameError::Closed,
        _ => e.into(),
    })?;
    Ok(serde_json::from_slice(&body)?)
}

/// Master side: sends `Boot` with `fds` attached, each under its role. Blocking; the socket is
/// fresh, so the whole frame fits in its buffer.
pub fn write_boot(
    sock: &StdUnixStream,
    boot: &Boot,
    fds: &[(FdRole, RawFd)],
) -> Result<(), FrameError> {
    if fds.len() > MAX_FDS {
        return Err(FrameError::TooManyFds(fds.len()));
    }
    let msg = ToWorker::Boot {
        fds: fds.iter().map(|&(role, _)| role).collect(),
        boot: Box::new(boot.clone()),
    };
    let raw: Vec<RawFd> = fds.iter().map(|&(_, fd)| fd).collect();
    send_with_fds(sock, &encode_frame(&msg)?, &raw)
}

/// Sends `frame` with `fds` attached to its first byte.
pub(super) fn send_with_fds(
    sock: &StdUnixStream,
    frame: &[u8],
    fds: &[RawFd],
) -> Result<(), FrameError> {
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    let sent = loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(frame)],
            cmsgs,
            MsgFlags::empty(),
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.map_err(io::Error::from)?,
        }
    };
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

/// What the first bytes of any version's `Boot` frame say, read before the rest so that a
/// master of another version is reported as such rather than as a malformed message.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: String,
    protocol: Option<u32>,
}

/// Worker side: reads the `Boot` frame and the fds that came with it, blocking, and checks them
/// against the frame's manifest.
pub fn read_boot(sock: &StdUnixStream) -> Result<(Boot, Fds), FrameError> {
    let mut buf = vec![0u8; 64 * 1024];
    let (n, fds, truncated) = recv_with_fds(sock, &mut buf)?;
    if truncated {
        return Err(FrameError::FdsTruncated { got: fds.len() });
    }
    if n == 0 {
        return Err(FrameError::Closed);
    }
    let mut data = buf[..n].to_vec();
    while data.len() < 4 {
        read_more(sock, &mut data)?;
    }
    let len = body_len([data[0], data[1], data[2], data[3]])?;
    while data.len() < 4 + len {
        read_more(sock, &mut data)?;
    }
    decode_boot(&data[4..4 + len], fds)
}

/// The second half of [`read_boot`], without the socket: decodes a `Boot` frame's body and
/// pairs `fds` (what came with it) with its manifest. A master of another protocol version is
/// reported as such, from the fields every version puts first. Public for the fuzz targets.
pub fn decode_boot(body: &[u8], fds: Vec<OwnedFd>) -> Result<(Boot, Fds), FrameError> {
    let head: Head = serde_json::from_slice(body)?;
    if head.kind != "Boot" {
        return Err(FrameError::NotBoot);
    }
    if head.protocol != Some(PROTOCOL_VERSION) {
        return Err(FrameError::Version {
            got: head.protocol.unwrap_or(0),
        });
    }
    let ToWorker::Boot {
        fds: manifest,
        boot,
    } = serde_json::from_slice(body)?
    else {
        return Err(FrameError::NotBoot);
    };
    Ok((*boot, Fds::claim(&manifest, fds)?))
}

/// One `recvmsg` with room for [`MAX_FDS`] descriptors: the bytes read, the fds that came (each
/// close-on-exec from the start, `MSG_CMSG_CLOEXEC`), and whether the kernel truncated the
/// control data.
///
/// Raw libc rather than nix: on truncation nix refuses to walk the control messages, and the
/// descriptors the kernel did install would stay open unowned.
pub(super) fn recv_with_fds(
    sock: &StdUnixStream,
    buf: &mut [u8],
) -> Result<(usize, Vec<OwnedFd>, bool), FrameError> {
    const FD_BYTES: usize = MAX_FDS * std::mem::size_of::<RawFd>();
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    const SPACE: usize = unsafe { libc::CMSG_SPACE(FD_BYTES as libc::c_uint) } as usize;
    // u64s, so the buffer is aligned for cmsghdr.
    let mut control = vec![0u64; SPACE.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data, for which zeroes are valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = SPACE as _;
    let n = loop {
        // SAFETY: msg points at `iov` (over `buf`) and `control`, both live and writable for
        // the lengths given.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e.into());
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `control` and set msg_controllen to what it wrote, truncated
    // or not, so CMSG_FIRSTHDR/CMSG_NXTHDR stay within it; every SCM_RIGHTS descriptor is new in
    // this process and owned by nothing else, so wrapping each in an OwnedFd is sound.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, fds, msg.msg_flags & libc::MSG_CTRUNC != 0))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ListenAddr;
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
    async fn the_socketless_decoder_reads_what_the_channel_reads() {
        let frame = encode_frame(&ToMaster::Ready { boot_ms: 5 }).unwrap();
        let two = [&frame[..], &frame[..]].concat();
        let (first, rest) = decode_frame::<ToMaster>(&two).unwrap();
        assert!(matches!(first, ToMaster::Ready { boot_ms: 5 }));
        assert_eq!(rest, &frame[..]);
        for cut in [&frame[..2], &frame[..frame.len() - 1]] {
            assert!(matches!(
                decode_frame::<ToMaster>(cut),
                Err(FrameError::Closed)
            ));
            let mut reader = cut;
            assert!(matches!(
                read_frame::<_, ToMaster>(&mut reader).await,
                Err(FrameError::Closed)
            ));
        }
        let mut big = u32::MAX.to_be_bytes().to_vec();
        big.extend_from_slice(b"{}");
        assert!(matches!(
            decode_frame::<ToMaster>(&big),
            Err(FrameError::TooLarge(_))
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

    fn boot(listeners: usize, cell: Option<usize>) -> Boot {
        Boot {
            protocol: PROTOCOL_VERSION,
            worker_id: 7,
            generation: 1,
            config: crate::config::from_args(&["app:application"])
                .unwrap()
                .worker,
            listeners: (0..listeners)
                .map(|i| ListenAddr::Tcp(format!("127.0.0.1:{}", 8000 + i).parse().unwrap()))
                .collect(),
            protocols: Vec::new(),
            max_requests: None,
            scoreboard_cell: cell,
            zygote: false,
        }
    }

    /// `n` fresh descriptors, each one end of a socketpair, with the other ends kept alive.
    fn sockets(n: usize) -> Vec<(StdUnixStream, StdUnixStream)> {
        (0..n).map(|_| StdUnixStream::pair().unwrap()).collect()
    }

    fn inode(fd: &impl AsRawFd) -> u64 {
        // SAFETY: the test owns `fd` for the duration of the call.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.as_raw_fd()) };
        nix::sys::stat::fstat(fd).unwrap().st_ino
    }

    #[test]
    fn boot_with_its_fds_round_trips_by_role() {
        let (master, worker) = StdUnixStream::pair().unwrap();
        let socks = sockets(4);
        let sent = boot(3, Some(5));
        let mut attached: Vec<(FdRole, RawFd)> = sent
            .fd_roles()
            .into_iter()
            .zip(socks.iter().map(|(a, _)| a.as_raw_fd()))
            .collect();
        attached.reverse(); // roles, not positions, say which is which
        write_boot(&master, &sent, &attached).unwrap();
        let (got, mut fds) = read_boot(&worker).unwrap();
        assert_eq!(got.worker_id, 7);
        assert_eq!(got.scoreboard_cell, Some(5));
        let listeners = fds.take_listeners(got.listeners).unwrap();
        for (i, (addr, fd)) in listeners.iter().enumerate() {
            assert_eq!(*addr, sent.listeners[i]);
            assert_eq!(inode(fd), inode(&socks[i].0), "listener {i}");
        }
        let board = fds.take(FdRole::Scoreboard).unwrap();
        assert_eq!(inode(&board), inode(&socks[3].0));
        // SAFETY: reads the flags of a descriptor the test owns.
        let flags = unsafe { libc::fcntl(board.as_raw_fd(), libc::F_GETFD) };
        assert!(
            flags & libc::FD_CLOEXEC != 0,
            "received fds are close-on-exec"
        );
    }

    #[test]
    fn fewer_fds_than_the_manifest_declares_is_an_error() {
        let (master, worker) = StdUnixStream::pair().unwrap();
        let socks = sockets(2);
        let msg = ToWorker::Boot {
            fds: vec![FdRole::Listener(0), FdRole::Listener(1), FdRole::Scoreboard],
            boot: Box::new(boot(2, Some(0))),
        };
        let raw: Vec<RawFd> = socks.iter().map(|(a, _)| a.as_raw_fd()).collect();
        send_with_fds(&master, &encode_frame(&msg).unwrap(), &raw).unwrap();
        let err = read_boot(&worker).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::FdMismatch {
                    expected: 3,
                    got: 2
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("declares 3 descriptors but 2 came")
        );
    }

    #[test]
    fn more_fds_than_the_receive_buffer_holds_is_an_error_not_a_silent_drop() {
        let (master, worker) = StdUnixStream::pair().unwrap();
        let socks = sockets(MAX_FDS + 1);
        let sent = boot(MAX_FDS + 1, None);
        let raw: Vec<RawFd> = socks.iter().map(|(a, _)| a.as_raw_fd()).collect();
        let msg = ToWorker::Boot {
            fds: sent.fd_roles(),
            boot: Box::new(sent),
        };
        send_with_fds(&master, &encode_frame(&msg).unwrap(), &raw).unwrap();
        let err = read_boot(&worker).unwrap_err();
        assert!(
            matches!(err, FrameError::FdsTruncated { got: MAX_FDS }),
            "{err}"
        );
    }

    #[test]
    fn the_sender_refuses_more_fds_than_a_worker_accepts() {
        let (master, _worker) = StdUnixStream::pair().unwrap();
        let socks = sockets(MAX_FDS + 1);
        let sent = boot(MAX_FDS + 1, None);
        let attached: Vec<(FdRole, RawFd)> = sent
            .fd_roles()
            .into_iter()
            .zip(socks.iter().map(|(a, _)| a.as_raw_fd()))
            .collect();
        assert!(matches!(
            write_boot(&master, &sent, &attached),
            Err(FrameError::TooManyFds(n)) if n == MAX_FDS + 1
        ));
    }

    #[test]
    fn a_boot_of_another_protocol_version_is_reported_as_such() {
        let (master, worker) = StdUnixStream::pair().unwrap();
        // What a master before the fd manifest sent: Boot's fields beside the tag.
        let old = br#"{"type":"Boot","protocol":1,"worker_id":1,"generation":1}"#;
        let mut frame = (old.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(old);
        send_with_fds(&master, &frame, &[]).unwrap();
        assert!(matches!(
            read_boot(&worker),
            Err(FrameError::Version { got: 1 })
        ));
    }
}
