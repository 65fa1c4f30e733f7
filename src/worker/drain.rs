//! Draining a worker without dropping a request.
//!
//! hyper's `graceful_shutdown` closes a connection that has not sent a byte yet, even when its
//! next request already sits in the kernel buffer: that loses requests under load. So the drain
//! is done here, per connection: the accept loops stop first (the master still holds the
//! listening socket, so new connections wait in its queue for the next worker); every response
//! from then on carries `Connection: close`; an idle keep-alive connection gets a short grace
//! period to send one more request; a connection is shut down only when it is idle, has nothing
//! unread in hyper's buffer and nothing pending in the kernel's.
//!
//! Completion follows mini-redis: each task holds a clone of a sender and the drain is over
//! when all of them are dropped.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::http::framing::{HeadScanner, HeadVerdict, Pass};

/// How long an idle keep-alive connection may still send one more request during a drain.
pub const IDLE_GRACE: Duration = Duration::from_secs(1);
/// How often a draining connection re-checks whether it can close.
const POLL: Duration = Duration::from_millis(20);

/// Starts the drain and waits for every connection task to end.
pub struct Drain {
    signal: watch::Sender<bool>,
    done_tx: Option<mpsc::Sender<()>>,
    done_rx: mpsc::Receiver<()>,
}

/// What a task holds: it learns when the drain starts, and its drop says it has finished.
#[derive(Clone)]
pub struct DrainWatch {
    signal: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
}

impl Default for Drain {
    fn default() -> Self {
        let (signal, _) = watch::channel(false);
        let (done_tx, done_rx) = mpsc::channel(1);
        Drain {
            signal,
            done_tx: Some(done_tx),
            done_rx,
        }
    }
}

impl Drain {
    /// A watch for a new task.
    pub fn watch(&self) -> DrainWatch {
        let done = self.done_tx.clone().expect("watch() after finished()");
        DrainWatch {
            signal: self.signal.subscribe(),
            _done: done,
        }
    }

    /// Tells every task to drain.
    pub fn start(&self) {
        self.signal.send_replace(true);
    }

    /// Resolves once every task holding a watch has ended.
    pub async fn finished(&mut self) {
        self.done_tx = None;
        let _ = self.done_rx.recv().await;
    }
}

impl DrainWatch {
    /// Whether the drain has started.
    pub fn is_draining(&self) -> bool {
        *self.signal.borrow()
    }

    /// Resolves when the drain starts.
    pub async fn started(&mut self) {
        let _ = self.signal.wait_for(|d| *d).await;
    }
}

/// What the service and the drain need to know about a connection, updated by its I/O.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Requests handed to the app whose response body hyper has not finished with.
    in_flight: AtomicUsize,
    /// Bytes were read while no request was in flight: hyper holds part of a request head.
    unparsed: AtomicBool,
    /// Raw-head checks hyper cannot make; fed by the I/O, read by the service (one task, so
    /// the lock is never contended).
    heads: Mutex<HeadScanner>,
}

impl ConnState {
    /// State for a connection whose heads may have up to `max_headers` fields and
    /// `max_head` bytes (hyper's limits).
    pub fn new(max_headers: usize, max_head: usize) -> Self {
        ConnState {
            heads: Mutex::new(HeadScanner::new(max_headers, max_head)),
            ..ConnState::default()
        }
    }

    /// The raw-head verdict for the request hyper just handed over.
    pub fn head_verdict(&self) -> HeadVerdict {
        self.heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_verdict()
    }

    /// A request started (hyper parsed a head).
    pub fn request_started(&self) {
        self.unparsed.store(false, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A response finished (its body was dropped by hyper).
    pub fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Bytes arrived from the client; says how many of them hyper may see.
    pub fn bytes_read(&self, data: &[u8]) -> Pass {
        let pass = self
            .heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .feed(data);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            self.unparsed.store(true, Ordering::Relaxed);
        }
        pass
    }

    /// True if shutting the connection down now could lose a request.
    fn busy(&self, fd: RawFd) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
            || self.unparsed.load(Ordering::Relaxed)
            || kernel_pending(fd)
    }
}

/// Whether the kernel holds unread bytes for `fd`.
fn kernel_pending(fd: RawFd) -> bool {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer; `fd` is the connection's socket,
    // alive for as long as the connection future that calls this.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    rc == 0 && n > 0
}

/// Drives a connection after the drain started until it can be closed without losing a request.
pub async fn drain_connection<C>(
    mut conn: std::pin::Pin<&mut C>,
    shutdown: impl Fn(std::pin::Pin<&mut C>),
    state: Arc<ConnState>,
    fd: RawFd,
) where
    C: std::future::Future,
{
    let since = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tick.tick() => {}
        }
        if state.busy(fd) {
            continue;
        }
        if since.elapsed() >= IDLE_GRACE {
            shutdown(conn.as_mut());
            conn.await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_finishes_when_the_last_watch_is_dropped() {
        let mut drain = Drain::default();
        let mut w = drain.watch();
        let task = tokio::spawn(async move {
            w.started().await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(w);
        });
        drain.start();
        let before = tokio::time::Instant::now();
        drain.finished().await;
        assert!(before.elapsed() >= Duration::from_secs(5));
        task.await.unwrap();
    }

    #[test]
    fn a_partial_head_counts_as_busy_only_between_requests() {
        let s = ConnState::default();
        s.bytes_read(b"GET");
        assert!(s.unparsed.load(Ordering::Relaxed));
        s.request_started();
        s.bytes_read(b"body"); // body bytes, not a new head
        s.request_finished();
        assert!(!s.unparsed.load(Ordering::Relaxed));
        assert_eq!(s.in_flight.load(Ordering::Relaxed), 0);
    }
}
