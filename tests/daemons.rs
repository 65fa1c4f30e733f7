//! Attached daemons (`--attach-daemon`, `--smart-attach-daemon`, `--smart-attach-daemon2`),
//! with real processes: started with the master, their output in segue's log, restarted after
//! `kill -9`, replaced when a reload is promoted (the plain kind) or left running (the smart
//! kinds), watched by their pidfile, and stopped with the master.

mod support;

use std::path::Path;
use std::time::Duration;

use support::oneshot::scratch;
use support::{EVENT_TIMEOUT, Server, eventually, get, server};

/// The daemons in `status`.
fn daemons(s: &Server) -> Vec<serde_json::Value> {
    s.status()["daemons"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until daemon `i` is in `state` with a pid other than `not`, and returns that pid.
fn pid_in(s: &Server, i: usize, state: &str, not: Option<i64>) -> i64 {
    let st = s.wait_status(state, |st| {
        let d = &st["daemons"][i];
        d["state"] == state && d["pid"].as_i64().is_some_and(|p| Some(p) != not)
    });
    st["daemons"][i]["pid"].as_i64().unwrap()
}

/// Waits until daemon `i` runs as the master's child with a pid other than `not`.
fn running_pid(s: &Server, i: usize, not: Option<i64>) -> i64 {
    pid_in(s, i, "running", not)
}

fn alive(pid: i64) -> bool {
    support::proc_state(pid as i32).is_some_and(|s| s != 'Z')
}

fn kill(pid: i64, sig: i32) {
    // SAFETY: signals a process this test's server started.
    unsafe { libc::kill(pid as i32, sig) };
}

fn pidfile_pid(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[test]
fn a_daemon_logs_through_segue_and_comes_back_after_kill_9() {
    let s = server("cases:application")
        .args(&[
            "--attach-daemon",
            "echo $((40 + 2))-from-the-daemon; exec sleep 600",
        ])
        .start();
    let first = running_pid(&s, 0, None);
    let d = &daemons(&s)[0];
    assert_eq!(d["kind"], "attach-daemon");
    assert_eq!(
        d["command"],
        "echo $((40 + 2))-from-the-daemon; exec sleep 600"
    );
    // Its output goes into segue's log, tagged with the daemon.
    let line = s.wait_log(&["42-from-the-daemon"]);
    assert!(
        line.contains("daemon=") && line.contains("stream=\"stdout\""),
        "{line}"
    );
    assert_eq!(get(s.addr(), "/").status, 200);

    kill(first, libc::SIGKILL);
    let second = running_pid(&s, 0, Some(first));
    let d = &daemons(&s)[0];
    assert_eq!(d["restarts"], 1);
    assert_eq!(d["last_exit"], "signal 9 (SIGKILL)");
    assert!(alive(second));
    assert_eq!(get(s.addr(), "/").status, 200, "the workers never noticed");
}

#[test]
fn a_promoted_reload_replaces_a_plain_daemon_and_keeps_a_smart_one() {
    let dir = scratch("daemons-reload");
    let pidfile = dir.join("smart.pid");
    let smart = format!("{p} echo $$ > {p}; exec sleep 600", p = pidfile.display());
    let s = server("cases:application")
        .args(&[
            "--attach-daemon",
            "exec sleep 600",
            "--smart-attach-daemon2",
            &smart,
        ])
        .start();
    let plain = running_pid(&s, 0, None);
    let kept = running_pid(&s, 1, None);
    assert!(eventually(EVENT_TIMEOUT, || pidfile_pid(&pidfile) == Some(kept)));
    assert_eq!(daemons(&s)[1]["kind"], "smart-attach-daemon2");

    s.signal(libc::SIGHUP);
    s.wait_promoted(1);
    let replaced = running_pid(&s, 0, Some(plain));
    assert!(
        eventually(EVENT_TIMEOUT, || !alive(plain)),
        "the old plain daemon was stopped"
    );
    assert!(alive(replaced));
    assert_eq!(daemons(&s)[0]["restarts"], 0, "a reload is not a restart");
    assert_eq!(daemons(&s)[1]["pid"], kept, "the smart daemon kept running");
    assert!(alive(kept));
}

#[test]
fn a_daemonizing_smart_daemon_is_watched_by_its_pidfile_and_started_only_when_dead() {
    let dir = scratch("daemons-smart");
    let pidfile = dir.join("bg.pid");
    // The command forks the daemon into the background and exits, as memcached -d does.
    let value = format!(
        "{p} sh -c 'sleep 600 & echo $! > {p}'",
        p = pidfile.display()
    );
    let ini = dir.join("app.ini");
    std::fs::write(&ini, format!("[uwsgi]\nsmart-attach-daemon = {value}\n")).unwrap();
    let ini = ini.display().to_string();
    let s = server("cases:application").args(&["--ini", &ini]).start();
    // Its command's own process exits at once; the daemon is the pid in the pidfile.
    let first = pid_in(&s, 0, "running (detached)", None);
    assert_eq!(pidfile_pid(&pidfile), Some(first));
    // It dies on its own: the pidfile check notices and starts it again.
    kill(first, libc::SIGKILL);
    let second = pid_in(&s, 0, "running (detached)", Some(first));
    assert_eq!(pidfile_pid(&pidfile), Some(second));
    // A daemonized process outlives a master killed with -9 (the harness's stop): by design,
    // so the next master finds it. This test ends it itself.
    drop(s);
    kill(second, libc::SIGKILL);

    // One already running (its pidfile names a live process) is adopted, not started twice.
    let mut existing = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    std::fs::write(&pidfile, format!("{}\n", existing.id())).unwrap();
    let s = server("cases:application").args(&["--ini", &ini]).start();
    assert_eq!(
        pid_in(&s, 0, "running (detached)", None),
        i64::from(existing.id())
    );
    assert_eq!(
        pidfile_pid(&pidfile),
        Some(i64::from(existing.id())),
        "not started again"
    );
    drop(s);
    let _ = existing.kill();
    let _ = existing.wait();
}

#[test]
fn stopping_the_master_stops_its_daemons_even_one_that_ignores_sigterm() {
    let mut s = server("cases:application")
        .args(&[
            "--graceful-timeout",
            "1",
            "--attach-daemon",
            "exec sleep 600",
            "--attach-daemon",
            "trap '' TERM; exec sleep 601",
        ])
        .start();
    let polite = running_pid(&s, 0, None);
    let stubborn = running_pid(&s, 1, None);
    s.signal(libc::SIGTERM);
    let status = s
        .wait_exit(Duration::from_secs(20))
        .expect("the master exits once its daemons are gone");
    assert!(status.success(), "{status:?}");
    assert!(
        !alive(polite) && !alive(stubborn),
        "no daemon outlives the master"
    );
    let log = s.log.all();
    assert!(
        log.contains("did not stop within the graceful timeout"),
        "{log}"
    );
}

#[test]
fn bad_daemon_values_are_refused_at_start() {
    let out = support::oneshot::run(
        &support::apps_dir(),
        &[
            "cases:application",
            "--smart-attach-daemon",
            "/only/a/pidfile",
        ],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("PIDFILE COMMAND"), "{}", out.stderr);
}

/// An in-place upgrade hands the daemons to the new binary: the plain one is replaced once the
/// new workers are ready (as on a reload), the smart one keeps its process, and none runs twice.
#[test]
fn an_upgrade_adopts_the_daemons_instead_of_starting_them_twice() {
    let dir = scratch("daemons-upgrade");
    let pidfile = dir.join("smart.pid");
    let smart = format!("{p} echo $$ > {p}; exec sleep 602", p = pidfile.display());
    let s = server("cases:application")
        .args(&[
            "--attach-daemon",
            "exec sleep 603",
            "--smart-attach-daemon2",
            &smart,
        ])
        .start();
    let plain = running_pid(&s, 0, None);
    let kept = running_pid(&s, 1, None);
    s.upgrade_and_wait();
    let replaced = running_pid(&s, 0, Some(plain));
    assert!(eventually(EVENT_TIMEOUT, || !alive(plain)));
    assert!(alive(replaced));
    let st = s.status();
    assert_eq!(st["daemons"].as_array().map(Vec::len), Some(2), "{st}");
    assert_eq!(
        st["daemons"][1]["pid"], kept,
        "the smart daemon kept its process"
    );
    assert!(alive(kept));
    // Exactly one plain daemon among the master's children: the upgrade did not start a
    // second one beside the adopted process.
    let running = |needle: &str| {
        support::children_of(s.pid())
            .into_iter()
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
            })
            .count()
    };
    assert!(eventually(EVENT_TIMEOUT, || running("sleep 603") == 1));
    assert_eq!(running("sleep 602"), 1);
}

/// `attach-daemon2` from an ini, with uWSGI's keys: its `chdir`, its `stopsignal` delivered
/// when a `touch` file changes (the daemon restarts), its `reloadsignal` delivered on a reload
/// instead of a restart, and the kind shown in status.
#[test]
fn attach_daemon2_keys_from_an_ini_touch_restarts_with_the_stop_signal_and_reload_signals() {
    let dir = scratch("daemon2-ini");
    let flag = dir.join("restart.txt");
    let ini = support::oneshot::cases_ini(
        "daemon2-ini-app",
        &format!(
            "attach-daemon2 = cmd=trap 'echo got-quit; exit 0' QUIT; trap 'echo got-hup' HUP; echo \"cwd=$(pwd)\"; while true; do sleep 0.1; done,stopsignal=QUIT,reloadsignal=HUP,touch={},chdir={}\n",
            flag.display(),
            dir.display()
        ),
    );
    let s = support::bare().args(&["--ini", &ini]).start();
    let first = running_pid(&s, 0, None);
    assert_eq!(daemons(&s)[0]["kind"], "attach-daemon2");
    s.wait_log(&[&format!("cwd={}", dir.display())]);
    // The master records the file's time at its first look, a sweep after the start, and
    // restarts the daemon on a later change: touch it until the daemon has a new pid.
    std::fs::write(&flag, "now").unwrap();
    let mut second = None;
    let restarted = eventually(EVENT_TIMEOUT, || {
        let t = std::time::SystemTime::now() + Duration::from_secs(60);
        let _ = std::fs::File::options()
            .write(true)
            .open(&flag)
            .and_then(|f| f.set_modified(t));
        second = daemons(&s)[0]["pid"].as_i64().filter(|p| *p != first);
        second.is_some()
    });
    assert!(restarted, "the touch never restarted the daemon");
    // (A touch in flight may restart it once more: the checks below hold either way.)
    running_pid(&s, 0, Some(first));
    s.wait_log(&["got-quit"]);
    assert!(eventually(EVENT_TIMEOUT, || !alive(first)));
    let d = &daemons(&s)[0];
    assert_eq!(
        d["last_exit"], "exit code 0",
        "it left by its QUIT trap: {d}"
    );
    assert_eq!(
        d["restarts"], 0,
        "a touch restart is not a crash restart: {d}"
    );
    assert_eq!(get(s.addr(), "/").status, 200);

    // `reloadsignal`: a promoted reload signals it and leaves it running.
    let before = running_pid(&s, 0, None);
    s.signal(libc::SIGHUP);
    s.wait_promoted(1);
    s.wait_log(&["got-hup"]);
    assert_eq!(daemons(&s)[0]["pid"], before, "kept its process");
    assert!(alive(before));
}

/// `control=1`: when the daemon ends, the whole server stops (and exits 0 after draining).
#[test]
fn attach_daemon2_control_daemon_ending_stops_the_server() {
    let dir = scratch("daemon2-control");
    let flag = dir.join("end-now");
    let cmd = format!(
        "cmd=while [ ! -e {} ]; do sleep 0.1; done; exit 3,control=1",
        flag.display()
    );
    let mut s = server("cases:application")
        .args(&["--attach-daemon2", &cmd])
        .start();
    running_pid(&s, 0, None);
    assert_eq!(get(s.addr(), "/").status, 200);
    std::fs::write(&flag, "").unwrap();
    let status = s.wait_exit(EVENT_TIMEOUT).expect("the server stops");
    assert!(status.success(), "{status:?}");
    s.wait_log(&["control daemon", "exit code 3", "stopping the server"]);
}

/// `daemonize` with `pidfile`: segue writes the child's pid; `uid`/`gid` (as root) switch the
/// daemon's user and group.
#[test]
fn attach_daemon2_writes_the_pidfile_and_switches_user_when_root() {
    let dir = scratch("daemon2-user");
    let pidfile = dir.join("d.pid");
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let user = if root { ",uid=65534,gid=65534" } else { "" };
    let cmd = format!(
        "cmd=echo \"ids=$(id -u):$(id -g):$(id -G)\"; exec sleep 604,pidfile={},daemonize=1{user}",
        pidfile.display()
    );
    let s = server("cases:application")
        .args(&["--attach-daemon2", &cmd])
        .start();
    let pid = running_pid(&s, 0, None);
    assert!(eventually(EVENT_TIMEOUT, || pidfile_pid(&pidfile) == Some(pid)));
    if root {
        // No supplementary group of root's is left.
        s.wait_log(&["ids=65534:65534:65534"]);
    } else {
        eprintln!("not root: uid/gid switching is not exercised");
    }
}
