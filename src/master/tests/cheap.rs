//! Cheap, idle and cheaper mode: the worker count moving with traffic.

use std::time::Duration;

use super::*;
use crate::master::command::ScaleError;
use crate::protocol::scoreboard::CellLoad;

fn watches(effects: &[Effect]) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::WatchListeners))
        .count()
}

/// The scoreboard as it reads when the workers in `busy` serve a request on their one
/// thread and every other worker's thread waits for work.
fn load(sim: &Sim, busy: &[WorkerId], accept_queue: u32) -> Event {
    let workers = sim
        .sup
        .table
        .workers()
        .map(|w| {
            let free_threads = u64::from(!busy.contains(&w.id));
            (
                w.id,
                CellLoad {
                    free_threads,
                    ..CellLoad::default()
                },
            )
        })
        .collect();
    Event::Load {
        workers,
        accept_queue,
    }
}

/// One second of the master's sweep: the tick, then the load sample.
async fn sweep(sim: &mut Sim, busy: Vec<WorkerId>, accept_queue: u32) -> Vec<Effect> {
    tokio::time::advance(Duration::from_secs(1)).await;
    let mut effects = sim.feed(Event::Tick);
    let sample = load(sim, &busy, accept_queue);
    effects.extend(sim.feed(sample));
    effects
}

#[tokio::test(start_paused = true)]
async fn cheap_starts_no_workers_is_ready_and_wakes_on_a_connection() {
    let (mut sim, effects) = Sim::start(&["--cheap", "--workers", "2"]);
    assert!(spawned(&effects).is_empty());
    assert_eq!(watches(&effects), 1);
    assert!(
        notifications(&effects)
            .iter()
            .any(|n| n.starts_with("READY=1") && n.contains("asleep")),
        "{effects:?}"
    );
    let status = sim.sup.status();
    assert!(status.ready && status.scaling.asleep);
    assert_eq!(status.workers_wanted, 0);
    // The watchdog is fed while asleep.
    assert_eq!(notifications(&sim.feed(Event::Watchdog)), ["WATCHDOG=1"]);
    // Scaling by hand has nothing to scale.
    match &replies(&sim.ask(Command::Scale(1)))[..] {
        [Outcome::Scale(Err(ScaleError::Asleep))] => {}
        other => panic!("{other:?}"),
    }
    let effects = sim.feed(Event::ConnectionWaiting);
    let woke = spawned(&effects);
    assert_eq!(woke.len(), 2);
    assert!(!sim.sup.status().scaling.asleep);
    // A second wake-up (a stale watch) changes nothing.
    assert!(spawned(&sim.feed(Event::ConnectionWaiting)).is_empty());
}

#[tokio::test(start_paused = true)]
async fn idle_drains_the_workers_after_the_quiet_spell_and_the_next_connection_wakes_them() {
    let mut sim = Sim::serving(&["--idle", "5", "--workers", "2"]);
    let ids = sim.workers(1, "ready");
    for _ in 0..3 {
        sweep(&mut sim, vec![], 0).await;
    }
    // A request resets the quiet time.
    sim.heartbeat(
        ids[0],
        Stats {
            requests_started: 1,
            requests_finished: 1,
            ..Stats::default()
        },
    );
    for _ in 0..4 {
        let effects = sweep(&mut sim, vec![], 0).await;
        assert!(drained(&effects).is_empty(), "{effects:?}");
    }
    // A request still running is activity too, however long it runs.
    for _ in 0..10 {
        let effects = sweep(&mut sim, vec![ids[1]], 0).await;
        assert!(drained(&effects).is_empty());
    }
    let mut effects = Vec::new();
    for _ in 0..6 {
        effects.extend(sweep(&mut sim, vec![], 0).await);
    }
    let mut gone: Vec<_> = drained(&effects).into_iter().map(|(id, _)| id).collect();
    gone.sort();
    assert_eq!(gone, ids);
    assert_eq!(watches(&effects), 1);
    assert!(sim.sup.status().scaling.asleep);
    // The drained workers exit; nothing is respawned.
    for id in ids {
        assert!(spawned(&sim.exit(id, 0)).is_empty());
    }
    assert_eq!(spawned(&sim.feed(Event::ConnectionWaiting)).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn die_on_idle_stops_the_server() {
    let mut sim = Sim::serving(&["--idle", "2", "--die-on-idle"]);
    let id = sim.workers(1, "ready")[0];
    let mut effects = Vec::new();
    for _ in 0..3 {
        effects.extend(sweep(&mut sim, vec![], 0).await);
    }
    assert_eq!(drained(&effects), vec![(id, DrainReason::Shutdown)]);
    let effects = sim.exit(id, 0);
    assert!(effects.iter().any(|e| matches!(e, Effect::Exit(0))));
}

#[tokio::test(start_paused = true)]
async fn a_reload_while_asleep_wakes_the_new_generation_through_the_gate() {
    let (mut sim, _) = Sim::start(&["--cheap", "--workers", "2"]);
    let effects = sim.reload();
    assert_eq!(spawned_generations(&effects), vec![2, 2]);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::UnwatchListeners))
    );
    for id in spawned(&effects) {
        sim.ready(id);
    }
    let status = sim.sup.status();
    assert_eq!(status.serving, 2);
    assert!(status.reloads[0].ok && !status.scaling.asleep);
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_reload_while_asleep_wakes_the_old_code() {
    let (mut sim, _) = Sim::start(&["--cheap"]);
    let new = spawned(&sim.reload())[0];
    sim.boot_failed(new, "ImportError", None);
    let effects = sim.exit(new, 3);
    assert_eq!(spawned_generations(&effects), vec![1]);
    assert_eq!(sim.sup.status().serving, 1);
}

