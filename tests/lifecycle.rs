//! The process model seen from outside: start-up, crashes and respawn, stop modes, no zombies,
//! import failures, listeners, pidfile and the command line.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Conn, EVENT_TIMEOUT, eventually, get, segue_bin, server};

#[test]
fn crashed_worker_is_respawned_and_logged_with_its_exit_status() {
    let s = server("cases:application")
        .args(&["--workers", "2"])
        .start();
    let before = s.worker_pids();
    assert_eq!(before.len(), 2);
    let newest = support::newest_worker(&s.status());
    let mut c = Conn::open(s.addr());
    c.send(b"GET /crash HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        c.try_read_response(false).is_err(),
        "os._exit(1) mid-request cannot produce a response"
    );
    s.wait_log(&["worker died unexpectedly (exit code 1)"]);
    s.wait_replaced(2, newest);
    let after = s.worker_pids();
    assert_eq!(after.len(), 2, "{after:?}");
    assert_ne!(before, after);
    for _ in 0..10 {
        assert_eq!(get(s.addr(), "/").status, 200);
    }
    assert!(s.zombies().is_empty(), "zombie workers: {:?}", s.zombies());
}

#[test]
fn killed_worker_is_reported_with_its_signal() {
    let s = server("cases:application")
        .args(&["--workers", "1"])
        .start();
    let pid = s.worker_pids()[0];
    let newest = support::newest_worker(&s.status());
    // SAFETY: the worker is a child of the master this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    s.wait_log(&["worker died unexpectedly (signal 9 (SIGKILL))"]);
    s.wait_replaced(1, newest);
    assert_eq!(get(s.addr(), "/").status, 200);
    assert!(s.zombies().is_empty());
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_cleanly() {
    let mut s = server("cases:application")
        .args(&["--workers", "1", "--threads", "2"])
        .start();
    let slow = s.slow_request("term", 1.5);
    let stop_at = Instant::now();
    s.signal(libc::SIGTERM);
    let r = slow.join().unwrap().expect("the in-flight request failed");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "slept"),
        "the in-flight request must complete"
    );
    let status = s
        .wait_exit(EVENT_TIMEOUT)
        .expect("master did not exit after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", s.log.all());
    assert!(
        stop_at.elapsed() >= Duration::from_millis(1000),
        "stopped before the request finished"
    );
    assert!(
        s.group_members().is_empty(),
        "processes left behind: {:?}",
        s.group_members()
    );
}

#[test]
fn workers_drain_and_exit_when_the_master_dies() {
    let s = server("cases:application")
        .args(&["--workers", "2"])
        .start();
    let workers = s.worker_pids();
    // SIGKILL the master alone: its workers see EOF on their control channel.
    s.signal(libc::SIGKILL);
    assert!(
        eventually(EVENT_TIMEOUT, || workers
            .iter()
            .all(|&p| support::proc_state(p).is_none_or(|st| st == 'Z'))),
        "workers outlived their master: {:?}",
        workers
            .iter()
            .map(|&p| (p, support::proc_state(p)))
            .collect::<Vec<_>>()
    );
    s.wait_log(&["draining (the master is gone"]);
}

#[test]
fn graceful_timeout_kills_requests_that_run_too_long() {
    let mut s = server("cases:application")
        .args(&["--workers", "1", "--graceful-timeout", "1"])
        .start();
    let slow = s.slow_request("long", 30.0);
    s.signal(libc::SIGTERM);
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("master did not exit after the graceful timeout");
    assert!(status.success());
    s.wait_log(&["graceful timeout"]);
    assert!(slow.join().unwrap().is_err());
    assert!(s.group_members().is_empty());
}

#[test]
fn sigint_stops_at_once() {
    let mut s = server("cases:application")
        .args(&["--workers", "2"])
        .start();
    let slow = s.slow_request("int", 30.0);
    let t = Instant::now();
    s.signal(libc::SIGINT);
    let status = s
        .wait_exit(Duration::from_secs(5))
        .expect("master did not exit on SIGINT");
    assert!(status.success());
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(slow.join().unwrap().is_err());
    assert!(s.group_members().is_empty());
}

