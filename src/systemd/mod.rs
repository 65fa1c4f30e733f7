//! systemd integration: socket activation (`LISTEN_FDS`) and the notify protocol
//! (`NOTIFY_SOCKET`: readiness, reload, stop, status, watchdog, fd store).

pub mod activation;
pub mod notify;

pub use activation::{Inherited, take_listen_fds};
pub use notify::Notifier;

/// The variables by which systemd addresses one process (the master): a child segue starts
/// (a worker, a daemon, a cron run, a vassal) must not inherit them, or it would speak for the
/// master or take its sockets.
pub const MASTER_ONLY_ENV: [&str; 6] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];
