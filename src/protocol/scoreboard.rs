//! The scoreboard: one shared page where each worker posts how many client connections it holds,
//! so that workers sharing a listener split a burst of new connections evenly.
//!
//! The kernel hands queued connections to whichever acceptor runs first, and a keep-alive
//! connection then stays with that worker for its whole life: a benchmark or a load balancer
//! opening its pool at once could land every connection on one worker (one GIL) while the others
//! idle (measured: 37 of 40). With the scoreboard, a worker that holds more connections than an
//! accepting peer (plus a slack of one) waits a moment before accepting again, so that the peer
//! takes the next connections. Only peers whose acceptor runs count (not a draining peer, nor
//! one backing off from fd exhaustion), and the wait is bounded, so a peer that stopped without
//! saying so costs milliseconds, once.
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
const SIZE: usize = CELLS * std::mem::size_of::<u64>();
/// A cell's low 32 bits count the worker's open connections; the high 32 its acceptor threads
/// that are running.
const COUNT: u64 = u32::MAX as u64;
const ACCEPTOR: u64 = 1 << 32;
/// How many more connections than the least-loaded peer a worker may take before it defers.
const SLACK: u64 = 1;

/// The shared page, mapped into this process.
#[derive(Debug)]
pub struct Scoreboard {
    cells: NonNull<AtomicU64>,
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
            cells: ptr.cast(),
            fd,
        })
    }

    /// The page's descriptor, sent to each worker with `Boot`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn cells(&self) -> &[AtomicU64] {
        // SAFETY: the mapping holds CELLS u64s, is suitably aligned (page-aligned), and
        // outlives the borrow of self.
        unsafe { std::slice::from_raw_parts(self.cells.as_ptr(), CELLS) }
    }

    /// Master side: forgets whatever a worker that has exited left in `cell`.
    pub fn clear(&self, cell: usize) {
        if let Some(c) = self.cells().get(cell) {
            c.store(0, Ordering::Relaxed);
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
        let _ = unsafe { munmap(self.cells.cast(), SIZE) };
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
        Some(cell)
    }

    /// Frees the cell of a worker that has exited (or never started), forgetting its count.
    pub fn release(&mut self, cell: usize) {
        self.board.clear(cell);
        if let Some(t) = self.taken.get_mut(cell) {
            *t = false;
        }
    }

    /// The page's descriptor, sent to each worker with `Boot`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.board.fd()
    }
}

/// One worker's cell: its connection count and its running acceptors.
#[derive(Debug, Clone)]
pub struct Cell {
    board: Arc<Scoreboard>,
    index: usize,
}

impl Cell {
    fn mine(&self) -> &AtomicU64 {
        &self.board.cells()[self.index]
    }

    /// Counts a running acceptor thread; the guard uncounts it when dropped.
    pub fn accepting(&self) -> Accepting {
        self.mine().fetch_add(ACCEPTOR, Ordering::Relaxed);
        Accepting(self.clone())
    }

    /// Counts a connection accepted; the returned guard counts it closed when dropped.
    pub fn opened(&self) -> Tally {
        self.mine().fetch_add(1, Ordering::Relaxed);
        Tally(self.clone())
    }

    /// The connections held by the least-loaded accepting peer, if it holds fewer than this
    /// worker by more than the slack: the next connection should go to it.
    pub fn behind_peer(&self) -> Option<u64> {
        let mine = self.mine().load(Ordering::Relaxed) & COUNT;
        self.board
            .cells()
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != self.index)
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .filter(|v| v >> 32 > 0)
            .map(|v| v & COUNT)
            .min()
            .filter(|&least| mine > least + SLACK)
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

    fn worker(board: &Arc<Scoreboard>, index: usize) -> Cell {
        // What a worker does: map the master's page through its own descriptor.
        let fd = board.fd().try_clone_to_owned().unwrap();
        Arc::new(Scoreboard::open(fd).unwrap()).cell(index).unwrap()
    }

    #[test]
    fn a_worker_defers_only_to_an_accepting_peer_with_fewer_connections() {
        let board = Arc::new(Scoreboard::create().unwrap());
        let (a, b) = (worker(&board, 0), worker(&board, 7));
        let held: Vec<Tally> = (0..2).map(|_| a.opened()).collect();
        assert_eq!(
            a.behind_peer(),
            None,
            "b does not accept: it would take nothing"
        );
        let accepting = b.accepting();
        assert_eq!(
            a.behind_peer(),
            Some(0),
            "2 against 0 is more than the slack"
        );
        assert_eq!(b.behind_peer(), None);
        let b1 = b.opened();
        assert_eq!(a.behind_peer(), None, "2 against 1 is within the slack");
        drop(b1);
        assert_eq!(a.behind_peer(), Some(0));
        board.clear(7);
        assert_eq!(
            a.behind_peer(),
            None,
            "the master cleared the exited peer's cell"
        );
        std::mem::forget(accepting); // its cell was cleared under it, as after a crash
        drop(held);
        assert_eq!(a.mine().load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_page_of_the_wrong_size_is_refused() {
        let fd =
            nix::sys::memfd::memfd_create(c"t", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).unwrap();
        nix::unistd::ftruncate(&fd, 100).unwrap();
        assert!(Scoreboard::open(fd).is_err());
    }
}
