//! `segue check-reload`: proves in CI that an app survives reloads with zero loss.
//!
//! It starts a private segue master (as a child, on a free 127.0.0.1 port with its own control
//! socket), drives a bounded load at it, triggers reloads spread over the run, and reports what
//! failed, latency inside and outside the reload windows, how long each reload took, and the
//! peak memory of the process tree. It exits 0 only if no request failed and every reload took
//! effect. It stops and kills only the processes it started.

pub mod html;
pub mod load;
pub mod report;

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::control::{Reply, Request, client};
use report::{CheckReport, ReloadCheck};

/// The environment variable that carries the master's configuration to `segue __master`.
pub const MASTER_CONFIG_ENV: &str = "SEGUE_MASTER_CONFIG";
/// Most requests one check sends, whatever the duration.
const MAX_REQUESTS: u64 = 5_000_000;

/// What to check, besides the server configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Reloads to trigger.
    pub reloads: u32,
    /// Length of the load.
    pub duration: Duration,
    /// Paths to GET.
    pub urls: Vec<String>,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Where to write the JSON report.
    pub json: Option<PathBuf>,
    /// Where to write the JUnit report.
    pub junit: Option<PathBuf>,
    /// Where to write the HTML report.
    pub html: Option<PathBuf>,
}

/// Why the check could not run at all (as opposed to running and failing).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server did not start.
    #[error("the app did not start serving: {0}")]
    NoStart(String),
    /// Local I/O (temp dir, report files, spawning).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Serialising the configuration or report.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// The child master: its process, the address its status reported, and its log file.
struct Master {
    child: Child,
    addr: SocketAddr,
    log_path: PathBuf,
}

impl Master {
    /// Starts `segue __master` with `config` (whose `control` is set) and returns once its
    /// status says it is ready.
    fn start(config: &Config, dir: &Path) -> Result<Master, Error> {
        let control = config
            .control
            .clone()
            .ok_or_else(|| Error::NoStart("no control socket configured".into()))?;
        let log_path = dir.join("server.log");
        let mut log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg("__master")
            .env(MASTER_CONFIG_ENV, serde_json::to_string(config)?)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: a final kill reaches exactly what this check started.
            .process_group(0)
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| Error::NoStart("no stderr".into()))?;
        // The log is for the person reading the report; readiness comes from the control socket.
        // `copied` closes when the master and its workers have all closed stderr.
        let (copied_tx, copied) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
            }
            drop(copied_tx);
        });
        let within = config.worker.boot_timeout + Duration::from_secs(10);
        match wait_ready(&mut child, &control, within) {
            Ok(addr) => Ok(Master {
                child,
                addr,
                log_path,
            }),
            Err(why) => {
                let _ = kill_group(&mut child);
                // A master that exited logged its reason last: let the copy catch up with it
                // (bounded, should a process outside the group still hold the pipe).
                let _ = copied.recv_timeout(Duration::from_secs(2));
                let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                Err(Error::NoStart(format!(
                    "{why}; its log ends with:\n{}",
                    tail.join("\n")
                )))
            }
        }
    }
}

