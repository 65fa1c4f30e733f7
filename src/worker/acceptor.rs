//! Accepting with fair hand-out between workers.
//!
//! Every worker holds a copy of the same listening socket and accepts on its serving thread's
//! event loop, where the connection is then served: no thread of its own, no handoff, so a
//! new connection costs one wakeup (none under load, when the loop is awake anyway). The
//! socket is non-blocking and registered with each worker's epoll, so every accepting worker
//! hears of each connection; left to itself the one already running would win them all
//! (measured here: one worker took 100% of a benchmark's 32 keep-alive connections in 4
//! starts out of 5, `EPOLLEXCLUSIVE` or not).
//!
//! So each worker looks at the scoreboard ([`crate::protocol::scoreboard`]) when a connection
//! waits: if an accepting peer is better placed (a free Python thread, or fewer connections,
//! or, both idle, a longer wait since its last connection) it steps aside until that changes,
//! and takes the connection itself only if the peer leaves it waiting for 5 ms ([`Balance`]). The count of connections moves with each accept, so a
//! burst spreads as it is taken. A worker whose app runs inline is not in its event loop while
//! a request runs, so it takes no connection then: new ones wait in the kernel's queue (the
//! master's `listen_queue` in `segue status`) for whichever worker is free first.
//!
//! A worker that could not serve a connection soon takes none: while its GIL is held past the
//! probe's limit ([`GilGate`]) or while it holds `--worker-connections` connections
//! ([`Capacity`]), its acceptors step out (uncounted on the scoreboard, as when out of fds) and
//! wait for that to end, and the kernel's queue goes to its peers, or waits for it if it is
//! alone.
//!
//! The non-blocking mode is a property of the shared socket, identical for every worker; the
//! master never accepts. An acceptor stops when the drain starts; what it accepted before is
//! served (with `Connection: close`), never dropped.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use super::drain::DrainWatch;
use super::watchdog::GilGate;
use crate::protocol::scoreboard::{Accepting, Cell, Tally};

/// How often a held-back acceptor looks again whether it may accept (the GIL's health; room
/// also wakes it at once).
const HOLD_CHECK: Duration = Duration::from_millis(10);
/// How long a waiting connection is left for a better-placed peer before this worker takes it,
/// and how often it looks again meanwhile.
const MAX_DEFER: Duration = Duration::from_millis(5);
const DEFER_STEP: Duration = Duration::from_millis(1);
/// Pause after `accept` failed for want of fds, so that finishing connections can free some.
const OUT_OF_FDS: Duration = Duration::from_millis(100);
/// Least time between two warnings that the worker is full, so a worker that stays at its
/// limit under load does not log every connection that closes and is replaced.
const FULL_WARNING: Duration = Duration::from_secs(10);

/// A connection this worker accepted, with its place on the scoreboard.
#[derive(Debug)]
pub struct Accepted {
    /// The socket (non-blocking, CLOEXEC).
    pub fd: OwnedFd,
    /// The client's address, as `accept` gave it; `None` on a unix socket.
    pub peer: Option<SocketAddr>,
    /// `TCP_NODELAY` is already on: the listener had it, and Linux copies it to the sockets it
    /// accepts (one `setsockopt` less per connection).
    pub nodelay: bool,
    /// Counts the connection as this worker's until dropped with it.
    pub held: Held,
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

