//! Cheap, idle and cheaper modes with real processes: no worker process before the first
//! connection, that connection answered, the workers stopped after `--idle` and started again by
//! the next one; `--cheaper` growing under eight slow clients and shrinking back when they stop.

mod support;

use std::process::Command;
use std::time::Duration;

use support::oneshot::cases_ini;
use support::{EVENT_TIMEOUT, Load, Server, eventually, get, segue_bin, server};

fn workers(st: &serde_json::Value) -> usize {
    st["workers"].as_array().map_or(0, Vec::len)
}

fn ready_workers(st: &serde_json::Value) -> usize {
    st["workers"]
        .as_array()
        .map_or(0, |w| w.iter().filter(|w| w["state"] == "ready").count())
}

/// `segue status` as an operator reads it.
fn status_text(s: &Server) -> String {
    let out = Command::new(segue_bin())
        .args(["status", "--control"])
        .arg(&s.control)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The seed's uWSGI lines (`cheap = true`, `idle = ...`), with an idle time a test can wait
/// out.
#[test]
fn cheap_from_an_ini_starts_workers_on_the_first_connection_and_idle_stops_them_again() {
    let ini = cases_ini(
        "cheap-ini",
        "processes = 2\n# cheap mode; back to cheap after 2 idle seconds\ncheap = true\nidle = 2\n",
    );
    let s = support::bare().args(&["--ini", &ini]).start();
    let st = s.status();
    assert_eq!(st["ready"], true, "ready while asleep: {st}");
    assert_eq!(st["scaling"]["asleep"], true, "{st}");
    assert_eq!(workers(&st), 0);
    assert!(
        s.worker_pids().is_empty(),
        "no worker process before a connection"
    );
    assert!(status_text(&s).contains("asleep (cheap mode)"));

    // The connection waits in the queue while the workers boot, and is answered.
    let r = get(s.addr(), "/");
    assert_eq!(r.status, 200, "{}", r.text());
    let st = s.wait_status("two ready workers", |st| ready_workers(st) == 2);
    assert_eq!(st["scaling"]["asleep"], false);
    assert_eq!(st["scaling"]["idle_s"], 2.0);

    // Two quiet seconds later they are drained and gone.
    s.wait_status("asleep again", |st| {
        st["scaling"]["asleep"] == true && workers(st) == 0
    });
    assert!(
        eventually(EVENT_TIMEOUT, || s.worker_pids().is_empty()),
        "workers still running: {:?}",
        s.worker_pids()
    );
    s.wait_log(&["idle for 2s"]);

    let r = get(s.addr(), "/");
    assert_eq!(r.status, 200, "the next connection wakes them again");
    s.wait_status("two ready workers again", |st| ready_workers(st) == 2);
}

/// A request that runs longer than `--idle` is activity: the workers are not stopped under it,
/// and it completes.
#[test]
fn idle_never_stops_workers_under_a_running_request() {
    let s = server("cases:application")
        .args(&["--idle", "1", "--threads", "2"])
        .start();
    let slow = s.slow_request("long", 3.0);
    let pids = s.worker_pids();
    let started = std::time::Instant::now();
    // Three times --idle: every status meanwhile shows it awake, with the same worker.
    while !slow.is_finished() && started.elapsed() < EVENT_TIMEOUT {
        let st = s.status();
        assert_eq!(st["scaling"]["asleep"], false, "{st}");
        assert_eq!(st["workers"][0]["state"], "ready", "{st}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = slow.join().unwrap().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(s.worker_pids(), pids);
    assert_eq!(r.text(), "slept");
    // Then, quiet, it sleeps.
    s.wait_status("asleep", |st| st["scaling"]["asleep"] == true);
}

/// The scenario: `--cheaper 1 --workers 4`, eight slow clients on new connections;
/// the count grows to the maximum, every request succeeds, and once the clients stop it
/// shrinks back to the minimum, draining (not killing) the extra workers.
#[test]
fn cheaper_grows_under_eight_slow_clients_and_shrinks_back_when_idle() {
    let s = server("cases:application")
        .args(&[
            "--workers",
            "4",
            "--cheaper",
            "1",
            "--cheaper-overload",
            "1",
            "--threads",
            "1",
        ])
        .start();
    let st = s.status();
    assert_eq!(st["workers_wanted"], 1, "starts at the minimum: {st}");
    assert_eq!(st["scaling"]["cheaper"]["algo"], "spare");
    let load = Load::start(s.addr(), "/sleep?s=0.2", 0, 8, Duration::from_secs(60));
    s.wait_status("four ready workers", |st| {
        st["workers_wanted"] == 4 && ready_workers(st) == 4
    });
    assert!(status_text(&s).contains("cheaper (spare): between 1 and 4 workers"));
    let report = load.stop();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(
        report.bad_statuses().is_empty(),
        "{:?}",
        report.bad_statuses()
    );
    assert!(report.ok() > 8);
    s.wait_status("back to one worker", |st| {
        st["workers_wanted"] == 1 && workers(st) == 1
    });
    s.wait_log(&["cheaper: 0 of 2 workers busy: removing one"]);
    assert_eq!(get(s.addr(), "/").status, 200);
}

/// `--cheaper-algo backlog` from an ini: requests waiting (in the accept queue and in the
/// worker) add workers.
#[test]
fn cheaper_backlog_from_an_ini_grows_with_waiting_requests() {
    let ini = cases_ini(
        "cheaper-backlog",
        "processes = 3\nthreads = 1\ncheaper = 1\ncheaper-algo = backlog\ncheaper-overload = 2\ncheaper-step = 2\n",
    );
    let s = support::bare().args(&["--ini", &ini]).start();
    assert_eq!(s.status()["workers_wanted"], 1);
    let load = Load::start(s.addr(), "/sleep?s=0.3", 0, 8, Duration::from_secs(60));
    let st = s.wait_status("three workers", |st| st["workers_wanted"] == 3);
    assert_eq!(st["scaling"]["cheaper"]["algo"], "backlog");
    let report = load.stop();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(report.bad_statuses().is_empty());
}
