//! Starting the real segue (`Builder`) and driving it (`Server`): readiness and addresses
//! from the control socket's status, signals, log waits, process-group cleanup.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::*;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Options for starting a server.
pub struct Builder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    wait_ready: bool,
    /// Wait for nothing at all: the master is expected to exit on its own.
    wait_nothing: bool,
    listen: bool,
    via: Vec<String>,
    /// With `inside`: the segue to run, as the wrapper sees it (instead of `segue_bin()`).
    program: Option<String>,
    /// The working directory segue starts in (default: the test's).
    cwd: Option<PathBuf>,
}

pub fn server(app: &str) -> Builder {
    server_in(&apps_dir(), app)
}

/// A server given only the test's own arguments (no `--chdir`, no APP): for configuration
/// files that name the app themselves. The harness still adds `--http 127.0.0.1:0` (it
/// overrides the file's listeners: the command line wins) and `--control`.
pub fn bare() -> Builder {
    Builder {
        wait_nothing: false,
        args: vec![],
        env: vec![],
        wait_ready: true,
        listen: true,
        via: vec![],
        program: None,
        cwd: None,
    }
}

/// A server whose `--chdir` is `dir`.
pub fn server_in(dir: &Path, app: &str) -> Builder {
    Builder {
        args: vec!["--chdir".into(), dir.display().to_string(), app.into()],
        env: vec![],
        wait_ready: true,
        wait_nothing: false,
        listen: true,
        via: vec![],
        program: None,
        cwd: None,
    }
}

/// A server in `tests/apps` with no APP argument: the test names the app with --wsgi-file,
/// --eval or --mount.
pub fn server_without_app() -> Builder {
    let mut b = server_in(&apps_dir(), "");
    b.args.pop();
    b
}

impl Builder {
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Do not wait for `ready` in the status (for apps that cannot boot). The harness still
    /// waits for the control socket to answer, and takes the address from it.
    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    /// Wait for nothing, not even the control socket: for an app that does not boot, where the
    /// master exits at first start (perhaps before its status ever answered). The test watches
    /// `wait_exit` and the log; the server has no address.
    pub fn exits(mut self) -> Self {
        self.wait_ready = false;
        self.wait_nothing = true;
        self
    }

    /// Start segue through another program (`systemd-socket-activate -l ADDR --`). segue only
    /// starts when the activator's first connection arrives, so the harness waits for nothing:
    /// the test knows the address and wakes it.
    pub fn via(mut self, prefix: &[&str]) -> Self {
        self.via = prefix.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Start `program` through a wrapper that runs it at once (`scripts/trixie-chroot run`):
    /// `program` is segue's path as the wrapper sees it, and the harness waits for readiness as
    /// usual, so the control socket's path must mean the same file on both sides.
    pub fn inside(mut self, prefix: &[&str], program: &str) -> Self {
        self.via = prefix.iter().map(|s| s.to_string()).collect();
        self.program = Some(program.to_string());
        self
    }

    /// Start segue in `dir` (where it looks for `./gunicorn.conf.py`, and what relative paths
    /// in configuration files mean).
    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_owned());
        self
    }

    /// Do not add `--http 127.0.0.1:0` (the test gives its own listeners).
    pub fn no_default_listener(mut self) -> Self {
        self.listen = false;
        self
    }

    pub fn start(self) -> Server {
        let marks = std::env::temp_dir().join(format!(
            "segue-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&marks);
        std::fs::create_dir_all(&marks).unwrap();
        let mut cmd = match self.via.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args);
                match &self.program {
                    Some(inside) => c.arg(inside),
                    None => c.arg(segue_bin()),
                };
                c
            }
            None => Command::new(segue_bin()),
        };
        if self.listen {
            cmd.args(["--http", "127.0.0.1:0"]);
        }
        let control = match control_arg(&self.args) {
            Some(path) => path,
            None => {
                let path = marks.join("control.sock");
                cmd.arg("--control").arg(&path);
                path
            }
        };
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd.args(&self.args)
            .env("SEGUE_TEST_DIR", &marks)
            .env_remove("VIRTUAL_ENV")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Own process group: the test kills exactly what it started.
            .process_group(0);
        let mut child = cmd.spawn().expect("cannot start segue");
        let log = Log::reading(child.stderr.take().unwrap());
        let mut server = Server {
            child: Some(child),
            addr: None,
            control,
            log,
            marks,
        };
        if (self.via.is_empty() || self.program.is_some()) && !self.wait_nothing {
            server.await_start(self.wait_ready, self.listen);
        }
        server
    }
}

