//! Zero-downtime reloads, under load, for both strategies; rollback when the new generation
//! cannot serve; the surge limit; blue-green symlink deploys; no leaks over many reloads.

mod support;

use std::time::{Duration, Instant};

use support::{Deploy, EVENT_TIMEOUT, Load, LoadReport, eventually, get, server_in, try_get};

fn assert_nothing_lost(report: &LoadReport, log: &str) {
    assert!(
        report.failures.is_empty(),
        "{} failed requests, e.g. {:?}\n{log}",
        report.failures.len(),
        &report.failures[..report.failures.len().min(5)]
    );
    let bad = report.bad_statuses();
    assert!(
        bad.is_empty(),
        "{} non-200 responses, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert!(
        report.ok() > 100,
        "too little load to prove anything: {} responses",
        report.ok()
    );
}

/// Runs `reloads` reloads under load; after each, the new version must be the only one served
/// from one second after promotion on. With `preload` each generation's zygote imports the new
/// code and forks its workers.
fn reload_under_load(strategy: &str, preload: bool) {
    let deploy = Deploy::new("v1");
    let mut args = vec![
        "--workers",
        "2",
        "--threads",
        "2",
        "--reload-strategy",
        strategy,
    ];
    if preload {
        args.push("--preload");
    }
    let s = server_in(&deploy.root, "versioned:application")
        .args(&args)
        .start();
    let addr = s.addr();
    let load = Load::start(addr, "/", 4, 2, Duration::from_secs(90));
    // Slow requests that cross the reloads must complete.
    let slow = std::thread::spawn(move || {
        (0..3)
            .map(|_| try_get(addr, "/slow?1.5"))
            .collect::<Vec<_>>()
    });
    let mut promoted = vec![];
    for v in 2..=4 {
        deploy.version(&format!("v{v}"));
        s.signal(libc::SIGHUP);
        assert_eq!(s.wait_promoted(u64::from(v - 1))["generation"], v);
        promoted.push((Instant::now(), v));
        // Traffic must actually reach the new code before the next deploy.
        let want = format!("v{v}");
        assert!(
            eventually(EVENT_TIMEOUT, || get(addr, "/").text() == want),
            "v{v} never served"
        );
    }
    let report = load.stop();
    for r in slow.join().unwrap() {
        let r = r.unwrap_or_else(|e| panic!("a slow request crossing a reload failed: {e}"));
        assert_eq!(r.status, 200);
    }
    assert_nothing_lost(&report, &s.log.all());
    for (at, v) in &promoted {
        let stale: Vec<_> = report
            .seen
            .iter()
            .filter(|seen| seen.sent > *at + Duration::from_secs(1))
            .filter(|seen| {
                seen.body
                    .trim_start_matches('v')
                    .parse::<u32>()
                    .unwrap_or(0)
                    < *v
            })
            .collect();
        assert!(
            stale.is_empty(),
            "old code served more than 1 s after v{v} was promoted: {:?}",
            &stale[..stale.len().min(3)]
        );
    }
    assert!(s.zombies().is_empty());
}

#[test]
fn chain_reload_with_preload_under_load_loses_nothing_and_serves_the_new_code() {
    reload_under_load("chain", true);
}

#[test]
fn respawn_reload_with_preload_under_load_loses_nothing_and_serves_the_new_code() {
    reload_under_load("respawn", true);
}

#[test]
fn chain_reload_under_load_loses_nothing_and_serves_the_new_code() {
    reload_under_load("chain", false);
}

#[test]
fn respawn_reload_under_load_loses_nothing_and_serves_the_new_code() {
    reload_under_load("respawn", false);
}