/// Polls the master's `status` until it reports `ready` (every worker of the first generation
/// has been ready), and returns the TCP address it reports as bound. Why not, otherwise.
fn wait_ready(child: &mut Child, control: &Path, within: Duration) -> Result<SocketAddr, String> {
    let deadline = Instant::now() + within;
    loop {
        // Until the master has bound the socket, connecting fails: expected while it starts.
        if let Ok(Reply::Status(status)) =
            client::call(control, &Request::Status, Duration::from_secs(5))
        {
            if status.ready {
                return status
                    .listeners
                    .iter()
                    .find_map(|l| l.parse::<SocketAddr>().ok())
                    .ok_or_else(|| {
                        format!(
                            "it reports no TCP listener (listeners: {})",
                            status.listeners.join(", ")
                        )
                    });
            }
        }
        match child.try_wait() {
            Ok(Some(exit)) if exit.code() == Some(crate::master::EXIT_BOOT_FAILED) => {
                return Err(format!(
                    "it did not boot (the master exited with status {}, the reason is in its log)",
                    crate::master::EXIT_BOOT_FAILED
                ));
            }
            Ok(Some(exit)) => return Err(format!("it exited ({exit}) before it was ready")),
            Ok(None) => {}
            Err(e) => return Err(format!("cannot watch it: {e}")),
        }
        if Instant::now() >= deadline {
            return Err(format!("not ready within {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill_group(child: &mut Child) -> std::io::Result<()> {
    let pgid = nix::unistd::Pid::from_raw(-(child.id() as i32));
    let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGKILL);
    child.wait().map(drop)
}

/// Resident memory of `root` and all its descendants, in KiB.
fn tree_rss_kib(root: u32) -> u64 {
    let mut parents = std::collections::HashMap::<u32, Vec<u32>>::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
                continue;
            };
            if let Some(ppid) = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok())
            {
                parents.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut total = 0;
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            total += status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        stack.extend(parents.get(&pid).into_iter().flatten());
    }
    total
}

/// Runs the check against `config` (the user's server options) and returns the exit code.
pub fn run(mut config: Config, plan: Plan) -> Result<i32, Error> {
    let dir = std::env::temp_dir().join(format!("segue-check-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // Always a private socket, even if the user's options name one: that path may be the
    // production server's, and a deploy script's `segue reload` must never reach this check.
    let control = dir.join("control.sock");
    config.listen = vec![crate::config::Endpoint::http(
        crate::config::ListenAddr::Tcp(([127, 0, 0, 1], 0).into()),
    )];
    config.control = Some(control.clone());
    config.pidfile = None;
    config.touch_reload = None;
    config.master_fifo = None;
    config.worker.log.format = crate::config::LogFormat::Text;
    let app = config.worker.app.to_string();
    let strategy = format!("{:?}", config.reload_strategy).to_lowercase();
    let reply_timeout =
        config.worker.boot_timeout + config.graceful_timeout + Duration::from_secs(30);

    eprintln!(
        "segue check-reload: starting {app} ({} workers, {strategy})",
        config.workers
    );
    let mut master = Master::start(&config, &dir)?;
    let pid = master.child.id();

    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(tree_rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let start = Instant::now();
    let load = load::Load::start(
        master.addr,
        plan.urls.clone(),
        plan.concurrency,
        start,
        plan.duration,
        MAX_REQUESTS,
    );
    let progress = progress_printer(
        load.sent.clone(),
        load.failed.clone(),
        start,
        plan.duration,
        plan.reloads,
    );

    let mut reloads = Vec::new();
    for i in 1..=plan.reloads {
        let at = plan
            .duration
            .mul_f64(f64::from(i) / f64::from(plan.reloads + 1));
        if let Some(wait) = at.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let started = Instant::now();
        let started_s = start.elapsed().as_secs_f64();
        let mut check = ReloadCheck {
            index: i as usize,
            started_s,
            new_serving_ms: None,
            old_gone_ms: None,
            failed_requests: 0,
            master: None,
            error: None,
        };
        match client::call(
            &control,
            &Request::Reload {
                strategy: None,
                wait: true,
            },
            reply_timeout,
        ) {
            Ok(Reply::Reload(r)) => {
                if r.ok {
                    check.new_serving_ms = Some(r.took_ms);
                    check.old_gone_ms = Some(started.elapsed().as_millis() as u64);
                } else {
                    check.error = Some(format!(
                        "rolled back: {}",
                        r.reason.as_deref().unwrap_or("unknown reason")
                    ));
                }
                check.master = Some(r);
            }
            Ok(other) => {
                check.error = Some(format!("unexpected answer from the master: {other:?}"))
            }
            Err(e) => check.error = Some(e.to_string()),
        }
        progress.reloads_done.fetch_add(1, Ordering::Relaxed);
        reloads.push(check);
    }
    if let Some(rest) = plan.duration.checked_sub(start.elapsed()) {
        std::thread::sleep(rest);
    }
    let samples = load.stop();
    progress.stop();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();

    // Stop what we started: gracefully, then for sure.
    let _ = client::call(&control, &Request::Stop, Duration::from_secs(5));
    let deadline = Instant::now() + config.graceful_timeout + Duration::from_secs(5);
    while master.child.try_wait()?.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = kill_group(&mut master.child);

    let report = CheckReport::new(
        app,
        strategy,
        plan.duration,
        &samples,
        reloads,
        peak.load(Ordering::Relaxed),
    );
    print!("{}", report.human());
    println!("  server log: {}", master.log_path.display());
    if let Some(path) = &plan.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if let Some(path) = &plan.junit {
        std::fs::write(path, report.junit())?;
    }
    if let Some(path) = &plan.html {
        std::fs::write(path, html::page(&report))?;
    }
    Ok(if report.passed { 0 } else { 1 })
}

/// The progress line, redrawn each second on a terminal, printed every 5 s otherwise.
struct Progress {
    reloads_done: Arc<AtomicU64>,
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn stop(mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn progress_printer(
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    start: Instant,
    duration: Duration,
    reloads: u32,
) -> Progress {
    let reloads_done = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let (done, run) = (reloads_done.clone(), running.clone());
    let tty = std::io::stderr().is_terminal();
    let thread = std::thread::spawn(move || {
        let mut last = Instant::now();
        while run.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            if last.elapsed() < Duration::from_secs(if tty { 1 } else { 5 }) {
                continue;
            }
            last = Instant::now();
            let line = format!(
                "[{:>5.1}s/{:.0}s] {} requests, {} failed, reloads {}/{}",
                start.elapsed().as_secs_f64(),
                duration.as_secs_f64(),
                sent.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed),
                done.load(Ordering::Relaxed),
                reloads
            );
            if tty {
                eprint!("\r{line}")
            } else {
                eprintln!("{line}")
            }
        }
        if tty {
            eprintln!();
        }
    });
    Progress {
        reloads_done,
        running,
        thread: Some(thread),
    }
}
