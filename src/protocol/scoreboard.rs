//! The scoreboard: shared memory where each worker posts how many client connections it holds
//! and whether a Python thread of its is free, so that new connections go where they are served
//! soonest.
//!
//! The kernel hands queued connections to whichever acceptor runs first, and a keep-alive
//! connection then stays with that worker for its whole life: a benchmark or a load balancer
//! opening its pool at once could land every connection on one worker (one GIL) while the others
//! idle (measured: 37 of 40), and a new connection could queue behind a slow request while
//! another worker has nothing to do. With the scoreboard, a worker steps aside for a moment when
//! an accepting peer is better placed: this worker's Python threads have all been busy for 10 ms
//! or more (a slow request) and the peer's have not, or both are alike and the peer holds fewer
//! connections (by more than a slack of one). Busy spells shorter than that are the normal
//! rhythm of a loaded worker and do not count.
//! gunicorn's sync workers get the first half for free, as they accept only when idle.
//! Only peers whose acceptor runs count (not a draining peer, nor one backing off from fd
//! exhaustion or holding its `--worker-connections`), and the wait is bounded, so a peer that
//! stopped without saying so costs milliseconds, once. A worker whose GIL is held (a C call that
//! does not release it) posts that it is wedged: it is then neither accepting nor free, for
//! every listener at once, until its GIL probe gets the GIL again.
//!
//! The master creates the page (a memfd), gives each worker a cell with `Boot`, and clears a
//! cell when its worker exits, so a crashed worker's count never lingers.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// Cells on the page; workers beyond this many (alive at once) run without balancing.
pub const CELLS: usize = 256;
const SIZE: usize = std::mem::size_of::<Page>();
/// A cell's word: bits 0-31 count the worker's open connections, bits 32-47 its running
/// acceptors, bits 48-63 its Python threads waiting for work.
const CONNECTIONS: u64 = (1 << 32) - 1;
const ACCEPTOR: u64 = 1 << 32;
const ACCEPTORS: u64 = 0xffff << 32;
const IDLE: u64 = 1 << 48;
/// How many more connections than a like peer a worker may take before it defers.
const SLACK: u64 = 1;
/// How many more connections a worker with a free Python thread may hold than a busy one and
/// still be preferred: enough to route around a slow request, small enough that a busy spell
/// while connections open does not leave the split lopsided for the connections' life.
const SKEW: u64 = 2;

/// A worker whose Python threads have all been busy this long is serving a slow request.
const SLOW: u64 = 10;

/// One cell, alone on its cache line: the Python threads update it on every request, and
/// sharing a line would make every worker's updates evict the others'.
#[repr(C, align(64))]
struct Slot {
    word: AtomicU64,
    /// When the worker's last idle Python thread took a job (CLOCK_MONOTONIC, ms); 0 while a
    /// thread is idle.
    busy_since: AtomicU64,
    /// When the worker found its GIL held past its probe's limit (CLOCK_MONOTONIC, ms); 0 while
    /// the GIL can be had. Set and cleared by the worker's acceptors, cleared by the master.
    wedged_since: AtomicU64,
    /// Requests the worker has read and queued for a Python thread that none has taken yet:
    /// its own backlog, which an acceptor that takes connections eagerly hides from the
    /// kernel's accept queue (read by the master for `--cheaper-algo backlog`).
    waiting: AtomicU64,
    /// When the worker last accepted a connection (CLOCK_MONOTONIC, µs; 0: never). Between
    /// two idle workers the one that waited longer takes the next connection, as the kernel's
    /// queue of blocked acceptors would: otherwise the worker still running from the last
    /// request wins every race, and one-at-a-time traffic lands on one worker.
    last_accept: AtomicU64,
}

/// The shared memory's layout.
#[repr(C)]
struct Page {
    /// One more than the highest cell in use, kept by the master: workers look no further.
    in_use: Slot,
    cells: [Slot; CELLS],
}

/// CLOCK_MONOTONIC in microseconds: one clock for every process on the machine.
fn now_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0)
}

/// The same clock in milliseconds.
fn now_ms() -> u64 {
    now_us() / 1000
}

/// The shared page, mapped into this process.
#[derive(Debug)]
pub struct Scoreboard {
    page: NonNull<Page>,
    fd: OwnedFd,
}

// SAFETY: the mapping is only ever accessed through atomics, and lives as long as the value.
unsafe impl Send for Scoreboard {}
// SAFETY: as above; atomics make concurrent access from any thread sound.
unsafe impl Sync for Scoreboard {}

