//! The emperor (`--emperor DIR`), as uWSGI users run it: vassal ini files in directories, each
//! a real segue master serving on loopback. Touching a file reloads its vassal without a failed
//! request, deleting it stops the vassal, a new file starts one, a vassal killed with -9 comes
//! back, a broken file waits with backoff until it is fixed, and stopping the emperor stops all.
//! Every wait is on the emperor's or a vassal's control socket.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use support::oneshot::{run, scratch};
use support::*;

/// One request on a control socket; the reply as JSON.
fn control(path: &Path, request: &str) -> Result<serde_json::Value, String> {
    let mut s =
        UnixStream::connect(path).map_err(|e| format!("connect {}: {e}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("{request}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    serde_json::from_str(answer.lines().next().unwrap_or(""))
        .map_err(|e| format!("bad reply {answer:?}: {e}"))
}

/// An emperor started by the harness (its `--control` is the harness's).
struct Emperor {
    server: Server,
}

impl Emperor {
    fn start(dir: &Path, extra: &[&str]) -> Emperor {
        let d = dir.display().to_string();
        let mut args = vec!["--emperor", d.as_str(), "--emperor-freq", "0.2"];
        args.extend_from_slice(extra);
        let server = bare().no_default_listener().exits().args(&args).start();
        Emperor { server }
    }

    fn status(&self) -> Result<serde_json::Value, String> {
        let v = control(&self.server.control, r#"{"cmd":"status"}"#)?;
        if v["reply"] != "emperor" {
            return Err(format!("not an emperor status: {v}"));
        }
        Ok(v)
    }

    /// Waits until the status satisfies `cond`; fails with the last status and the log.
    fn wait(&self, what: &str, cond: impl FnMut(&serde_json::Value) -> bool) -> serde_json::Value {
        poll_reply(|| self.status(), cond).unwrap_or_else(|last| {
            panic!(
                "the emperor never showed {what}; last: {last}\n{}",
                self.server.log.all()
            )
        })
    }

    fn vassal<'a>(st: &'a serde_json::Value, file: &str) -> Option<&'a serde_json::Value> {
        st["vassals"]
            .as_array()?
            .iter()
            .find(|v| v["config"].as_str().is_some_and(|c| c.ends_with(file)))
    }

    /// Waits until `file`'s vassal is running and its own master serves; returns its pid.
    fn wait_running(&self, file: &str) -> i32 {
        let st = self.wait(&format!("{file} running"), |st| {
            Emperor::vassal(st, file).is_some_and(|v| v["state"] == "running")
        });
        Emperor::vassal(&st, file).unwrap()["pid"].as_i64().unwrap() as i32
    }
}

impl Drop for Emperor {
    fn drop(&mut self) {
        // Vassals are in process groups of their own: kill those the emperor still knows,
        // then the harness kills the emperor's own group.
        if let Ok(st) = self.status() {
            for v in st["vassals"].as_array().into_iter().flatten() {
                if let Some(pid) = v["pid"].as_i64() {
                    // SAFETY: killpg on a vassal group this test's emperor started.
                    unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                }
            }
        }
    }
}

/// A vassal ini serving `module` from `chdir` on a free loopback port, with its own control
/// socket in `dir` (where the test reads its address and reloads).
fn vassal_ini(dir: &Path, name: &str, chdir: &Path, module: &str) -> PathBuf {
    let path = dir.join(format!("{name}.ini"));
    std::fs::write(
        &path,
        format!(
            "[uwsgi]\nchdir = {}\nmodule = {module}\nhttp-socket = 127.0.0.1:0\nprocesses = 2\nthreads = 2\nmaster = true\ncontrol = {}\n",
            chdir.display(),
            control_path(dir, name).display()
        ),
    )
    .unwrap();
    path
}

fn control_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

/// A vassal's HTTP address, from its own control socket's status.
fn vassal_addr(dir: &Path, name: &str) -> SocketAddr {
    let path = control_path(dir, name);
    let mut addr = None;
    assert!(
        eventually(EVENT_TIMEOUT, || {
            addr = control_status(&path).ok().and_then(|st| {
                st["listeners"].as_array()?.iter().find_map(|l| {
                    l.as_str()?
                        .strip_prefix("http://")
                        .unwrap_or(l.as_str()?)
                        .parse()
                        .ok()
                })
            });
            addr.is_some()
        }),
        "vassal {name} never answered on {}",
        path.display()
    );
    addr.unwrap()
}

fn gone(pid: i32) -> bool {
    matches!(proc_state(pid), None | Some('Z'))
}

#[test]
fn an_emperor_runs_reloads_stops_and_starts_vassals() {
    let root = scratch("emperor");
    let vassals = root.join("vassals");
    std::fs::create_dir_all(&vassals).unwrap();
    let deploy = Deploy::new("v1");
    let a = vassal_ini(&vassals, "a", &deploy.root, "versioned:application");
    let b = vassal_ini(&vassals, "b", &apps_dir(), "cases:application");
    // Files that are not vassals: ignored.
    std::fs::write(vassals.join("notes.txt"), "not a vassal").unwrap();
    std::fs::write(vassals.join(".a.ini.swp"), "an editor's swap file").unwrap();

    let mut emperor = Emperor::start(&vassals, &[]);
    let a_pid = emperor.wait_running("a.ini");
    let b_pid = emperor.wait_running("b.ini");
    let st = emperor.status().unwrap();
    assert_eq!(st["vassals"].as_array().unwrap().len(), 2, "{st}");
    let (a_addr, b_addr) = (vassal_addr(&vassals, "a"), vassal_addr(&vassals, "b"));
    assert_eq!(get(a_addr, "/").text(), "v1");
    assert_eq!(get(b_addr, "/").status, 200);
    // Each vassal is a master of its own, in its own process group.
    assert_ne!(a_pid, b_pid);

    // `touch`: a new mtime, the same content; the vassal reloads in place (same master pid)
    // and serves the new code, while a load on it sees no failure.
    deploy.version("v2");
    let load = Load::start(a_addr, "/", 2, 1, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    std::fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    let a_control = control_path(&vassals, "a");
    assert!(
        eventually(EVENT_TIMEOUT, || control_status(&a_control)
            .ok()
            .and_then(|st| reload_record(&st, 1).map(|r| r["ok"] == true))
            .unwrap_or(false)),
        "vassal a never finished reload 1:\n{}",
        emperor.server.log.all()
    );
    std::thread::sleep(Duration::from_millis(300));
    let report = load.stop();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(
        report.bad_statuses().is_empty(),
        "{:?}",
        report.bad_statuses()
    );
    assert!(report.ok() > 0);
    assert_eq!(get(a_addr, "/").text(), "v2");
    let st = emperor.wait("a running again after its reload", |st| {
        Emperor::vassal(st, "a.ini").is_some_and(|v| v["state"] == "running")
    });
    let av = Emperor::vassal(&st, "a.ini").unwrap();
    assert_eq!(
        av["pid"].as_i64(),
        Some(a_pid as i64),
        "reloaded in place: {st}"
    );
    assert_eq!(av["restarts"], 0, "{st}");

    // Deleting a file stops its vassal gracefully; the other keeps serving.
    std::fs::remove_file(&b).unwrap();
    emperor.wait("b gone", |st| Emperor::vassal(st, "b.ini").is_none());
    assert!(
        eventually(EVENT_TIMEOUT, || gone(b_pid)),
        "b's master {b_pid} still runs"
    );
    assert_eq!(get(a_addr, "/").text(), "v2");

    // A new file starts a new vassal.
    vassal_ini(&vassals, "c", &apps_dir(), "cases:application");
    let c_pid = emperor.wait_running("c.ini");
    assert_eq!(get(vassal_addr(&vassals, "c"), "/").status, 200);

    // `segue status` on the emperor prints the table.
    let out = std::process::Command::new(segue_bin())
        .args(["status", "--control"])
        .arg(&emperor.server.control)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(
        table.contains("2 vassals") && table.contains("c.ini") && table.contains("running"),
        "{table}"
    );

    // Stopping the emperor stops every vassal, then the emperor exits 0.
    emperor.server.signal(libc::SIGTERM);
    let status = emperor
        .server
        .wait_exit(EVENT_TIMEOUT)
        .expect("the emperor did not exit");
    assert_eq!(status.code(), Some(0), "{}", emperor.server.log.all());
    for pid in [a_pid, c_pid] {
        assert!(
            eventually(EVENT_TIMEOUT, || gone(pid)),
            "vassal {pid} outlived the emperor"
        );
    }
    // The vassals' lines are in the emperor's log behind their file names.
    let log = emperor.server.log.all();
    assert!(log.contains("[a.ini] "), "{log}");
}

#[test]
fn a_killed_vassal_comes_back_and_a_broken_one_waits_until_its_file_is_fixed() {
    let root = scratch("emperor-faults");
    let vassals = root.join("vassals");
    std::fs::create_dir_all(&vassals).unwrap();
    vassal_ini(&vassals, "ok", &apps_dir(), "cases:application");
    // A typo: the vassal's segue refuses its file (exit 2), again and again.
    let broken = vassals.join("broken.ini");
    std::fs::write(
        &broken,
        "[uwsgi]\nmodule = cases:application\nprocesess = 2\n",
    )
    .unwrap();

    let emperor = Emperor::start(&vassals, &[]);
    let pid = emperor.wait_running("ok.ini");

    // SIGKILL to the vassal's master: the emperor starts it again.
    // SAFETY: kill(2) on a vassal master this test's emperor started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let st = emperor.wait("ok restarted", |st| {
        Emperor::vassal(st, "ok.ini")
            .is_some_and(|v| v["state"] == "running" && v["restarts"] == 1 && v["pid"] != pid)
    });
    let v = Emperor::vassal(&st, "ok.ini").unwrap();
    assert!(v["last_exit"].as_str().unwrap().contains("SIGKILL"), "{st}");
    assert_eq!(get(vassal_addr(&vassals, "ok"), "/").status, 200);

    // The broken one has died at least twice and waits out a backoff, showing why.
    let st = emperor.wait("broken waiting with its exit code", |st| {
        Emperor::vassal(st, "broken.ini")
            .is_some_and(|v| v["restarts"].as_u64() >= Some(2) && v["last_exit"] == "exit code 2")
    });
    assert!(
        emperor.server.log.all().contains("processes"),
        "the vassal's refusal is in the log"
    );
    let restarts = Emperor::vassal(&st, "broken.ini").unwrap()["restarts"]
        .as_u64()
        .unwrap();
    // Backoff: 1 s, 2 s, 4 s... so not dozens of restarts in the time this took.
    assert!(restarts < 10, "{st}");

    // Fixing the file starts it at once, whatever the backoff.
    vassal_ini(&vassals, "broken", &apps_dir(), "cases:application");
    emperor.wait_running("broken.ini");
}

