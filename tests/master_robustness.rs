//! The master stays up and responsive whatever operators do to it: timers that outlive what
//! they name, and an upgrade check that takes its time.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{EVENT_TIMEOUT, eventually, get, segue_bin, server, workers_in};

fn segue(args: &[&str], control: &std::path::Path) -> std::process::Output {
    Command::new(segue_bin())
        .args(args)
        .arg("--control")
        .arg(control)
        .output()
        .unwrap()
}

/// Was: `panicked at src/master/supervisor.rs:327:27: index out of bounds`, and a full outage.
#[test]
fn scaling_down_while_a_slot_backs_off_keeps_the_master_serving() {
    let dir = tempdir("backoff");
    let flag = dir.join("broken");
    let s = server("flag_broken:application")
        .args(&["--workers", "3"])
        .env("SEGUE_BROKEN_FLAG", flag.to_str().unwrap())
        .start();
    // Broken after its first start (before it, a broken app ends the master): the slots
    // crash-loop with backoff.
    s.break_flagged_app(&flag);
    // Slot 2 has died young often enough that its next respawn waits on a timer of 0.8 s or
    // more, far longer than a crashing import takes.
    s.wait_status("slot 2 backing off", |st| {
        st["crash_loops"].as_array().is_some_and(|c| {
            c.iter()
                .any(|l| l["slot"] == 2 && l["failures"].as_u64() >= Some(5))
        })
    });
    let out = segue(&["workers", "-1"], &s.control);
    assert!(out.status.success(), "{out:?}");
    std::fs::remove_file(&flag).unwrap();
    // Every pending timer, slot 2's included, fires within the longest backoff; by then the two
    // remaining slots serve the fixed app.
    let st = s.wait_status("two ready workers", |st| {
        st["ready"] == true && workers_in(st, "ready").len() == 2
    });
    assert_eq!(st["workers_wanted"], 2);
    let longest = Duration::from_millis(1600);
    let quiet_until = Instant::now() + longest * 2;
    while Instant::now() < quiet_until {
        assert_eq!(get(s.addr(), "/").text(), "ok");
        let st = s.status();
        assert_eq!(st["workers"].as_array().unwrap().len(), 2, "{st}");
    }
}

/// Was: `status` answered after 7 s, a killed worker was reaped 7 s late and, with
/// `--heartbeat-timeout 3`, every healthy worker was replaced.
#[test]
fn a_slow_upgrade_check_does_not_stall_the_master() {
    let dir = tempdir("slow-check");
    let slow = dir.join("slow-segue");
    std::fs::write(
        &slow,
        "#!/bin/sh\n# An upgrade candidate that takes 8 s to answer its check, then refuses.\nsleep 8\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = server("cases:application")
        .args(&["--workers", "2", "--heartbeat-timeout", "3"])
        .start();
    let started = Instant::now();
    let upgrade = Command::new(segue_bin())
        .args(["upgrade", "--timeout", "30", "--binary"])
        .arg(&slow)
        .arg("--control")
        .arg(&s.control)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The check is running: the master's child executing the candidate.
    let check_running = || {
        support::children_of(s.pid()).iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("__upgrade-check"))
        })
    };
    assert!(eventually(EVENT_TIMEOUT, check_running), "{}", s.log.all());

    // Status answers at once.
    let t = Instant::now();
    let out = segue(&["status", "--json"], &s.control);
    assert!(out.status.success());
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "status took {:?}",
        t.elapsed()
    );

    // A killed worker is reaped and replaced at once.
    let before = s.status();
    let victim = before["workers"][0]["pid"].as_i64().unwrap() as i32;
    let newest = support::newest_worker(&before);
    let t = Instant::now();
    unsafe { libc::kill(victim, libc::SIGKILL) };
    s.wait_replaced(2, newest);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "respawn took {:?}",
        t.elapsed()
    );

    // A reload goes through.
    s.signal(libc::SIGHUP);
    s.wait_promoted(1);
    assert!(
        check_running() && started.elapsed() < Duration::from_secs(8),
        "all of the above happened while the check ran"
    );
    let after_reload: Vec<u64> = workers_in(&s.status(), "ready");

    // The check fails in the end; the master keeps running with the same workers: none was
    // taken for silent (the heartbeat timeout is 3 s, the check took 8).
    let out = upgrade.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed its check"), "{err}");
    let st = s.status();
    assert_eq!(workers_in(&st, "ready"), after_reload, "{st}");
    assert!(
        st["upgrade_error"]
            .as_str()
            .unwrap()
            .contains("failed its check")
    );
    assert_eq!(get(s.addr(), "/").status, 200);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("segue-robust-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
