//! Controlling a running server: `segue reload --wait` (the deploy script's answer), `status`,
//! `stop`, `workers`, SIGTTIN/SIGTTOU, `--touch-reload` and the uWSGI-style `--master-fifo`.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{Deploy, EVENT_TIMEOUT, eventually, get, segue_bin, server_in};

fn segue(args: &[&str], control: &str) -> Output {
    Command::new(segue_bin())
        .args(args)
        .args(["--control", control])
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn reload_wait_exits_zero_once_the_new_generation_serves_and_the_old_is_gone() {
    let d = Deploy::new("v1");
    let ctl = d.path("ctl.sock");
    let s = server_in(&d.root, "versioned:application")
        .args(&["--workers", "2", "--control", &ctl])
        .start();
    d.version("v2");
    let out = segue(&["reload", "--wait", "--json"], &ctl);
    assert!(out.status.success(), "{out:?}");
    let r = json(&out);
    assert_eq!(
        (
            r["reply"].as_str(),
            r["ok"].as_bool(),
            r["generation"].as_u64()
        ),
        (Some("reload"), Some(true), Some(2))
    );
    assert_eq!(r["boot_ms"].as_array().unwrap().len(), 2);
    // "old workers are gone" is part of the answer: only the two new ones are left.
    assert_eq!(s.worker_pids().len(), 2, "{:?}", s.worker_pids());
    assert_eq!(get(s.addr(), "/").text(), "v2");
    // The human form names the generation and the boot times.
    d.version("v3");
    let out = segue(&["reload", "--wait"], &ctl);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("generation 3 is serving")
            && text.contains("worker boot times"),
        "{text}"
    );
}

#[test]
fn reload_wait_exits_non_zero_with_the_traceback_when_rolled_back() {
    let d = Deploy::new("v1");
    let ctl = d.path("ctl.sock");
    // Two workers: with respawn the canary's slot is lost to an in-place broken deploy (its
    // old code is gone from disk), the other old worker keeps serving.
    let s = server_in(&d.root, "versioned:application")
        .args(&["--workers", "2", "--control", &ctl])
        .start();
    d.version("broken");
    let out = segue(&["reload", "--wait", "--strategy", "respawn"], &ctl);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("ROLLED BACK") && text.contains("generation 1 keeps serving"),
        "{text}"
    );
    assert!(
        text.contains("Traceback")
            && text.contains("ImportError: this deploy is broken on purpose"),
        "{text}"
    );
    assert_eq!(get(s.addr(), "/").text(), "v1");
    // The status keeps the reason.
    let st = json(&segue(&["status", "--json"], &ctl));
    assert_eq!(st["reloads"][0]["ok"], false);
    assert!(
        st["reloads"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("ImportError")
    );
}

#[test]
fn status_lists_generations_workers_and_reloads() {
    let d = Deploy::new("v1");
    let ctl = d.path("ctl.sock");
    let s = server_in(&d.root, "versioned:application")
        .args(&["--workers", "2", "--control", &ctl])
        .start();
    for _ in 0..5 {
        get(s.addr(), "/");
    }
    assert!(segue(&["reload", "--wait"], &ctl).status.success());
    // Heartbeats carry the counters every second.
    let st = eventually(EVENT_TIMEOUT, || {
        let st = json(&segue(&["status", "--json"], &ctl));
        st["workers"].as_array().unwrap().len() == 2
    });
    assert!(st);
    let st = json(&segue(&["status", "--json"], &ctl));
    assert_eq!(st["serving"], 2);
    assert_eq!(st["workers_wanted"], 2);
    assert_eq!(st["pid"].as_i64().unwrap() as i32, s.pid());
    for w in st["workers"].as_array().unwrap() {
        assert_eq!(
            (w["generation"].as_u64(), w["state"].as_str()),
            (Some(2), Some("ready"))
        );
        assert!(w["pid"].as_i64().unwrap() > 0);
    }
    assert_eq!(st["reloads"][0]["ok"], true);
    let text = String::from_utf8_lossy(&segue(&["status"], &ctl).stdout).into_owned();
    assert!(
        text.contains("serving generation 2") && text.contains("recent reloads"),
        "{text}"
    );
}