#[test]
fn the_emperor_refuses_an_app_beside_it_and_bad_settings() {
    let dir = scratch("emperor-refusals");
    let vassals = dir.join("vassals");
    std::fs::create_dir_all(&vassals).unwrap();
    let v = vassals.display().to_string();
    let out = run(
        &dir,
        &["--emperor", &v, "cases:application"],
        &[],
        EVENT_TIMEOUT,
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("emperor and app are both set"),
        "{}",
        out.stderr
    );

    let out = run(
        &dir,
        &["--emperor", &v, "--emperor-freq", "soon"],
        &[],
        EVENT_TIMEOUT,
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("emperor-freq"), "{}", out.stderr);

    // A directory that does not exist is a typo, not an empty emperor.
    let missing = dir.join("vasals/*.ini").display().to_string();
    let out = run(&dir, &["--emperor", &missing], &[], EVENT_TIMEOUT);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("vasals' is not a directory"),
        "{}",
        out.stderr
    );

    // uWSGI's emperor options that segue lacks are named, with where to read more.
    let ini = dir.join("emperor.ini");
    std::fs::write(
        &ini,
        format!("[uwsgi]\nemperor = {v}\nemperor-on-demand-directory = /run/sockets\n"),
    )
    .unwrap();
    let out = run(
        &dir,
        &["--ini", &ini.display().to_string()],
        &[],
        EVENT_TIMEOUT,
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("docs/emperor.md"), "{}", out.stderr);
}

