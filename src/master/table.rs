//! The worker table: every live worker by id, the slots they fill, and the queries the
//! supervisor's rules ask (how many are ready, is a slot filled, which workers belong to a
//! generation). Crash-loop bookkeeping lives with the slots.
//!
//! Workers are one kind of supervised process. Kinds added later (attached daemons, cron jobs,
//! vassals) get tables of their own beside this one; the executor routes each reaped pid to the
//! kind that owns it, so none of them needs to know about the others.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::generation::GenerationId;
use super::worker::{Worker, WorkerId, WorkerState};

/// A worker that dies sooner than this after its start counts toward a crash loop.
pub const CRASH_WINDOW: Duration = Duration::from_secs(10);
/// Longest pause between respawns of a crash-looping slot.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One configured worker position. A slot outlives the workers that fill it, so a crash loop
/// is counted per slot, not per process.
#[derive(Debug, Default, Clone)]
pub struct Slot {
    /// Consecutive deaths within [`CRASH_WINDOW`] of the start.
    pub failures: u32,
    /// The token of the respawn timer pending for this slot. A timer whose token is not this
    /// one (the slot was removed and added again, or refilled meanwhile) is ignored.
    pub respawn: Option<u64>,
    /// Why its last worker died young, for `segue status`.
    pub last_failure: Option<String>,
    /// Workers started in it so far (uWSGI's `respawn_count` is this minus one).
    pub spawns: u64,
}

/// Every live worker and every slot. Owned by the supervisor; changed only by it.
#[derive(Debug, Default)]
pub struct Table {
    /// Live workers by id (ordered, so that decisions and status are deterministic).
    workers: BTreeMap<WorkerId, Worker>,
    /// One per wanted worker; the live worker count is `slots.len()`.
    slots: Vec<Slot>,
    /// Next worker id to hand out (never reused, carried across upgrades).
    next_id: u64,
    /// Next respawn-timer token.
    next_token: u64,
}

impl Table {
    /// A table wanting `slots` workers, handing out ids from 1.
    pub fn new(slots: usize) -> Table {
        Table {
            workers: BTreeMap::new(),
            slots: vec![Slot::default(); slots],
            next_id: 1,
            next_token: 1,
        }
    }

    /// A fresh id for a new worker.
    pub fn next_id(&mut self) -> WorkerId {
        let id = WorkerId(self.next_id);
        self.next_id += 1;
        id
    }

    /// The id the next worker will get (for the upgrade handover).
    pub fn peek_next_id(&self) -> u64 {
        self.next_id
    }

    /// Continues the id sequence of an old master after an upgrade.
    pub fn set_next_id(&mut self, next: u64) {
        self.next_id = self.next_id.max(next);
    }

    /// A fresh respawn-timer token.
    pub fn next_token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    /// Adds a worker.
    pub fn insert(&mut self, worker: Worker) {
        self.workers.insert(worker.id, worker);
    }

    /// Removes a worker (it exited).
    pub fn remove(&mut self, id: WorkerId) -> Option<Worker> {
        self.workers.remove(&id)
    }

    /// A worker by id.
    pub fn get(&self, id: WorkerId) -> Option<&Worker> {
        self.workers.get(&id)
    }

    /// A worker by id, to change it.
    pub fn get_mut(&mut self, id: WorkerId) -> Option<&mut Worker> {
        self.workers.get_mut(&id)
    }

    /// Every live worker, by id.
    pub fn workers(&self) -> impl Iterator<Item = &Worker> {
        self.workers.values()
    }

    /// No worker is alive.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// How many workers are alive (any state).
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// The ids of the workers matching `pred`, collected so the caller may change the table.
    pub fn ids(&self, pred: impl Fn(&Worker) -> bool) -> Vec<WorkerId> {
        self.workers
            .values()
            .filter(|w| pred(w))
            .map(|w| w.id)
            .collect()
    }

    /// The worker with this pid.
    pub fn by_pid(&self, pid: i32) -> Option<WorkerId> {
        self.workers
            .values()
            .find(|w| w.pid == Some(pid))
            .map(|w| w.id)
    }

    /// Ready workers of `generation`.
    pub fn ready_count(&self, generation: GenerationId) -> usize {
        self.workers
            .values()
            .filter(|w| w.state == WorkerState::Ready && w.generation == generation)
            .count()
    }

    /// Whether some worker is still importing its app.
    pub fn any_starting(&self) -> bool {
        self.workers
            .values()
            .any(|w| w.state == WorkerState::Starting)
    }

    /// Whether `slot` has a starting or ready worker of `generation`.
    pub fn slot_filled(&self, slot: usize, generation: GenerationId) -> bool {
        self.workers
            .values()
            .any(|w| w.slot == slot && w.generation == generation && w.fills_slot())
    }

    /// The generations that still have workers.
    pub fn live_generations(&self) -> HashSet<GenerationId> {
        self.workers.values().map(|w| w.generation).collect()
    }

    /// The wanted worker count.
    pub fn wanted(&self) -> usize {
        self.slots.len()
    }

    /// All slots, by index.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// All slots, to change them.
    pub fn slots_mut(&mut self) -> &mut [Slot] {
        &mut self.slots
    }

    /// A slot, if it still exists (a scale-down removes the last one).
    pub fn slot_mut(&mut self, slot: usize) -> Option<&mut Slot> {
        self.slots.get_mut(slot)
    }

    /// Sets the wanted worker count (an upgrade's new image takes the old one's).
    pub fn set_wanted(&mut self, n: usize) {
        self.slots.resize(n, Slot::default());
    }

    /// One more slot; returns its index.
    pub fn push_slot(&mut self) -> usize {
        self.slots.push(Slot::default());
        self.slots.len() - 1
    }

    /// Removes the last slot; returns its index.
    pub fn pop_slot(&mut self) -> Option<usize> {
        self.slots.pop().map(|_| self.slots.len())
    }
}

/// Respawn delay after `failures` consecutive early deaths: the first crash is respawned at
/// once, then the pause doubles from 100 ms up to [`MAX_BACKOFF`], so a broken app is retried
/// forever without spinning.
pub fn backoff(failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let exp = (failures - 2).min(10);
    (Duration::from_millis(100) * 2u32.pow(exp)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_respawns_the_first_crash_at_once_then_doubles_up_to_a_cap() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(200));
        assert_eq!(backoff(50), MAX_BACKOFF);
    }

    #[test]
    fn popped_slot_is_gone_and_ids_never_repeat() {
        let mut t = Table::new(2);
        let a = t.next_id();
        assert_eq!(t.pop_slot(), Some(1));
        assert!(t.slot_mut(1).is_none());
        assert_eq!(t.push_slot(), 1);
        assert_ne!(t.next_id(), a);
    }
}
