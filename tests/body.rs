//! Request bodies from hostile and slow clients, end to end: an upload of any size streams
//! through a worker in bounded memory however the app reads it; clients that trickle or stop
//! sending their bodies cannot hold the Python threads; a stalled body ends in a 408 after
//! `--socket-timeout`, and the app sees why.

mod support;

use std::time::{Duration, Instant};

use support::{Conn, EVENT_TIMEOUT, Response, eventually, server};

/// The bytes tests/apps/bodies.py expects: its PATTERN (64 lines of up to 149,999 letters),
/// repeated.
struct Pattern {
    block: Vec<u8>,
    pos: usize,
}

impl Pattern {
    fn new() -> Self {
        let block = (0..64u32)
            .flat_map(|i| {
                std::iter::repeat_n(b'a' + (i % 26) as u8, (i * 7919 % 150_000) as usize)
                    .chain([b'\n'])
            })
            .collect();
        Pattern { block, pos: 0 }
    }

    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let k = (n - out.len()).min(self.block.len() - self.pos);
            out.extend_from_slice(&self.block[self.pos..self.pos + k]);
            self.pos = (self.pos + k) % self.block.len();
        }
        out
    }
}

/// A chunked body's framing around `data`.
fn chunk(data: &[u8]) -> Vec<u8> {
    let mut frame = format!("{:x}\r\n", data.len()).into_bytes();
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"\r\n");
    frame
}

/// The peak resident memory of process `pid`, in KiB.
fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"))
}

/// Checks a `/digest` answer: every byte of the pattern arrived, in order, and no piece the app
/// read was larger than `largest`.
fn assert_digest(r: &Response, bytes: usize, largest: usize) {
    assert_eq!(r.status, 200, "{}", r.text());
    let d = r.json();
    assert_eq!(d["bytes"], bytes, "{d}");
    assert_eq!(
        d["crc32"], d["expected"],
        "bytes lost, duplicated or reordered: {d}"
    );
    assert!(
        d["largest"].as_u64().unwrap() as usize <= largest,
        "a read returned more than asked: {d}"
    );
}

const UPLOAD: usize = 512 << 20;

/// A worker serving the hello app with the test's Python takes about 30 MB; the body must not
/// add more than a few of them, whatever its size (a buffered 512 MiB body took 300 MB to 2 GB).
const PEAK_RSS_KIB: u64 = 128 << 10;

/// How an upload is framed on the wire.
enum Framing {
    Length,
    /// Chunks of this many bytes.
    Chunked(usize),
}

/// Uploads 512 MiB of the pattern to `/digest?how=HOW&n=65536` on a one-worker server and
/// checks the body arrived whole while the worker's memory stayed bounded.
fn upload(how: &str, framing: Framing, largest: usize) {
    let s = server("bodies:application")
        .args(&["--workers", "1"])
        .start();
    let worker = s.worker_pids()[0];
    let mut c = Conn::open(s.addr());
    c.set_write_timeout(EVENT_TIMEOUT);
    let mut pattern = Pattern::new();
    let target = format!("/digest?how={how}&n=65536");
    match framing {
        Framing::Length => {
            c.send(format!("POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {UPLOAD}\r\nConnection: close\r\n\r\n").as_bytes());
            for _ in 0..UPLOAD >> 20 {
                c.send(&pattern.take(1 << 20));
            }
        }
        Framing::Chunked(size) => {
            c.send(format!("POST {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").as_bytes());
            let mut left = UPLOAD;
            while left > 0 {
                let n = left.min(size);
                c.send(&chunk(&pattern.take(n)));
                left -= n;
            }
            c.send(b"0\r\n\r\n");
        }
    }
    assert_digest(&c.read_response(false), UPLOAD, largest);
    let peak = peak_rss_kib(worker);
    assert!(
        peak < PEAK_RSS_KIB,
        "worker peak RSS {peak} KiB for a 512 MiB upload read by {how}: the body was buffered"
    );
}

#[test]
fn a_content_length_upload_read_in_64k_pieces_streams_in_bounded_memory() {
    upload("read", Framing::Length, 65536);
}

#[test]
fn a_chunked_upload_read_in_64k_pieces_streams_in_bounded_memory() {
    upload("read", Framing::Chunked(100_000), 65536);
}

#[test]
fn readline_with_a_size_streams_an_upload_in_bounded_memory() {
    upload("readline", Framing::Length, 65536);
}

#[test]
fn iterating_over_a_chunked_upload_streams_in_bounded_memory() {
    // Iteration returns whole lines: the pattern's longest is 150,000 bytes with its newline.
    upload("iter", Framing::Chunked((1 << 20) + 7), 150_000);
}

/// Sends `raw` on a new connection.
fn open_with(s: &support::Server, raw: &[u8]) -> Conn {
    let mut c = Conn::open(s.addr());
    c.send(raw);
    c
}

/// `GET /` on a new connection; fails the test if the answer takes longer than `within`.
fn get_within(s: &support::Server, within: Duration) -> Duration {
    let started = Instant::now();
    let mut c = Conn::open(s.addr());
    c.set_read_timeout(within + Duration::from_secs(3));
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = c.try_read_response(false);
    let took = started.elapsed();
    assert!(
        matches!(&r, Ok(r) if r.status == 200) && took < within,
        "GET / took {took:?} (limit {within:?}): {r:?}"
    );
    took
}

