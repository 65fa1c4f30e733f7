//! Test harness: starts the real `segue` binary, learns its address and readiness from its
//! control socket (`status`: `listeners`, `ready`), waits on status or log events (never fixed
//! sleeps), and speaks raw HTTP/1.1 over loopback.
#![allow(dead_code)] // each test binary uses a different subset

pub mod oneshot;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for any single event before failing.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The `segue` that pip installed into the test venv (`scripts/test` builds the wheel and sets
/// `SEGUE_BIN`): the tests run segue as users get it, whose workers run that venv's Python.
pub fn segue_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let bin = std::env::var("SEGUE_BIN").unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/test-venv/bin/segue")
                .display()
                .to_string()
        });
        assert!(
            Path::new(&bin).exists(),
            "no installed segue at {bin} (run scripts/test, which builds the wheel and installs it \
             into target/test-venv, or set SEGUE_BIN)"
        );
        bin
    })
}

pub fn apps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps")
}

/// The virtualenv with Flask and Django that `scripts/test` prepares.
pub fn test_venv() -> PathBuf {
    let venv = std::env::var_os("SEGUE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv"));
    assert!(
        venv.join("bin/python").exists(),
        "no test virtualenv at {} (run scripts/test, which creates it, or set SEGUE_TEST_VENV)",
        venv.display()
    );
    venv
}

/// Lines the server wrote to stderr, shared with the reader thread.
#[derive(Default)]
pub struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
    /// Set when segue's stderr reached end of file (it and its workers are gone).
    ended: std::sync::atomic::AtomicBool,
}

impl Log {
    /// Waits (at most `timeout`) until every line segue wrote has been read: after the master
    /// exits, its last lines may still be in the pipe.
    pub fn wait_ended(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        while !self.ended.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            lines = self.grew.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Waits until a line containing every one of `needles` appears; returns it.
    pub fn wait_for(&self, needles: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| needles.iter().all(|n| l.contains(n))) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = self.grew.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// How many lines contain every one of `needles`.
    pub fn count(&self, needles: &[&str]) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    /// Waits until `count(needles) >= n`.
    pub fn wait_count(&self, needles: &[&str], n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if lines
                .iter()
                .filter(|l| needles.iter().all(|x| l.contains(x)))
                .count()
                >= n
            {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            lines = self.grew.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    pub fn all(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

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
        let log = Arc::new(Log::default());
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lines.lock().unwrap().push(line);
                sink.grew.notify_all();
            }
            let _guard = sink.lines.lock().unwrap();
            sink.ended.store(true, Ordering::SeqCst);
            sink.grew.notify_all();
        });
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
        mut cond: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let (mut hit, mut last) = (None, String::from("no answer"));
        let found = eventually(EVENT_TIMEOUT, || match self.try_status() {
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
        assert!(
            found,
            "status never showed {what} within {EVENT_TIMEOUT:?}; last: {last}\n{}",
            self.log.all()
        );
        hit.unwrap()
    }

    /// Waits until reload `n` is over (promoted or rolled back) and returns its record from
    /// `status.reloads` (`ok`, `generation`, `strategy`, `reason`, ...).
    pub fn wait_reload(&self, n: u64) -> serde_json::Value {
        let st = self.wait_status(&format!("reload {n} finished"), |st| {
            reload_record(st, n).is_some()
        });
        reload_record(&st, n).unwrap().clone()
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

struct Stat {
    state: char,
    ppid: i32,
    pgrp: i32,
}

fn read_stat(pid: i32) -> Option<Stat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some(Stat { state, ppid, pgrp })
}

pub fn proc_state(pid: i32) -> Option<char> {
    read_stat(pid).map(|s| s.state)
}

pub fn children_of(ppid: i32) -> Vec<i32> {
    let mut out = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if read_stat(pid).is_some_and(|s| s.ppid == ppid) {
            out.push(pid);
        }
    }
    out.sort();
    out
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes. For state that produces no log
/// event (process tables, files); the answer is still an observed fact, not a guess.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body came chunked.
    pub chunked: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A client connection that reads responses one at a time (keep-alive, pipelining).
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
        Conn {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.reader.get_mut().write_all(raw).unwrap();
    }

    pub fn set_read_timeout(&mut self, t: Duration) {
        self.reader.get_mut().set_read_timeout(Some(t)).unwrap();
    }

    /// Bounds each write, so a test uploading to a server that stopped reading fails instead of
    /// hanging.
    pub fn set_write_timeout(&mut self, t: Duration) {
        self.reader.get_mut().set_write_timeout(Some(t)).unwrap();
    }

    /// Reads one response; `head` says the request was HEAD (no body follows).
    pub fn read_response(&mut self, head: bool) -> Response {
        self.try_read_response(head)
            .unwrap_or_else(|e| panic!("reading response: {e}"))
    }

    pub fn try_read_response(&mut self, head: bool) -> Result<Response, String> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before a response".into());
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_string();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let reason = parts.next().unwrap_or("").to_string();
        let mut headers = vec![];
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).map_err(|e| e.to_string())?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| format!("bad header {h:?}"))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let mut resp = Response {
            version,
            status,
            reason,
            headers,
            body: vec![],
            chunked: false,
        };
        if head || status < 200 || status == 204 || status == 304 {
            return Ok(resp);
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            resp.chunked = true;
            loop {
                let mut size = String::new();
                self.reader
                    .read_line(&mut size)
                    .map_err(|e| e.to_string())?;
                let size = usize::from_str_radix(size.trim(), 16).map_err(|_| {
                    format!(
                        "bad chunk size {size:?} (body so far {:?})",
                        String::from_utf8_lossy(&resp.body)
                    )
                })?;
                let mut chunk = vec![0; size + 2];
                self.reader
                    .read_exact(&mut chunk)
                    .map_err(|e| format!("chunk: {e}"))?;
                if size == 0 {
                    break;
                }
                resp.body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().map_err(|_| "bad content-length")?;
            let mut body = vec![0; len];
            self.reader
                .read_exact(&mut body)
                .map_err(|e| format!("body: {e}"))?;
            resp.body = body;
        } else {
            self.reader
                .read_to_end(&mut resp.body)
                .map_err(|e| e.to_string())?;
        }
        Ok(resp)
    }