#[test]
fn workers_plus_and_minus_and_ttin_ttou() {
    let d = Deploy::new("v1");
    let ctl = d.path("ctl.sock");
    let s = server_in(&d.root, "versioned:application")
        .args(&["--workers", "2", "--control", &ctl])
        .start();
    assert!(segue(&["workers", "+1"], &ctl).status.success());
    assert!(eventually(EVENT_TIMEOUT, || s.worker_pids().len() == 3));
    assert!(segue(&["workers", "-1"], &ctl).status.success());
    assert!(eventually(EVENT_TIMEOUT, || s.worker_pids().len() == 2));
    s.signal(libc::SIGTTIN);
    assert!(eventually(EVENT_TIMEOUT, || s.worker_pids().len() == 3));
    // One at a time: two pending SIGTTOUs would coalesce into one delivery.
    s.signal(libc::SIGTTOU);
    assert!(eventually(EVENT_TIMEOUT, || s.worker_pids().len() == 2));
    s.signal(libc::SIGTTOU);
    assert!(eventually(EVENT_TIMEOUT, || s.worker_pids().len() == 1));
    let out = segue(&["workers", "-1"], &ctl);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot go below 1 worker"));
    assert_eq!(get(s.addr(), "/").status, 200);
}

#[test]
fn control_socket_and_fifo_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let d = Deploy::new("v1");
    let (ctl, fifo) = (d.path("ctl.sock"), d.path("master.fifo"));
    let _s = server_in(&d.root, "versioned:application")
        .args(&["--control", &ctl, "--master-fifo", &fifo])
        .start();
    for path in [&ctl, &fifo] {
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "{path} is {mode:o}: other users could reload or stop the server"
        );
    }
}

#[test]
fn stop_command_stops_gracefully_and_removes_the_socket() {
    let d = Deploy::new("v1");
    let ctl = d.path("ctl.sock");
    let mut s = server_in(&d.root, "versioned:application")
        .args(&["--control", &ctl])
        .start();
    assert!(segue(&["stop"], &ctl).status.success());
    assert!(s.wait_exit(EVENT_TIMEOUT).expect("did not stop").success());
    assert!(!Path::new(&ctl).exists());
    let out = segue(&["status"], &ctl);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the master"));
}

#[test]
fn touch_reload_file_triggers_a_reload() {
    let d = Deploy::new("v1");
    let touch = d.path("reload.trigger");
    let s = server_in(&d.root, "versioned:application")
        .args(&["--touch-reload", &touch])
        .start();
    d.version("v2");
    std::fs::write(&touch, "").unwrap();
    assert_eq!(s.wait_promoted(1)["generation"], 2);
    assert!(eventually(EVENT_TIMEOUT, || get(s.addr(), "/").text() == "v2"));
}

#[test]
fn master_fifo_letters_reload_scale_and_stop() {
    use std::io::Write;
    let d = Deploy::new("v1");
    let fifo = d.path("master.fifo");
    let mut s = server_in(&d.root, "versioned:application")
        .args(&["--master-fifo", &fifo])
        .start();
    let send = |c: &str| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .unwrap()
            .write_all(c.as_bytes())
            .unwrap()
    };
    send("c");
    let r = s.wait_promoted(1);
    assert!(r["strategy"] == "Chain" && r["generation"] == 2, "{r}");
    send("r");
    let r = s.wait_promoted(2);
    assert!(r["strategy"] == "Respawn" && r["generation"] == 3, "{r}");
    send("+");
    assert!(eventually(EVENT_TIMEOUT, || s.worker_pids().len() == 2));
    send("q");
    assert!(
        s.wait_exit(EVENT_TIMEOUT)
            .expect("did not stop on q")
            .success()
    );
    assert!(!Path::new(&fifo).exists());
}

