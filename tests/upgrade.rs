//! In-place binary upgrade: the master re-executes itself with the same PID, hands over its
//! sockets and workers, and replaces the workers, without losing a request; a binary that fails
//! its check leaves the old master running.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Deploy, Load, eventually, get, segue_bin, server_in};

#[test]
fn upgrade_under_load_keeps_the_pid_replaces_the_workers_and_loses_nothing() {
    let d = Deploy::new("v1");
    let ctl = d.path("ctl.sock");
    let s = server_in(&d.root, "versioned:application")
        .args(&["--workers", "2", "--threads", "2", "--control", &ctl])
        .start();
    let (master, first) = (s.pid(), s.worker_pids());
    let load = Load::start(s.addr(), "/", 4, 2, Duration::from_secs(60));
    let out = Command::new(segue_bin())
        .args(["upgrade", "--wait", "--control", &ctl])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("as pid {master}")) && text.contains("generation 2 is serving"),
        "{text}"
    );
    // The same process, new workers, nothing old left.
    assert!(support::proc_state(master).is_some_and(|st| st != 'Z'));
    let now = s.worker_pids();
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(
        now.iter().all(|p| !first.contains(p)),
        "old workers survived: {first:?} -> {now:?}"
    );
    // Again, by signal.
    s.signal(libc::SIGUSR2);
    // The control socket is handed over across the exec: a refused status in between is retried.
    s.wait_status("the second upgrade", |st| st["upgrades"] == 2);
    assert_eq!(s.wait_promoted(2)["generation"], 3);
    // As `upgrade --wait` does: over once the replaced workers have exited and been reaped.
    s.wait_status("generation 2's workers gone", |st| {
        st["workers"]
            .as_array()
            .is_some_and(|ws| ws.iter().all(|w| w["generation"] == 3))
    });
    let report = load.stop();
    assert!(
        report.failures.is_empty(),
        "{} failed: {:?}\n{}",
        report.failures.len(),
        &report.failures[..report.failures.len().min(5)],
        s.log.all()
    );
    assert!(report.bad_statuses().is_empty());
    assert!(report.ok() > 100);
    let st: serde_json::Value = serde_json::from_slice(
        &Command::new(segue_bin())
            .args(["status", "--json", "--control", &ctl])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        (st["upgrades"].as_u64(), st["pid"].as_i64()),
        (Some(2), Some(master as i64))
    );
    assert!(s.zombies().is_empty());
}

#[test]
fn a_binary_that_fails_its_check_leaves_the_old_master_serving() {
    let d = Deploy::new("v1");
    let ctl = d.path("ctl.sock");
    let s = server_in(&d.root, "versioned:application")
        .args(&["--control", &ctl])
        .start();
    let workers = s.worker_pids();
    let out = Command::new(segue_bin())
        .args([
            "upgrade",
            "--wait",
            "--binary",
            "/bin/false",
            "--control",
            &ctl,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'/bin/false' failed its check"), "{err}");
    assert_eq!(get(s.addr(), "/").text(), "v1");
    assert_eq!(s.worker_pids(), workers);
    assert!(!eventually(Duration::from_millis(500), || s
        .try_status()
        .is_ok_and(|st| st["upgrades"] != 0)));
}

#[test]
fn an_upgrade_keeps_the_worker_count_set_by_scaling() {
    let s = support::server("cases:application")
        .args(&["--workers", "1"])
        .start();
    let ctl = s.control.to_str().unwrap().to_string();
    let out = Command::new(segue_bin())
        .args(["workers", "+1", "--control", &ctl])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    s.wait_status("two ready workers", |st| {
        support::workers_in(st, "ready").len() == 2
    });
    let out = Command::new(segue_bin())
        .args(["upgrade", "--wait", "--control", &ctl])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The new image was started with `--workers 1`; the live count is what carries over.
    let st = s.wait_status("two new workers", |st| {
        st["upgrades"] == 1
            && st["reloading"].is_null()
            && support::workers_in(st, "ready").len() == 2
            && st["workers"].as_array().is_some_and(|w| w.len() == 2)
    });
    assert_eq!(st["workers_wanted"], 2, "{st}");
}