#[test]
fn clients_trickling_their_bodies_hold_sockets_not_python_threads() {
    // The attack on a 2 workers x 2 threads server: eight clients send ten bytes of
    // their bodies and then nothing, with the default --socket-timeout of 30 s.
    let s = server("bodies:application")
        .args(&["--workers", "2", "--threads", "2"])
        .start();
    let mut slow = Vec::new();
    for i in 0..8 {
        let (framing, body) = match i % 3 {
            0 => ("Content-Length: 1000000", "0123456789"),
            1 => ("Content-Length: 1000", "0123456789"),
            _ => ("Transfer-Encoding: chunked", "a\r\n0123456789\r\n"),
        };
        slow.push(open_with(
            &s,
            format!("POST /digest?id=slow{i} HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n{body}")
                .as_bytes(),
        ));
    }
    // Each would have taken a Python thread within milliseconds; keep asking for a while, so
    // that some GETs surely come after all of them.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        get_within(&s, Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(100));
    }
    let reached_the_app = (0..8)
        .filter(|i| s.marks.join(format!("reading-slow{i}")).exists())
        .count();
    assert_eq!(
        reached_the_app, 0,
        "bodies of ten bytes took Python threads"
    );
    drop(slow);
}

#[test]
fn bodies_stalled_past_the_read_ahead_free_their_threads_after_the_socket_timeout() {
    // These clients send more than segue reads ahead, so their requests do take Python threads
    // (all four, with four more queued), and then stop.
    let s = server("bodies:application")
        .args(&["--workers", "2", "--threads", "2", "--socket-timeout", "1"])
        .start();
    let start = Pattern::new().take(70_000);
    let mut slow = Vec::new();
    for i in 0..8 {
        let mut raw = format!(
            "POST /digest?id=slow{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
        )
        .into_bytes();
        raw.extend_from_slice(&start);
        slow.push(open_with(&s, &raw));
    }
    let reading = || {
        (0..8)
            .filter(|i| s.marks.join(format!("reading-slow{i}")).exists())
            .count()
    };
    assert!(
        eventually(EVENT_TIMEOUT, || reading() >= 4),
        "the stalled requests never reached the app"
    );
    // Two rounds of four stalled reads, a second each, and the GET is served.
    get_within(&s, Duration::from_secs(5));
    for (i, c) in slow.iter_mut().enumerate() {
        let r = c.read_response(false);
        assert_eq!(r.status, 408, "stalled request {i}: {}", r.text());
    }
}

#[test]
fn a_body_that_stops_gets_408_after_the_socket_timeout_and_the_app_sees_why() {
    let s = server("bodies:application")
        .args(&["--workers", "1", "--threads", "3", "--socket-timeout", "1"])
        .start();
    // Within what segue reads before the app runs, past it, and a body the app asked for with
    // 100 Continue: three ways of reaching the app.
    let cases = [
        ("small", "Content-Length: 1000\r\n", 10, false),
        ("large", "Content-Length: 1000000\r\n", 100_000, false),
        (
            "continue",
            "Content-Length: 1000\r\nExpect: 100-continue\r\n",
            10,
            true,
        ),
    ];
    for (id, headers, sent, expect) in cases {
        let mut c = open_with(
            &s,
            format!("POST /digest?id={id} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes(),
        );
        if expect {
            assert_eq!(c.read_response(false).status, 100, "{id}");
        }
        c.send(&Pattern::new().take(sent));
        let stopped = Instant::now();
        let r = c.read_response(false);
        let took = stopped.elapsed();
        assert_eq!(r.status, 408, "{id}: {}", r.text());
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(10),
            "{id}: 408 after {took:?} for a 1 s --socket-timeout"
        );
        assert_eq!(r.header("connection"), Some("close"), "{id}");
        assert!(c.closed_by_server(), "{id}: the connection stayed open");
        let seen = std::fs::read_to_string(s.marks.join(format!("body-error-{id}")))
            .unwrap_or_else(|e| panic!("{id}: the app saw no exception ({e})"));
        assert!(
            seen.starts_with("RequestBodyTimeout: ") && seen.contains("--socket-timeout"),
            "{id}: the app saw {seen:?}"
        );
    }
}

#[test]
fn a_slow_but_steady_body_is_received_whole() {
    // A byte every 200 ms, well within a 3 s --socket-timeout (a wide margin: a loaded machine
    // can delay the sending thread): small bodies (read before the app runs), the tail of a
    // large one (read while the app reads), and chunked.
    let s = server("bodies:application")
        .args(&["--workers", "1", "--threads", "3", "--socket-timeout", "3"])
        .start();
    let addr = s.addr();
    let trickle = |head: String, quick: usize, slow: usize, chunked: bool| {
        std::thread::spawn(move || {
            let mut c = Conn::open(addr);
            c.send(head.as_bytes());
            let mut pattern = Pattern::new();
            if quick > 0 {
                c.send(&pattern.take(quick));
            }
            for _ in 0..slow {
                std::thread::sleep(Duration::from_millis(200));
                let byte = pattern.take(1);
                c.send(&if chunked { chunk(&byte) } else { byte });
            }
            if chunked {
                c.send(b"0\r\n\r\n");
            }
            c.read_response(false)
        })
    };
    let post = |framing: &str| {
        format!("POST /digest HTTP/1.1\r\nHost: x\r\n{framing}\r\nConnection: close\r\n\r\n")
    };
    let small = trickle(post("Content-Length: 20"), 0, 20, false);
    let tail = trickle(post("Content-Length: 100000"), 99_990, 10, false);
    let chunked = trickle(post("Transfer-Encoding: chunked"), 0, 15, true);
    assert_digest(&small.join().unwrap(), 20, 65536);
    assert_digest(&tail.join().unwrap(), 100_000, 65536);
    assert_digest(&chunked.join().unwrap(), 15, 65536);
}
