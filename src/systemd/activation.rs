//! systemd socket activation: sockets passed as `LISTEN_FDS`, named by `LISTEN_FDNAMES`.
//!
//! Must run before any thread starts: `listenfd` removes the variables from the environment,
//! which is only sound while the process is single-threaded.

use std::os::fd::{FromRawFd, OwnedFd};

/// A socket systemd passed in, with its `FileDescriptorName=` if any.
#[derive(Debug)]
pub struct Inherited {
    /// The socket.
    pub fd: OwnedFd,
    /// Its name from `LISTEN_FDNAMES` (`segue-listen-N` when segue stored it itself).
    pub name: Option<String>,
}

/// Takes the sockets systemd passed to this process (none if `LISTEN_PID` is not ours).
pub fn take_listen_fds() -> Vec<Inherited> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    (0..fds.len())
        .filter_map(|i| fds.take_raw_fd(i).ok().flatten().map(|raw| (i, raw)))
        .map(|(i, raw)| Inherited {
            // SAFETY: systemd passed these descriptors to this process and listenfd hands each
            // out once; nothing else owns them.
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
            name: names
                .get(i)
                .filter(|n| !n.is_empty() && n.as_str() != "unknown")
                .cloned(),
        })
        .collect()
}
