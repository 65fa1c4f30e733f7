//! In-place upgrade bookkeeping: the check runs off the loop, the exec waits for settled state,
//! the handover carries workers and counters, adoption continues them.

use std::path::PathBuf;

use super::*;
use crate::master::supervisor::Supervisor;
use crate::master::upgrade::UpgradeError;

fn preflights(effects: &[Effect]) -> Vec<PathBuf> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Preflight(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_check_runs_as_an_effect_and_its_verdict_answers_the_callers() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let effects = sim.ask(Command::Upgrade { binary: None });
    assert_eq!(preflights(&effects), vec![PathBuf::from("/segue")]);
    assert!(
        replies(&effects).is_empty(),
        "answered when the check is done"
    );
    // A second request for the same binary joins the first; it starts no second check.
    assert!(preflights(&sim.ask(Command::Upgrade { binary: None })).is_empty());
    // Meanwhile the master keeps deciding: status answers, reloads start.
    assert!(matches!(
        replies(&sim.ask(Command::Status))[..],
        [Outcome::Status(_)]
    ));
    let effects = sim.feed(Event::PreflightDone {
        binary: "/segue".into(),
        result: Ok(()),
    });
    assert_eq!(replies(&effects).len(), 2);
    let (_, timer) = timers(&effects).pop().unwrap();
    assert_eq!(timer, Timer::Exec("/segue".into()));
    let effects = sim.timer(timer);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Exec(b) if b == &PathBuf::from("/segue")))
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_check_is_reported_and_recorded() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    sim.ask(Command::Upgrade {
        binary: Some("/bad".into()),
    });
    let effects = sim.feed(Event::PreflightDone {
        binary: "/bad".into(),
        result: Err(UpgradeError::Preflight {
            path: "/bad".into(),
            why: "no answer within 10s".into(),
        }),
    });
    assert!(matches!(
        replies(&effects)[..],
        [Outcome::Upgrade(Err(UpgradeError::Preflight { .. }))]
    ));
    assert!(
        sim.sup
            .status()
            .upgrade_error
            .unwrap()
            .contains("no answer")
    );
    // And a new attempt may start.
    assert_eq!(
        preflights(&sim.ask(Command::Upgrade { binary: None })).len(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn upgrade_is_refused_while_a_reload_runs_or_workers_boot() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    sim.reload();
    let effects = sim.ask(Command::Upgrade { binary: None });
    assert!(matches!(
        replies(&effects)[..],
        [Outcome::Upgrade(Err(UpgradeError::Busy))]
    ));
}

#[tokio::test(start_paused = true)]
async fn an_exec_is_abandoned_if_a_reload_began_after_the_check() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    sim.ask(Command::Upgrade { binary: None });
    sim.feed(Event::PreflightDone {
        binary: "/segue".into(),
        result: Ok(()),
    });
    sim.reload();
    let effects = sim.timer(Timer::Exec("/segue".into()));
    assert!(!effects.iter().any(|e| matches!(e, Effect::Exec(_))));
    assert!(
        sim.sup
            .status()
            .upgrade_error
            .unwrap()
            .contains("abandoned")
    );
}

#[tokio::test(start_paused = true)]
async fn the_handover_carries_workers_and_counters_and_adoption_continues_them() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let third = spawned(&sim.command(Command::Scale(1)))[0];
    sim.ready(third);
    let new = spawned(&sim.reload());
    sim.ready(new[0]);
    sim.ready(new[1]);
    let h = sim.sup.handover();
    assert_eq!(
        h.workers_wanted,
        Some(2),
        "the scaled count, not the configured one"
    );
    assert_eq!(h.serving, 2);
    assert_eq!(h.upgrades, 1);
    assert_eq!(h.next_generation, 3);
    assert_eq!(h.next_reload, 2);
    assert_eq!(h.history.len(), 1);
    // Two ready of generation 2, two draining of generation 1.
    assert_eq!(h.workers.len(), 4);
    assert_eq!(h.workers.iter().filter(|w| w.ready).count(), 2);

    // The new image is started with the original command line (one worker).
    let mut next = Supervisor::new(config(&["--workers", "1"]), "/segue".into(), vec![]);
    let adopted: Vec<_> = h.workers.iter().map(|w| WorkerId(w.id)).collect();
    let effects = next.adopt(&h, &adopted).unwrap();
    // A gated chain reload replaces the adopted workers with the new binary's.
    assert_eq!(spawned_generations(&effects), vec![3, 3]);
    assert!(spawned(&effects).iter().all(|id| id.0 >= h.next_id));
    let status = next.status();
    assert_eq!(status.workers_wanted, 2);
    assert!(status.ready);
    assert_eq!(status.upgrades, 1);
    assert_eq!(status.reloads.len(), 1);
    assert_eq!(
        status.reloading.as_deref(),
        Some("reload 2 -> generation 3")
    );
}
