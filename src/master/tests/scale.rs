//! Scaling up and down, during reloads and during a slot's backoff.

use super::*;
use crate::master::command::ScaleError;

#[tokio::test(start_paused = true)]
async fn scale_up_fills_a_new_slot_and_scale_down_drains_the_last() {
    let mut sim = Sim::serving(&["--workers", "2"]);
    let effects = sim.ask(Command::Scale(1));
    assert_eq!(spawned(&effects).len(), 1);
    assert!(matches!(replies(&effects)[..], [Outcome::Scale(Ok(3))]));
    let third = spawned(&effects)[0];
    assert_eq!(sim.sup.table.get(third).unwrap().slot, 2);
    sim.ready(third);
    let effects = sim.ask(Command::Scale(-1));
    assert_eq!(drained(&effects), vec![(third, DrainReason::ScaleDown)]);
    assert_eq!(sim.sup.status().workers_wanted, 2);
    // Its exit does not refill the removed slot.
    assert!(spawned(&sim.exit(third, 0)).is_empty());
}

#[tokio::test(start_paused = true)]
async fn scale_is_refused_below_one_in_big_steps_and_during_a_reload() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let refused = |sim: &mut Sim, delta| match &replies(&sim.ask(Command::Scale(delta)))[..] {
        [Outcome::Scale(Err(e))] => e.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(refused(&mut sim, -1), ScaleError::Minimum);
    assert_eq!(refused(&mut sim, 2), ScaleError::Step(2));
    sim.reload();
    assert_eq!(refused(&mut sim, 1), ScaleError::Reloading(1));
    assert_eq!(sim.sup.status().workers_wanted, 1);
}

/// The defect that took the master down: a slot backing off is scaled away, then its respawn
/// timer fires for an index that no longer exists.
#[tokio::test(start_paused = true)]
async fn scale_down_while_a_slot_backs_off_ignores_its_timer() {
    let mut sim = Sim::serving(&["--workers", "3"]);
    let ids = sim.workers(1, "ready");
    let again = spawned(&sim.exit(ids[2], 1))[0];
    let effects = sim.exit(again, 1);
    let (_, timer) = timers(&effects).pop().expect("slot 2 backs off");
    assert!(matches!(timer, Timer::Respawn { slot: 2, .. }));
    sim.command(Command::Scale(-1));
    assert_eq!(sim.sup.table.wanted(), 2);
    let effects = sim.timer(timer.clone());
    assert!(effects.is_empty(), "{effects:?}");
    // Scaled up again, the new slot 2 starts fresh; the old timer still means nothing.
    let effects = sim.command(Command::Scale(1));
    let fresh = spawned(&effects);
    assert_eq!(fresh.len(), 1);
    assert!(spawned(&sim.timer(timer)).is_empty());
    assert_eq!(sim.sup.table.slots()[2].failures, 0);
}

#[tokio::test(start_paused = true)]
async fn scale_up_while_another_slot_backs_off_starts_the_new_slot_at_once() {
    let mut sim = Sim::serving(&["--workers", "1"]);
    let w = sim.workers(1, "ready")[0];
    let again = spawned(&sim.exit(w, 1))[0];
    assert!(!timers(&sim.exit(again, 1)).is_empty());
    let effects = sim.command(Command::Scale(1));
    assert_eq!(spawned(&effects).len(), 1);
    assert_eq!(sim.sup.table.get(spawned(&effects)[0]).unwrap().slot, 1);
}

#[tokio::test(start_paused = true)]
async fn workers_started_after_scaling_up_from_one_know_they_are_not_alone() {
    let (mut sim, effects) = Sim::start(&["--workers", "1"]);
    assert!(matches!(
        effects[..],
        [
            ..,
            Effect::Spawn {
                multiprocess: false,
                ..
            }
        ]
    ));
    sim.ready(spawned(&effects)[0]);
    let effects = sim.command(Command::Scale(1));
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::Spawn {
                multiprocess: true,
                ..
            }
        )),
        "{effects:?}"
    );
}
