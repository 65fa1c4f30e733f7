//! The inline mode (the default with one thread per worker): the app runs on the connection's
//! own thread, and still never twice at once, streams without holding chunks back, keeps its
//! thread-local state, and hands what cannot run there (a body read as it arrives, `write()`)
//! to a Python thread.

mod support;

use std::time::{Duration, Instant};

use support::{Conn, EVENT_TIMEOUT, get, server};

fn thread_name(addr: std::net::SocketAddr) -> String {
    get(addr, "/thread-name").text()
}

#[test]
fn one_thread_runs_inline_and_other_settings_use_python_threads() {
    let s = server("cases:application").start();
    assert_eq!(thread_name(s.addr()), "segue-serve");
    for args in [
        &["--no-inline"][..],
        &["--threads", "2"],
        &["--harakiri", "30"],
    ] {
        let s = server("cases:application").args(args).start();
        assert!(
            thread_name(s.addr()).starts_with("segue-python-"),
            "{args:?}: {}",
            thread_name(s.addr())
        );
    }
}

#[test]
fn thread_local_state_lasts_across_requests_and_connections() {
    let s = server("cases:application")
        .args(&["--workers", "1"])
        .start();
    let first = get(s.addr(), "/thread-local").text();
    let (ident, _) = first.split_once(':').unwrap();
    let mut c = Conn::open(s.addr());
    for n in 2..5 {
        c.send(b"GET /thread-local HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.read_response(false).text(), format!("{ident}:{n}"));
    }
}

#[test]
fn the_app_never_runs_twice_at_once_whatever_path_a_request_takes() {
    let s = server("cases:application")
        .args(&["--workers", "1"])
        .start();
    let addr = s.addr();
    let clients: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                for _ in 0..5 {
                    match i % 3 {
                        // Inline, answered whole.
                        0 => c.send(b"GET /overlap?s=0.005 HTTP/1.1\r\nHost: x\r\n\r\n"),
                        // Inline, pulled: a generator held open across chunks.
                        1 => c.send(b"GET /overlap?chunks=4&s=0.003 HTTP/1.1\r\nHost: x\r\n\r\n"),
                        // A body the app reads as it arrives: on the pool's thread.
                        _ => {
                            c.send(b"POST /overlap?s=0.005 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
                            let interim = c.read_some(64);
                            assert!(interim.starts_with(b"HTTP/1.1 100"), "{interim:?}");
                            c.send(b"ab");
                        }
                    }
                    let r = c.read_response(false);
                    assert_eq!(r.status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let most = get(addr, "/overlap?s=0").text();
    assert_eq!(
        most.trim_start_matches('x').trim(),
        "1",
        "calls overlapped: {most}"
    );
}

#[test]
fn a_streamed_chunk_is_sent_before_the_app_computes_the_next() {
    let s = server("cases:application").start();
    let mut c = Conn::open(s.addr());
    c.set_read_timeout(EVENT_TIMEOUT);
    c.send(b"GET /gate?id=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut got = Vec::new();
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while !String::from_utf8_lossy(&got).contains("first\n") {
        assert!(Instant::now() < deadline, "no first chunk: {got:?}");
        got.extend(c.read_some(4096));
    }
    std::fs::write(s.marks.join("gate-1"), b"").unwrap();
    loop {
        let more = c.read_some(4096);
        if more.is_empty() {
            break;
        }
        got.extend(more);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("second\n") && !text.contains("timeout"),
        "{text}"
    );
}

#[test]
fn write_works_inline_and_then_moves_the_app_to_a_python_thread() {
    let s = server("cases:application")
        .args(&["--workers", "1"])
        .start();
    assert_eq!(thread_name(s.addr()), "segue-serve");
    for _ in 0..3 {
        let r = get(s.addr(), "/write");
        assert_eq!((r.status, r.text().as_str()), (200, "written-returned"));
    }
    assert_eq!(thread_name(s.addr()), "segue-python-0");
}

#[test]
fn heartbeats_go_on_while_an_inline_request_runs() {
    // A request longer than the heartbeat timeout must not get the worker replaced: the
    // heartbeat comes from the worker's main thread, not the one running the app.
    let s = server("cases:application")
        .args(&["--workers", "1", "--heartbeat-timeout", "2"])
        .start();
    let pids = s.worker_pids();
    let t = Instant::now();
    let r =
        support::try_get_within(s.addr(), "/sleep?s=4&id=long", Duration::from_secs(20)).unwrap();
    assert_eq!(r.text(), "slept");
    assert!(t.elapsed() >= Duration::from_secs(4));
    assert_eq!(
        s.worker_pids(),
        pids,
        "the worker was replaced during a long request"
    );
}
