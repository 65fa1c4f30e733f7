//! The CLI side: `segue reload|status|stop|workers --control PATH`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::messages::{EmperorReport, ReloadReport, Reply, Request, ScalingReport, StatusReport};

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

/// The exit code a reply stands for: 0 for success, 1 when the master refused or a reload was
/// rolled back. It does not depend on whether the answer could be printed in full.
pub fn exit_code(reply: &Reply) -> i32 {
    match reply {
        Reply::Error { .. } => 1,
        Reply::Reload(r) if !r.ok => 1,
        _ => 0,
    }
}

/// Where a control command writes its answer: the reply to `out`, a refusal to `err`. Writes
/// are fallible (`println!` panics when stdout is a closed pipe or a full disk); the first
/// failure is kept and nothing more is written, and [`Printer::finish`] turns it into the exit
/// code.
pub struct Printer<O: Write, E: Write> {
    out: O,
    err: E,
    json: bool,
    /// The first error writing to `out`.
    failed: Option<std::io::Error>,
}

impl Printer<std::io::Stdout, std::io::Stderr> {
    /// Prints to the process's stdout and stderr; `json` prints replies as they came.
    pub fn stdio(json: bool) -> Self {
        Printer::new(std::io::stdout(), std::io::stderr(), json)
    }
}

impl<O: Write, E: Write> Printer<O, E> {
    /// Prints to `out` and `err`; `json` prints replies as they came.
    pub fn new(out: O, err: E, json: bool) -> Self {
        Printer {
            out,
            err,
            json,
            failed: None,
        }
    }

    /// Prints a reply for a person (or as JSON), flushed at once so that a progress line shows
    /// before a long wait, and returns its [`exit_code`].
    pub fn reply(&mut self, reply: &Reply) -> i32 {
        if self.failed.is_none() {
            let written = if self.json {
                serde_json::to_string_pretty(reply)
                    .map_err(std::io::Error::other)
                    .and_then(|text| writeln!(self.out, "{text}"))
            } else if let Reply::Error { message } = reply {
                // Nowhere left to report a failure to write to stderr; the exit code says it.
                let _ = writeln!(self.err, "segue: {message}").and_then(|()| self.err.flush());
                Ok(())
            } else {
                write_reply(&mut self.out, reply)
            };
            if let Err(e) = written.and_then(|()| self.out.flush()) {
                self.failed = Some(e);
            }
        }
        exit_code(reply)
    }

    /// The exit code once everything is printed: `code` (the answer's) when all of it was
    /// written, and also when the reader went away (EPIPE: `segue status | head -1` has read
    /// what it wanted, and a `pipefail` script still learns whether a reload worked); otherwise
    /// one line on stderr, `segue: cannot write the answer: ...`, and 1.
    pub fn finish(mut self, code: i32) -> i32 {
        if self.failed.is_none() {
            if let Err(e) = self.out.flush() {
                self.failed = Some(e);
            }
        }
        match self.failed {
            None => code,
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
            Some(e) => {
                let _ = writeln!(self.err, "segue: cannot write the answer: {e}")
                    .and_then(|()| self.err.flush());
                1
            }
        }
    }
}

fn write_reply(out: &mut impl Write, reply: &Reply) -> std::io::Result<()> {
    match reply {
        Reply::ReloadStarted { message } | Reply::Ok { message } => writeln!(out, "{message}"),
        // Printed to stderr by the caller.
        Reply::Error { .. } => Ok(()),
        Reply::Reload(r) => write_reload(out, r),
        Reply::Status(s) => write_status(out, s),
        Reply::Emperor(e) => write_emperor(out, e),
    }
}