impl Scoreboard {
    /// Master side: a new, zeroed page.
    pub fn create() -> io::Result<Scoreboard> {
        let fd = nix::sys::memfd::memfd_create(
            c"segue-scoreboard",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )?;
        nix::unistd::ftruncate(&fd, SIZE as i64)?;
        Self::map(fd)
    }

    /// Worker side: maps the page the master sent.
    pub fn open(fd: OwnedFd) -> io::Result<Scoreboard> {
        let size = nix::sys::stat::fstat(&fd)?.st_size;
        if size != SIZE as i64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("scoreboard is {size} bytes, expected {SIZE}"),
            ));
        }
        Self::map(fd)
    }

    fn map(fd: OwnedFd) -> io::Result<Scoreboard> {
        // SAFETY: a fresh shared mapping of a file we hold, of the file's exact size; nothing
        // else in this process aliases it.
        let ptr = unsafe {
            mmap(
                None,
                SIZE.try_into().expect("non-zero size"),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )?
        };
        Ok(Scoreboard {
            page: ptr.cast(),
            fd,
        })
    }

    /// The page's descriptor, sent to each worker with `Boot`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn page(&self) -> &Page {
        // SAFETY: the mapping is exactly one Page, page-aligned (so 64-byte aligned), and
        // outlives the borrow of self; a Page is plain atomics, for which zeroes are valid.
        unsafe { self.page.as_ref() }
    }

    fn cells(&self) -> &[Slot] {
        &self.page().cells
    }

    /// The cells that may belong to live workers.
    fn cells_in_use(&self) -> &[Slot] {
        let n = self.page().in_use.word.load(Ordering::Relaxed) as usize;
        &self.cells()[..n.min(CELLS)]
    }

    /// Master side: forgets whatever a worker that has exited left in `cell`.
    pub fn clear(&self, cell: usize) {
        if let Some(c) = self.cells().get(cell) {
            c.word.store(0, Ordering::Relaxed);
            c.busy_since.store(0, Ordering::Relaxed);
            c.wedged_since.store(0, Ordering::Relaxed);
            c.waiting.store(0, Ordering::Relaxed);
            // A worker later given this cell has accepted nothing yet.
            c.last_accept.store(0, Ordering::Relaxed);
        }
    }

    /// Worker side: this worker's cell. `None` if the index is out of range.
    pub fn cell(self: Arc<Self>, index: usize) -> Option<Cell> {
        (index < CELLS).then_some(Cell { board: self, index })
    }
}

impl Drop for Scoreboard {
    fn drop(&mut self) {
        // SAFETY: the mapping was created in `map` with this size and is not used after this.
        let _ = unsafe { munmap(self.page.cast(), SIZE) };
    }
}

/// Master side: the page, and which cells belong to live workers.
#[derive(Debug)]
pub struct Cells {
    board: Scoreboard,
    taken: Vec<bool>,
}

impl Cells {
    /// A new page with every cell free.
    pub fn new() -> io::Result<Cells> {
        Ok(Cells {
            board: Scoreboard::create()?,
            taken: vec![false; CELLS],
        })
    }

    /// A free cell for a new worker, zeroed; `None` when all are taken.
    pub fn take(&mut self) -> Option<usize> {
        let cell = self.taken.iter().position(|t| !t)?;
        self.taken[cell] = true;
        self.board.clear(cell);
        self.publish_in_use();
        Some(cell)
    }

    /// Frees the cell of a worker that has exited (or never started), forgetting its count.
    pub fn release(&mut self, cell: usize) {
        self.board.clear(cell);
        if let Some(t) = self.taken.get_mut(cell) {
            *t = false;
        }
        self.publish_in_use();
    }

    fn publish_in_use(&self) {
        let n = self.taken.iter().rposition(|t| *t).map_or(0, |i| i + 1);
        self.board
            .page()
            .in_use
            .word
            .store(n as u64, Ordering::Relaxed);
    }

    /// The page's descriptor, sent to each worker with `Boot`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.board.fd()
    }

    /// What the worker in `cell` posts about its load now (zeroes for a cell out of range).
    pub fn sample(&self, cell: usize) -> CellLoad {
        self.board
            .cells()
            .get(cell)
            .map_or(CellLoad::default(), |c| CellLoad {
                free_threads: c.word.load(Ordering::Relaxed) >> 48,
                waiting: c.waiting.load(Ordering::Relaxed),
                wedged: c.wedged_since.load(Ordering::Relaxed) != 0,
            })
    }
}

