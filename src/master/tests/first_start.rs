//! The first start: an app that does not boot before the server has ever been ready ends the
//! master with status 3; after the first ready, crashes respawn and reloads roll back.

use std::time::Duration;

use super::*;
use crate::master::EXIT_BOOT_FAILED;
use crate::protocol::EXIT_NO_WORKER_MODULE;

/// The exit statuses a batch of effects decides.
fn exits(effects: &[Effect]) -> Vec<i32> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Exit(status) => Some(*status),
            _ => None,
        })
        .collect()
}

fn never_ready(notes: &[String]) -> bool {
    notes.iter().all(|n| !n.contains("READY=1"))
}

#[tokio::test(start_paused = true)]
async fn boot_failed_at_first_start_stops_every_worker_and_exits_with_status_3() {
    let (mut sim, effects) = Sim::start(&["--workers", "3"]);
    let ids = spawned(&effects);
    sim.ready(ids[1]);
    let effects = sim.feed(Event::FromWorker(
        ids[0],
        ToMaster::BootFailed(BootFailure {
            error: "cannot import 'nosuchmodule:app': ModuleNotFoundError".into(),
            traceback: Some("Traceback ...".into()),
        }),
    ));
    // The first failure decides: the one still importing is killed, the ready one drains.
    assert_eq!(killed(&effects), vec![ids[0], ids[2]]);
    assert_eq!(drained(&effects), vec![(ids[1], DrainReason::Shutdown)]);
    assert!(spawned(&effects).is_empty(), "{effects:?}");
    let notes = notifications(&effects);
    assert!(
        notes.iter().any(|n| n.starts_with("STOPPING=1\n")
            && n.contains(
                "STATUS=segue exits: the app did not boot: cannot import 'nosuchmodule:app'"
            )),
        "{notes:?}"
    );
    assert!(never_ready(&notes));
    // The master leaves once every worker is reaped, and only then.
    assert!(exits(&sim.exit(ids[0], 3)).is_empty());
    assert!(exits(&sim.exit(ids[2], 137)).is_empty());
    let effects = sim.exit(ids[1], 0);
    assert_eq!(exits(&effects), vec![EXIT_BOOT_FAILED]);
    assert!(spawned(&effects).is_empty());
    assert!(sim.sup.finished());
    assert!(!sim.sup.status().ready);
}

#[tokio::test(start_paused = true)]
async fn a_crash_before_ready_at_first_start_exits_with_status_3() {
    let (mut sim, effects) = Sim::start(&["--workers", "2"]);
    let ids = spawned(&effects);
    let effects = sim.feed(Event::Exited {
        id: ids[0],
        kind: ExitKind::Signal(11),
    });
    assert!(spawned(&effects).is_empty(), "no respawn: {effects:?}");
    assert_eq!(killed(&effects), vec![ids[1]]);
    assert!(
        notifications(&effects)
            .iter()
            .any(|n| n.contains("a worker exited before reporting ready")),
        "{effects:?}"
    );
    assert_eq!(exits(&sim.exit(ids[1], 137)), vec![EXIT_BOOT_FAILED]);
}

#[tokio::test(start_paused = true)]
async fn a_missed_boot_timeout_at_first_start_exits_with_status_3() {
    let (mut sim, effects) = Sim::start(&["--workers", "1", "--boot-timeout", "2"]);
    let w = spawned(&effects)[0];
    tokio::time::advance(Duration::from_secs(2)).await;
    let effects = sim.timer(Timer::BootDeadline(w));
    assert!(killed(&effects).contains(&w));
    assert!(
        notifications(&effects)
            .iter()
            .any(|n| n.contains("not ready within 2s (raise --boot-timeout")),
        "{effects:?}"
    );
    let effects = sim.exit(w, 137);
    assert!(spawned(&effects).is_empty());
    assert_eq!(exits(&effects), vec![EXIT_BOOT_FAILED]);
}

#[tokio::test(start_paused = true)]
async fn a_missing_worker_module_or_a_failed_spawn_at_first_start_exits_with_status_3() {
    let (mut sim, effects) = Sim::start(&["--workers", "1"]);
    let w = spawned(&effects)[0];
    let effects = sim.exit(w, EXIT_NO_WORKER_MODULE);
    assert!(
        notifications(&effects)
            .iter()
            .any(|n| n.contains("cannot import segue's worker module")),
        "{effects:?}"
    );
    assert_eq!(exits(&effects), vec![EXIT_BOOT_FAILED]);

    let (mut sim, effects) = Sim::start(&["--workers", "1"]);
    let w = spawned(&effects)[0];
    let effects = sim.feed(Event::SpawnFailed {
        id: w,
        error: "cannot execute python".into(),
    });
    assert!(spawned(&effects).is_empty());
    assert_eq!(exits(&effects), vec![EXIT_BOOT_FAILED]);
}

