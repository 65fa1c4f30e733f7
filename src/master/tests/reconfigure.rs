//! Reloads that read the configuration again: the new generation runs the new settings, the
//! master keeps what it holds for life, and a configuration that no longer resolves fails the
//! reload while the old generation serves.

use super::*;
use crate::config::Invocation;

/// A serving sim whose base remembers an invocation, as a real start does.
fn serving_from_invocation(args: &[&str]) -> Sim {
    let mut sim = Sim::serving(args);
    Arc::make_mut(&mut sim.sup.base).invocation = Some(Invocation::default());
    sim
}

fn read_asked(effects: &[Effect]) -> bool {
    effects.iter().any(|e| matches!(e, Effect::ReadConfig(_)))
}

fn new_config(args: &[&str]) -> Box<Config> {
    let mut c = (*config(args)).clone();
    c.invocation = Some(Invocation::default());
    Box::new(c)
}

#[tokio::test(start_paused = true)]
async fn a_reload_reads_the_configuration_before_it_starts_a_generation() {
    let mut sim = serving_from_invocation(&["--workers", "2"]);
    let effects = sim.reload();
    assert!(read_asked(&effects));
    assert!(
        spawned(&effects).is_empty(),
        "nothing starts before the read is back"
    );

    let effects = sim.feed(Event::ConfigRead(Ok(new_config(&[
        "--workers",
        "2",
        "--threads",
        "4",
        "--http",
        "127.0.0.1:9999",
    ]))));
    let configs: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Spawn { config, .. } => Some(config.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(configs.len(), 2);
    assert!(
        configs.iter().all(|c| c.worker.threads == 4),
        "the new setting applies"
    );
    assert_eq!(
        configs[0].listen, sim.sup.generations[&1].listen,
        "the listeners are the master's for life"
    );
    for id in spawned(&effects) {
        sim.ready(id);
    }
    let report = sim.sup.status().reloads.last().cloned().unwrap();
    assert!(report.ok);
    assert!(
        report.notes.iter().any(|n| n.starts_with("http changed")),
        "{:?}",
        report.notes
    );
}

#[tokio::test(start_paused = true)]
async fn a_configuration_that_no_longer_resolves_fails_the_reload_and_the_old_generation_serves() {
    let mut sim = serving_from_invocation(&["--workers", "2"]);
    sim.wait_reload();
    let effects = sim.feed(Event::ConfigRead(Err(
        "uwsgi.ini:3: procesess: not an option (did you mean 'processes'?)".into(),
    )));
    assert!(spawned(&effects).is_empty());
    let reports = finished_reloads(&effects);
    assert_eq!(reports.len(), 1, "the waiter learns the result");
    assert!(!reports[0].ok);
    assert!(reports[0].reason.as_deref().unwrap().contains("procesess"));
    assert_eq!(sim.sup.serving, 1);
    assert_eq!(sim.workers(1, "ready").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_reload_asked_during_the_read_follows_it_and_reads_again() {
    let mut sim = serving_from_invocation(&[]);
    sim.reload();
    let effects = sim.ask(Command::Reload {
        strategy: None,
        wait: false,
    });
    assert!(
        replies(&effects)
            .iter()
            .any(|o| matches!(o, Outcome::Reload(ReloadOutcome::Queued { behind: 1 }))),
        "queued behind the reload being read"
    );
    let effects = sim.feed(Event::ConfigRead(Ok(new_config(&[]))));
    let new = spawned(&effects);
    assert_eq!(new.len(), 1);
    let effects = sim.ready(new[0]);
    assert!(
        read_asked(&effects),
        "the queued reload reads the configuration too"
    );
}

#[tokio::test(start_paused = true)]
async fn stopping_answers_a_reload_whose_read_is_pending() {
    let mut sim = serving_from_invocation(&[]);
    sim.wait_reload();
    let effects = sim.command(Command::Stop { graceful: true });
    assert!(
        replies(&effects)
            .iter()
            .any(|o| matches!(o, Outcome::Stopped))
    );
    let effects = sim.feed(Event::ConfigRead(Ok(new_config(&[]))));
    assert!(
        spawned(&effects).is_empty(),
        "a stopping server starts nothing"
    );
}
