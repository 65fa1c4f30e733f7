//! What the once-a-second load sample ([`Event::Load`](super::effect::Event::Load)) means for
//! the rules that move the worker count: how many serving workers are busy (uWSGI's sense: no
//! Python thread free), whether any request runs at all, and how many wait.

use super::supervisor::Supervisor;
use super::worker::{WorkerId, WorkerState};
use crate::protocol::scoreboard::CellLoad;

/// The sample, judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Judged {
    /// Ready workers of the serving generation with no Python thread free (or wedged).
    pub busy: usize,
    /// Some ready worker runs or holds a request (a thread taken, a request queued, a GIL
    /// wedged): the server is not idle, however long that request takes.
    pub running: bool,
    /// Requests waiting: the accept queues plus what workers have queued for their threads.
    pub queued: u32,
}

impl Supervisor {
    /// Judges a sample against each worker's state and thread count. Workers still importing
    /// are neither busy nor running (their threads are not up yet).
    pub(super) fn judge(&self, workers: &[(WorkerId, CellLoad)], accept_queue: u32) -> Judged {
        let mut j = Judged {
            queued: accept_queue,
            ..Judged::default()
        };
        for (id, load) in workers {
            let Some(w) = self.table.get(*id) else {
                continue;
            };
            if w.state != WorkerState::Ready {
                continue;
            }
            let threads = self
                .generations
                .get(&w.generation)
                .map_or(1, |c| c.worker.threads) as u64;
            let waiting = u32::try_from(load.waiting).unwrap_or(u32::MAX);
            j.queued = j.queued.saturating_add(waiting);
            j.running |= load.wedged || load.waiting > 0 || load.free_threads < threads;
            if w.generation == self.serving && (load.wedged || load.free_threads == 0) {
                j.busy += 1;
            }
        }
        j
    }
}