#[tokio::test(start_paused = true)]
async fn a_worker_ready_then_crashing_during_the_first_start_is_respawned() {
    let (mut sim, effects) = Sim::start(&["--workers", "2"]);
    let ids = spawned(&effects);
    sim.ready(ids[0]);
    // It booted, so its crash is not a boot failure: its slot is refilled.
    let effects = sim.exit(ids[0], 1);
    let again = spawned(&effects);
    assert_eq!(again.len(), 1, "{effects:?}");
    assert!(exits(&effects).is_empty());
    // Until the server is ready once, the replacement's boot decides like any other.
    sim.boot_failed(again[0], "cannot import", None);
    assert!(exits(&sim.exit(again[0], 3)).is_empty());
    assert_eq!(exits(&sim.exit(ids[1], 137)), vec![EXIT_BOOT_FAILED]);
}

#[tokio::test(start_paused = true)]
async fn after_the_first_ready_a_crash_respawns_and_a_failing_reload_rolls_back() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let w = sim.workers(1, "ready")[0];
    let effects = sim.exit(w, 1);
    assert_eq!(spawned(&effects).len(), 1);
    assert!(exits(&effects).is_empty());
    // The replacement fails to import: backoff, not an exit.
    let again = spawned(&effects)[0];
    sim.boot_failed(again, "cannot import", None);
    let effects = sim.exit(again, 3);
    assert!(exits(&effects).is_empty());
    let (delay, timer) = timers(&effects).pop().expect("a respawn timer");
    assert_eq!(delay, Duration::from_millis(100));
    tokio::time::advance(delay).await;
    let third = spawned(&sim.timer(timer))[0];
    sim.ready(third);

    let new = spawned(&sim.reload())[0];
    sim.boot_failed(new, "cannot import 'app'", Some("Traceback"));
    let effects = sim.exit(new, 3);
    assert!(exits(&effects).is_empty());
    assert_eq!(sim.sup.status().reloads.last().map(|r| r.ok), Some(false));
    assert_eq!(sim.workers(1, "ready"), vec![third]);
    assert!(!sim.sup.finished());
}

#[tokio::test(start_paused = true)]
async fn a_reload_during_the_first_start_rolls_back_without_announcing_ready() {
    let (mut sim, effects) = Sim::start(&["--workers", "1"]);
    let first = spawned(&effects)[0];
    let new = spawned(&sim.reload())[0];
    sim.boot_failed(new, "cannot import", None);
    let effects = sim.exit(new, 3);
    assert!(exits(&effects).is_empty());
    assert!(never_ready(&notifications(&effects)), "{effects:?}");
    // The first generation still decides the first start.
    sim.boot_failed(first, "cannot import", None);
    assert_eq!(exits(&sim.exit(first, 3)), vec![EXIT_BOOT_FAILED]);
}

#[tokio::test(start_paused = true)]
async fn an_upgraded_image_is_not_a_first_start() {
    let sim = Sim::serving(&["--workers", "1"]);
    let h = sim.sup.handover();
    let mut next = Supervisor::new(config(&["--workers", "1"]), "/segue".into(), vec![]);
    let adopted: Vec<_> = h.workers.iter().map(|w| WorkerId(w.id)).collect();
    let new = spawned(&next.adopt(&h, &adopted).unwrap())[0];
    next.handle(Event::FromWorker(
        new,
        ToMaster::BootFailed(BootFailure {
            error: "cannot import".into(),
            traceback: None,
        }),
    ));
    let effects = next.handle(Event::Exited {
        id: new,
        kind: ExitKind::Code(3),
    });
    assert!(exits(&effects).is_empty(), "{effects:?}");
    assert_eq!(next.status().reloads.last().map(|r| r.ok), Some(false));
}

#[tokio::test(start_paused = true)]
async fn a_stop_exits_with_status_0_once_every_worker_is_reaped() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let w = sim.workers(1, "ready")[0];
    assert!(exits(&sim.command(Command::Stop { graceful: true })).is_empty());
    let effects = sim.exit(w, 0);
    assert_eq!(exits(&effects), vec![0]);
    // Said once: a late event after the last reap decides nothing more.
    assert!(exits(&sim.feed(Event::Tick)).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_first_start_stops_the_daemons_and_exits_once_they_are_reaped() {
    let (mut sim, effects) = Sim::start(&["--attach-daemon", "exec sleep 100"]);
    sim.daemon_started(&effects, 900);
    let ids = spawned(&effects);
    let effects = sim.feed(Event::FromWorker(
        ids[0],
        ToMaster::BootFailed(BootFailure {
            error: "cannot import".into(),
            traceback: None,
        }),
    ));
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::SignalProcess {
                pid: 900,
                signal: libc::SIGTERM,
                ..
            }
        )),
        "{effects:?}"
    );
    assert!(
        exits(&sim.exit(ids[0], 3)).is_empty(),
        "the daemon is still running"
    );
    let effects = sim.feed(Event::OtherExited {
        pid: 900,
        kind: ExitKind::Signal(libc::SIGTERM),
    });
    assert_eq!(exits(&effects), vec![EXIT_BOOT_FAILED]);
}
