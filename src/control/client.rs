//! The CLI side: `segue reload|status|stop|workers --control PATH`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::messages::{ReloadReport, Reply, Request, StatusReport};

/// Why a control command failed before the master answered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing listens at the path.
    #[error("cannot reach the master at '{}': {source} (is segue running with --control {}?)", path.display(), path.display())]
    Connect {
        /// The socket path.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The master did not answer in time.
    #[error(
        "no answer from the master within {0:?} (raise --timeout; the reload may still finish)"
    )]
    Timeout(Duration),
    /// Talking to the master failed.
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    /// The answer did not parse.
    #[error("unexpected answer from the master: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Sends `request` and waits up to `timeout` for the reply.
pub fn call(path: &Path, request: &Request, timeout: Duration) -> Result<Reply, Error> {
    let mut stream = UnixStream::connect(path).map_err(|source| Error::Connect {
        path: path.to_owned(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    match BufReader::new(stream).read_line(&mut answer) {
        Ok(_) => Ok(serde_json::from_str(&answer)?),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(Error::Timeout(timeout))
        }
        Err(e) => Err(e.into()),
    }
}

/// Prints a reply for a person (or as JSON) and returns the exit code: 0 for success, 1 when
/// the master refused or a reload was rolled back.
pub fn render(reply: &Reply, json: bool) -> i32 {
    let code = match reply {
        Reply::Error { .. } => 1,
        Reply::Reload(r) if !r.ok => 1,
        _ => 0,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(reply).unwrap_or_default()
        );
        return code;
    }
    match reply {
        Reply::ReloadStarted { message } | Reply::Ok { message } => println!("{message}"),
        Reply::Error { message } => eprintln!("segue: {message}"),
        Reply::Reload(r) => print_reload(r),
        Reply::Status(s) => print_status(s),
    }
    code
}

fn print_reload(r: &ReloadReport) {
    if r.ok {
        println!(
            "reload {}: generation {} is serving ({:?}, {} ms); generation {} is gone",
            r.reload, r.generation, r.strategy, r.took_ms, r.from
        );
        let boots: Vec<String> = r.boot_ms.iter().map(|ms| format!("{ms} ms")).collect();
        println!("worker boot times: {}", boots.join(", "));
    } else {
        println!(
            "reload {} ROLLED BACK: generation {} keeps serving; generation {} failed after {} ms",
            r.reload, r.from, r.generation, r.took_ms
        );
        println!("reason: {}", r.reason.as_deref().unwrap_or("unknown"));
        if let Some(tb) = &r.traceback {
            println!("{}", tb.trim_end());
        }
    }
}

fn print_status(s: &StatusReport) {
    println!(
        "master pid {}, serving generation {}, {} workers wanted",
        s.pid, s.serving, s.workers_wanted
    );
    if let Some(r) = &s.reloading {
        println!("reloading: {r}");
    }
    println!(
        "{:>6} {:>8} {:>4} {:<10} {:>10} {:>10}",
        "worker", "pid", "gen", "state", "requests", "uptime"
    );
    for w in &s.workers {
        println!(
            "{:>6} {:>8} {:>4} {:<10} {:>10} {:>9.0}s",
            w.id, w.pid, w.generation, w.state, w.requests, w.uptime_s
        );
    }
    for c in &s.crash_loops {
        println!(
            "slot {} is crash-looping ({} early deaths, respawning with backoff): {}",
            c.slot, c.failures, c.last_error
        );
    }
    if !s.reloads.is_empty() {
        println!("recent reloads:");
        for r in &s.reloads {
            let result = if r.ok {
                "promoted".to_string()
            } else {
                format!("rolled back: {}", r.reason.as_deref().unwrap_or(""))
            };
            println!(
                "  reload {}: {} -> {} ({:?}, {} ms): {result}",
                r.reload, r.from, r.generation, r.strategy, r.took_ms
            );
        }
    }
}

/// `segue upgrade`: asks for the in-place upgrade and, with `wait`, follows the master across
/// its exec by polling status until the upgrade count has moved and the worker replacement that
/// follows it has finished. Returns the exit code.
pub fn upgrade(
    path: &Path,
    binary: Option<std::path::PathBuf>,
    wait: bool,
    timeout: Duration,
    json: bool,
) -> Result<i32, Error> {
    let deadline = std::time::Instant::now() + timeout;
    let before = match call(path, &Request::Status, timeout)? {
        Reply::Status(s) => s.upgrades,
        other => return Ok(render(&other, json)),
    };
    let reply = call(path, &Request::Upgrade { binary }, timeout)?;
    if !wait || !matches!(reply, Reply::Ok { .. }) {
        return Ok(render(&reply, json));
    }
    if !json {
        render(&reply, false);
    }
    loop {
        if std::time::Instant::now() >= deadline {
            return Err(Error::Timeout(timeout));
        }
        std::thread::sleep(Duration::from_millis(100));
        // The control socket is handed over across the exec; a refused connection in between
        // is expected.
        let Ok(Reply::Status(s)) = call(path, &Request::Status, Duration::from_secs(5)) else {
            continue;
        };
        if s.upgrades == before {
            if let Some(e) = s.upgrade_error.filter(|_| s.reloading.is_none()) {
                return Ok(render(
                    &Reply::Error {
                        message: format!("upgrade failed: {e}"),
                    },
                    json,
                ));
            }
            continue;
        }
        let old_left = s.workers.iter().any(|w| w.generation != s.serving);
        if s.reloading.is_some() || old_left {
            continue;
        }
        return Ok(match s.reloads.last() {
            Some(r) => render(&Reply::Reload(r.clone()), json),
            None => render(
                &Reply::Ok {
                    message: "upgraded".into(),
                },
                json,
            ),
        });
    }
}