/// One worker's load as the master reads it from its cell, for `--cheaper` and `--idle`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CellLoad {
    /// Python threads waiting for work.
    pub free_threads: u64,
    /// Requests queued for a Python thread that none has taken yet.
    pub waiting: u64,
    /// The worker's GIL is held past its probe's limit.
    pub wedged: bool,
}

/// One worker's cell: its connections, running acceptors and idle Python threads.
#[derive(Debug, Clone)]
pub struct Cell {
    board: Arc<Scoreboard>,
    index: usize,
}

impl Cell {
    fn slot(&self) -> &Slot {
        &self.board.cells()[self.index]
    }

    fn mine(&self) -> &AtomicU64 {
        &self.slot().word
    }

    /// Counts a running acceptor; the guard uncounts it when dropped.
    pub fn accepting(&self) -> Accepting {
        self.mine().fetch_add(ACCEPTOR, Ordering::Relaxed);
        Accepting(self.clone())
    }

    /// Counts a connection accepted; the returned guard counts it closed when dropped.
    pub fn opened(&self) -> Tally {
        self.mine().fetch_add(1, Ordering::Relaxed);
        self.slot().last_accept.store(now_us(), Ordering::Relaxed);
        Tally(self.clone())
    }

    /// Counts a Python thread waiting for work; the guard uncounts it when dropped.
    pub fn idle(&self) -> Idle {
        self.mine().fetch_add(IDLE, Ordering::Relaxed);
        self.slot().busy_since.store(0, Ordering::Relaxed);
        Idle(self.clone())
    }

    /// Counts a request queued for the Python threads ([`Cell::job_taken`] uncounts it).
    pub fn job_queued(&self) {
        self.slot().waiting.fetch_add(1, Ordering::Relaxed);
    }

    /// A Python thread took a queued request.
    pub fn job_taken(&self) {
        // Saturating: a cell the master cleared while a job was queued must not wrap.
        let _ = self
            .slot()
            .waiting
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Posts that this worker's GIL is held, so that no peer waits for it or counts it free;
    /// the guard posts that it is free again when dropped.
    pub fn wedged(&self) -> Wedged {
        // The clock never reads 0 on a running system; max(1) makes sure "set" reads as set.
        self.slot()
            .wedged_since
            .store(now_ms().max(1), Ordering::Relaxed);
        Wedged(self.clone())
    }

    /// If an accepting peer is better placed for the next connection, the connections it holds
    /// (a change in them shows that it is taking its share).
    pub fn better_peer(&self) -> Option<u64> {
        let now = now_ms();
        let mine = Load::of(self.slot(), now);
        self.board
            .cells_in_use()
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != self.index)
            .map(|(_, c)| Load::of(c, now))
            .filter(|peer| peer.accepting && peer.better_than(&mine))
            .map(|peer| peer.connections)
            .min()
    }
}

/// What a cell says about its worker, for comparing two.
struct Load {
    /// An acceptor of the worker runs: it can take the next connection.
    accepting: bool,
    /// No Python thread has been free for [`SLOW`] ms: a new request would wait.
    saturated: bool,
    connections: u64,
    last_accept: u64,
}

impl Load {
    fn of(slot: &Slot, now: u64) -> Load {
        let word = slot.word.load(Ordering::Relaxed);
        let since = slot.busy_since.load(Ordering::Relaxed);
        // A wedged worker's idle threads cannot run (they wait for the GIL), and its acceptors
        // are stepping out: it takes nothing, whatever its word says.
        let wedged = slot.wedged_since.load(Ordering::Relaxed) != 0;
        // One load of the word, so that its fields describe the same moment.
        Load {
            accepting: word & ACCEPTORS != 0 && !wedged,
            saturated: wedged || (word < IDLE && since != 0 && now.saturating_sub(since) >= SLOW),
            connections: word & CONNECTIONS,
            last_accept: slot.last_accept.load(Ordering::Relaxed),
        }
    }

    fn better_than(&self, other: &Load) -> bool {
        match (self.saturated, other.saturated) {
            (false, true) => self.connections <= other.connections + SKEW,
            (true, false) => self.connections + SKEW < other.connections,
            _ => {
                self.connections + SLACK < other.connections
                    // Both idle-ish: the one that waited longer (see `Slot::last_accept`).
                    || (self.connections == 0 && self.last_accept < other.last_accept)
            }
        }
    }
}