    /// Waits until nothing holds this worker back. Cancel-safe (the drain cancels it).
    async fn admitted(&self) {
        loop {
            let room = self.capacity.room.notified();
            tokio::pin!(room);
            // Registered before the check, so that a place freed in between still wakes us.
            room.as_mut().enable();
            match self.hold() {
                None => return,
                Some(Hold::Full) => {
                    let _ = tokio::time::timeout(HOLD_CHECK * 10, room).await;
                }
                // The GIL's health is polled: a wedge lasts at least the probe's limit.
                Some(Hold::Wedged) => tokio::time::sleep(HOLD_CHECK).await,
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
    /// When the worker last said it is full.
    warned: Mutex<Option<Instant>>,
    /// Told when a place frees up while the worker was full.
    room: Notify,
}

impl Capacity {
    /// A worker's count, with at most `max` connections open.
    pub fn new(max: Option<usize>) -> Arc<Capacity> {
        Arc::new(Capacity {
            open: AtomicUsize::new(0),
            max,
            warned: Mutex::new(None),
            room: Notify::new(),
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
}

/// One place of a worker's [`Capacity`], given back when dropped.
#[derive(Debug)]
struct Room(Arc<Capacity>);

impl Drop for Room {
    fn drop(&mut self) {
        let before = self.0.open.fetch_sub(1, Ordering::Relaxed);
        if self.0.max.is_some_and(|max| before >= max) {
            self.0.room.notify_waiters();
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

/// One listener's accepting, on the serving thread's event loop.
pub struct Acceptor {
    listener: AsyncFd<OwnedFd>,
    admission: Admission,
    /// Counts this acceptor on the scoreboard while it may take connections.
    accepting: Option<Accepting>,
    /// Used only with a scoreboard cell.
    balance: Balance,
    /// When to look at the queue again without waiting for the listener's next readiness:
    /// set whenever that readiness was given up while a connection may still wait (left to a
    /// peer, or more behind one taken on a second look), since only a new connection renews
    /// it; cleared only once the queue was seen empty.
    look_again: Option<tokio::time::Instant>,
    /// The listener has `TCP_NODELAY`, which its accepted sockets inherit.
    nodelay: bool,
}

impl Acceptor {
    /// Takes this worker's copy of `listener` (made non-blocking: a property of the shared
    /// socket, the same for every worker) into the current runtime. Counted on the scoreboard
    /// at once: the worker says Ready after this, and peers must leave it its share of a burst
    /// that comes right after.
    pub fn new(listener: OwnedFd, admission: Admission) -> io::Result<Acceptor> {
        let socket = socket2::SockRef::from(&listener);
        socket.set_nonblocking(true)?;
        // Fails on a unix socket, which has no Nagle to turn off.
        let nodelay = socket.set_tcp_nodelay(true).is_ok();
        // SAFETY: the AsyncFd owns the OwnedFd (whose raw fd never changes) for its whole life.
        let listener = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Acceptor {
            listener,
            accepting: admission.cell.as_ref().map(Cell::accepting),
            balance: Balance::default(),
            look_again: None,
            nodelay,
            admission,
        })
    }

    /// The next connection this worker should serve, or `None` once the drain starts (then
    /// this acceptor is done: dropping it closes this worker's copy of the socket; the
    /// master's keeps the queue open).
    pub async fn next(&mut self, drain: &mut DrainWatch) -> Option<Accepted> {
        loop {
            if self.admission.hold().is_some() {
                let admitted = self.admission.admitted();
                let cell = self.admission.cell.as_ref();
                if !stepped_out(&mut self.accepting, cell, drain, admitted).await {
                    return None;
                }
                continue;
            }
            let mut ready = tokio::select! {
                biased;
                _ = drain.started() => return None,
                r = self.listener.readable() => match r {
                    Ok(ready) => Some(ready),
                    Err(e) => {
                        tracing::error!("cannot wait for connections: {e}");
                        drain.started().await;
                        return None;
                    }
                },
                _ = sleep_until(self.look_again), if self.look_again.is_some() => None,
            };
            // The wait may have outlasted the GIL's health or the last free place.
            if self.admission.hold().is_some() {
                continue;
            }
            if let Some(cell) = &self.admission.cell {
                let peer = cell.better_peer();
                // Only a worker that may step aside needs to know whether a connection still
                // waits (a peer may have taken it): otherwise `accept` tells.
                let waiting = peer.is_some() && connection_waiting(self.listener.get_ref());
                let step = self.balance.step(Instant::now(), peer, waiting);
                if step != Step::Accept {
                    // Wait for the next connection (the peer, woken by this one too, takes
                    // it), or, if this one may be left waiting, for the time to look again.
                    if let Some(ready) = &mut ready {
                        ready.clear_ready();
                    }
                    self.look_again = match step {
                        Step::Retry(after) => Some(tokio::time::Instant::now() + after),
                        _ => None, // nothing waits: the next connection renews the readiness
                    };
                    continue;
                }
            }
            let Some(room) = self.admission.capacity.reserve() else {
                continue;
            };
            match accept(self.listener.get_ref()) {
                Ok((fd, peer)) => {
                    if ready.is_none() {
                        // Taken on a second look, with the readiness given up: more may wait
                        // behind it (a burst), and no new readiness would tell of them.
                        self.look_again = Some(tokio::time::Instant::now());
                    }
                    let held = Held {
                        _room: room,
                        _tally: self.admission.cell.as_ref().map(Cell::opened),
                    };
                    return Some(Accepted {
                        fd,
                        peer,
                        nodelay: self.nodelay,
                        held,
                    });
                }
                // The queue is empty (another worker took it): wait for the next one.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(ready) = &mut ready {
                        ready.clear_ready();
                    }
                    self.look_again = None;
                }
                // A client that gave up already.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) =>
                {
                    // Out of fds: back off so that finishing connections can free some.
                    tracing::error!("accept failed: {e} (raise the open-files limit, `ulimit -n`)");
                    let cell = self.admission.cell.as_ref();
                    let pause = tokio::time::sleep(OUT_OF_FDS);
                    if !stepped_out(&mut self.accepting, cell, drain, pause).await {
                        return None;
                    }
                }
                Err(e) => {
                    // Not the queue's state: look again shortly, without spinning on it.
                    tracing::debug!("accept failed: {e}");
                    if let Some(ready) = &mut ready {
                        ready.clear_ready();
                    }
                    self.look_again = Some(tokio::time::Instant::now() + DEFER_STEP);
                }
            }
        }
    }
}

/// Waits for `until` uncounted on the scoreboard as accepting, so that no peer waits for a
/// worker that takes nothing meanwhile; false if the drain started first.
async fn stepped_out(
    accepting: &mut Option<Accepting>,
    cell: Option<&Cell>,
    drain: &mut DrainWatch,
    until: impl std::future::Future<Output = ()>,
) -> bool {
    drop(accepting.take());
    let admitted = tokio::select! {
        biased;
        _ = drain.started() => false,
        _ = until => true,
    };
    *accepting = cell.map(Cell::accepting);
    admitted
}

/// Sleeps until `at`; never resolves without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `accept4(2)`, non-blocking and CLOEXEC, with the peer's address from the same call (no
/// `getpeername` per connection).
fn accept(listener: &OwnedFd) -> io::Result<(OwnedFd, Option<SocketAddr>)> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is writable for `len` bytes; the kernel writes at most that.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            (&raw mut storage).cast(),
            &mut len,
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 just created this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((fd, socket_addr(&storage, len)))
}

/// The address in what `accept` wrote, if it is an IP one.
fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, of `len` bytes.
            let a: &libc::sockaddr_in = unsafe { &*(&raw const *storage).cast() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6, of `len` bytes.
            let a: &libc::sockaddr_in6 = unsafe { &*(&raw const *storage).cast() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// What an acceptor does about a waiting connection, decided by [`Balance::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Take it.
    Accept,
    /// Leave it to the better-placed peer, and look again after this long if no new
    /// connection comes first.
    Retry(Duration),
    /// Nothing waits any more (the peer took it): wait for the next connection.
    Rearm,
}

/// Stepping aside for better-placed peers, with a limit for peers that do not take their share.
#[derive(Debug, Default)]
struct Balance {
    /// The count of the better peer that last left a connection waiting [`MAX_DEFER`]: no
    /// stepping aside for it until its count moves (it takes or closes a connection). A timed
    /// pause instead (it was a second) let one scheduling hiccup under CPU contention unbalance
    /// a whole burst.
    gave_up_on: Option<u64>,
    /// The better peer last seen, by the connections it held (a change shows it took one).
    peer: Option<u64>,
    /// Since when a connection has waited for that peer without it taking one.
    stalled_since: Option<Instant>,
}

impl Balance {
    /// Decides, at `now`, about a connection that woke this acceptor, given the best-placed
    /// better peer (`None`: this worker is as good as any) and whether a connection still waits.
    fn step(&mut self, now: Instant, peer: Option<u64>, waiting: bool) -> Step {
        let Some(peer) = peer else {
            self.peer = None;
            self.stalled_since = None;
            return Step::Accept;
        };
        if self.gave_up_on == Some(peer) {
            // It left a connection waiting and has taken (or closed) none since: stopped, or
            // not getting the CPU. Waiting for it again would only delay every connection.
            return Step::Accept;
        }
        // Another count: that peer moved, so it is alive and worth waiting for again.
        self.gave_up_on = None;
        if self.peer != Some(peer) {
            self.peer = Some(peer);
            self.stalled_since = None; // the peer took one (or lost one): it is alive
        }
        if !waiting {
            self.stalled_since = None;
            return Step::Rearm;
        }
        let since = *self.stalled_since.get_or_insert(now);
        if now.duration_since(since) >= MAX_DEFER {
            tracing::debug!(
                "a connection waited {MAX_DEFER:?} for a better-placed worker: accepting it here"
            );
            self.gave_up_on = Some(peer);
            self.peer = None;
            self.stalled_since = None;
            return Step::Accept;
        }
        Step::Retry(DEFER_STEP)
    }
}

/// Whether a connection waits in the listener's queue now.
fn connection_waiting(listener: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_worker_takes_no_connection_past_its_limit_until_one_closes() {
        let capacity = Capacity::new(Some(2));
        let admission = Admission {
            cell: None,
            gil: None,
            capacity: capacity.clone(),
        };
        let (a, b) = (capacity.reserve().unwrap(), capacity.reserve().unwrap());
        assert!(capacity.is_full());
        assert!(capacity.reserve().is_none(), "a third place past the limit");
        assert!(capacity.is_full(), "the refused reservation was given back");
        let waiter = tokio::spawn(async move {
            let t = tokio::time::Instant::now();
            admission.admitted().await;
            t.elapsed()
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished(), "admitted while full");
        drop(a);
        assert_eq!(
            waiter.await.unwrap(),
            Duration::from_secs(5),
            "the closing connection did not wake the acceptor waiting for room at once"
        );
        assert!(!capacity.is_full());
        let _c = capacity.reserve().expect("the freed place");
        drop(b);
        let unlimited = Capacity::new(None);
        let held: Vec<Room> = (0..10_000).map(|_| unlimited.reserve().unwrap()).collect();
        assert!(!unlimited.is_full());
        drop(held);
    }

    #[test]
    fn a_worker_steps_aside_for_a_better_peer_until_it_leaves_a_connection_waiting() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut b = Balance::default();
        assert_eq!(b.step(t0, None, true), Step::Accept, "no better peer");
        assert_eq!(b.step(t0, Some(3), true), Step::Retry(DEFER_STEP));
        assert_eq!(
            b.step(ms(1), Some(3), false),
            Step::Rearm,
            "the peer took it"
        );
        // The peer's count moved: it is alive, and the wait starts over.
        assert_eq!(b.step(ms(2), Some(4), true), Step::Retry(DEFER_STEP));
        assert_eq!(b.step(ms(6), Some(4), true), Step::Retry(DEFER_STEP));
        assert_eq!(
            b.step(ms(7), Some(4), true),
            Step::Accept,
            "waited MAX_DEFER"
        );
        // Then no stepping aside for that peer while it stays as it was, however long...
        assert_eq!(b.step(ms(8), Some(4), true), Step::Accept);
        assert_eq!(b.step(ms(9), None, true), Step::Accept);
        assert_eq!(b.step(ms(60_000), Some(4), true), Step::Accept);
        // ...and once it moves, it is waited for again.
        assert_eq!(b.step(ms(60_001), Some(5), true), Step::Retry(DEFER_STEP));
        assert_eq!(b.step(ms(60_002), Some(5), false), Step::Rearm);
    }

    #[test]
    fn accept_gives_the_peer_address_it_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_fd, peer) = accept(&OwnedFd::from(listener)).unwrap();
        assert_eq!(peer, Some(client.local_addr().unwrap()));
    }
}
