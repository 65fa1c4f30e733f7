//! Cron jobs (`--cron`, `--unique-cron`, `--cron-harakiri`) with real processes. The master's
//! test hook `SEGUE_TEST_CRON_SECONDS=1` makes a cron "minute" last a second
//! (docs/cron.md), so the uWSGI syntax itself runs here without waiting for the clock.

mod support;

use std::path::Path;
use std::time::Duration;

use support::oneshot::{cases_ini, scratch};
use support::{EVENT_TIMEOUT, Server, eventually, server};

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn cron(s: &Server, i: usize) -> serde_json::Value {
    s.status()["crons"][i].clone()
}

#[test]
fn the_seeds_uwsgi_syntax_runs_every_minute_and_crontab_syntax_too() {
    let dir = scratch("cron-every");
    let every = dir.join("every");
    let even = dir.join("even");
    let uwsgi = format!("-1 -1 -1 -1 -1 echo ran >> {}", every.display());
    // Every second "minute" in crontab's syntax.
    let crontab = format!("*/2 * * * * echo ran >> {}", even.display());
    let s = server("cases:application")
        .env("SEGUE_TEST_CRON_SECONDS", "1")
        .args(&["--cron", &uwsgi, "--cron", &crontab])
        .start();
    assert!(
        eventually(EVENT_TIMEOUT, || lines(&every) >= 4),
        "the -1 job ran {} times",
        lines(&every)
    );
    let (a, b) = (lines(&every), lines(&even));
    assert!(b >= 1 && b <= a / 2 + 1, "*/2 ran {b} times against {a}");
    let c = cron(&s, 0);
    assert_eq!(c["schedule"], "-1 -1 -1 -1 -1");
    assert!(c["runs"].as_u64().unwrap() >= 4, "{c}");
    assert_eq!(c["last_exit"], "exit code 0");
    assert!(c["last_duration_ms"].is_u64(), "{c}");
}

#[test]
fn a_unique_cron_job_never_runs_twice_at_once_and_cron_harakiri_kills_a_long_run() {
    let dir = scratch("cron-unique");
    let marks = dir.join("starts");
    let slow = format!("* * * * * echo start >> {}; exec sleep 3", marks.display());
    let s = server("cases:application")
        .env("SEGUE_TEST_CRON_SECONDS", "1")
        .args(&["--unique-cron", &slow, "--cron-harakiri", "1.5"])
        .start();
    // Each run is killed after 1.5 s: a minute (a second here) while one runs is skipped.
    let st = s.wait_status("a skipped run and a killed one", |st| {
        let c = &st["crons"][0];
        c["skipped"].as_u64() > Some(0) && c["last_exit"] == "signal 9 (SIGKILL)"
    });
    let c = &st["crons"][0];
    assert_eq!(c["unique"], true);
    assert!(c["running"].as_array().unwrap().len() <= 1, "{c}");
    assert!(c["last_duration_ms"].as_u64().unwrap() < 3000, "{c}");
    let log = s.log.all();
    assert!(
        log.contains("cron job still running after --cron-harakiri"),
        "{log}"
    );
    assert!(lines(&marks) >= 1);
}

#[test]
fn an_ini_cron_line_runs_its_output_is_logged_and_a_stop_waits_for_runs() {
    let ini = cases_ini(
        "cron-ini",
        "cron = -1 -1 -1 -1 -1 echo $((6 * 7))-from-cron; sleep 30\n",
    );
    let mut s = support::bare()
        .env("SEGUE_TEST_CRON_SECONDS", "1")
        .args(&["--ini", &ini, "--graceful-timeout", "1"])
        .start();
    let line = s.wait_log(&["42-from-cron"]);
    assert!(
        line.contains("cron=") && line.contains("stream=\"stdout\""),
        "{line}"
    );
    let running: Vec<i64> = cron(&s, 0)["running"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_i64)
        .collect();
    assert!(!running.is_empty());
    s.signal(libc::SIGTERM);
    assert!(
        s.wait_exit(Duration::from_secs(20))
            .is_some_and(|st| st.success())
    );
    for pid in running {
        assert!(
            support::proc_state(pid as i32).is_none_or(|st| st == 'Z'),
            "cron run {pid} outlived the master"
        );
    }
}

#[test]
fn bad_cron_values_are_refused_at_start() {
    let out = support::oneshot::run(
        &support::apps_dir(),
        &["cases:application", "--cron", "61 -1 -1 -1 -1 x"],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("61 is outside 0-59"), "{}", out.stderr);
}