/// A Python thread waiting for work, on the scoreboard.
#[derive(Debug)]
pub struct Idle(Cell);

impl Drop for Idle {
    fn drop(&mut self) {
        let before = self.0.mine().fetch_sub(IDLE, Ordering::Relaxed);
        if before >> 48 == 1 {
            // The last free thread took a job (the clock never reads 0 on a running system).
            self.0.slot().busy_since.store(now_ms(), Ordering::Relaxed);
        }
    }
}

/// A worker whose GIL is held, on the scoreboard.
#[derive(Debug)]
pub struct Wedged(Cell);

impl Drop for Wedged {
    fn drop(&mut self) {
        self.0.slot().wedged_since.store(0, Ordering::Relaxed);
    }
}

/// A running acceptor, on the scoreboard.
#[derive(Debug)]
pub struct Accepting(Cell);

impl Drop for Accepting {
    fn drop(&mut self) {
        self.0.mine().fetch_sub(ACCEPTOR, Ordering::Relaxed);
    }
}

/// One open connection on the scoreboard.
#[derive(Debug)]
pub struct Tally(Cell);

impl Drop for Tally {
    fn drop(&mut self) {
        self.0.mine().fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the master and a new worker do: take a cell, and map the page through the
    /// worker's own descriptor.
    fn worker(cells: &mut Cells) -> Cell {
        let index = cells.take().unwrap();
        let fd = cells.fd().try_clone_to_owned().unwrap();
        Arc::new(Scoreboard::open(fd).unwrap()).cell(index).unwrap()
    }

    #[test]
    fn the_master_reads_free_threads_queued_jobs_and_wedging_until_it_clears_the_cell() {
        let mut cells = Cells::new().unwrap();
        let a = worker(&mut cells);
        assert_eq!(cells.sample(a.index), CellLoad::default());
        let idle = (a.idle(), a.idle());
        assert_eq!(cells.sample(a.index).free_threads, 2);
        a.job_queued();
        a.job_queued();
        drop(idle.0); // a thread took one
        a.job_taken();
        let load = cells.sample(a.index);
        assert_eq!(
            (load.free_threads, load.waiting, load.wedged),
            (1, 1, false)
        );
        let wedged = a.wedged();
        assert!(cells.sample(a.index).wedged);
        drop(wedged);
        cells.release(a.index);
        assert_eq!(cells.sample(a.index), CellLoad::default());
        a.job_taken();
        assert_eq!(cells.sample(a.index).waiting, 0, "never below zero");
        drop(idle.1);
    }

    #[test]
    fn a_worker_defers_only_to_an_accepting_peer_with_fewer_connections() {
        let mut cells = Cells::new().unwrap();
        let (a, b) = (worker(&mut cells), worker(&mut cells));
        let held: Vec<Tally> = (0..2).map(|_| a.opened()).collect();
        assert_eq!(
            a.better_peer(),
            None,
            "b does not accept: it would take nothing"
        );
        let accepting = b.accepting();
        assert_eq!(
            a.better_peer(),
            Some(0),
            "2 against 0 is more than the slack"
        );
        assert_eq!(b.better_peer(), None);
        let b1 = b.opened();
        assert_eq!(a.better_peer(), None, "2 against 1 is within the slack");
        drop(b1);
        assert_eq!(a.better_peer(), Some(0));
        cells.release(b.index);
        assert_eq!(
            a.better_peer(),
            None,
            "the master cleared the exited peer's cell"
        );
        std::mem::forget(accepting); // its cell was cleared under it, as after a crash
        drop(held);
        assert_eq!(a.mine().load(Ordering::Relaxed), 0);
    }

    #[test]
    fn between_idle_workers_the_one_that_waited_longer_takes_the_next_connection() {
        let mut cells = Cells::new().unwrap();
        let (a, b) = (worker(&mut cells), worker(&mut cells));
        let (_a_acc, _b_acc) = (a.accepting(), b.accepting());
        drop(b.opened());
        b.slot().last_accept.fetch_sub(500, Ordering::Relaxed); // b's was 0.5 ms earlier
        let a_conn = a.opened();
        // a, still closing its last connection, steps aside for b; b does not for a.
        assert_eq!(a.better_peer(), Some(0));
        assert_eq!(b.better_peer(), None);
        drop(a_conn);
        assert_eq!(a.better_peer(), Some(0), "both empty: b waited longer");
        // b takes it: now a waited longer, and the turn goes back.
        let b_conn = b.opened();
        assert_eq!(b.better_peer(), Some(0));
        assert_eq!(a.better_peer(), None);
        // A worker holding connections gets no such preference: counts decide.
        let mut a_conns: Vec<Tally> = (0..2).map(|_| a.opened()).collect();
        drop(b_conn);
        let _b_conns: Vec<Tally> = (0..2).map(|_| b.opened()).collect();
        drop(a_conns.pop());
        assert_eq!(b.better_peer(), None, "1 against 2 is within the slack");
    }

    #[test]
    fn a_worker_busy_with_a_slow_request_yields_to_an_idle_one() {
        let mut cells = Cells::new().unwrap();
        let (a, b) = (worker(&mut cells), worker(&mut cells));
        let (_a_acc, _b_acc) = (a.accepting(), b.accepting());
        let mut a_conns: Vec<Tally> = (0..3).map(|_| a.opened()).collect();
        let _b_conn = b.opened();
        let a_idle = a.idle();
        drop(b.idle()); // b's only thread took a job...
        assert_eq!(
            a.better_peer(),
            Some(1),
            "...but a busy spell of under 10 ms does not count"
        );
        b.slot().busy_since.fetch_sub(SLOW, Ordering::Relaxed); // ...10 ms ago
        // b's only thread is busy (a slow request): a, idle, keeps accepting at 3 to 1...
        assert_eq!(a.better_peer(), None);
        assert_eq!(
            b.better_peer(),
            Some(3),
            "b steps aside for the idle worker"
        );
        // ...but not without limit.
        a_conns.extend((0..2).map(|_| a.opened()));
        assert_eq!(a.better_peer(), Some(1));
        assert_eq!(b.better_peer(), None);
        // Both busy: connections alone decide.
        drop(a_idle);
        a.slot().busy_since.fetch_sub(SLOW, Ordering::Relaxed);
        assert_eq!(a.better_peer(), Some(1));
        let _b_idle = b.idle();
        assert_eq!(a.better_peer(), Some(1));
    }

    #[test]
    fn a_wedged_worker_is_neither_accepting_nor_free() {
        let mut cells = Cells::new().unwrap();
        let (a, b) = (worker(&mut cells), worker(&mut cells));
        let (_a_acc, _b_acc) = (a.accepting(), b.accepting());
        let _a_conns: Vec<Tally> = (0..3).map(|_| a.opened()).collect();
        let (_a_idle, _b_idle) = (a.idle(), b.idle());
        assert_eq!(a.better_peer(), Some(0), "b, idle and empty, is better");
        let wedge = b.wedged();
        assert_eq!(
            a.better_peer(),
            None,
            "b's acceptor still counts, but b is wedged: a must not wait for it"
        );
        assert!(Load::of(b.slot(), now_ms()).saturated);
        assert_eq!(b.better_peer(), None);
        drop(wedge);
        assert_eq!(a.better_peer(), Some(0), "b's GIL is free again");
        let _again = b.wedged();
        cells.release(b.index);
        assert_eq!(
            b.slot().wedged_since.load(Ordering::Relaxed),
            0,
            "the master cleared the exited worker's mark"
        );
    }

    #[test]
    fn workers_look_only_at_cells_in_use() {
        let mut cells = Cells::new().unwrap();
        let a = worker(&mut cells);
        let _a_acc = a.accepting();
        assert_eq!(a.board.cells_in_use().len(), 1);
        let b = worker(&mut cells);
        let c = worker(&mut cells);
        assert_eq!(a.board.cells_in_use().len(), 3);
        cells.release(c.index);
        assert_eq!(a.board.cells_in_use().len(), 2);
        cells.release(a.index);
        assert_eq!(
            b.board.cells_in_use().len(),
            2,
            "b, in the second cell, still counts"
        );
        assert_eq!(cells.take(), Some(a.index), "a freed cell is reused first");
    }

    #[test]
    fn a_page_of_the_wrong_size_is_refused() {
        let fd =
            nix::sys::memfd::memfd_create(c"t", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).unwrap();
        nix::unistd::ftruncate(&fd, 100).unwrap();
        assert!(Scoreboard::open(fd).is_err());
    }
}
