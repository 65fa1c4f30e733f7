//! Reload runs: both strategies, surge, promotion, every rollback cause, the queue, waiters.

use super::*;
use crate::config::ReloadStrategy;

#[tokio::test(start_paused = true)]
async fn chain_with_surge_one_replaces_one_slot_at_a_time() {
    let mut sim = Sim::serving(&["--workers", "3", "--reload-surge", "1"]);
    let old = sim.workers(1, "ready");
    let effects = sim.reload();
    let first = spawned(&effects);
    assert_eq!(spawned_generations(&effects), vec![2]);
    assert!(
        drained(&effects).is_empty(),
        "chain drains nothing before a new worker is ready"
    );
    let effects = sim.ready(first[0]);
    assert_eq!(drained(&effects), vec![(old[0], DrainReason::Reload)]);
    let second = spawned(&effects);
    assert_eq!(second.len(), 1);
    let effects = sim.ready(second[0]);
    assert_eq!(drained(&effects), vec![(old[1], DrainReason::Reload)]);
    let third = spawned(&effects);
    let effects = sim.ready(third[0]);
    assert_eq!(drained(&effects), vec![(old[2], DrainReason::Reload)]);
    assert_eq!(sim.sup.serving, 2);
    assert!(
        notifications(&effects)
            .iter()
            .any(|n| n.contains("reload promoted"))
    );
    assert_eq!(sim.sup.status().reloads.last().map(|r| r.ok), Some(true));
}