#[test]
fn control_without_a_server_explains_itself() {
    let out = Command::new(segue_bin())
        .args(["reload", "--wait", "--control", "/nonexistent/ctl.sock"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the master") && err.contains("--control"),
        "{err}"
    );
}

#[test]
fn reload_wait_prints_its_progress_on_stderr_unless_quiet() {
    let d = Deploy::new("v1");
    let ctl = d.path("ctl.sock");
    let s = server_in(&d.root, "versioned:application")
        .args(&["--workers", "2", "--control", &ctl])
        .start();
    let old: Vec<String> = s
        .worker_pids()
        .iter()
        .map(|p| format!("pid {p})"))
        .collect();
    // An import of half a second: the new workers are seen booting, then ready (a poll every
    // 100 ms may miss shorter states, such as an old worker's drain of an idle server).
    d.version("slow:0.5");
    let out = segue(&["reload", "--wait", "--json"], &ctl);
    assert!(out.status.success(), "{out:?}");
    // stdout keeps the JSON answer alone; the progress is on stderr.
    assert_eq!(json(&out)["generation"], 2);
    let progress = String::from_utf8_lossy(&out.stderr);
    for want in ["(generation 2, ", "): booting", "): ready", "): gone"] {
        assert!(progress.contains(want), "no {want:?} in:\n{progress}");
    }
    for pid in &old {
        assert!(
            progress.contains(&format!("{pid}: gone")),
            "old worker {pid} not reported gone:\n{progress}"
        );
    }
    d.version("v3");
    let out = segue(&["reload", "--wait", "--quiet"], &ctl);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("generation 3 is serving"));
}

#[test]
fn top_shows_each_worker_and_the_rates() {
    let d = Deploy::new("v1");
    let ctl = d.path("ctl.sock");
    let s = server_in(&d.root, "versioned:application")
        .args(&["--workers", "2", "--control", &ctl])
        .start();
    for _ in 0..5 {
        get(s.addr(), "/");
    }
    let out = segue(&["top", "--iterations", "2", "--interval", "0.2"], &ctl);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("segue master ").count(), 2, "{text}");
    for pid in s.worker_pids() {
        assert!(
            text.contains(&format!(" {pid} ")),
            "pid {pid} missing:\n{text}"
        );
    }
    assert!(
        text.contains("req/s") && text.contains("generation 1"),
        "{text}"
    );
}

/// `segue status` shows the requests waiting for a free Python thread in each worker.
#[test]
fn status_shows_the_requests_waiting_for_a_python_thread() {
    requests_waiting_show_in_status(&["--threads", "1", "--no-inline"], 3);
}

#[test]
fn status_shows_the_connections_waiting_for_an_inline_app() {
    // Inline, the busy serving thread takes no connection while the app runs: the two wait in
    // the kernel's accept queue, which the master reads (`scaling.queued`, uWSGI's
    // listen_queue), not in the worker.
    let s = support::server("cases:application")
        .args(&["--threads", "1"])
        .start();
    let first = s.slow_request("q1", 3.0);
    let addr = s.addr();
    let queued: Vec<_> = (2..=3)
        .map(|i| std::thread::spawn(move || support::try_get(addr, &format!("/sleep?s=0&id=q{i}"))))
        .collect();
    let st = s.wait_status(
        "two connections in the accept queue behind the sleeping request",
        // in_flight from the worker's next heartbeat.
        |st| st["scaling"]["queued"].as_u64() == Some(2) && st["workers"][0]["in_flight"] == 1,
    );
    assert_eq!(st["workers"][0]["connections"], 1, "{st}");
    assert_eq!(st["workers"][0]["queued"], 0, "{st}");
    assert_eq!(first.join().unwrap().unwrap().status, 200);
    for q in queued {
        assert_eq!(q.join().unwrap().unwrap().status, 200);
    }
}

fn requests_waiting_show_in_status(args: &[&str], received: u64) {
    let s = support::server("cases:application").args(args).start();
    let first = s.slow_request("q1", 3.0);
    let addr = s.addr();
    let queued: Vec<_> = (2..=3)
        .map(|i| std::thread::spawn(move || support::try_get(addr, &format!("/sleep?s=0&id=q{i}"))))
        .collect();
    let st = s.wait_status("two requests queued behind the sleeping one", |st| {
        // queued from the scoreboard, in_flight from the next heartbeat.
        st["workers"][0]["queued"].as_u64() == Some(2) && st["workers"][0]["in_flight"] == received
    });
    assert_eq!(st["workers"][0]["connections"], received, "{st}");
    let text = String::from_utf8_lossy(&segue(&["status"], s.control.to_str().unwrap()).stdout)
        .into_owned();
    assert!(text.contains("queue"), "{text}");
    assert_eq!(first.join().unwrap().unwrap().status, 200);
    for q in queued {
        assert_eq!(q.join().unwrap().unwrap().status, 200);
    }
}
