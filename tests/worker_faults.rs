//! A worker that cannot serve must not take connections its peers could: one wedged holding
//! the GIL stops accepting and its peers take the new connections, and so does one holding its
//! `--worker-connections`; one killed under load costs only the requests it had in flight.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{server, try_get_within};

/// How long a request during a wedge may take: the healthy worker answers in milliseconds.
const PROMPT: Duration = Duration::from_secs(2);

/// What one request of a burst got: the serving worker's pid, or why it failed.
type Outcome = Result<i32, String>;

/// Sends `n` requests for `/pid` at once, each on a new connection, each given [`PROMPT`].
fn burst(addr: SocketAddr, n: usize) -> Vec<Outcome> {
    let clients: Vec<_> = (0..n)
        .map(|_| {
            std::thread::spawn(move || {
                let sent = Instant::now();
                let r = try_get_within(addr, "/pid", PROMPT)?;
                let took = sent.elapsed();
                match r.text().parse() {
                    Ok(pid) if r.status == 200 && took < PROMPT => Ok(pid),
                    _ => Err(format!("{} {:?} after {took:?}", r.status, r.text())),
                }
            })
        })
        .collect();
    clients.into_iter().map(|c| c.join().unwrap()).collect()
}

/// The failures of a burst, counting an answer from `wedged` as one.
fn failures(outcomes: &[Outcome], wedged: i32) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Ok(pid) if *pid == wedged => Some(format!("served by the wedged worker {pid}")),
            Ok(_) => None,
            Err(e) => Some(e.clone()),
        })
        .collect()
}

/// The `requests` of worker `pid` in a status reply (from its last heartbeat).
fn requests_of(status: &serde_json::Value, pid: i32) -> Option<u64> {
    status["workers"]
        .as_array()?
        .iter()
        .find(|w| w["pid"] == pid)?["requests"]
        .as_u64()
}

#[test]
fn new_connections_go_to_the_peer_of_a_worker_wedged_holding_the_gil() {
    let s = server("cases:application")
        .args(&["--workers", "2", "--threads", "1"])
        .start();
    let addr = s.addr();
    let wedge = std::thread::spawn(move || {
        try_get_within(addr, "/gil-wedge?s=8&id=w", support::EVENT_TIMEOUT)
    });
    let wedged = s.wait_wedged("w");
    // The probe's verdict comes within a second; the first burst follows it at once...
    let line = s.wait_log(&["not accepting connections until it is released"]);
    assert!(line.contains(&format!("pid={wedged}")), "{line}");
    let early = burst(addr, 10);
    // ...the second comes once the wedge has also stopped the heartbeats (3 s), as designed.
    let line = s.wait_log(&["the GIL has been held", "not heartbeating"]);
    assert!(line.contains(&format!("pid={wedged}")), "{line}");
    let late = burst(addr, 10);
    let failed = failures(&[early, late].concat(), wedged);
    assert!(
        failed.is_empty(),
        "{} of 20 requests failed during the wedge: {failed:?}",
        failed.len()
    );
    // The wedge ends: the request that caused it is answered, and the worker is back, heartbeats
    // and all, with no replacement (--heartbeat-timeout is 30 s).
    let r = wedge.join().unwrap().expect("the wedged request");
    assert_eq!((r.status, r.text()), (200, wedged.to_string()));
    s.wait_log(&["the GIL is free again", "accepting connections"]);
    s.wait_status("a heartbeat from the wedged worker after the wedge", |st| {
        requests_of(st, wedged).is_some_and(|n| n >= 1)
    });
    assert!(s.worker_pids().contains(&wedged));
    // It takes its share of new connections again.
    let mut served_by_it = 0;
    assert!(
        support::eventually(support::EVENT_TIMEOUT, || {
            let again = burst(addr, 10);
            assert!(again.iter().all(Result::is_ok), "{again:?}");
            served_by_it += again.iter().filter(|o| **o == Ok(wedged)).count();
            served_by_it > 0
        }),
        "the worker never accepted again after the wedge"
    );
}

#[test]
fn a_wedged_worker_with_an_idle_thread_is_not_taken_for_a_free_one() {
    // Its second Python thread waits for work, so the scoreboard showed the worker free; one
    // request at a time never makes the peer look fuller.
    let s = server("cases:application")
        .args(&["--workers", "2", "--threads", "2"])
        .start();
    let addr = s.addr();
    let wedge = std::thread::spawn(move || {
        try_get_within(addr, "/gil-wedge?s=5&id=w", support::EVENT_TIMEOUT)
    });
    let wedged = s.wait_wedged("w");
    s.wait_log(&["not accepting connections until it is released"]);
    let one_by_one: Vec<Outcome> = (0..10).flat_map(|_| burst(addr, 1)).collect();
    let failed = failures(&one_by_one, wedged);
    assert!(
        failed.is_empty(),
        "{} of 10 requests failed during the wedge: {failed:?}",
        failed.len()
    );
    let r = wedge.join().unwrap().expect("the wedged request");
    assert_eq!((r.status, r.text()), (200, wedged.to_string()));
}

/// How many established TCP connections on local `port` process `pid` holds: its socket
/// descriptors that `/proc/net/tcp` lists as established on that port.
fn connections_held(pid: i32, port: u16) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() > 9
                && f[1].ends_with(&format!(":{port:04X}"))
                && f[3] == "01"
                && inodes.contains(f[9])
        })
        .count()
}

