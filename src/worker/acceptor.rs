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
//! A worker that could not serve a connection soon takes none: while its GIL is held past the
//! probe's limit ([`GilGate`]) or while it holds `--worker-connections` connections
//! ([`Capacity`]), its acceptors step out (uncounted on the scoreboard, as when out of fds) and
//! wait for that to end, and the kernel's queue goes to its peers, or waits for it if it is
//! alone.
//!
//! `SO_RCVTIMEO` makes the blocking accept return every 100 ms, so the thread notices a drain
//! without signals. It and the blocking mode are properties of the shared socket, identical for
//! every worker, and the master never accepts. A connection accepted just as the drain starts is
//! still handed over and served (with `Connection: close`), never dropped.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{SockFlag, accept4};
use tokio::sync::mpsc;

use super::watchdog::GilGate;
use crate::protocol::scoreboard::{Accepting, Cell, Tally};

/// How often a waiting acceptor checks for the drain.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// How long a waiting connection is left for a better-placed peer before this worker takes it,
/// and how often it looks again meanwhile.
const MAX_DEFER: Duration = Duration::from_millis(5);
const DEFER_STEP: Duration = Duration::from_micros(200);
/// How long a worker accepts without stepping aside after a peer left a connection waiting.
const PATIENCE: Duration = Duration::from_secs(1);
/// Least time between two warnings that the worker is full, so a worker that stays at its
/// limit under load does not log every connection that closes and is replaced.
const FULL_WARNING: Duration = Duration::from_secs(10);

/// A connection this worker accepted, with its place on the scoreboard.
#[derive(Debug)]
pub struct Accepted {
    /// The socket (non-blocking, CLOEXEC).
    pub fd: OwnedFd,
    /// Counts the connection as this worker's until dropped with it.
    pub held: Held,
    /// Counts it as a request waiting (`--cheaper-algo backlog`) until the serving thread
    /// takes it up: with the app inline, new connections wait here while a request runs.
    pub unpicked: Option<Unpicked>,
}

/// A connection accepted but not yet taken up by the serving thread, on the scoreboard.
#[derive(Debug)]
pub struct Unpicked(Cell);

impl Unpicked {
    fn new(cell: &Cell) -> Unpicked {
        cell.job_queued();
        Unpicked(cell.clone())
    }
}

impl Drop for Unpicked {
    fn drop(&mut self) {
        self.0.job_taken();
    }
}

/// What every acceptor of a worker consults before it accepts: the scoreboard, the GIL's
/// health and the connection limit. Shared by the worker's listeners, so that the limit and
/// the wedge are the worker's, not each socket's.
#[derive(Debug, Clone)]
pub struct Admission {
    /// This worker's scoreboard cell, for balancing; `None` accepts first-come first-served.
    pub cell: Option<Cell>,
    /// Closed while the GIL is held; `None` never closes.
    pub gil: Option<Arc<GilGate>>,
    /// The worker's open connections against `--worker-connections`.
    pub capacity: Arc<Capacity>,
}

/// Why a worker takes no connection for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Its GIL is held: a connection would wait for it.
    Wedged,
    /// It holds `--worker-connections` connections.
    Full,
}

impl Admission {
    fn hold(&self) -> Option<Hold> {
        if self.gil.as_ref().is_some_and(|g| g.is_closed()) {
            Some(Hold::Wedged)
        } else if self.capacity.is_full() {
            Some(Hold::Full)
        } else {
            None
        }
    }

    /// Waits until nothing holds this worker back, or the drain starts.
    fn wait_admitted(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            match self.hold() {
                None => return,
                Some(Hold::Wedged) => {
                    if let Some(g) = &self.gil {
                        g.wait_open(STOP_CHECK);
                    }
                }
                Some(Hold::Full) => self.capacity.wait_for_room(STOP_CHECK),
            }
        }
    }
}

/// A worker's open connections, and its `--worker-connections` limit. Without a limit a flood
/// of connections (slow or idle clients) would grow one worker until `accept` fails with
/// EMFILE, and then the app's own `open()` and database connects fail with it.
#[derive(Debug)]
pub struct Capacity {
    open: AtomicUsize,
    /// `None`: no limit (`--worker-connections 0`).
    max: Option<usize>,
    /// When the worker last said it is full, and the lock closing connections take to wake
    /// an acceptor waiting for room.
    warned: Mutex<Option<Instant>>,
    room: Condvar,
}

impl Capacity {
    /// A worker's count, with at most `max` connections open.
    pub fn new(max: Option<usize>) -> Arc<Capacity> {
        Arc::new(Capacity {
            open: AtomicUsize::new(0),
            max,
            warned: Mutex::new(None),
            room: Condvar::new(),
        })
    }

    fn is_full(&self) -> bool {
        let Some(max) = self.max else { return false };
        let open = self.open.load(Ordering::Relaxed);
        if open < max {
            return false;
        }
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.is_none_or(|t| t.elapsed() >= FULL_WARNING) {
            *warned = Some(Instant::now());
            tracing::warn!(
                "this worker holds {open} connections (--worker-connections {max}): not accepting until one closes; other workers take new connections, and with none free they wait in the listen queue (raise --worker-connections or --workers)"
            );
        }
        true
    }

