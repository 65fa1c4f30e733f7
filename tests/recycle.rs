//! Worker recycling (`--max-requests`, `--max-worker-lifetime`, `--reload-on-rss`): the
//! replacement is ready before the old worker drains, so nothing is lost under load.

mod support;

use std::time::Duration;

use support::{EVENT_TIMEOUT, Load, eventually, get, server};

fn assert_clean(report: &support::LoadReport, log: &str) {
    assert!(
        report.failures.is_empty(),
        "{} failed, e.g. {:?}\n{log}",
        report.failures.len(),
        &report.failures[..report.failures.len().min(5)]
    );
    assert!(
        report.bad_statuses().is_empty(),
        "{:?}",
        &report.bad_statuses()[..report.bad_statuses().len().min(5)]
    );
}

#[test]
fn max_requests_recycles_under_load_without_losing_a_request() {
    let s = server("cases:application")
        .args(&[
            "--workers",
            "2",
            "--threads",
            "2",
            "--max-requests",
            "300",
            "--max-requests-jitter",
            "50",
        ])
        .start();
    let first = s.worker_pids();
    let newest = support::newest_worker(&s.status());
    let load = Load::start(s.addr(), "/", 4, 2, Duration::from_secs(60));
    wait_replacements_ready(&s, newest, 4);
    let report = load.stop();
    assert_clean(&report, &s.log.all());
    assert!(s.log.count(&["recycling: served"]) >= 4);
    assert_replacement_ready_first(&s.log.all());
    assert!(eventually(EVENT_TIMEOUT, || s.worker_pids().len() == 2));
    assert!(
        s.worker_pids().iter().all(|p| !first.contains(p)),
        "the first workers were never replaced"
    );
    assert!(s.zombies().is_empty());
}

/// Waits until the `n`th worker spawned after worker `newest` is ready. Nothing but recycling
/// spawns workers in these tests, so that is `n` replacements.
fn wait_replacements_ready(s: &support::Server, newest: u64, n: u64) {
    s.wait_status(&format!("{n} replacements ready"), |st| {
        support::workers_in(st, "ready")
            .iter()
            .any(|&id| id >= newest + n)
    });
}

/// Surge-style, never exit-then-respawn: each replacement reported ready before the worker it
/// replaces started draining.
fn assert_replacement_ready_first(log: &str) {
    let lines: Vec<&str> = log.lines().collect();
    let field = |line: &str, name: &str| {
        line.split(&format!("{name}="))
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .map(str::to_owned)
    };
    let mut checked = 0;
    for line in lines
        .iter()
        .filter(|l| l.contains("recycled: the replacement is ready"))
    {
        let (old, new) = (
            field(line, "worker").unwrap(),
            field(line, "replacement").unwrap(),
        );
        let ready = lines.iter().position(|l| {
            l.contains("worker ready") && field(l, "worker").as_deref() == Some(new.as_str())
        });
        let draining = lines.iter().position(|l| {
            l.contains("draining (Recycle)") && l.contains(&format!(" worker={old} "))
        });
        if let (Some(r), Some(d)) = (ready, draining) {
            assert!(
                r < d,
                "worker {old} drained before its replacement {new} was ready"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no recycling to check:\n{log}");
}

#[test]
fn max_worker_lifetime_recycles_without_losing_a_request() {
    let s = server("cases:application")
        .args(&[
            "--workers",
            "2",
            "--max-worker-lifetime",
            "1",
            "--max-worker-lifetime-jitter",
            "1",
        ])
        .start();
    let newest = support::newest_worker(&s.status());
    let load = Load::start(s.addr(), "/", 2, 2, Duration::from_secs(60));
    wait_replacements_ready(&s, newest, 3);
    let report = load.stop();
    assert_clean(&report, &s.log.all());
    s.wait_log(&["(--max-worker-lifetime)"]);
}

#[test]
fn reload_on_rss_replaces_a_worker_that_grew() {
    let s = server("cases:application")
        .args(&["--workers", "1", "--reload-on-rss", "120"])
        .start();
    let before = s.worker_pids();
    let newest = support::newest_worker(&s.status());
    for _ in 0..6 {
        assert_eq!(get(s.addr(), "/grow?mb=20").status, 200);
    }
    s.wait_log(&["recycling: resident memory", "over --reload-on-rss 120 MiB"]);
    s.wait_replaced(1, newest);
    assert!(eventually(EVENT_TIMEOUT, || s.worker_pids().len() == 1
        && s.worker_pids() != before));
    // The replacement starts small again.
    assert!(get(s.addr(), "/grow?mb=20").text().starts_with("20 MiB"));
}