fn write_emperor(out: &mut impl Write, e: &EmperorReport) -> std::io::Result<()> {
    let dirs: Vec<String> = e.dirs.iter().map(|d| d.display().to_string()).collect();
    writeln!(
        out,
        "emperor pid {}: {} vassal{} from {}",
        e.pid,
        e.vassals.len(),
        if e.vassals.len() == 1 { "" } else { "s" },
        dirs.join(", ")
    )?;
    writeln!(
        out,
        "{:<8} {:<19} {:>8} {:>9}  {:<40} last exit",
        "pid", "state", "restarts", "uptime", "config"
    )?;
    for v in &e.vassals {
        writeln!(
            out,
            "{:<8} {:<19} {:>8} {:>9}  {:<40} {}",
            v.pid.map_or("-".to_owned(), |p| p.to_string()),
            v.state,
            v.restarts,
            v.uptime_s.map_or("-".to_owned(), |s| format!("{s:.0}s")),
            v.config.display(),
            v.last_exit.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

fn write_reload(out: &mut impl Write, r: &ReloadReport) -> std::io::Result<()> {
    if r.ok {
        writeln!(
            out,
            "reload {}: generation {} is serving ({:?}, {} ms); generation {} is gone",
            r.reload, r.generation, r.strategy, r.took_ms, r.from
        )?;
        let boots: Vec<String> = r.boot_ms.iter().map(|ms| format!("{ms} ms")).collect();
        writeln!(out, "worker boot times: {}", boots.join(", "))?;
    } else {
        writeln!(
            out,
            "reload {} ROLLED BACK: generation {} keeps serving; generation {} failed after {} ms",
            r.reload, r.from, r.generation, r.took_ms
        )?;
        writeln!(out, "reason: {}", r.reason.as_deref().unwrap_or("unknown"))?;
        if let Some(tb) = &r.traceback {
            writeln!(out, "{}", tb.trim_end())?;
        }
    }
    for note in &r.notes {
        writeln!(out, "not applied: {note}")?;
    }
    Ok(())
}

fn write_scaling(out: &mut impl Write, s: &ScalingReport) -> std::io::Result<()> {
    if let Some(secs) = s.asleep_s {
        writeln!(
            out,
            "asleep (cheap mode) for {secs:.0}s: workers start at the next connection"
        )?;
    }
    if let (Some(idle), Some(quiet)) = (s.idle_s, s.quiet_s) {
        writeln!(
            out,
            "idle: no request for {quiet:.0}s of {idle:.0}s before the workers stop"
        )?;
    }
    if let Some(c) = &s.cheaper {
        writeln!(
            out,
            "cheaper ({}): between {} and {} workers; {} requests waiting",
            c.algo, c.min, c.max, s.queued
        )?;
    }
    Ok(())
}

fn write_status(out: &mut impl Write, s: &StatusReport) -> std::io::Result<()> {
    writeln!(
        out,
        "master pid {}, serving generation {}, {} workers wanted",
        s.pid, s.serving, s.workers_wanted
    )?;
    if let Some(r) = &s.reloading {
        writeln!(out, "reloading: {r}")?;
    }
    write_scaling(out, &s.scaling)?;
    writeln!(
        out,
        "{:>6} {:>8} {:>4} {:<10} {:>10} {:>10} {:>8} {:>6} {:>6}",
        "worker", "pid", "gen", "state", "requests", "uptime", "rss", "conns", "queue"
    )?;
    for w in &s.workers {
        writeln!(
            out,
            "{:>6} {:>8} {:>4} {:<10} {:>10} {:>9.0}s {:>6}MB {:>6} {:>6}",
            w.id,
            w.pid,
            w.generation,
            w.state,
            w.requests,
            w.uptime_s,
            w.rss_kib / 1024,
            w.connections,
            w.queued
        )?;
    }
    for d in &s.daemons {
        let pid = d.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        write!(
            out,
            "daemon {pid:>8} {:<19} restarts {} ({}: {})",
            d.state, d.restarts, d.kind, d.command
        )?;
        match &d.last_exit {
            Some(e) => writeln!(out, "; last exit: {e}")?,
            None => writeln!(out)?,
        }
    }
    for c in &s.crons {
        write!(
            out,
            "cron {:<16} runs {} (running {}, skipped {}) {}{}",
            c.schedule,
            c.runs,
            c.running.len(),
            c.skipped,
            if c.unique { "unique-cron: " } else { "cron: " },
            c.command
        )?;
        match (&c.last_exit, c.last_duration_ms) {
            (Some(e), Some(ms)) => writeln!(out, "; last: {e} in {ms} ms")?,
            (Some(e), None) => writeln!(out, "; last: {e}")?,
            _ => writeln!(out)?,
        }
    }
    for c in &s.crash_loops {
        writeln!(
            out,
            "slot {} is crash-looping ({} early deaths, respawning with backoff): {}",
            c.slot, c.failures, c.last_error
        )?;
    }
    if !s.reloads.is_empty() {
        writeln!(out, "recent reloads:")?;
        for r in &s.reloads {
            let result = if r.ok {
                "promoted".to_string()
            } else {
                format!("rolled back: {}", r.reason.as_deref().unwrap_or(""))
            };
            writeln!(
                out,
                "  reload {}: {} -> {} ({:?}, {} ms): {result}",
                r.reload, r.from, r.generation, r.strategy, r.took_ms
            )?;
        }
    }
    Ok(())
}

/// `segue upgrade`: asks for the in-place upgrade and, with `wait`, follows the master across
/// its exec by polling status until the upgrade count has moved and the worker replacement that
/// follows it has finished. Prints through `printer` and returns the answer's exit code.
pub fn upgrade<O: Write, E: Write>(
    path: &Path,
    binary: Option<std::path::PathBuf>,
    wait: bool,
    timeout: Duration,
    printer: &mut Printer<O, E>,
) -> Result<i32, Error> {
    let deadline = std::time::Instant::now() + timeout;
    let before = match call(path, &Request::Status, timeout)? {
        Reply::Status(s) => s.upgrades,
        other => return Ok(printer.reply(&other)),
    };
    let reply = call(path, &Request::Upgrade { binary }, timeout)?;
    if !wait || !matches!(reply, Reply::Ok { .. }) {
        return Ok(printer.reply(&reply));
    }
    // The progress line; with --json only the final reply is printed.
    if !printer.json {
        printer.reply(&reply);
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
                return Ok(printer.reply(&Reply::Error {
                    message: format!("upgrade failed: {e}"),
                }));
            }
            continue;
        }
        let old_left = s.workers.iter().any(|w| w.generation != s.serving);
        if s.reloading.is_some() || old_left {
            continue;
        }
        return Ok(match s.reloads.last() {
            Some(r) => printer.reply(&Reply::Reload(r.clone())),
            None => printer.reply(&Reply::Ok {
                message: "upgraded".into(),
            }),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stdout that fails every write with `errno`, counting the attempts.
    struct Failing {
        errno: i32,
        writes: usize,
    }

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            self.writes += 1;
            Err(std::io::Error::from_raw_os_error(self.errno))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn ok() -> Reply {
        Reply::Ok {
            message: "done".into(),
        }
    }

    #[test]
    fn a_closed_pipe_keeps_the_answers_exit_code_and_says_nothing() {
        for (reply, code) in [
            (ok(), 0),
            (
                Reply::Error {
                    message: "no".into(),
                },
                1,
            ),
        ] {
            let mut err = Vec::new();
            let mut p = Printer::new(
                Failing {
                    errno: libc::EPIPE,
                    writes: 0,
                },
                &mut err,
                true,
            );
            let c = p.reply(&reply);
            assert_eq!(p.finish(c), code);
            assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
        }
    }

    #[test]
    fn another_write_error_is_one_line_on_stderr_and_exit_1() {
        let mut err = Vec::new();
        let mut out = Failing {
            errno: libc::ENOSPC,
            writes: 0,
        };
        let mut p = Printer::new(&mut out, &mut err, false);
        p.reply(&ok());
        // Nothing more is attempted after the first failure.
        let code = p.reply(&ok());
        assert_eq!(p.finish(code), 1);
        assert_eq!(out.writes, 1);
        assert_eq!(
            String::from_utf8_lossy(&err),
            "segue: cannot write the answer: No space left on device (os error 28)\n"
        );
    }

    #[test]
    fn a_refusal_goes_to_stderr_and_the_rest_to_stdout() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut p = Printer::new(&mut out, &mut err, false);
        let refused = p.reply(&Reply::Error {
            message: "no such worker".into(),
        });
        p.reply(&ok());
        assert_eq!(p.finish(refused), 1);
        assert_eq!(String::from_utf8_lossy(&out), "done\n");
        assert_eq!(String::from_utf8_lossy(&err), "segue: no such worker\n");
    }
}
