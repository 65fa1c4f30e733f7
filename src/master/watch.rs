//! Looking at the listening sockets without taking from them: whether a connection waits
//! (cheap mode wakes on it) and how many do (`--cheaper-algo backlog`). The master never
//! accepts; the connections stay in the kernel's queue for the workers.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::effect::Event;
use super::listener::Listener;

/// Connections waiting in a TCP listener's accept queue (Linux's `tcpi_unacked` for a
/// listening socket); `None` for a unix socket, whose queue the kernel does not report this way.
pub fn queued(listener: &Listener) -> Option<u32> {
    listener.tcp_addr()?;
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a writable tcp_info of `len` bytes; the fd is a socket we hold.
    let rc = unsafe {
        libc::getsockopt(
            listener.fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(info.tcpi_unacked)
}

/// Watches every listener (through duplicates, so the sockets' flags stay the workers') and
/// sends [`Event::ConnectionWaiting`] once, when any has a connection waiting, then ends. A
/// duplicate registered while a connection already waits reports it at once.
pub fn watch(listeners: &[Listener], events: mpsc::UnboundedSender<Event>) -> Option<AbortHandle> {
    let mut fds = Vec::new();
    for l in listeners {
        let watched = l.fd.as_fd().try_clone_to_owned().and_then(|fd| {
            // SAFETY: the AsyncFd owns this duplicate (an OwnedFd, whose raw fd never
            // changes) for its whole life.
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(std::io::Error::from)
        });
        match watched {
            Ok(fd) => fds.push(fd),
            Err(e) => {
                // Without the watch a sleeping server would never wake: better to wake now.
                tracing::error!(
                    "cannot watch {} for connections ({e}): starting the workers instead of sleeping",
                    l.endpoint()
                );
                let _ = events.send(Event::ConnectionWaiting);
                return None;
            }
        }
    }
    let task = tokio::spawn(async move {
        let waits = fds
            .iter()
            .map(|fd: &AsyncFd<OwnedFd>| Box::pin(fd.readable()));
        if futures_util::future::select_all(waits).await.0.is_ok() {
            let _ = events.send(Event::ConnectionWaiting);
        }
    });
    Some(task.abort_handle())
}