fn rollback_under_load(strategy: &str, extra: &[&str], bad_version: &str, reason: &str) {
    let deploy = Deploy::new("v1");
    let mut args = vec![
        "--workers",
        "2",
        "--threads",
        "2",
        "--reload-strategy",
        strategy,
    ];
    args.extend_from_slice(extra);
    let s = server_in(&deploy.root, "versioned:application")
        .args(&args)
        .start();
    let load = Load::start(s.addr(), "/", 3, 2, Duration::from_secs(90));
    deploy.version(bad_version);
    s.signal(libc::SIGHUP);
    let r = s.wait_reload(1);
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["reason"].as_str().is_some_and(|why| why.contains(reason)),
        "rollback reason {} lacks {reason:?}\n{}",
        r["reason"],
        s.log.all()
    );
    // The broken generation is gone and generation 1 still serves (with respawn and an import
    // error its canary's slot stays empty: the old code is no longer on disk); then a fixed
    // deploy is picked up.
    s.wait_status("generation 2 gone, generation 1 serving", |st| {
        let workers = st["workers"].as_array().unwrap();
        st["serving"] == 1
            && st["reloading"].is_null()
            && workers.iter().all(|w| w["generation"] == 1)
            && workers.iter().any(|w| w["state"] == "ready")
    });
    deploy.version("v3");
    s.signal(libc::SIGHUP);
    assert_eq!(s.wait_promoted(2)["generation"], 3);
    assert!(eventually(EVENT_TIMEOUT, || get(s.addr(), "/").text() == "v3"));
    let report = load.stop();
    assert_nothing_lost(&report, &s.log.all());
    assert!(
        report.seen.iter().all(|r| r.body == "v1" || r.body == "v3"),
        "the broken generation served requests"
    );
}

#[test]
fn chain_reload_with_import_error_rolls_back_with_the_traceback() {
    rollback_under_load(
        "chain",
        &[],
        "broken",
        "ImportError: this deploy is broken on purpose",
    );
}

#[test]
fn respawn_reload_with_import_error_rolls_back_after_the_canary() {
    rollback_under_load(
        "respawn",
        &[],
        "broken",
        "ImportError: this deploy is broken on purpose",
    );
}

#[test]
fn failed_ready_check_rolls_back() {
    rollback_under_load(
        "chain",
        &["--ready-check", "/healthz"],
        "unhealthy",
        "ready check GET /healthz answered 503",
    );
}

#[test]
fn boot_timeout_rolls_back() {
    rollback_under_load(
        "chain",
        &["--boot-timeout", "1"],
        "slow:5",
        "not ready within 1s",
    );
}

#[test]
fn rollback_logs_the_python_traceback() {
    let deploy = Deploy::new("v1");
    let s = server_in(&deploy.root, "versioned:application").start();
    deploy.version("broken");
    s.signal(libc::SIGHUP);
    s.wait_log(&["reload 1 rolled back"]);
    let log = s.log.all();
    assert!(
        log.contains("Traceback (most recent call last)") && log.contains("versioned.py"),
        "{log}"
    );
}

#[test]
fn chain_surge_limits_how_many_new_workers_boot_at_once() {
    let deploy = Deploy::new("v1");
    let s = server_in(&deploy.root, "versioned:application")
        .args(&[
            "--workers",
            "4",
            "--reload-surge",
            "1",
            "--log-level",
            "debug",
        ])
        .start();
    deploy.version("v2");
    s.signal(libc::SIGHUP);
    s.wait_log(&["reload 1: generation 2 is serving"]);
    // Replay the master's own events: booting generation-2 workers never exceed the surge.
    let (mut booting, mut most, mut spawned) = (0i32, 0i32, 0);
    for line in s.log.all().lines() {
        if line.contains("segue::master") && line.contains("generation=2") {
            if line.contains("worker spawned") {
                booting += 1;
                spawned += 1;
            } else if line.contains("worker ready") {
                booting -= 1;
            }
            most = most.max(booting);
        }
    }
    assert_eq!(spawned, 4);
    assert_eq!(most, 1, "more than --reload-surge workers booted at once");
    // Four new workers serve; the old ones are gone.
    assert!(
        eventually(EVENT_TIMEOUT, || s.worker_pids().len() == 4),
        "{:?}",
        s.worker_pids()
    );
}

#[test]
fn chain_surge_bounds_the_process_count() {
    let deploy = Deploy::new("v1");
    let s = server_in(&deploy.root, "versioned:application")
        .args(&["--workers", "4", "--reload-surge", "1"])
        .start();
    deploy.version("slow:0.3");
    s.signal(libc::SIGHUP);
    let mut most = 0;
    let done = eventually(EVENT_TIMEOUT, || {
        most = most.max(s.worker_pids().len());
        s.try_status()
            .is_ok_and(|st| support::reload_record(&st, 1).is_some_and(|r| r["ok"] == true))
    });
    assert!(done, "reload 1 was not promoted:\n{}", s.log.all());
    // N + K, plus at most one old worker on its way out while the next new one boots.
    assert!(
        most > 4 && most <= 4 + 1 + 1,
        "saw {most} worker processes with 4 workers and surge 1"
    );
}

