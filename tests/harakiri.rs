//! Stuck requests and stuck workers: `--harakiri` answers 504, logs the Python stack and replaces
//! the worker; a worker wedged holding the GIL stops heartbeating and is replaced.

mod support;

use std::time::{Duration, Instant};

use support::{Conn, EVENT_TIMEOUT, eventually, get, server};

#[test]
fn harakiri_answers_504_logs_the_stack_and_replaces_the_worker() {
    let s = server("cases:application")
        .args(&["--workers", "1", "--threads", "2", "--harakiri", "1"])
        .start();
    let first = s.worker_pids();
    let newest = support::newest_worker(&s.status());
    let t = Instant::now();
    let mut c = Conn::open(s.addr());
    c.send(b"GET /sleep?s=60&id=stuck HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 504);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "504 after {:?}",
        t.elapsed()
    );
    let line = s.wait_log(&["harakiri: GET /sleep?s=60&id=stuck has run"]);
    assert!(line.contains("--harakiri 1.0s"), "{line}");
    // The stack's lines follow the first; the frame of the app's call to time.sleep is there.
    // (Its source text comes from linecache, which once came back empty under load: not ours.)
    s.wait_log(&["cases.py\", line", "in application"]);
    s.wait_replaced(1, newest);
    // The stuck worker is gone (drained at once, or killed a second later if it hangs).
    assert!(eventually(EVENT_TIMEOUT, || s.worker_pids().len() == 1
        && s.worker_pids() != first));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the 60 s request's worker lingered"
    );
    assert_eq!(get(s.addr(), "/").status, 200);
}

#[test]
fn a_worker_holding_the_gil_stops_heartbeating_and_is_replaced() {
    let s = server("cases:application")
        .args(&[
            "--workers",
            "1",
            "--threads",
            "2",
            "--heartbeat-timeout",
            "2",
        ])
        .start();
    let first = s.worker_pids();
    let addr = s.addr();
    let wedged = std::thread::spawn(move || support::try_get(addr, "/gil-hold?s=60"));
    s.wait_log(&["the GIL has been held"]);
    s.wait_log(&["no heartbeat for", "stuck holding the GIL?"]);
    s.wait_log(&["killing the stuck worker"]);
    assert!(eventually(EVENT_TIMEOUT, || s.worker_pids().len() == 1
        && s.worker_pids() != first));
    assert!(wedged.join().unwrap().is_err());
    assert_eq!(get(s.addr(), "/").status, 200);
}