#[test]
fn no_zombies_after_many_crashes_and_grandchildren() {
    let s = server("cases:application")
        .args(&["--workers", "2"])
        .start();
    for _ in 0..5 {
        let newest = support::newest_worker(&s.status());
        let mut c = Conn::open(s.addr());
        c.send(b"GET /crash HTTP/1.1\r\nHost: x\r\n\r\n");
        let _ = c.try_read_response(false);
        s.wait_replaced(2, newest);
    }
    assert!(
        eventually(Duration::from_secs(3), || s.zombies().is_empty()),
        "zombies: {:?}",
        s.zombies()
    );
    assert_eq!(s.worker_pids().len(), 2);
}

/// A master that is expected to exit on its own: its status, how long it took, and its log.
fn exit_of(mut s: support::Server, within: Duration) -> (i32, Duration, String) {
    let started = Instant::now();
    let status = s
        .wait_exit(within)
        .unwrap_or_else(|| panic!("segue still runs after {within:?}:\n{}", s.log.all()));
    let log = s.log.all();
    (status.code().unwrap_or(-1), started.elapsed(), log)
}

const DID_NOT_BOOT: &str =
    "segue exits: the app did not boot at first start (on reload a failing app rolls back instead)";

#[test]
fn an_unresolvable_app_ends_the_first_start_with_status_3_and_the_reason() {
    let s = server("nosuchmodule:app").exits().start();
    let (code, took, log) = exit_of(s, Duration::from_secs(10));
    assert_eq!(code, 3, "{log}");
    assert!(took < Duration::from_secs(5), "took {took:?}:\n{log}");
    // One line says what failed, how to fix it, and that this is why segue exits.
    let line = log
        .lines()
        .find(|l| l.contains(DID_NOT_BOOT))
        .unwrap_or_else(|| panic!("no exit line:\n{log}"));
    assert!(
        line.contains(
            "cannot import 'nosuchmodule:app': ModuleNotFoundError: No module named 'nosuchmodule'"
        ) && line.contains("did you set --chdir or --pythonpath?"),
        "{line}"
    );
    assert_eq!(log.matches("worker keeps dying young").count(), 0, "{log}");
}

#[test]
fn an_import_that_raises_ends_the_first_start_with_the_traceback() {
    let s = server("broken_import:application").exits().start();
    let (code, _, log) = exit_of(s, Duration::from_secs(10));
    assert_eq!(code, 3, "{log}");
    assert!(
        log.contains("cannot import 'broken_import:application': ModuleNotFoundError: No module named 'this_module_does_not_exist'")
            && log.contains("broken_import.py"),
        "{log}"
    );
    assert_eq!(
        log.matches("did you set --chdir").count(),
        0,
        "the hint is only for the app module itself:\n{log}"
    );
    assert!(log.contains(DID_NOT_BOOT), "{log}");
}

