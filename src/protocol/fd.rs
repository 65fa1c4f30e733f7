//! Descriptors that cross the process boundary: the roles a frame's fd manifest gives them, and
//! the one close-on-exec switch both sides use.
//!
//! A worker takes each fd by the role the master declared for it, never by its position, so a
//! new kind of fd (or a missing one) cannot shift the listeners onto the wrong addresses. And
//! every descriptor segue holds is close-on-exec except for the moment it is meant to cross an
//! exec (a worker's control channel, the fds of an in-place upgrade): an app that spawns a
//! subprocess must not leak listening sockets into it.

use std::fmt;
use std::io;
use std::os::fd::{OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

use super::framing::FrameError;

/// What one descriptor attached to a frame is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FdRole {
    /// The listening socket of `Boot::listeners[i]`.
    Listener(usize),
    /// The scoreboard's shared page (`Boot::scoreboard_cell` is this worker's cell on it).
    Scoreboard,
}

impl fmt::Display for FdRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdRole::Listener(i) => write!(f, "listener {i}"),
            FdRole::Scoreboard => f.write_str("the scoreboard"),
        }
    }
}

/// The descriptors that came with a frame, each under the role its manifest declared.
///
/// Those nobody takes are closed when this is dropped.
#[derive(Debug, Default)]
pub struct Fds {
    by_role: Vec<(FdRole, OwnedFd)>,
}

impl Fds {
    /// Pairs the received descriptors with the manifest, in the order both were sent. Refuses a
    /// count that differs from the manifest's (the kernel dropped some, or the sender attached
    /// the wrong set) and a role declared twice.
    pub(super) fn claim(manifest: &[FdRole], fds: Vec<OwnedFd>) -> Result<Fds, FrameError> {
        if manifest.len() != fds.len() {
            return Err(FrameError::FdMismatch {
                expected: manifest.len(),
                got: fds.len(),
            });
        }
        for (i, role) in manifest.iter().enumerate() {
            if manifest[..i].contains(role) {
                return Err(FrameError::FdTwice(*role));
            }
        }
        Ok(Fds {
            by_role: manifest.iter().copied().zip(fds).collect(),
        })
    }

    /// Takes the descriptor declared as `role`, if one was.
    pub fn take(&mut self, role: FdRole) -> Option<OwnedFd> {
        let i = self.by_role.iter().position(|(r, _)| *r == role)?;
        Some(self.by_role.swap_remove(i).1)
    }

    /// Takes the listening socket of each of `addrs` (`Boot::listeners`, in order), failing if
    /// one was not sent.
    pub fn take_listeners<A>(&mut self, addrs: Vec<A>) -> Result<Vec<(A, OwnedFd)>, FrameError> {
        addrs
            .into_iter()
            .enumerate()
            .map(|(i, addr)| {
                let role = FdRole::Listener(i);
                self.take(role)
                    .map(|fd| (addr, fd))
                    .ok_or(FrameError::FdMissing(role))
            })
            .collect()
    }

    /// The roles not taken yet.
    pub fn roles(&self) -> impl Iterator<Item = FdRole> + '_ {
        self.by_role.iter().map(|(r, _)| *r)
    }
}

/// Sets (`on`) or clears FD_CLOEXEC on `fd`, keeping its other descriptor flags.
///
/// Async-signal-safe (two `fcntl` calls, no allocation), so `pre_exec` may call it between fork
/// and exec.
pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl with F_GETFD reads a descriptor's flags and touches no memory of ours; a
    // number that is not open gives EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above, F_SETFD only changes the descriptor's flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn cloexec(fd: RawFd) -> bool {
        // SAFETY: reads the flags of a descriptor the test owns.
        unsafe { libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0 }
    }

    #[test]
    fn set_cloexec_sets_and_clears_the_flag() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        assert!(cloexec(fd), "std opens sockets close-on-exec");
        set_cloexec(fd, false).unwrap();
        assert!(!cloexec(fd));
        set_cloexec(fd, true).unwrap();
        assert!(cloexec(fd));
        assert!(set_cloexec(-1, true).is_err());
    }

    #[test]
    fn fds_are_taken_by_role_not_position() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (c, _d) = std::os::unix::net::UnixStream::pair().unwrap();
        let raw = [a.as_raw_fd(), b.as_raw_fd(), c.as_raw_fd()];
        let manifest = [FdRole::Scoreboard, FdRole::Listener(1), FdRole::Listener(0)];
        let mut fds = Fds::claim(&manifest, vec![a.into(), b.into(), c.into()]).unwrap();
        let listeners = fds.take_listeners(vec!["zero", "one"]).unwrap();
        assert_eq!(listeners[0].0, "zero");
        assert_eq!(listeners[0].1.as_raw_fd(), raw[2]);
        assert_eq!(listeners[1].1.as_raw_fd(), raw[1]);
        assert_eq!(fds.take(FdRole::Scoreboard).unwrap().as_raw_fd(), raw[0]);
        assert_eq!(fds.roles().count(), 0);
    }

    #[test]
    fn a_manifest_naming_a_role_twice_or_missing_a_listener_is_refused() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let twice = Fds::claim(
            &[FdRole::Listener(0), FdRole::Listener(0)],
            vec![a.into(), b.into()],
        );
        assert!(matches!(
            twice,
            Err(FrameError::FdTwice(FdRole::Listener(0)))
        ));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut fds = Fds::claim(&[FdRole::Listener(0)], vec![a.into()]).unwrap();
        let err = fds.take_listeners(vec!["zero", "one"]).unwrap_err();
        assert!(matches!(err, FrameError::FdMissing(FdRole::Listener(1))));
        assert!(err.to_string().contains("listener 1"), "{err}");
    }
}
