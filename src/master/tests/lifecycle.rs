//! Start, readiness, crashes, backoff, deadlines, stop. Crash loops are reached after the first
//! ready: before it, a worker that does not boot ends the master (`first_start.rs`).

use std::time::Duration;

use super::*;

#[tokio::test(start_paused = true)]
async fn start_spawns_one_worker_per_slot_each_with_a_boot_deadline() {
    let (_sim, effects) = Sim::start(&["--workers", "3", "--boot-timeout", "7"]);
    let ids = spawned(&effects);
    assert_eq!(ids.len(), 3);
    for id in ids {
        assert!(
            timers(&effects).contains(&(Duration::from_secs(7), Timer::BootDeadline(id))),
            "{effects:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn ready_is_announced_once_when_the_last_slot_is_ready() {
    let (mut sim, effects) = Sim::start(&["--workers", "2"]);
    let ids = spawned(&effects);
    assert!(notifications(&sim.ready(ids[0])).is_empty());
    assert!(!sim.sup.status().ready);
    let n = notifications(&sim.ready(ids[1]));
    assert_eq!(n.len(), 1);
    assert!(n[0].starts_with("READY=1\n"), "{n:?}");
    assert!(sim.sup.status().ready);
}

#[tokio::test(start_paused = true)]
async fn a_crash_after_a_long_life_is_respawned_at_once_and_resets_the_count() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let w = sim.workers(1, "ready")[0];
    tokio::time::advance(Duration::from_secs(60)).await;
    let effects = sim.exit(w, 1);
    assert_eq!(spawned(&effects).len(), 1, "{effects:?}");
    assert_eq!(sim.sup.table.slots()[0].failures, 0);
}

#[tokio::test(start_paused = true)]
async fn crash_loop_backoff_grows_and_a_long_life_resets_it() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let mut w = sim.workers(1, "ready")[0];
    // First early death: at once. Then 100 ms, 200 ms, 400 ms.
    let effects = sim.exit(w, 1);
    w = spawned(&effects)[0];
    let mut delays = Vec::new();
    for _ in 0..3 {
        let effects = sim.exit(w, 1);
        assert!(
            spawned(&effects).is_empty(),
            "backoff, not an instant respawn"
        );
        let (delay, timer) = timers(&effects).pop().expect("a respawn timer");
        delays.push(delay);
        tokio::time::advance(delay).await;
        let effects = sim.timer(timer);
        w = spawned(&effects)[0];
    }
    assert_eq!(delays, [100, 200, 400].map(Duration::from_millis).to_vec());
    assert_eq!(sim.sup.status().crash_loops.len(), 1);
    // It finally imports and lives long: the next crash is respawned at once.
    sim.ready(w);
    tokio::time::advance(Duration::from_secs(11)).await;
    let effects = sim.exit(w, 1);
    assert_eq!(spawned(&effects).len(), 1);
    assert!(sim.sup.status().crash_loops.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_respawn_timer_counts_once() {
    let mut sim = Sim::serving(&["--workers", "2"]);
    let ids = sim.workers(1, "ready");
    let again = spawned(&sim.exit(ids[1], 1))[0];
    let effects = sim.exit(again, 1);
    let (_, timer) = timers(&effects).pop().unwrap();
    // A timer delivered twice (or after its slot was refilled) spawns only once.
    let effects = sim.timer(timer.clone());
    assert_eq!(spawned(&effects).len(), 1);
    let effects = sim.timer(timer);
    assert!(spawned(&effects).is_empty(), "a stale token spawns nothing");
}

#[tokio::test(start_paused = true)]
async fn boot_deadline_kills_a_worker_still_starting_but_not_a_ready_one() {
    let mut sim = Sim::serving(&["--workers", "2"]);
    let ids = sim.workers(1, "ready");
    // Slot 1's worker crashes; its replacement never gets ready.
    let late = spawned(&sim.exit(ids[1], 1))[0];
    assert!(killed(&sim.timer(Timer::BootDeadline(ids[0]))).is_empty());
    assert_eq!(killed(&sim.timer(Timer::BootDeadline(late))), vec![late]);
    // Its exit then reports the timeout as the slot's last failure.
    sim.exit(late, 137);
    let slot = &sim.sup.table.slots()[1];
    assert!(
        slot.last_failure
            .as_deref()
            .unwrap()
            .contains("--boot-timeout"),
        "{slot:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn events_about_workers_that_are_gone_change_nothing() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let ghost = WorkerId(999);
    for event in [
        Event::FromWorker(ghost, ToMaster::Ready { boot_ms: 1 }),
        Event::FromWorker(ghost, ToMaster::Heartbeat(Stats::default())),
        Event::ChannelClosed(ghost),
        Event::Exited {
            id: ghost,
            kind: ExitKind::Signal(9),
        },
        Event::Timer(Timer::BootDeadline(ghost)),
        Event::Timer(Timer::DrainDeadline(ghost)),
        Event::Timer(Timer::KillStuck(ghost)),
        Event::Timer(Timer::Respawn { slot: 7, token: 1 }),
        Event::SpawnFailed {
            id: ghost,
            error: "x".into(),
        },
    ] {
        assert!(sim.feed(event).is_empty());
    }
    assert_eq!(sim.workers(1, "ready").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_spawn_counts_as_an_early_death_of_its_slot() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let w = sim.workers(1, "ready")[0];
    let id = spawned(&sim.exit(w, 1))[0];
    let effects = sim.feed(Event::SpawnFailed {
        id,
        error: "cannot create the control socketpair".into(),
    });
    // Its slot's second early death: retried after 100 ms; the worker record is gone.
    assert!(spawned(&effects).is_empty());
    assert_eq!(
        timers(&effects).pop().map(|(d, _)| d),
        Some(Duration::from_millis(100))
    );
    assert_eq!(sim.sup.table.slots()[0].failures, 2);
    assert!(sim.state(id).is_none());
}

#[tokio::test(start_paused = true)]
async fn graceful_stop_drains_everyone_and_finishes_when_all_have_exited() {
    let mut sim = Sim::serving(&["--workers", "2", "--graceful-timeout", "5"]);
    let effects = sim.ask(Command::Stop { graceful: true });
    let d = drained(&effects);
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|(_, r)| *r == DrainReason::Shutdown));
    assert!(
        timers(&effects)
            .iter()
            .all(|(t, _)| *t == Duration::from_secs(5))
    );
    assert!(matches!(
        replies(&effects)[..],
        [Outcome::Stopping { graceful: true }]
    ));
    // Nothing is respawned while stopping, and a new command is refused.
    let ids: Vec<_> = d.iter().map(|(id, _)| *id).collect();
    assert!(spawned(&sim.exit(ids[0], 0)).is_empty());
    assert!(!sim.sup.finished());
    assert!(matches!(
        replies(&sim.ask(Command::Reload {
            strategy: None,
            wait: true
        }))[..],
        [Outcome::Stopped]
    ));
    sim.exit(ids[1], 0);
    assert!(sim.sup.finished());
}

#[tokio::test(start_paused = true)]
async fn quick_stop_kills_everyone_including_booting_workers() {
    let (mut sim, effects) = Sim::start(&["--workers", "2"]);
    let ids = spawned(&effects);
    sim.ready(ids[0]);
    let effects = sim.command(Command::Stop { graceful: false });
    assert_eq!(killed(&effects), ids);
}

#[tokio::test(start_paused = true)]
async fn drain_deadline_kills_only_a_worker_still_draining() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let w = sim.workers(1, "ready")[0];
    assert!(killed(&sim.timer(Timer::DrainDeadline(w))).is_empty());
    sim.command(Command::Stop { graceful: true });
    assert_eq!(killed(&sim.timer(Timer::DrainDeadline(w))), vec![w]);
}

/// `attach-daemon2 ...,control=1`: the daemon is part of the service; when it ends on its own
/// the server stops gracefully (its workers drain) instead of restarting it.
#[tokio::test(start_paused = true)]
async fn a_control_daemon_ending_stops_the_server() {
    let (mut sim, effects) = Sim::start(&["--attach-daemon2", "cmd=exec sleep 100,control=1"]);
    sim.daemon_started(&effects, 900);
    let worker = spawned(&effects)[0];
    sim.ready(worker);
    let effects = sim.feed(Event::OtherExited {
        pid: 900,
        kind: ExitKind::Code(1),
    });
    assert_eq!(drained(&effects), vec![(worker, DrainReason::Shutdown)]);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::StartDaemon { .. })),
        "not restarted: {effects:?}"
    );
    let effects = sim.exit(worker, 0);
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Exit(0))),
        "{effects:?}"
    );
}