#[test]
fn an_import_that_hangs_ends_the_first_start_at_the_boot_timeout() {
    let deploy = support::Deploy::new("slow:60");
    let s = support::server_in(&deploy.root, "versioned:application")
        .args(&["--boot-timeout", "2"])
        .exits()
        .start();
    let (code, took, log) = exit_of(s, Duration::from_secs(15));
    assert_eq!(code, 3, "{log}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "took {took:?}:\n{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains(DID_NOT_BOOT))
        .unwrap_or_default();
    assert!(
        line.contains("not ready within 2s (raise --boot-timeout"),
        "{line}\n{log}"
    );
}

#[test]
fn the_first_boot_failure_of_several_workers_ends_the_master_once_leaving_no_process() {
    // The first import raises, the other two hang: the master does not wait for them.
    let counter = std::env::temp_dir().join(format!("segue-first-fails-{}", std::process::id()));
    let _ = std::fs::remove_file(&counter);
    let mut s = server("first_import_fails:application")
        .args(&["--workers", "3", "--boot-timeout", "30"])
        .env("SEGUE_IMPORT_COUNTER", counter.to_str().unwrap())
        .exits()
        .start();
    let status = s.wait_exit(Duration::from_secs(15));
    let log = s.log.all();
    assert_eq!(status.and_then(|st| st.code()), Some(3), "{log}");
    assert_eq!(log.matches(DID_NOT_BOOT).count(), 1, "{log}");
    assert!(
        log.contains("RuntimeError: import number 1 fails on purpose"),
        "{log}"
    );
    assert!(
        eventually(Duration::from_secs(2), || s.group_members().is_empty()),
        "left behind: {:?}",
        s.group_members()
    );
    let _ = std::fs::remove_file(&counter);
}

#[test]
fn a_deploy_broken_after_the_first_start_backs_off_and_recovers() {
    // Ready once, then every import fails: the slot crash-loops with backoff, the master stays
    // up and says why, and the fixed deploy is picked up without a restart.
    let flag = std::env::temp_dir().join(format!("segue-broken-flag-{}", std::process::id()));
    let _ = std::fs::remove_file(&flag);
    let ctl = std::env::temp_dir().join(format!("segue-crashloop-{}.sock", std::process::id()));
    let mut s = server("flag_broken:application")
        .args(&["--control", ctl.to_str().unwrap()])
        .env("SEGUE_BROKEN_FLAG", flag.to_str().unwrap())
        .start();
    s.break_flagged_app(&flag);
    assert!(
        s.log
            .wait_count(&["worker keeps dying young"], 1, EVENT_TIMEOUT),
        "{}",
        s.log.all()
    );
    s.wait_status("slot 0 crash-looping", |st| {
        st["crash_loops"][0]["slot"] == 0
    });
    let out = Command::new(segue_bin())
        .args(["status", "--control", ctl.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("slot 0 is crash-looping") && text.contains("broken on purpose"),
        "{text}"
    );
    assert!(
        s.wait_exit(Duration::from_millis(500)).is_none(),
        "master exited on a broken app after its first start"
    );
    assert_eq!(s.log.count(&["segue exits"]), 0);
    std::fs::remove_file(&flag).unwrap();
    s.wait_status("ready again", |st| {
        support::workers_in(st, "ready").len() == 1
    });
}

#[test]
fn missing_callable_names_the_fix() {
    let s = server("cases:nope").exits().start();
    s.wait_log(&["module 'cases' has no attribute 'nope'"]);
}

#[test]
fn wsgi_file_is_loaded() {
    let s = server("--wsgi-file")
        .args(&[support::apps_dir().join("cases.py").to_str().unwrap()])
        .start();
    assert_eq!(get(s.addr(), "/").text(), "hello\n");
}

#[test]
fn unix_socket_listener_serves_and_is_removed_on_exit() {
    let dir = std::env::temp_dir().join(format!("segue-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("s.sock");
    let spec = format!("unix:{}", sock.display());
    let mut s = server("cases:application")
        .no_default_listener()
        .args(&["--http", &spec])
        .start();
    let mut stream = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"REMOTE_ADDR\": \"\""), "{out}");
    s.signal(libc::SIGTERM);
    assert!(s.wait_exit(EVENT_TIMEOUT).unwrap().success());
    assert!(!sock.exists(), "socket file left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn several_listeners_serve_the_same_app() {
    let s = server("cases:application")
        .args(&["--http", "127.0.0.1:0"])
        .start();
    let listeners = s.status()["listeners"].clone();
    let addrs: Vec<std::net::SocketAddr> = listeners
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(addrs.len(), 2, "{listeners}");
    assert_eq!(addrs[0], s.addr());
    assert_ne!(addrs[0], addrs[1]);
    for addr in addrs {
        assert_eq!(get(addr, "/").status, 200);
    }
}

#[test]
fn pidfile_is_written_and_removed() {
    let path = std::env::temp_dir().join(format!("segue-pid-{}", std::process::id()));
    let mut s = server("cases:application")
        .args(&["--pidfile", path.to_str().unwrap()])
        .start();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().trim(),
        s.pid().to_string()
    );
    s.signal(libc::SIGTERM);
    assert!(s.wait_exit(EVENT_TIMEOUT).unwrap().success());
    assert!(!path.exists());
}

#[test]
fn env_and_pythonpath_reach_the_app() {
    let s = server("cases:application")
        .args(&["--env", "SEGUE_TEST_FLAG=on", "--pythonpath", "/tmp"])
        .start();
    let sys = get(s.addr(), "/sys").json();
    assert_eq!(sys["env"], "on");
    let path: Vec<String> = serde_json::from_value(sys["path"].clone()).unwrap();
    assert_eq!(
        path[0],
        support::apps_dir().display().to_string(),
        "--chdir first on sys.path"
    );
    assert!(path.contains(&"/tmp".to_string()));
    assert_eq!(sys["cwd"], support::apps_dir().display().to_string());
}

#[test]
fn access_log_lines_when_enabled() {
    let s = server("cases:application").args(&["--access-log"]).start();
    get(s.addr(), "/stream?n=1");
    // The combined format, into the error log (stderr) without --access-logfile.
    s.wait_log(&[
        "127.0.0.1 - - [",
        "\"GET /stream?n=1 HTTP/1.1\" 200 7 \"-\" \"-\"",
    ]);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let s = server("cases:application")
        .args(&["--log-format", "json"])
        .start();
    // The harness learnt readiness from the control socket; this is about how it was logged.
    let line = s.wait_log(&["segue ready"]);
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "INFO");
}

#[test]
fn help_lists_every_option_and_version_prints() {
    let out = Command::new(segue_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--http",
        "--workers",
        "--threads",
        "--chdir",
        "--pythonpath",
        "--virtualenv",
        "--env",
        "--backlog",
        "--graceful-timeout",
        "--pidfile",
        "--log-level",
        "--log-format",
        "--access-log",
        "--limit-request-line",
        "--limit-request-fields",
        "--limit-request-field-size",
        "--limit-request-body",
        "--wsgi-file",
        "--header-timeout",
        "--worker-connections",
        "--socket-timeout",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    // One line per option: the flag, its value name and what it does, together.
    for line in help.lines().filter(|l| l.trim_start().starts_with('-')) {
        let words = line.split_whitespace().count();
        assert!(
            words >= 3,
            "option without its description on its line: {line:?}"
        );
    }
    let out = Command::new(segue_bin()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("segue "));
}

#[test]
fn bad_configuration_is_refused_with_the_fix() {
    let run = |args: &[&str]| {
        let out = Command::new(segue_bin()).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&["--http", "nonsense", "app"]).contains("expected HOST:PORT"));
    assert!(run(&["--workers", "0", "app"]).contains("--workers: must be at least 1"));
    assert!(
        run(&["-w", "lots", "app"]).contains("-w: invalid value 'lots': expected a whole number")
    );
    assert!(
        run(&["--wokrers", "2", "app"])
            .contains("--wokrers: not an option (did you mean '--workers'?)")
    );
    // Every problem at once, not the first one only.
    let all = run(&[
        "--workers",
        "0",
        "--threads",
        "x",
        "--chdir",
        "/definitely/missing",
        "app",
    ]);
    assert!(all.contains("has 3 problems"), "{all}");
    assert!(run(&["--chdir", "/definitely/missing", "app"]).contains("is not a directory"));
    assert!(run(&["--virtualenv", "/tmp", "app"]).contains("has no bin/python"));
    assert!(run(&["bad app"]).contains("invalid app 'bad app'"));
    assert!(run(&["--env", "NOEQUALS", "app"]).contains("expected KEY=VALUE"));
    assert!(run(&["--chmod-socket", "999", "app"]).contains("expected octal permission bits"));
}

#[test]
fn chmod_socket_sets_the_unix_socket_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("segue-chmod-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (mode, want) in [("660", 0o660), ("0606", 0o606)] {
        let sock = dir.join(format!("{mode}.sock"));
        let spec = format!("unix:{}", sock.display());
        let _s = server("cases:application")
            .no_default_listener()
            .args(&["--http", &spec, "--chmod-socket", mode])
            .start();
        let got = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, want, "--chmod-socket {mode} gave {got:o}");
        // Still a working socket.
        assert!(std::os::unix::net::UnixStream::connect(&sock).is_ok());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(segue_bin())
        .args([
            "--http",
            &addr,
            "--chdir",
            support::apps_dir().to_str().unwrap(),
            "cases:application",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot bind {addr}"))
            && err.contains("another process listens there"),
        "{err}"
    );
}
