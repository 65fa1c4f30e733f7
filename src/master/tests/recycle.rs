//! Recycling: the replacement is ready before the old worker drains; stuck workers are killed.

use std::time::Duration;

use super::*;
use crate::master::recycle::{RECYCLE_RETRY, STUCK_GRACE};

fn served(n: u64) -> Stats {
    Stats {
        requests_finished: n,
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn max_requests_starts_a_replacement_and_drains_the_old_worker_only_once_it_is_ready() {
    let mut sim = Sim::serving(&["--workers", "1", "--max-requests", "10"]);
    let old = sim.workers(1, "ready")[0];
    assert!(spawned(&sim.heartbeat(old, served(9))).is_empty());
    let effects = sim.heartbeat(old, served(10));
    let new = spawned(&effects);
    assert_eq!(new.len(), 1);
    assert!(drained(&effects).is_empty());
    // Further heartbeats start no second replacement.
    assert!(spawned(&sim.heartbeat(old, served(11))).is_empty());
    let effects = sim.ready(new[0]);
    assert_eq!(drained(&effects), vec![(old, DrainReason::Recycle)]);
}

#[tokio::test(start_paused = true)]
async fn a_replacement_that_fails_leaves_the_old_worker_serving_and_retries_later() {
    let mut sim = Sim::serving(&["--workers", "1", "--max-requests", "5"]);
    let old = sim.workers(1, "ready")[0];
    let new = spawned(&sim.heartbeat(old, served(5)))[0];
    let effects = sim.exit(new, 1);
    assert!(killed(&effects).is_empty());
    assert_eq!(sim.state(old), Some(WorkerState::Ready));
    assert!(
        spawned(&sim.heartbeat(old, served(6))).is_empty(),
        "not before the retry"
    );
    tokio::time::advance(RECYCLE_RETRY).await;
    assert_eq!(spawned(&sim.heartbeat(old, served(7))).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_stuck_worker_is_killed_a_grace_after_its_replacement_is_ready() {
    let mut sim = Sim::serving(&["--workers", "1", "--harakiri", "2"]);
    let old = sim.workers(1, "ready")[0];
    let effects = sim.feed(Event::FromWorker(
        old,
        ToMaster::Stuck {
            request: "GET /sleep".into(),
            age_ms: 2100,
        },
    ));
    let new = spawned(&effects)[0];
    assert!(
        killed(&effects).is_empty(),
        "not before the replacement serves"
    );
    let effects = sim.ready(new);
    assert!(timers(&effects).contains(&(STUCK_GRACE, Timer::KillStuck(old))));
    assert_eq!(killed(&sim.timer(Timer::KillStuck(old))), vec![old]);
}

#[tokio::test(start_paused = true)]
async fn a_stuck_worker_whose_replacement_fails_is_killed_anyway() {
    let mut sim = Sim::serving(&["--workers", "1", "--harakiri", "2"]);
    let old = sim.workers(1, "ready")[0];
    let effects = sim.feed(Event::FromWorker(
        old,
        ToMaster::Stuck {
            request: "GET /".into(),
            age_ms: 3000,
        },
    ));
    let new = spawned(&effects)[0];
    assert_eq!(killed(&sim.exit(new, 1)), vec![old]);
}

#[tokio::test(start_paused = true)]
async fn a_silent_worker_is_replaced_after_the_heartbeat_timeout() {
    let mut sim = Sim::serving(&["--workers", "2", "--heartbeat-timeout", "3"]);
    let ids = sim.workers(1, "ready");
    tokio::time::advance(Duration::from_secs(2)).await;
    sim.heartbeat(ids[1], served(1));
    assert!(spawned(&sim.feed(Event::Tick)).is_empty());
    tokio::time::advance(Duration::from_millis(1500)).await;
    let effects = sim.feed(Event::Tick);
    let new = spawned(&effects);
    assert_eq!(new.len(), 1, "only the silent one");
    assert_eq!(sim.sup.table.get(new[0]).unwrap().replaces, Some(ids[0]));
}

#[tokio::test(start_paused = true)]
async fn max_worker_lifetime_replaces_a_worker_that_has_grown_old() {
    let mut sim = Sim::serving(&["--workers", "1", "--max-worker-lifetime", "60"]);
    let old = sim.workers(1, "ready")[0];
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(spawned(&sim.heartbeat(old, served(1))).is_empty());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(spawned(&sim.heartbeat(old, served(2))).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn no_recycling_during_a_reload() {
    let mut sim = Sim::serving(&["--workers", "1", "--max-requests", "1"]);
    let old = sim.workers(1, "ready")[0];
    sim.reload();
    assert!(spawned(&sim.heartbeat(old, served(5))).is_empty());
}