    /// Reads whatever arrives next, at most `max` bytes.
    pub fn read_some(&mut self, max: usize) -> Vec<u8> {
        let mut buf = vec![0; max];
        let n = self.reader.read(&mut buf).unwrap_or(0);
        buf.truncate(n);
        buf
    }

    /// One read into `buf`; 0 at EOF or on error.
    pub fn read_raw(&mut self, buf: &mut [u8]) -> usize {
        self.reader.read(buf).unwrap_or(0)
    }

    /// True if the server closed the connection (EOF) within the read timeout.
    pub fn closed_by_server(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
            || matches!(self.reader.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
    }
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    let mut c = Conn::open(addr);
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    c.read_response(false)
}

/// Sends `raw` and returns everything the server sends until it closes.
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut c = Conn::open(addr);
    c.send(raw);
    let mut out = vec![];
    let _ = c.reader.read_to_end(&mut out);
    out
}

/// The status code of the first response in `raw`.
pub fn status_of(raw: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(raw);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

/// `GET path` on a fresh connection, reporting failures instead of panicking.
pub fn try_get(addr: SocketAddr, path: &str) -> Result<Response, String> {
    try_get_within(addr, path, EVENT_TIMEOUT)
}

/// `GET path` on a fresh connection whose every read gives up after `timeout`.
pub fn try_get_within(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut c = Conn {
        reader: BufReader::new(stream),
    };
    c.reader
        .get_mut()
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .map_err(|e| format!("send: {e}"))?;
    c.try_read_response(false)
}

/// One response seen by the load generator.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When the request was sent.
    pub sent: Instant,
    pub status: u16,
    pub body: String,
}