/// The path after `--control` (or in `--control=PATH`) among a test's own arguments.
fn control_arg(args: &[String]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--control" {
            return it.next().map(PathBuf::from);
        }
        if let Some(path) = a.strip_prefix("--control=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// Calls `fetch` every 20 ms until its reply satisfies `cond` and returns that reply, or after
/// `EVENT_TIMEOUT` the last reply (or error) as text. Failed calls in between are retried.
pub fn poll_reply(
    mut fetch: impl FnMut() -> Result<serde_json::Value, String>,
    mut cond: impl FnMut(&serde_json::Value) -> bool,
) -> Result<serde_json::Value, String> {
    let (mut hit, mut last) = (None, String::from("no answer"));
    eventually(EVENT_TIMEOUT, || match fetch() {
        Ok(st) if cond(&st) => {
            hit = Some(st);
            true
        }
        Ok(st) => {
            last = st.to_string();
            false
        }
        Err(e) => {
            last = e;
            false
        }
    });
    hit.ok_or(last)
}

/// One `status` call on the control socket at `path`: the reply as JSON (`{"reply": "status",
/// "ready": ..., "listeners": [...], "workers": [...], ...}`), or why there was none.
pub fn control_status(path: &Path) -> Result<serde_json::Value, String> {
    let mut stream =
        UnixStream::connect(path).map_err(|e| format!("connect {}: {e}", path.display()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"{\"cmd\":\"status\"}\n")
        .map_err(|e| format!("send: {e}"))?;
    // Read to EOF, not just the line: the master shuts the connection down and closes it right
    // after its one reply, so when this returns the master is (all but) done with it.
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let line = answer.lines().next().unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("bad reply {line:?}: {e}"))?;
    if v["reply"] != "status" {
        return Err(format!("not a status reply: {v}"));
    }
    Ok(v)
}

/// The ids of the workers in a status reply whose state is `state` (`starting`, `ready`,
/// `draining`, `discarded`).
pub fn workers_in(status: &serde_json::Value, state: &str) -> Vec<u64> {
    status["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter(|w| w["state"] == state)
                .filter_map(|w| w["id"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

/// The highest worker id in a status reply. Ids are never reused, so a worker with a higher id
/// was spawned later.
pub fn newest_worker(status: &serde_json::Value) -> u64 {
    status["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["id"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Reload `n`'s record in a status reply, once it is over.
pub fn reload_record(status: &serde_json::Value, n: u64) -> Option<&serde_json::Value> {
    status["reloads"]
        .as_array()?
        .iter()
        .find(|r| r["reload"].as_u64() == Some(n))
}

/// A running segue master (and its workers), killed with its process group on drop.
pub struct Server {
    child: Option<Child>,
    addr: Option<SocketAddr>,
    /// The master's control socket: the test's own `--control`, or one in `marks`.
    pub control: PathBuf,
    pub log: Arc<Log>,
    /// A directory the app may write markers to (`$SEGUE_TEST_DIR`).
    pub marks: PathBuf,
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
            .expect("this server has no TCP listener from the harness")
    }

    /// The address of the TCP listener speaking `scheme` (`uwsgi`, `fastcgi`), from `status`,
    /// where such listeners show as `SCHEME://127.0.0.1:PORT`.
    pub fn listener_addr(&self, scheme: &str) -> SocketAddr {
        let st = self.status();
        let prefix = format!("{scheme}://");
        st["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|l| l.as_str()?.strip_prefix(prefix.as_str())?.parse().ok())
            .unwrap_or_else(|| panic!("no {scheme} TCP listener in {st}"))
    }

    /// `segue upgrade --wait` against this server; panics with its output unless it succeeds.
    pub fn upgrade_and_wait(&self) {
        let out = std::process::Command::new(segue_bin())
            .arg("upgrade")
            .arg("--wait")
            .arg("--control")
            .arg(&self.control)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "segue upgrade --wait failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Polls the control socket until it answers (and, with `ready`, until `ready` is true),
    /// then takes the first TCP listener as the address. While the master starts the socket
    /// file is missing or refuses: that is expected, not an error.
    fn await_start(&mut self, ready: bool, listen: bool) {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        let mut last;
        let status = loop {
            match self.try_status() {
                Ok(st) if !ready || st["ready"] == true => break Some(st),
                Ok(st) => last = st.to_string(),
                Err(e) => last = e,
            }
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            if let Some(code) = exited {
                if ready || listen {
                    panic!(
                        "segue exited ({code}) before it was {}:\n{}",
                        if ready { "ready" } else { "listening" },
                        self.log.all()
                    );
                }
                break None;
            }
            if Instant::now() >= deadline {
                panic!(
                    "segue was not {} within {EVENT_TIMEOUT:?} (last status: {last}):\n{}",
                    if ready { "ready" } else { "answering status" },
                    self.log.all()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.addr = status.as_ref().and_then(|st| {
            st["listeners"]
                .as_array()?
                .iter()
                .find_map(|l| l.as_str()?.parse().ok())
        });
        if listen && self.addr.is_none() {
            panic!(
                "segue reports no TCP listener: {}\n{}",
                status.map(|s| s.to_string()).unwrap_or_default(),
                self.log.all()
            );
        }
    }

    /// One `status` call, reporting failure (the master not up yet, or gone) instead of
    /// panicking.
    pub fn try_status(&self) -> Result<serde_json::Value, String> {
        control_status(&self.control)
    }

    /// The master's status reply, retried while the control socket is briefly unreachable (as
    /// across an in-place upgrade).
    pub fn status(&self) -> serde_json::Value {
        self.wait_status("a status reply", |_| true)
    }

    /// Polls `status` every 20 ms until `cond` holds for a reply and returns that reply; fails
    /// the test with the last reply and the log after `EVENT_TIMEOUT`. Refused connections in
    /// between are retried.
    pub fn wait_status(
        &self,
        what: &str,
        cond: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        poll_reply(|| self.try_status(), cond).unwrap_or_else(|last| {
            panic!(
                "status never showed {what} within {EVENT_TIMEOUT:?}; last: {last}\n{}",
                self.log.all()
            )
        })
    }

    /// Waits until reload `n` is over (promoted or rolled back) and returns its record from
    /// `status.reloads` (`ok`, `generation`, `strategy`, `reason`, ...).
    pub fn wait_reload(&self, n: u64) -> serde_json::Value {
        let st = self.wait_status(&format!("reload {n} finished"), |st| {
            reload_record(st, n).is_some()
        });
        reload_record(&st, n).unwrap().clone()
    }

    /// Waits until reload `n` is over and checks that it rolled back for a reason containing
    /// `why`; returns its record.
    pub fn wait_rolled_back(&self, n: u64, why: &str) -> serde_json::Value {
        let r = self.wait_reload(n);
        assert_eq!(r["ok"], false, "reload {n} should have rolled back: {r}");
        assert!(
            r["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains(why)),
            "reload {n} rolled back for another reason than {why:?}: {r}\n{}",
            self.log.all()
        );
        r
    }

    /// Waits until reload `n` has promoted its generation; fails the test if it rolled back.
    pub fn wait_promoted(&self, n: u64) -> serde_json::Value {
        let r = self.wait_reload(n);
        assert_eq!(
            r["ok"],
            true,
            "reload {n} was rolled back: {r}\n{}",
            self.log.all()
        );
        r
    }

    /// Waits until exactly `n` workers are left, all ready, and one of them is newer than
    /// worker `newer_than`: a slot was refilled or a worker replaced.
    pub fn wait_replaced(&self, n: usize, newer_than: u64) -> serde_json::Value {
        self.wait_status(
            &format!("{n} ready workers, one newer than worker {newer_than}"),
            |st| {
                let ready = workers_in(st, "ready");
                st["workers"].as_array().is_some_and(|w| w.len() == n)
                    && ready.len() == n
                    && ready.iter().any(|&id| id > newer_than)
            },
        )
    }

    /// Waits for a log line containing all `needles`, failing the test with the log if it
    /// never comes.
    pub fn wait_log(&self, needles: &[&str]) -> String {
        self.log
            .wait_for(needles, EVENT_TIMEOUT)
            .unwrap_or_else(|| {
                panic!(
                    "no log line with {needles:?} within {EVENT_TIMEOUT:?}:\n{}",
                    self.log.all()
                )
            })
    }

    /// Waits until the app has entered `/sleep?id=ID` (it leaves a marker file).
    pub fn wait_sleeping(&self, id: &str) {
        let mark = self.marks.join(format!("sleeping-{id}"));
        assert!(
            eventually(EVENT_TIMEOUT, || mark.exists()),
            "the app never entered /sleep?id={id}"
        );
    }

    /// Waits until the app has entered `/gil-wedge?id=ID` and returns the pid of the worker it
    /// wedged (from its marker file).
    pub fn wait_wedged(&self, id: &str) -> i32 {
        let mark = self.marks.join(format!("wedged-{id}"));
        let mut pid = None;
        assert!(
            eventually(EVENT_TIMEOUT, || {
                pid = std::fs::read_to_string(&mark)
                    .ok()
                    .and_then(|p| p.parse().ok());
                pid.is_some()
            }),
            "the app never entered /gil-wedge?id={id}"
        );
        pid.unwrap()
    }

    /// Sends `GET /sleep?s=SECS&id=ID` from a thread and returns once the app is inside it;
    /// the handle yields the response (or why there was none).
    pub fn slow_request(
        &self,
        id: &str,
        secs: f64,
    ) -> std::thread::JoinHandle<Result<Response, String>> {
        let (addr, path) = (self.addr(), format!("/sleep?s={secs}&id={id}"));
        let handle = std::thread::spawn(move || try_get(addr, &path));
        self.wait_sleeping(id);
        handle
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the PID of a child we started and have not reaped.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for the master to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.log.wait_ended(Duration::from_secs(5));
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The worker PIDs: children of the master in /proc.
    pub fn worker_pids(&self) -> Vec<i32> {
        children_of(self.pid())
    }

    /// Breaks a running `flag_broken` app: creates its flag (so that every import from now on
    /// fails) and SIGKILLs every worker. The server was ready once, so its slots crash-loop with
    /// backoff instead of ending the master; removing the flag lets them recover.
    pub fn break_flagged_app(&self, flag: &Path) {
        std::fs::write(flag, "").unwrap();
        for pid in self.worker_pids() {
            // SAFETY: kill(2) on a worker of the server this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// Children of the master that are zombies.
    pub fn zombies(&self) -> Vec<i32> {
        children_of(self.pid())
            .into_iter()
            .filter(|&p| proc_state(p) == Some('Z'))
            .collect()
    }

    /// Every live process in the server's process group.
    pub fn group_members(&self) -> Vec<i32> {
        let pgid = self.pid();
        let mut out = vec![];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Some(stat) = read_stat(pid) {
                if stat.pgrp == pgid && stat.state != 'Z' {
                    out.push(pid);
                }
            }
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id() as i32;
            // SAFETY: signalling the process group we created for this server.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.marks);
        let log = self.log.all();
        if std::thread::panicking() {
            eprintln!("---- segue log ----\n{log}\n-------------------");
        } else if log.contains("panicked at") {
            // A Rust panic in segue (e.g. one of hyper's debug assertions in a connection task)
            // can hide behind a test that only looks at what the client saw.
            panic!("segue panicked during the test:\n{log}");
        }
    }
}