    /// Counts one more open connection, unless that would pass the limit (another listener's
    /// acceptor may have taken the last place since [`Capacity::is_full`]).
    fn reserve(self: &Arc<Self>) -> Option<Room> {
        let before = self.open.fetch_add(1, Ordering::Relaxed);
        let room = Room(self.clone());
        self.max.is_none_or(|max| before < max).then_some(room)
    }

    fn wait_for_room(&self, timeout: Duration) {
        let warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.room.wait_timeout_while(warned, timeout, |_| {
            self.max
                .is_some_and(|max| self.open.load(Ordering::Relaxed) >= max)
        });
    }
}

/// One place of a worker's [`Capacity`], given back when dropped.
#[derive(Debug)]
struct Room(Arc<Capacity>);

impl Drop for Room {
    fn drop(&mut self) {
        let before = self.0.open.fetch_sub(1, Ordering::Relaxed);
        if self.0.max.is_some_and(|max| before >= max) {
            // An acceptor may be waiting for this place; taking the lock first means it is
            // either still before its check or already waiting, never in between.
            drop(self.0.warned.lock().unwrap_or_else(|p| p.into_inner()));
            self.0.room.notify_all();
        }
    }
}

/// What counts an open connection as this worker's: its place in the worker's [`Capacity`] and
/// its count on the scoreboard. Held by the connection's task until it ends.
#[derive(Debug)]
pub struct Held {
    _room: Room,
    _tally: Option<Tally>,
}

/// Starts the acceptor thread for `listener`; accepted connections arrive on the returned
/// channel, which closes once `stop` is set and the thread has exited. With a scoreboard cell
/// the thread balances against the other workers.
pub fn spawn(
    listener: OwnedFd,
    name: String,
    stop: Arc<AtomicBool>,
    admission: Admission,
) -> io::Result<mpsc::UnboundedReceiver<Accepted>> {
    let socket = socket2::SockRef::from(&listener);
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(STOP_CHECK))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let span = tracing::Span::current();
    // Counted before the thread runs: the worker says Ready once this returns, and peers must
    // leave it its share of a burst that comes right after.
    let accepting = admission.cell.as_ref().map(Cell::accepting);
    std::thread::Builder::new()
        .name(format!("segue-accept-{name}"))
        .spawn(move || {
            let _enter = span.enter();
            accept_until_stopped(&listener, &stop, &admission, accepting, &tx);
            // Dropping `listener` here closes this worker's copy; the master's keeps the queue open.
        })?;
    Ok(rx)
}

fn accept_until_stopped(
    listener: &OwnedFd,
    stop: &AtomicBool,
    admission: &Admission,
    mut accepting: Option<Accepting>,
    tx: &mpsc::UnboundedSender<Accepted>,
) {
    let cell = admission.cell.as_ref();
    let mut balance = cell.map(|cell| Balance {
        cell,
        skip_until: None,
    });
    while !stop.load(Ordering::Relaxed) {
        if admission.hold().is_some() {
            // Step out, so that no peer waits for a worker that takes nothing.
            drop(accepting.take());
            admission.wait_admitted(stop);
            accepting = cell.map(Cell::accepting);
            continue;
        }
        if let Some(balance) = &mut balance {
            if !connection_waiting(listener, STOP_CHECK) {
                continue;
            }
            // After stepping aside, the connection that woke us is likely the peer's now: do
            // not block in accept for the next one on a decision that may be stale by then.
            if balance.defer(listener, stop) && !connection_waiting(listener, Duration::ZERO) {
                continue;
            }
            // The waits above may have outlasted the GIL's health or the last free place.
            if admission.hold().is_some() {
                continue;
            }
        }
        let Some(room) = admission.capacity.reserve() else {
            continue;
        };
        match accept4(
            listener.as_raw_fd(),
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        ) {
            Ok(fd) => {
                // SAFETY: accept4 just created this descriptor; nothing else owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                let held = Held {
                    _room: room,
                    _tally: cell.map(Cell::opened),
                };
                let unpicked = cell.map(Unpicked::new);
                if tx.send(Accepted { fd, held, unpicked }).is_err() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_takes_no_connection_past_its_limit_until_one_closes() {
        let capacity = Capacity::new(Some(2));
        let (a, b) = (capacity.reserve().unwrap(), capacity.reserve().unwrap());
        assert!(capacity.is_full());
        assert!(capacity.reserve().is_none(), "a third place past the limit");
        assert!(capacity.is_full(), "the refused reservation was given back");
        let waiter = {
            let capacity = capacity.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                capacity.wait_for_room(Duration::from_secs(30));
                t.elapsed()
            })
        };
        drop(a);
        assert!(
            waiter.join().unwrap() < Duration::from_secs(10),
            "the closing connection did not wake the acceptor waiting for room"
        );
        assert!(!capacity.is_full());
        let _c = capacity.reserve().expect("the freed place");
        drop(b);
        let unlimited = Capacity::new(None);
        let held: Vec<Room> = (0..10_000).map(|_| unlimited.reserve().unwrap()).collect();
        assert!(!unlimited.is_full());
        drop(held);
    }
}
