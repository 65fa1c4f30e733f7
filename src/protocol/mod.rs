//! The control channel between the master and each worker: a unix socketpair carrying small,
//! versioned, typed messages.
//!
//! Commands go over this channel and never by signal, because the embedded Python replaces
//! signal handlers and runs its own only on its main thread. Both ends speak through one
//! [`Channel`] type, so framing, errors and the flushing of a worker's last message are the same
//! on either side. The `Boot` frame also carries the listening sockets and the scoreboard as
//! SCM_RIGHTS ancillary data, with a manifest naming each fd's [`FdRole`] that the worker checks
//! against what arrived. EOF on the channel means the other side died. Beside the channel, the
//! [`scoreboard`] is a shared page where workers post their load.

mod channel;
mod fd;
mod framing;
mod messages;
pub mod scoreboard;
pub mod zygote;

pub use channel::{Channel, Reader, Receiver, Sender, Writer};
pub use fd::{FdRole, Fds, set_cloexec};
pub use framing::{
    FrameError, MAX_FDS, decode_boot, decode_frame, encode_frame, read_boot, write_boot,
};
pub use messages::{Boot, BootFailure, DrainReason, PROTOCOL_VERSION, Stats, ToMaster, ToWorker};

/// The fd number at which a worker finds its end of the control channel.
///
/// Fixed so that the worker needs no argument to find it; the master's `pre_exec` puts it there.
pub const CONTROL_FD: std::os::fd::RawFd = 3;

/// Exit code of a worker whose interpreter cannot import segue's worker module (segue is not
/// installed in that environment); the master turns it into a message naming the fix.
pub const EXIT_NO_WORKER_MODULE: i32 = 4;
