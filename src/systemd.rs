//! systemd socket activation: sockets passed as `LISTEN_FDS`.
//!
//! Must run before any thread starts: `listenfd` removes the variables from the environment,
//! which is only sound while the process is single-threaded.

use std::os::fd::{FromRawFd, OwnedFd};

/// Takes the sockets systemd passed to this process (none if `LISTEN_PID` is not ours).
pub fn take_listen_fds() -> Vec<OwnedFd> {
    let mut fds = listenfd::ListenFd::from_env();
    (0..fds.len())
        .filter_map(|i| fds.take_raw_fd(i).ok().flatten())
        // SAFETY: systemd passed these descriptors to this process and listenfd hands each out
        // once; nothing else owns them.
        .map(|raw| unsafe { OwnedFd::from_raw_fd(raw) })
        .collect()
}