#[test]
fn a_request_arriving_while_the_only_worker_is_wedged_is_served_by_its_replacement() {
    let s = server("cases:application")
        .args(&[
            "--workers",
            "1",
            "--threads",
            "1",
            "--heartbeat-timeout",
            "2",
        ])
        .start();
    let addr = s.addr();
    let newest = support::newest_worker(&s.status());
    let wedge = std::thread::spawn(move || {
        try_get_within(addr, "/gil-wedge?s=60&id=w", support::EVENT_TIMEOUT)
    });
    let wedged = s.wait_wedged("w");
    s.wait_log(&["not accepting connections until it is released"]);
    // The connection waits in the listen queue instead of inside a worker about to be killed.
    let waiting = std::thread::spawn(move || try_get_within(addr, "/pid", support::EVENT_TIMEOUT));
    s.wait_log(&["no heartbeat for", "stuck holding the GIL?"]);
    s.wait_replaced(1, newest);
    let r = waiting
        .join()
        .unwrap()
        .expect("the request that waited for the replacement");
    assert_eq!(r.status, 200);
    assert_ne!(r.text(), wedged.to_string(), "served by the wedged worker");
    assert!(
        wedge.join().unwrap().is_err(),
        "the wedged worker was killed"
    );
}

#[test]
fn a_killed_worker_costs_only_the_requests_it_had_in_flight() {
    const CLIENTS: usize = 8;
    let s = server("cases:application")
        .args(&["--workers", "2", "--threads", "1"])
        .start();
    let load = support::Load::start(s.addr(), "/pid", CLIENTS, 0, Duration::from_secs(60));
    // Both workers are serving the load (their heartbeats count what they served).
    let st = s.wait_status("both workers serving the load", |st| {
        let served: Vec<u64> = st["workers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w["requests"].as_u64())
            .collect();
        served.len() == 2 && served.iter().all(|&n| n >= 20)
    });
    let newest = support::newest_worker(&st);
    let pids = s.worker_pids();
    let (victim, survivor) = (pids[0], pids[1]);
    let before = requests_of(&st, survivor).unwrap_or(0);
    // Its clients only reconnect after a failure, so this is what it holds when it dies.
    let held = connections_held(victim, s.addr().port());
    assert!(
        (1..=CLIENTS).contains(&held),
        "the victim holds {held} connections"
    );
    // SAFETY: the worker is a child of the master this test started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    s.wait_log(&["worker died unexpectedly (signal 9 (SIGKILL))"]);
    let after = s.wait_replaced(2, newest);
    // The load goes on over the survivor: its clients reconnected there.
    s.wait_status("the survivor serving on after the kill", |st| {
        requests_of(st, survivor).is_some_and(|n| n >= before + 100)
    });
    let report = load.stop();
    assert!(
        report.seen.iter().any(|r| r.body == victim.to_string()),
        "the killed worker never served the load"
    );
    assert!(
        report.bad_statuses().is_empty(),
        "{:?}",
        report.bad_statuses()
    );
    // Each client has one request in flight at most: only the clients of the killed worker
    // can have lost one.
    assert!(
        report.failures.len() <= held,
        "{} requests failed for one killed worker holding {held} connections: {:?}",
        report.failures.len(),
        report.failures
    );
    assert!(report.ok() > 100, "{} requests served", report.ok());
    // The refilled slot takes its share of new connections.
    let replacement = support::newest_worker(&after);
    assert!(replacement > newest);
    let pids = s.worker_pids();
    assert!(
        !pids.contains(&victim) && pids.contains(&survivor),
        "{pids:?}"
    );
    let mut seen = std::collections::HashSet::new();
    assert!(
        support::eventually(support::EVENT_TIMEOUT, || {
            seen.extend(burst(s.addr(), 6).into_iter().flatten());
            seen.len() == 2
        }),
        "new connections reached only {seen:?} of {pids:?}"
    );
    eprintln!(
        "kill -9 under keep-alive load: {} failed, {} served, the victim held {held}",
        report.failures.len(),
        report.ok()
    );
}

#[test]
fn a_worker_at_its_connection_limit_leaves_new_connections_to_its_peers() {
    let s = server("cases:application")
        .args(&[
            "--workers",
            "2",
            "--threads",
            "1",
            "--worker-connections",
            "2",
        ])
        .start();
    let mut conns = vec![];
    let mut split = std::collections::HashMap::<String, usize>::new();
    for _ in 0..4 {
        let mut c = support::Conn::open(s.addr());
        c.send(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n");
        *split.entry(c.read_response(false).text()).or_insert(0) += 1;
        conns.push(c);
    }
    assert_eq!(
        split.values().copied().collect::<Vec<_>>(),
        vec![2, 2],
        "{split:?}"
    );
    assert!(
        s.log.wait_count(
            &["holds 2 connections (--worker-connections 2): not accepting until one closes"],
            2,
            support::EVENT_TIMEOUT
        ),
        "both workers should say they are full:\n{}",
        s.log.all()
    );
    // Every worker is full: a fifth connection waits in the listen queue, unanswered (the
    // short read is how the test sees nothing come)...
    let mut fifth = support::Conn::open(s.addr());
    fifth.send(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n");
    fifth.set_read_timeout(Duration::from_millis(300));
    assert!(
        fifth.try_read_response(false).is_err(),
        "a full worker accepted a connection"
    );
    // ...until a connection closes, and its worker takes the waiting one.
    let mut first = conns.remove(0);
    first.send(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let freed = first.read_response(false).text();
    drop(first);
    fifth.set_read_timeout(support::EVENT_TIMEOUT);
    let r = fifth.read_response(false);
    assert_eq!((r.status, r.text()), (200, freed));
}