/// What a load run observed.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub seen: Vec<Seen>,
    /// Requests that got no complete response, with why.
    pub failures: Vec<String>,
}

impl LoadReport {
    pub fn ok(&self) -> usize {
        self.seen.iter().filter(|s| s.status == 200).count()
    }

    /// Responses that were not 200, as failures.
    pub fn bad_statuses(&self) -> Vec<&Seen> {
        self.seen.iter().filter(|s| s.status != 200).collect()
    }
}

/// A bounded HTTP load on 127.0.0.1: keep-alive clients that reconnect when told to close,
/// and clients that open a new connection per request. Stops on `stop()` or after `limit`.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<LoadReport>>,
}

impl Load {
    pub fn start(
        addr: SocketAddr,
        path: &str,
        keep_alive: usize,
        fresh: usize,
        limit: Duration,
    ) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let deadline = Instant::now() + limit;
        let mut threads = vec![];
        for i in 0..keep_alive + fresh {
            let (stop, path) = (stop.clone(), path.to_string());
            let persistent = i < keep_alive;
            threads.push(std::thread::spawn(move || {
                let mut report = LoadReport::default();
                let mut conn: Option<Conn> = None;
                // Bounded in count and time.
                for _ in 0..200_000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                        break;
                    }
                    let sent = Instant::now();
                    let result = if persistent {
                        let c = match conn.as_mut() {
                            Some(c) => c,
                            None => match TcpStream::connect(addr) {
                                Ok(s) => {
                                    s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
                                    conn.insert(Conn {
                                        reader: BufReader::new(s),
                                    })
                                }
                                Err(e) => {
                                    report.failures.push(format!("connect: {e}"));
                                    continue;
                                }
                            },
                        };
                        let sent_ok = c.reader.get_mut().write_all(
                            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes(),
                        );
                        match sent_ok {
                            Err(e) => Err(format!("send: {e}")),
                            Ok(()) => c.try_read_response(false),
                        }
                    } else {
                        try_get(addr, &path)
                    };
                    match result {
                        Ok(r) => {
                            if r.header("connection")
                                .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                            {
                                conn = None;
                            }
                            report.seen.push(Seen {
                                sent,
                                status: r.status,
                                body: r.text(),
                            });
                        }
                        Err(e) => {
                            report.failures.push(format!(
                                "{} client: {e}",
                                if persistent {
                                    "keep-alive"
                                } else {
                                    "new-connection"
                                }
                            ));
                            conn = None;
                        }
                    }
                }
                report
            }));
        }
        Load { stop, threads }
    }

    pub fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = LoadReport::default();
        for t in self.threads {
            let r = t.join().expect("load thread panicked");
            all.seen.extend(r.seen);
            all.failures.extend(r.failures);
        }
        all
    }
}

/// A deploy directory holding `versioned.py` and its `version.txt`.
pub struct Deploy {
    /// The directory (the server's --chdir).
    pub root: PathBuf,
}

impl Deploy {
    /// A file path inside the deploy directory.
    pub fn path(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }

    pub fn new(version: &str) -> Deploy {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("segue-deploy-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let d = Deploy { root };
        d.release(&d.root, version);
        d
    }

    /// Puts a release (the app and its version) into `dir`.
    pub fn release(&self, dir: &Path, version: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(apps_dir().join("versioned.py"), dir.join("versioned.py")).unwrap();
        self.set(dir, version);
    }

    fn set(&self, dir: &Path, version: &str) {
        // Write then rename, as a deploy tool would: a worker never reads half a file.
        let tmp = dir.join("version.txt.tmp");
        std::fs::write(&tmp, version).unwrap();
        std::fs::rename(tmp, dir.join("version.txt")).unwrap();
    }

    /// Changes the version in place, as a deploy that edits files would.
    pub fn version(&self, version: &str) {
        self.set(&self.root, version);
    }
}

impl Drop for Deploy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
