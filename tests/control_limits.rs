//! The control socket's limits, against the real binary: a request line has a size cap, a
//! client has a few seconds to send it, connections are bounded, accept errors back off instead
//! of spinning; and the control commands survive a stdout that cannot be written.

mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{EVENT_TIMEOUT, Server, eventually, segue_bin, server};

/// The server's cap on a request line (src/control/server.rs, docs/configuration.md).
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How long the server gives a client to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A control socket path unique to this test process and `name`.
fn socket_path(name: &str) -> String {
    let path = std::env::temp_dir().join(format!(
        "segue-ctl-limits-{}-{name}.sock",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path.display().to_string()
}

fn start(name: &str, workers: &str) -> (Server, String) {
    let ctl = socket_path(name);
    let s = server("cases:application")
        .args(&["--workers", workers, "--control", &ctl])
        .start();
    (s, ctl)
}

fn segue_status(ctl: &str) -> Output {
    Command::new(segue_bin())
        .args(["status", "--json", "--control", ctl])
        .output()
        .expect("cannot run segue status")
}

/// A field of /proc/PID/status, in kB (VmRSS).
fn status_kb(pid: i32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count()
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields start after the command name's last ')': state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Reads one reply line from a control connection and parses it.
fn read_reply(stream: &UnixStream) -> serde_json::Value {
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("no reply on the control connection");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {line:?}"))
}

/// True once the server has closed `stream` (EOF, or a reset because it left bytes unread).
fn closed_by_server(stream: &mut UnixStream) -> bool {
    let mut b = [0u8; 256];
    loop {
        match stream.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() == ErrorKind::ConnectionReset,
        }
    }
}

#[test]
fn oversized_request_gets_an_error_reply_and_is_never_buffered() {
    let (s, ctl) = start("oversized", "1");
    let before = status_kb(s.pid(), "VmRSS:");
    let stream = UnixStream::connect(&ctl).unwrap();
    stream.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    // Up to 64 MiB without a newline; the writer stops when the server stops taking it.
    let mut w = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0usize;
        for _ in 0..1024 {
            if w.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let sent = writer.join().unwrap();
    let grew_kb = status_kb(s.pid(), "VmRSS:").saturating_sub(before);
    assert!(
        grew_kb < 20 * 1024,
        "the master grew by {grew_kb} kB while a client sent {sent} bytes without a newline"
    );
    assert!(
        sent < 64 * 1024 * 1024,
        "the server read all {sent} bytes of an endless line"
    );
    eprintln!("sent {sent} bytes without a newline; the master grew by {grew_kb} kB");
    let reply = read_reply(&stream);
    assert_eq!(reply["reply"], "error", "{reply}");
    let message = reply["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&MAX_REQUEST_BYTES.to_string()),
        "the error does not name the limit: {message}"
    );
    let mut stream = stream;
    assert!(closed_by_server(&mut stream), "the connection stayed open");
    assert!(segue_status(&ctl).status.success());
}

#[test]
fn idle_connections_are_closed_after_the_request_timeout_while_status_answers() {
    let (s, ctl) = start("idle", "1");
    let pid = s.pid();
    // Settled: the control socket is bound and the worker is ready.
    assert!(segue_status(&ctl).status.success());
    let baseline = open_fds(pid);
    let opened = Instant::now();
    let mut idle: Vec<Option<UnixStream>> = (0..200)
        .map(|_| {
            let c = UnixStream::connect(&ctl).expect("connect to the control socket");
            c.set_nonblocking(true).unwrap();
            Some(c)
        })
        .collect();
    let mut replies: Vec<String> = vec![];
    let mut statuses = 0;
    let mut peak = baseline;
    let deadline = opened + REQUEST_TIMEOUT + EVENT_TIMEOUT;
    // Each round asks for the status (it must answer every time) and collects the idle
    // connections the server has closed, with whatever error reply each got first.
    while idle.iter().any(Option::is_some) && Instant::now() < deadline {
        let out = segue_status(&ctl);
        assert!(
            out.status.success(),
            "status failed with {} idle connections open: {}",
            idle.iter().flatten().count(),
            String::from_utf8_lossy(&out.stderr)
        );
        statuses += 1;
        peak = peak.max(open_fds(pid));
        for slot in idle.iter_mut() {
            let Some(c) = slot else { continue };
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            let closed = loop {
                match c.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
                    Err(e) => panic!("reading an idle control connection: {e}"),
                }
            };
            if !got.is_empty() {
                replies.push(String::from_utf8_lossy(&got).into_owned());
            }
            if closed {
                *slot = None;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = idle.iter().flatten().count();
    assert_eq!(
        left,
        0,
        "{left} of 200 idle connections still open after {:?}",
        opened.elapsed()
    );
    assert!(statuses > 0);
    // Every closed connection was told why, and some of them waited out the whole timeout.
    for r in &replies {
        let v: serde_json::Value = serde_json::from_str(r.trim_end())
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {r:?}"));
        assert_eq!(v["reply"], "error", "{r}");
    }
    assert!(
        replies.iter().any(|r| r.contains("within 5s")),
        "no connection was closed by the request timeout: {replies:?}"
    );
    assert!(
        eventually(EVENT_TIMEOUT, || open_fds(pid) <= baseline + 2),
        "the master holds {} fds, {baseline} before the idle connections",
        open_fds(pid)
    );
    eprintln!(
        "200 idle connections closed within {:?} ({} error replies), {statuses} status answers; \
         master fds {baseline} -> peak {peak} -> {}",
        opened.elapsed(),
        replies.len(),
        open_fds(pid)
    );
}

#[test]
fn accept_backs_off_without_spinning_when_the_master_is_out_of_fds() {
    let (s, ctl) = start("emfile", "1");
    let pid = s.pid();
    assert!(segue_status(&ctl).status.success());
    let baseline = open_fds(pid);
    let before = s.worker_pids();
    // Lower the master's soft fd limit to a little above what it holds now (the hard limit
    // stays, so nothing privileged is needed).
    let limit = (baseline + 16) as libc::rlim_t;
    set_soft_fd_limit(pid, limit);
    // More connections than the master has fds left: the rest wait in the backlog.
    let conns: Vec<UnixStream> = (0..48)
        .map(|_| UnixStream::connect(&ctl).expect("connect to the control socket"))
        .collect();
    assert!(
        eventually(EVENT_TIMEOUT, || open_fds(pid) as u64 >= limit),
        "the master never reached its fd limit of {limit} (it holds {})",
        open_fds(pid)
    );
    s.wait_log(&["control socket", "cannot accept connections"]);
    // A measurement window, not a handshake: how much CPU the master burns while it cannot
    // accept.
    let ticks_before = cpu_ticks(pid);
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let burnt = cpu_ticks(pid) - ticks_before;
    let elapsed = window.elapsed();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let cpu = Duration::from_millis(burnt * 1000 / hz.max(1));
    assert!(
        cpu < elapsed / 10,
        "the master used {cpu:?} of CPU in {elapsed:?} while out of fds"
    );
    eprintln!("out of fds ({limit}): the master used {cpu:?} of CPU in {elapsed:?}");
    assert_eq!(
        s.log
            .count(&["control socket", "cannot accept connections"]),
        1,
        "the accept error should be logged once per episode:\n{}",
        s.log.all()
    );
    drop(conns);
    assert!(
        eventually(EVENT_TIMEOUT, || segue_status(&ctl).status.success()),
        "status does not answer once the connections are gone"
    );
    let victim = before[0];
    // SAFETY: the worker is a child of the master this test started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    assert!(
        eventually(EVENT_TIMEOUT, || {
            let now = s.worker_pids();
            now.len() == 1 && now[0] != victim
        }),
        "the killed worker was not replaced: {:?}",
        s.worker_pids()
    );
    assert!(
        s.log.wait_count(&["worker ready"], 2, EVENT_TIMEOUT),
        "the replacement worker never became ready:\n{}",
        s.log.all()
    );
    assert!(segue_status(&ctl).status.success());
}

/// Sets the soft RLIMIT_NOFILE of `pid`, keeping its hard limit.
fn set_soft_fd_limit(pid: i32, soft: libc::rlim_t) {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit(2) on a process this test started; both pointers are valid rlimits.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut cur) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: cur.rlim_max,
    };
    // SAFETY: as above.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// A pipe whose read end is already closed, as `| head -1` leaves it once head has exited.
fn pipe_without_reader() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both fds on success; each is then owned exactly once.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: fresh fds from pipe2 that nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    write
}

fn status_into(ctl: &str, stdout: Stdio, json: bool) -> Output {
    let mut cmd = Command::new(segue_bin());
    cmd.arg("status");
    if json {
        cmd.arg("--json");
    }
    cmd.args(["--control", ctl])
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("cannot run segue status")
}

#[test]
fn status_into_a_full_device_reports_the_write_error_in_one_line() {
    let (_s, ctl) = start("full", "2");
    for json in [false, true] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("open /dev/full");
        let out = status_into(&ctl, Stdio::from(full), json);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(out.status.code(), Some(1), "json={json}: {err}");
        assert_eq!(err.lines().count(), 1, "json={json}: {err}");
        assert!(
            err.starts_with("segue: cannot write the answer: ")
                && err.contains("No space left on device"),
            "json={json}: {err}"
        );
    }
}

#[test]
fn status_into_a_closed_pipe_exits_quietly_with_the_replys_code() {
    let (_s, ctl) = start("pipe", "4");
    for json in [false, true] {
        let out = status_into(&ctl, Stdio::from(pipe_without_reader()), json);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(out.status.code(), Some(0), "json={json}: {err}");
        assert_eq!(err, "", "json={json}");
    }
}