#[test]
fn a_request_stuck_in_an_old_worker_is_killed_after_the_graceful_timeout() {
    let deploy = Deploy::new("v1");
    let s = server_in(&deploy.root, "versioned:application")
        .args(&["--threads", "2", "--graceful-timeout", "1"])
        .start();
    let addr = s.addr();
    let stuck = std::thread::spawn(move || try_get(addr, "/slow?60"));
    assert!(eventually(EVENT_TIMEOUT, || deploy
        .root
        .join("slow-started")
        .exists()));
    deploy.version("v2");
    s.signal(libc::SIGHUP);
    s.wait_promoted(1);
    s.wait_log(&["graceful timeout: still draining", "generation=1"]);
    assert!(
        stuck.join().unwrap().is_err(),
        "the stuck request cannot have completed"
    );
    assert_eq!(get(addr, "/").text(), "v2");
    assert!(eventually(EVENT_TIMEOUT, || s.worker_pids().len() == 1));
}

#[test]
fn blue_green_symlink_flip_is_picked_up_on_reload() {
    let deploy = Deploy::new("unused");
    let (a, b) = (
        deploy.root.join("releases/a"),
        deploy.root.join("releases/b"),
    );
    deploy.release(&a, "blue");
    deploy.release(&b, "green");
    let current = deploy.root.join("current");
    std::os::unix::fs::symlink(&a, &current).unwrap();
    let s = server_in(&current, "versioned:application")
        .args(&["--workers", "2"])
        .start();
    assert_eq!(get(s.addr(), "/").text(), "blue");
    // Flip the symlink atomically, as deploy tools do.
    let tmp = deploy.root.join("current.tmp");
    std::os::unix::fs::symlink(&b, &tmp).unwrap();
    std::fs::rename(&tmp, &current).unwrap();
    s.signal(libc::SIGHUP);
    s.wait_promoted(1);
    assert!(eventually(EVENT_TIMEOUT, || get(s.addr(), "/").text() == "green"));
}

#[test]
fn reloads_arriving_during_a_reload_coalesce() {
    let deploy = Deploy::new("slow:1");
    let s = server_in(&deploy.root, "versioned:application").start();
    s.signal(libc::SIGHUP);
    s.wait_status("reload 1 running", |st| {
        st["reloading"] == "reload 1 -> generation 2"
    });
    for _ in 0..3 {
        s.signal(libc::SIGHUP);
    }
    assert_eq!(s.wait_promoted(2)["generation"], 3);
    assert!(s.log.count(&["is running: this reload is queued"]) >= 1);
    // Three signals during reload 1 made one more reload, not three.
    let third = |st: &serde_json::Value| {
        !st["reloading"].is_null() || support::reload_record(st, 3).is_some()
    };
    assert!(
        !eventually(Duration::from_millis(1500), || s
            .try_status()
            .is_ok_and(|st| third(&st))),
        "{}",
        s.log.all()
    );
}

#[test]
fn twenty_reloads_leak_no_fds_and_leave_no_zombies() {
    let deploy = Deploy::new("v1");
    let s = server_in(&deploy.root, "versioned:application")
        .args(&["--workers", "2"])
        .start();
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", s.pid()))
            .unwrap()
            .count()
    };
    let before = fds();
    for i in 1..=20 {
        s.signal(libc::SIGHUP);
        assert_eq!(s.wait_promoted(i)["generation"], i + 1);
    }
    // The last old generation finishes draining.
    assert!(
        eventually(EVENT_TIMEOUT, || s.worker_pids().len() == 2),
        "{:?}",
        s.worker_pids()
    );
    // At most as many: `before` may still count the harness's last status connection, which
    // the master closes just after the client has read its reply.
    assert!(
        eventually(EVENT_TIMEOUT, || fds() <= before),
        "master fds: {before} before, {} after 20 reloads",
        fds()
    );
    assert!(s.zombies().is_empty());
    assert_eq!(get(s.addr(), "/").status, 200);
}