#[tokio::test(start_paused = true)]
async fn cheaper_starts_with_the_minimum_grows_when_all_are_busy_and_shrinks_back() {
    let mut sim = Sim::serving(&[
        "--cheaper",
        "1",
        "--workers",
        "3",
        "--cheaper-overload",
        "2",
    ]);
    let first = sim.workers(1, "ready");
    assert_eq!(first.len(), 1);
    sweep(&mut sim, first.clone(), 0).await;
    let effects = sweep(&mut sim, first.clone(), 0).await;
    let second = spawned(&effects);
    assert_eq!(second.len(), 1, "{effects:?}");
    // Nothing more while the new worker boots.
    for _ in 0..3 {
        assert!(spawned(&sweep(&mut sim, first.clone(), 0).await).is_empty());
    }
    sim.ready(second[0]);
    let both = vec![first[0], second[0]];
    sweep(&mut sim, both.clone(), 0).await;
    let third = spawned(&sweep(&mut sim, both.clone(), 0).await);
    assert_eq!(third.len(), 1);
    sim.ready(third[0]);
    let all: Vec<_> = both.iter().copied().chain(third.clone()).collect();
    for _ in 0..5 {
        assert!(
            spawned(&sweep(&mut sim, all.clone(), 0).await).is_empty(),
            "at --workers"
        );
    }
    assert_eq!(sim.sup.status().workers_wanted, 3);
    // Quiet: one worker every --cheaper-overload sweeps, the newest slot first, down to 1.
    let mut gone = Vec::new();
    for _ in 0..20 {
        gone.extend(drained(&sweep(&mut sim, vec![], 0).await));
    }
    assert_eq!(
        gone,
        vec![
            (third[0], DrainReason::ScaleDown),
            (second[0], DrainReason::ScaleDown)
        ]
    );
    assert_eq!(sim.sup.status().workers_wanted, 1);
    match &replies(&sim.ask(Command::Scale(-1)))[..] {
        [Outcome::Scale(Err(ScaleError::Bounds { min: 1, max: 3 }))] => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn cheaper_backlog_grows_with_the_accept_queue() {
    let mut sim = Sim::serving(&[
        "--cheaper",
        "1",
        "--workers",
        "4",
        "--cheaper-algo",
        "backlog",
        "--cheaper-step",
        "2",
    ]);
    let first = sim.workers(1, "ready");
    assert!(spawned(&sweep(&mut sim, first.clone(), 3).await).is_empty());
    assert_eq!(spawned(&sweep(&mut sim, first.clone(), 10).await).len(), 2);
    assert_eq!(sim.sup.status().scaling.queued, 10);
}

#[tokio::test(start_paused = true)]
async fn cheaper_holds_still_during_a_reload_and_the_reload_keeps_the_count() {
    let mut sim = Sim::serving(&[
        "--cheaper",
        "1",
        "--workers",
        "3",
        "--cheaper-overload",
        "1",
    ]);
    let first = sim.workers(1, "ready");
    let grown = spawned(&sweep(&mut sim, first.clone(), 0).await);
    sim.ready(grown[0]);
    let effects = sim.reload();
    assert_eq!(
        spawned(&effects).len(),
        2,
        "the live count, not the minimum"
    );
    let busy: Vec<_> = first.iter().chain(&grown).copied().collect();
    for _ in 0..3 {
        let effects = sweep(&mut sim, busy.clone(), 0).await;
        assert!(spawned(&effects).is_empty() && drained(&effects).is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn requests_queued_inside_a_worker_count_as_waiting_and_as_activity() {
    let mut sim = Sim::serving(&[
        "--cheaper",
        "1",
        "--workers",
        "3",
        "--cheaper-algo",
        "backlog",
        "--idle",
        "2",
    ]);
    let first = sim.workers(1, "ready")[0];
    let queued = |waiting| Event::Load {
        workers: vec![(
            first,
            CellLoad {
                free_threads: 0,
                waiting,
                wedged: false,
            },
        )],
        accept_queue: 0,
    };
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(1)).await;
        sim.feed(Event::Tick);
        let effects = sim.feed(queued(2));
        assert!(spawned(&effects).is_empty(), "2 waiting is not above 3");
        assert!(drained(&effects).is_empty(), "not idle: a request runs");
    }
    assert_eq!(spawned(&sim.feed(queued(4))).len(), 1);
    assert_eq!(sim.sup.status().scaling.queued, 4);
}
