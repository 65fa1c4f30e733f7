//! Connections are spread over the workers that share a listener, also when they arrive in a
//! burst (a load balancer or a benchmark opening its whole pool at once), because each
//! keep-alive connection stays with the worker that accepted it.

mod support;

use std::collections::HashMap;

use support::{Conn, server};

/// Opens `n` connections back to back, then asks each which worker serves it.
fn burst(addr: std::net::SocketAddr, n: usize, split: &mut HashMap<String, usize>) -> Vec<Conn> {
    let mut conns: Vec<Conn> = (0..n).map(|_| Conn::open(addr)).collect();
    for c in &mut conns {
        c.send(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    for c in &mut conns {
        *split.entry(c.read_response(false).text()).or_insert(0) += 1;
    }
    conns
}

#[test]
fn bursts_of_keep_alive_connections_are_spread_evenly() {
    let s = server("cases:application")
        .args(&["--workers", "2", "--threads", "1"])
        .start();
    // The connections stay open, so each burst lands on workers that already hold some.
    let mut open = vec![];
    let mut split = HashMap::new();
    for round in 1..=4 {
        open.extend(burst(s.addr(), 20, &mut split));
        let total = 20 * round;
        let counts: Vec<usize> = split.values().copied().collect();
        assert_eq!(
            counts.len(),
            2,
            "one worker took every connection: {split:?}"
        );
        assert!(
            counts.iter().all(|&c| c.abs_diff(total / 2) <= 3),
            "uneven split of {total} connections after burst {round}: {split:?}"
        );
    }
}

#[test]
fn a_stopped_worker_does_not_hold_connections_back() {
    let s = server("cases:application")
        .args(&["--workers", "2", "--threads", "1", "--log-level", "debug"])
        .start();
    let mut split = HashMap::new();
    let _first = burst(s.addr(), 4, &mut split);
    let stopped: i32 = split.keys().next().unwrap().parse().unwrap();
    // SAFETY: signalling a worker of the server this test started.
    unsafe { libc::kill(stopped, libc::SIGSTOP) };
    // Every thread must have stopped: one still in the kernel could take a connection with it.
    assert!(support::eventually(
        std::time::Duration::from_secs(10),
        || {
            std::fs::read_dir(format!("/proc/{stopped}/task"))
                .unwrap()
                .flatten()
                .all(|t| {
                    let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                    stat.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('T'))
                })
        }
    ));
    // The stopped worker still looks like an accepting peer with few connections; the other
    // must take the new ones after a short wait rather than leave them queued.
    let started = std::time::Instant::now();
    let mut later = HashMap::new();
    let _more = burst(s.addr(), 10, &mut later);
    let elapsed = started.elapsed();
    // SAFETY: as above.
    unsafe { libc::kill(stopped, libc::SIGCONT) };
    assert_eq!(later.get(&stopped.to_string()), None, "{later:?}");
    s.wait_log(&["for a better-placed worker: accepting it here"]);
    assert!(
        elapsed < std::time::Duration::from_secs(2),
        "10 connections took {elapsed:?}"
    );
}

#[test]
fn new_connections_go_around_a_worker_busy_with_a_slow_request() {
    let s = server("cases:application")
        .args(&["--workers", "2", "--threads", "1"])
        .start();
    // One worker's only Python thread is now busy for 5 s.
    let slow = s.slow_request("slow", 5.0);
    let started = std::time::Instant::now();
    let mut split = HashMap::new();
    let _conns = burst(s.addr(), 3, &mut split);
    let elapsed = started.elapsed();
    assert_eq!(
        split.len(),
        1,
        "a connection went to the busy worker: {split:?}"
    );
    assert!(
        elapsed < std::time::Duration::from_secs(3),
        "the new connections waited behind the slow request: {elapsed:?}"
    );
    assert_eq!(slow.join().unwrap().unwrap().text(), "slept");
}