#[tokio::test(start_paused = true)]
async fn chain_without_surge_boots_every_new_worker_at_once() {
    let mut sim = Sim::serving(&["--workers", "3"]);
    let effects = sim.reload();
    assert_eq!(spawned_generations(&effects), vec![2, 2, 2]);
    let notes = notifications(&effects);
    assert!(
        notes[0].starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{notes:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn respawn_stops_one_old_worker_boots_a_canary_then_the_rest() {
    let mut sim = Sim::serving(&["--workers", "3", "--reload-strategy", "respawn"]);
    let old = sim.workers(1, "ready");
    let effects = sim.reload();
    assert_eq!(drained(&effects), vec![(old[0], DrainReason::Reload)]);
    let canary = spawned(&effects);
    assert_eq!(canary.len(), 1);
    let effects = sim.ready(canary[0]);
    let rest = spawned(&effects);
    assert_eq!(
        rest.len(),
        2,
        "after the canary, every remaining slot at once"
    );
    let mut d: Vec<_> = drained(&effects).into_iter().map(|(id, _)| id).collect();
    d.sort();
    assert_eq!(d, old[1..].to_vec());
    sim.ready(rest[0]);
    assert_eq!(sim.sup.serving, 1);
    sim.ready(rest[1]);
    assert_eq!(sim.sup.serving, 2);
}

#[tokio::test(start_paused = true)]
async fn a_new_worker_exiting_while_booting_rolls_back_and_the_old_keep_serving() {
    let mut sim = Sim::serving(&["--workers", "2"]);
    let old = sim.workers(1, "ready");
    let effects = sim.wait_reload();
    let new = spawned(&effects);
    sim.ready(new[0]);
    let effects = sim.exit(new[1], 1);
    // The already-ready new worker is discarded and killed; its slot's old worker was drained
    // by the chain, so that slot is refilled from generation 1.
    assert_eq!(killed(&effects), vec![new[0]]);
    assert_eq!(spawned_generations(&effects), vec![1]);
    assert_eq!(sim.state(new[0]), Some(WorkerState::Discarded));
    assert_eq!(sim.state(old[1]), Some(WorkerState::Ready));
    let reports = finished_reloads(&effects);
    assert_eq!(reports.len(), 1);
    assert!(!reports[0].ok);
    assert!(
        reports[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("exited while booting")
    );
    assert_eq!(sim.sup.serving, 1);
}

#[tokio::test(start_paused = true)]
async fn an_import_error_rolls_back_with_its_traceback() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let effects = sim.wait_reload();
    let new = spawned(&effects)[0];
    sim.boot_failed(
        new,
        "cannot import module 'hello': SyntaxError",
        Some("Traceback (most recent call last):\n  ..."),
    );
    let effects = sim.exit(new, 1);
    let r = &finished_reloads(&effects)[0];
    assert!(!r.ok);
    assert!(r.reason.as_deref().unwrap().contains("SyntaxError"));
    assert!(r.traceback.as_deref().unwrap().starts_with("Traceback"));
    assert!(
        notifications(&effects)
            .iter()
            .any(|n| n.contains("rolled back"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_boot_timeout_rolls_back() {
    let mut sim = Sim::serving(&["--workers", "1", "--boot-timeout", "3"]);
    let effects = sim.wait_reload();
    let new = spawned(&effects)[0];
    assert_eq!(killed(&sim.timer(Timer::BootDeadline(new))), vec![new]);
    let effects = sim.exit(new, 137);
    let r = &finished_reloads(&effects)[0];
    assert!(
        r.reason.as_deref().unwrap().contains("not ready within 3s"),
        "{r:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_ready_check_rolls_back() {
    let mut sim = Sim::serving(&["--workers", "1", "--ready-check", "/healthz"]);
    let effects = sim.wait_reload();
    let new = spawned(&effects)[0];
    sim.boot_failed(new, "--ready-check /healthz answered 503", None);
    let effects = sim.exit(new, 1);
    let r = &finished_reloads(&effects)[0];
    assert!(r.reason.as_deref().unwrap().contains("answered 503"));
    assert_eq!(sim.workers(1, "ready").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_spawn_during_a_reload_rolls_it_back() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let effects = sim.wait_reload();
    let new = spawned(&effects)[0];
    let effects = sim.feed(Event::SpawnFailed {
        id: new,
        error: "cannot start worker process".into(),
    });
    let r = &finished_reloads(&effects)[0];
    assert!(!r.ok);
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .contains("cannot start a worker")
    );
}

#[tokio::test(start_paused = true)]
async fn respawn_rollback_refills_the_slot_it_emptied_from_the_serving_generation() {
    let mut sim = Sim::serving(&["--workers", "2", "--reload-strategy", "respawn"]);
    let old = sim.workers(1, "ready");
    let effects = sim.reload();
    let canary = spawned(&effects)[0];
    sim.exit(old[0], 0); // the drained old worker leaves
    let effects = sim.exit(canary, 1);
    assert_eq!(spawned_generations(&effects), vec![1]);
    assert_eq!(sim.state(old[1]), Some(WorkerState::Ready));
}

#[tokio::test(start_paused = true)]
async fn reloads_asked_during_a_run_coalesce_into_one_that_follows_it() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let first = spawned(&sim.reload())[0];
    let effects = sim.wait_reload();
    assert!(spawned(&effects).is_empty());
    sim.wait_reload();
    let effects = sim.ask(Command::Reload {
        strategy: Some(ReloadStrategy::Respawn),
        wait: false,
    });
    assert!(matches!(
        replies(&effects)[..],
        [Outcome::Reload(ReloadOutcome::Queued { behind: 1 })]
    ));
    // The first run's promotion starts exactly one more run, with the last strategy asked.
    let effects = sim.ready(first);
    assert_eq!(spawned_generations(&effects), vec![3]);
    assert_eq!(
        sim.sup.reload.as_ref().map(|r| r.strategy),
        Some(ReloadStrategy::Respawn)
    );
    let next = spawned(&effects)[0];
    // Both waiters are answered by the second run, once generations 1 and 2 have gone.
    let mut answered = finished_reloads(&sim.ready(next));
    assert!(answered.is_empty());
    let leaving: Vec<_> = sim.sup.table.ids(|w| w.generation != 3);
    assert_eq!(leaving.len(), 2);
    for id in leaving {
        answered.extend(finished_reloads(&sim.exit(id, 0)));
    }
    assert_eq!(answered.len(), 2, "{answered:?}");
    assert!(answered.iter().all(|r| r.ok && r.generation == 3));
}

#[tokio::test(start_paused = true)]
async fn reload_wait_is_answered_when_the_old_generation_has_exited_not_at_promotion() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let old = sim.workers(1, "ready")[0];
    let new = spawned(&sim.wait_reload())[0];
    let effects = sim.ready(new);
    assert!(finished_reloads(&effects).is_empty());
    let effects = sim.exit(old, 0);
    let r = finished_reloads(&effects);
    assert_eq!(r.len(), 1);
    assert!(r[0].ok && r[0].from == 1 && r[0].generation == 2);
}

#[tokio::test(start_paused = true)]
async fn a_reload_without_wait_is_answered_at_once() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let effects = sim.ask(Command::Reload {
        strategy: None,
        wait: false,
    });
    assert!(matches!(
        replies(&effects)[..],
        [Outcome::Reload(ReloadOutcome::Started {
            reload: 1,
            generation: 2,
            strategy: ReloadStrategy::Chain
        })]
    ));
}

#[tokio::test(start_paused = true)]
async fn an_old_worker_crashing_during_a_reload_is_refilled_until_its_successor_is_ready() {
    let mut sim = Sim::serving(&["--workers", "2"]);
    let old = sim.workers(1, "ready");
    let new = spawned(&sim.reload());
    tokio::time::advance(std::time::Duration::from_secs(30)).await;
    // An old worker dies while its successor boots: generation 1 refills the slot, the reload
    // goes on.
    let effects = sim.exit(old[1], 1);
    assert_eq!(spawned_generations(&effects), vec![1]);
    let stopgap = spawned(&effects)[0];
    sim.ready(new[0]);
    // Its successor is ready before the stop-gap is: the stop-gap is stopped, not kept.
    let effects = sim.ready(new[1]);
    assert_eq!(killed(&effects), vec![stopgap]);
    assert_eq!(sim.sup.serving, 2);
}

/// The generations whose zygotes (`--preload`) the effects let go.
fn retired(effects: &[Effect]) -> Vec<GenerationId> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Retire(g) => Some(*g),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_generation_is_retired_once_its_last_old_worker_has_exited() {
    let mut sim = Sim::serving(&["--workers", "2", "--preload"]);
    let old = sim.workers(1, "ready");
    let effects = sim.reload();
    assert!(retired(&effects).is_empty());
    let mut all = Vec::new();
    for id in spawned(&effects) {
        all.extend(sim.ready(id));
    }
    assert_eq!(sim.sup.serving, 2);
    assert!(
        retired(&all).is_empty(),
        "old workers still drain: generation 1's zygote must stay"
    );
    let effects = sim.exit(old[0], 0);
    assert!(retired(&effects).is_empty(), "one old worker is left");
    let effects = sim.exit(old[1], 0);
    assert_eq!(retired(&effects), vec![1]);
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_generation_is_retired_and_the_serving_one_is_not() {
    let mut sim = Sim::serving(&["--workers", "2", "--preload"]);
    let effects = sim.reload();
    let new = spawned(&effects);
    assert_eq!(new.len(), 2);
    sim.boot_failed(new[0], "the postfork hook failed", None);
    let effects = sim.exit(new[0], 3);
    assert!(
        retired(&effects).is_empty(),
        "a discarded worker of generation 2 still lives"
    );
    let effects = sim.exit(new[1], -9);
    assert_eq!(retired(&effects), vec![2]);
    assert_eq!(sim.sup.serving, 1);
    assert_eq!(sim.workers(1, "ready").len(), 2);
}
