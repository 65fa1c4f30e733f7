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
//! That spreads a steady trickle, not a burst: a running acceptor drains a full queue before a
//! woken peer is scheduled, and it knows nothing of how busy each worker is. So with the
//! scoreboard ([`crate::protocol::scoreboard`]) the acceptor waits in `poll` instead, and when a
//! connection is waiting it first looks at its peers: if an accepting peer is better placed (a
//! free Python thread, or fewer connections) it steps aside until that changes, and takes the
//! connection itself only if the peer leaves it waiting for 5 ms. (A decision made before
//! blocking in `accept` would be stale by the time a connection arrives.)
//!
//! `SO_RCVTIMEO` makes the blocking accept return every 100 ms, so the thread notices a drain
//! without signals. It and the blocking mode are properties of the shared socket, identical for
//! every worker, and the master never accepts. A connection accepted just as the drain starts is
//! still handed over and served (with `Connection: close`), never dropped.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{SockFlag, accept4};
use tokio::sync::mpsc;

use crate::protocol::scoreboard::{Accepting, Cell, Tally};

/// How often a waiting acceptor checks for the drain.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// How long a waiting connection is left for a better-placed peer before this worker takes it,
/// and how often it looks again meanwhile.
const MAX_DEFER: Duration = Duration::from_millis(5);
const DEFER_STEP: Duration = Duration::from_micros(200);
/// How long a worker accepts without stepping aside after a peer left a connection waiting.
const PATIENCE: Duration = Duration::from_secs(1);

/// A connection this worker accepted, with its place on the scoreboard.
#[derive(Debug)]
pub struct Accepted {
    /// The socket (non-blocking, CLOEXEC).
    pub fd: OwnedFd,
    /// Counts the connection as this worker's until dropped with it.
    pub tally: Option<Tally>,
}

/// Starts the acceptor thread for `listener`; accepted connections arrive on the returned
/// channel, which closes once `stop` is set and the thread has exited. With a scoreboard `cell`
/// the thread balances against the other workers.
pub fn spawn(
    listener: OwnedFd,
    name: String,
    stop: Arc<AtomicBool>,
    cell: Option<Cell>,
) -> io::Result<mpsc::UnboundedReceiver<Accepted>> {
    let socket = socket2::SockRef::from(&listener);
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(STOP_CHECK))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let span = tracing::Span::current();
    // Counted before the thread runs: the worker says Ready once this returns, and peers must
    // leave it its share of a burst that comes right after.
    let accepting = cell.as_ref().map(Cell::accepting);
    std::thread::Builder::new()
        .name(format!("segue-accept-{name}"))
        .spawn(move || {
            let _enter = span.enter();
            accept_until_stopped(&listener, &stop, cell.as_ref(), accepting, &tx);
            // Dropping `listener` here closes this worker's copy; the master's keeps the queue open.
        })?;
    Ok(rx)
}

fn accept_until_stopped(
    listener: &OwnedFd,
    stop: &AtomicBool,
    cell: Option<&Cell>,
    mut accepting: Option<Accepting>,
    tx: &mpsc::UnboundedSender<Accepted>,
) {
    let mut balance = cell.map(|cell| Balance {
        cell,
        skip_until: None,
    });
    while !stop.load(Ordering::Relaxed) {
        if let Some(balance) = &mut balance {
            if !connection_waiting(listener, STOP_CHECK) {
                continue;
            }
            // After stepping aside, the connection that woke us is likely the peer's now: do
            // not block in accept for the next one on a decision that may be stale by then.
            if balance.defer(listener, stop) && !connection_waiting(listener, Duration::ZERO) {
                continue;
            }
        }
        match accept4(
            listener.as_raw_fd(),
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        ) {
            Ok(fd) => {
                // SAFETY: accept4 just created this descriptor; nothing else owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                let tally = cell.map(Cell::opened);
                if tx.send(Accepted { fd, tally }).is_err() {
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
                // Out of fds: back off so that finishing connections can free some, and let
                // no peer wait for this worker meanwhile.
                tracing::error!("accept failed: {e} (raise the open-files limit, `ulimit -n`)");
                drop(accepting.take());
                std::thread::sleep(STOP_CHECK);
                accepting = cell.map(Cell::accepting);
            }
            Err(e) => tracing::debug!("accept failed: {e}"),
        }
    }
    drop(accepting);
}

/// Stepping aside for better-placed peers, with a limit for peers that do not take their share.
struct Balance<'a> {
    cell: &'a Cell,
    /// After a peer left connections waiting, no stepping aside until then.
    skip_until: Option<Instant>,
}

impl Balance<'_> {
    /// Returns once this worker should accept: no accepting peer is better placed any more,
    /// the drain started, or a connection has waited [`MAX_DEFER`] while the better peer
    /// took nothing (then it accepts normally for [`PATIENCE`]). True if it stepped aside.
    fn defer(&mut self, listener: &OwnedFd, stop: &AtomicBool) -> bool {
        if self.skip_until.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let mut last = None;
        let mut stalled_since = None;
        while let Some(peer) = self.cell.better_peer() {
            if stop.load(Ordering::Relaxed) {
                return true;
            }
            if last != Some(peer) {
                last = Some(peer);
                stalled_since = None; // the peer took one (or lost one): it is alive
            }
            if connection_waiting(listener, STOP_CHECK) {
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= MAX_DEFER {
                    tracing::debug!(
                        "a connection waited {MAX_DEFER:?} for a better-placed worker: accepting it here"
                    );
                    self.skip_until = Some(Instant::now() + PATIENCE);
                    return true;
                }
                // Give the peer's acceptor, woken by the kernel, time to run.
                std::thread::sleep(DEFER_STEP);
            } else {
                stalled_since = None;
            }
        }
        last.is_some()
    }
}

/// Whether a connection waits in the listener's queue, waiting up to `timeout` for one.
fn connection_waiting(listener: &OwnedFd, timeout: Duration) -> bool {
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    matches!(poll(&mut fds, ms), Ok(n) if n > 0)
}
