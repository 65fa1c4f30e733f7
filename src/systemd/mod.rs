//! systemd integration: socket activation (`LISTEN_FDS`) and the notify protocol
//! (`NOTIFY_SOCKET`: readiness, reload, stop, status, watchdog, fd store).

pub mod activation;
pub mod notify;

pub use activation::{Inherited, take_listen_fds};
pub use notify::Notifier;
