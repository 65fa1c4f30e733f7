//! Accepting with fair hand-out between workers.
//!
//! Every worker holds a copy of the same listening socket. With plain (tokio) epoll every worker
//! is woken for each new connection and the one already running wins: measured here, one worker
//! took 100% of a benchmark's 32 keep-alive connections in 4 starts out of 5. `EPOLLEXCLUSIVE`
//! does not cure it (it prefers the first registered idle waiter). A blocking `accept(2)` does:
//! the kernel queues blocked acceptors first-in first-out and hands each connection to the one
//! that has waited longest. So each worker accepts in a dedicated thread, blocking, and passes
//! the sockets to its tokio runtime over a channel.
//!
//! `SO_RCVTIMEO` makes the blocking accept return every 100 ms, so the thread notices a drain
//! without signals. It and the blocking mode are properties of the shared socket, identical for
//! every worker, and the master never accepts. A connection accepted just as the drain starts is
//! still handed over and served (with `Connection: close`), never dropped.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::socket::{SockFlag, accept4};
use tokio::sync::mpsc;

/// How often a waiting acceptor checks for the drain.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Starts the acceptor thread for `listener`; accepted sockets (non-blocking, CLOEXEC) arrive on
/// the returned channel, which closes once `stop` is set and the thread has exited.
pub fn spawn(
    listener: OwnedFd,
    name: String,
    stop: Arc<AtomicBool>,
) -> io::Result<mpsc::UnboundedReceiver<OwnedFd>> {
    let socket = socket2::SockRef::from(&listener);
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(STOP_CHECK))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name(format!("segue-accept-{name}"))
        .spawn(move || {
            let _enter = span.enter();
            while !stop.load(Ordering::Relaxed) {
                match accept4(
                    listener.as_raw_fd(),
                    SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                ) {
                    Ok(fd) => {
                        // SAFETY: accept4 just created this descriptor; nothing else owns it.
                        let conn = unsafe { OwnedFd::from_raw_fd(fd) };
                        if tx.send(conn).is_err() {
                            return; // the runtime is gone
                        }
                        // Let another worker's woken acceptor take the next connection of a burst,
                        // instead of this running thread draining the whole queue.
                        std::thread::yield_now();
                    }
                    // The 100 ms timeout, or a client that gave up already.
                    Err(
                        nix::errno::Errno::EAGAIN
                        | nix::errno::Errno::ECONNABORTED
                        | nix::errno::Errno::EINTR,
                    ) => {}
                    Err(
                        e @ (nix::errno::Errno::EMFILE
                        | nix::errno::Errno::ENFILE
                        | nix::errno::Errno::ENOBUFS
                        | nix::errno::Errno::ENOMEM),
                    ) => {
                        // Out of fds: back off so that finishing connections can free some.
                        tracing::error!(
                            "accept failed: {e} (raise the open-files limit, `ulimit -n`)"
                        );
                        std::thread::sleep(STOP_CHECK);
                    }
                    Err(e) => tracing::debug!("accept failed: {e}"),
                }
            }
            // Dropping `listener` here closes this worker's copy; the master's keeps the queue open.
        })?;
    Ok(rx)
}