/// The seed's form: an ini with two `emperor =` lines (seed 001), both directories watched,
/// and a vassal setting in the emperor's own file named as ignored.
#[test]
fn an_emperor_ini_watches_every_directory_it_names() {
    let root = scratch("emperor-ini");
    let (one, two) = (root.join("vassals"), root.join("services"));
    for d in [&one, &two] {
        std::fs::create_dir_all(d).unwrap();
    }
    vassal_ini(&one, "first", &apps_dir(), "cases:application");
    vassal_ini(&two, "second", &apps_dir(), "cases:application");
    let ini = root.join("emperor.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nmaster = true\nworkers = 2\n# vassals directory\nemperor = {}\nemperor = {}\nemperor-freq = 0.2\n",
            one.display(),
            two.display()
        ),
    )
    .unwrap();
    let server = bare()
        .no_default_listener()
        .exits()
        .args(&["--ini", &ini.display().to_string()])
        .start();
    let emperor = Emperor { server };
    emperor.wait_running("first.ini");
    emperor.wait_running("second.ini");
    assert_eq!(get(vassal_addr(&two, "second"), "/").status, 200);
    emperor
        .server
        .wait_log(&["workers", "ignored by the emperor"]);
}

/// Tyrant mode runs vassals as their file's owner: refused without root, and as root a
/// root-owned file is refused (it would run as root), with the reason in the status.
#[test]
fn tyrant_mode_needs_root_and_refuses_root_owned_files() {
    let root = scratch("emperor-tyrant");
    let vassals = root.join("vassals");
    std::fs::create_dir_all(&vassals).unwrap();
    vassal_ini(&vassals, "mine", &apps_dir(), "cases:application");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let v = vassals.display().to_string();
        let out = run(
            &root,
            &["--emperor", &v, "--emperor-tyrant"],
            &[],
            EVENT_TIMEOUT,
        );
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        assert!(out.stderr.contains("needs root"), "{}", out.stderr);
        return;
    }
    let emperor = Emperor::start(&vassals, &["--emperor-tyrant"]);
    let st = emperor.wait("the root-owned file refused", |st| {
        Emperor::vassal(st, "mine.ini").is_some_and(|v| {
            v["state"] == "waiting to restart"
                && v["last_exit"]
                    .as_str()
                    .is_some_and(|e| e.contains("root-owned"))
        })
    });
    assert!(
        Emperor::vassal(&st, "mine.ini").unwrap()["pid"].is_null(),
        "{st}"
    );
}
