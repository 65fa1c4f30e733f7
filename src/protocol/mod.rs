//! The control channel between the master and each worker: a unix socketpair carrying small,
//! versioned, typed messages.
//!
//! Commands go over this channel and never by signal, because the embedded Python replaces
//! signal handlers and runs its own only on its main thread. The `Boot` frame also carries the
//! listening sockets as SCM_RIGHTS ancillary data. EOF on the channel means the other side died.
//! Beside the channel, the [`scoreboard`] is a shared page where workers post their load.

mod framing;
mod messages;
pub mod scoreboard;

pub use framing::{FrameError, read_boot, read_frame, set_cloexec, write_boot, write_frame};
pub use messages::{Boot, BootFailure, DrainReason, PROTOCOL_VERSION, Stats, ToMaster, ToWorker};

/// The fd number at which a worker finds its end of the control channel.
///
/// Fixed so that the worker needs no argument to find it; the master's `pre_exec` puts it there.
pub const CONTROL_FD: std::os::fd::RawFd = 3;
