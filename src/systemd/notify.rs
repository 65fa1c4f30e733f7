//! The sd_notify protocol, spoken by the master only: `READY=1` once the first generation
//! serves, `RELOADING=1` with `MONOTONIC_USEC=` when a reload starts and `READY=1` again when it
//! is promoted or rolled back, `STOPPING=1`, `STATUS=` lines, `EXTEND_TIMEOUT_USEC=` while a slow
//! app boots, `WATCHDOG=1` while workers are healthy, and `FDSTORE=1` to park the listening
//! sockets with systemd so they survive a restart.

use std::io;
use std::os::fd::RawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use sendfd::SendWithFd;

/// A connection to `$NOTIFY_SOCKET`.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    /// `$WATCHDOG_USEC` when it is meant for this process.
    watchdog: Option<Duration>,
}

/// Microseconds of CLOCK_MONOTONIC, as `RELOADING=1` wants them.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

impl Notifier {
    /// Connects to `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace); `None`
    /// when systemd did not ask for notifications.
    pub fn from_env() -> Option<Notifier> {
        let target = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())?;
        let addr = match target.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(&target),
        };
        let socket =
            UnixDatagram::unbound().and_then(|s| addr.and_then(|a| s.connect_addr(&a)).map(|_| s));
        let socket = match socket {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "NOTIFY_SOCKET={target} is unusable: {e}; systemd will not hear from segue"
                );
                return None;
            }
        };
        let ours = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && ours)
            .map(Duration::from_micros);
        Some(Notifier { socket, watchdog })
    }

    /// Sends one message (newline-separated `KEY=VALUE` lines). Failures are logged, never fatal:
    /// the server keeps serving whatever systemd does.
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send(message.as_bytes()) {
            tracing::debug!("sd_notify {message:?} failed: {e}");
        }
    }

    /// Sends a message with file descriptors attached (`FDSTORE=1`).
    pub fn send_fds(&self, message: &str, fds: &[RawFd]) -> io::Result<()> {
        self.socket.send_with_fd(message.as_bytes(), fds).map(drop)
    }

    /// How often to send `WATCHDOG=1` (half of `WATCHDOG_USEC`), if systemd wants it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }
}
