//! Reading a `gunicorn.conf.py`: it is Python, so the app's own interpreter executes it in a
//! short-lived subprocess (never the master, which must not run Python) with a small script
//! that reports every module-level setting as JSON. The subprocess has a deadline, bounded
//! output and its own process group, so a config that hangs, floods or forks costs a bounded
//! wait and leaves nothing behind.

use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use serde::Deserialize;

use crate::config::entry::{Entry, Origin};

use super::catalog::{self, SETTINGS};

/// The reporter run inside the app's interpreter.
const SCRIPT: &str = include_str!("conf_script.py");
/// Largest report accepted: far above any real config (a few KiB), small enough to hold.
const REPORT_LIMIT: usize = 1 << 20;
/// How much of the config's own output (its prints, warnings) is kept for an error message.
const STDERR_LIMIT: usize = 64 << 10;
/// How often the child is checked for having exited while its pipes stay open (a
/// grandchild holding them, or a file that closed its stdio and kept running).
const EXIT_CHECK: Duration = Duration::from_millis(50);

/// Where a gunicorn configuration came from, for messages and `--print-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfSource {
    /// A file given as a path (`-c gunicorn.conf.py`, `-c file:conf.py`); absolute.
    File(PathBuf),
    /// A module given as `python:pkg.conf`; `path` is its file when the import system has one.
    Module {
        /// The dotted module name.
        name: String,
        /// The module's source file.
        path: Option<PathBuf>,
    },
}

/// What a gunicorn config defines, as entries to translate one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    /// Every module-level name that is a gunicorn setting or looks like one (lower-case, not
    /// private, not an imported module or helper), in definition order. A list value gives
    /// one entry per item for repeatable settings (`bind`, `raw_env`) and unknown names,
    /// and one comma-joined entry otherwise (`forwarded_allow_ips = [...]`); a dict is JSON
    /// text, a function `<function NAME>`, a class `module.Name`. `None` values are left out:
    /// to gunicorn they mean "the default".
    pub entries: Vec<Entry>,
    /// The file or module read.
    pub file: ConfSource,
}

/// Why a gunicorn config could not be read; each message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// The named file does not exist.
    #[error(
        "gunicorn config file {} does not exist (check -c or --config, and the working \
         directory it is relative to)",
        .file.display()
    )]
    NotFound {
        /// The file as named.
        file: PathBuf,
    },
    /// The interpreter could not be started.
    #[error(
        "cannot run {} to read the gunicorn config {target}: {source} (check --virtualenv, \
         or that python is installed)",
        .python.display()
    )]
    Spawn {
        /// The interpreter.
        python: PathBuf,
        /// The config target.
        target: String,
        /// The spawn error.
        source: std::io::Error,
    },
    /// Executing the file raised; the traceback is in `traceback`.
    #[error(
        "{}:{line}: {exception} while reading the gunicorn config (gunicorn would fail the same \
         way: fix the file, or make the module importable from the working directory)",
        .file.display()
    )]
    Raised {
        /// The config file (for `python:` targets, the module's file, or its name).
        file: PathBuf,
        /// The line in that file where the exception passed through, 0 when it did not.
        line: usize,
        /// `TypeName: message`.
        exception: String,
        /// Python's formatted traceback, for the log.
        traceback: String,
    },
    /// The file did not finish within the deadline; its process group was killed.
    #[error(
        "reading the gunicorn config {} took longer than {timeout:?}; it was stopped (does it \
         loop, or wait for the network at import?)",
        .file.display()
    )]
    Timeout {
        /// The config file or module.
        file: PathBuf,
        /// The deadline.
        timeout: Duration,
    },
    /// The interpreter ended without a report (killed, crashed, or too old to run the
    /// reader); `stderr` is the start of what it wrote.
    #[error(
        "{} exited ({}) without reading the gunicorn config {}: {stderr} (segue needs \
         CPython 3.9 or later)",
        .python.display(),
        .status.map_or("status unknown".to_owned(), |s| s.to_string()),
        .file.display()
    )]
    Exited {
        /// The interpreter.
        python: PathBuf,
        /// The config file or module.
        file: PathBuf,
        /// How it ended; `None` when a process-wide reaper (the master's, during a reload)
        /// collected it first.
        status: Option<ExitStatus>,
        /// The start of its stderr.
        stderr: String,
    },
    /// The report was larger than 1 MiB or not the expected JSON.
    #[error(
        "reading the gunicorn config {}: {why} (a setting holds a huge value; compute less in \
         the config file)",
        .file.display()
    )]
    Report {
        /// The config file or module.
        file: PathBuf,
        /// What was wrong.
        why: String,
    },
}

/// gunicorn's default config when no `-c` is given: `gunicorn.conf.py` in `dir` (the working
/// directory), if it is a file.
pub fn default_conf(dir: &Path) -> Option<PathBuf> {
    let path = dir.join("gunicorn.conf.py");
    path.is_file().then_some(path)
}

/// Executes the gunicorn config `target` (a path, `file:PATH`, or `python:MODULE`) with the
/// interpreter `python` (the app's, so the config sees the app's packages) in the current
/// working directory, and returns what it defines. Blocks for at most about `timeout`: run it
/// off any async loop (`spawn_blocking`). Holds no global state.
pub fn read_conf(python: &Path, target: &str, timeout: Duration) -> Result<Conf, ConfError> {
    read_conf_in(python, target, timeout, Path::new("."))
}

/// [`read_conf`] as if started in `dir`: a relative target, the config's own relative
/// paths and `python:` modules are found from there, as gunicorn finds them from its working
/// directory.
pub fn read_conf_in(
    python: &Path,
    target: &str,
    timeout: Duration,
    dir: &Path,
) -> Result<Conf, ConfError> {
    let named = target_name(target);
    if !target.starts_with("python:") && !dir.join(&named).exists() {
        return Err(ConfError::NotFound { file: named });
    }
    let settings: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
    let settings = serde_json::to_string(&settings).unwrap_or_default();
    let child = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(target)
        .arg(settings)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so that whatever the file starts is killed with it.
        .process_group(0)
        .spawn()
        .map_err(|source| ConfError::Spawn {
            python: python.to_owned(),
            target: target.to_owned(),
            source,
        })?;
    let run = collect(child, timeout);
    let (status, stdout, stderr) = match run {
        Ok(done) => done,
        Err(Collect::Timeout) => {
            return Err(ConfError::Timeout {
                file: named,
                timeout,
            });
        }
        Err(Collect::Io(e)) => {
            return Err(ConfError::Report {
                file: named,
                why: format!("cannot read the reader's output: {e}"),
            });
        }
    };
    if stdout.too_big {
        return Err(ConfError::Report {
            file: named,
            why: format!("the report is larger than {REPORT_LIMIT} bytes"),
        });
    }
    if stdout.bytes.is_empty() {
        return Err(ConfError::Exited {
            python: python.to_owned(),
            file: named,
            status,
            stderr: String::from_utf8_lossy(&stderr.bytes).trim().to_owned(),
        });
    }
    let report: Report = serde_json::from_slice(&stdout.bytes).map_err(|e| ConfError::Report {
        file: named.clone(),
        why: format!("the report is not valid JSON ({e})"),
    })?;
    into_conf(report, target, named)
}

/// The path a target names, for messages: the file, or the module name.
fn target_name(target: &str) -> PathBuf {
    if let Some(module) = target.strip_prefix("python:") {
        return PathBuf::from(module);
    }
    PathBuf::from(target.strip_prefix("file:").unwrap_or(target))
}

#[derive(Deserialize)]
struct Report {
    ok: bool,
    file: Option<PathBuf>,
    #[serde(default)]
    entries: Vec<ReportEntry>,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    line: usize,
    #[serde(default)]
    traceback: String,
}

#[derive(Deserialize)]
struct ReportEntry {
    name: String,
    kind: String,
    values: Vec<String>,
    line: usize,
}

fn into_conf(report: Report, target: &str, named: PathBuf) -> Result<Conf, ConfError> {
    let path = report.file.clone().unwrap_or_else(|| named.clone());
    if !report.ok {
        let exception = if report.message.is_empty() {
            report.kind
        } else {
            format!("{}: {}", report.kind, report.message)
        };
        return Err(ConfError::Raised {
            file: path,
            line: report.line,
            exception,
            traceback: report.traceback,
        });
    }
    let file = match target.strip_prefix("python:") {
        Some(name) => ConfSource::Module {
            name: name.to_owned(),
            path: report.file.clone(),
        },
        None => ConfSource::File(path.clone()),
    };
    let mut entries = Vec::new();
    let absolute_path = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
    for mut e in report.entries {
        let known = catalog::setting(&e.name);
        // A worker-side hook's value is the file that defines it: the workers run it from there.
        let hook = e.name.as_str();
        if e.kind == "callable"
            && (catalog::WORKER_HOOKS.contains(&hook) || catalog::MASTER_HOOKS.contains(&hook))
        {
            e.values = vec![absolute_path.display().to_string()];
        }
        // gunicorn ignores callables it has no setting for; report only those that may be a
        // misspelt hook, so that `post_forks` is not silently dropped.
        if e.kind == "callable" && known.is_none() && !catalog::is_hook_or_near(&e.name) {
            continue;
        }
        let origin = Origin::File {
            path: path.clone(),
            line: e.line,
        };
        let split = e.kind != "list" || known.is_none_or(|s| s.repeatable);
        if split {
            entries.extend(
                e.values
                    .into_iter()
                    .map(|v| Entry::new(&e.name, v, origin.clone())),
            );
        } else {
            entries.push(Entry::new(e.name, e.values.join(","), origin));
        }
    }
    Ok(Conf { entries, file })
}

/// One pipe's bytes up to a limit; the rest is read and dropped so the writer never blocks.
struct Captured {
    bytes: Vec<u8>,
    limit: usize,
    too_big: bool,
}

impl Captured {
    fn new(limit: usize) -> Self {
        Captured {
            bytes: Vec::new(),
            limit,
            too_big: false,
        }
    }

    fn take(&mut self, chunk: &[u8]) {
        let room = self.limit - self.bytes.len().min(self.limit);
        if chunk.len() > room {
            self.too_big = true;
        }
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
}

enum Collect {
    Timeout,
    Io(std::io::Error),
}

/// Reads the child's stdout and stderr until both close and it has exited, or kills its
/// process group at the deadline. Either way nothing of its group survives: what the file
/// started and left running is killed while the child, a zombie not yet reaped, still pins
/// the group's id (so the kill can never reach an unrelated process that reused it).
fn collect(
    mut child: Child,
    timeout: Duration,
) -> Result<(Option<ExitStatus>, Captured, Captured), Collect> {
    let deadline = Instant::now() + timeout;
    let pid = Pid::from_raw(child.id() as i32);
    let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
        kill_group(pid);
        let _ = child.wait();
        return Err(Collect::Io(std::io::Error::other("pipes missing")));
    };
    let mut stdout = Captured::new(REPORT_LIMIT);
    let mut stderr = Captured::new(STDERR_LIMIT);
    let (mut out_open, mut err_open) = (true, true);
    let mut exited = false;
    let mut buf = vec![0u8; 64 << 10];
    let result = loop {
        if !exited && has_exited(pid) {
            exited = true;
            // A grandchild may still hold the pipes open: end it so they close.
            kill_group(pid);
        }
        if exited && !out_open && !err_open {
            break Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            break Err(Collect::Timeout);
        }
        let wait = (deadline - now).min(EXIT_CHECK);
        let mut fds = Vec::with_capacity(2);
        if out_open {
            fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
        }
        if err_open {
            fds.push(PollFd::new(err.as_fd(), PollFlags::POLLIN));
        }
        if fds.is_empty() {
            // Both pipes closed and the child runs on (it closed its stdio): nothing to
            // read, so wait for its exit a slice at a time.
            std::thread::sleep(wait);
            continue;
        }
        let poll_wait = PollTimeout::try_from(wait).unwrap_or(PollTimeout::ZERO);
        match poll(&mut fds, poll_wait) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => break Err(Collect::Io(e.into())),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut ready = ready.into_iter();
        if out_open && ready.next() == Some(true) {
            match read_some(&mut out, &mut buf, &mut stdout) {
                Ok(open) => out_open = open,
                Err(e) => break Err(Collect::Io(e)),
            }
        }
        if err_open && ready.next() == Some(true) {
            match read_some(&mut err, &mut buf, &mut stderr) {
                Ok(open) => err_open = open,
                Err(e) => break Err(Collect::Io(e)),
            }
        }
    };
    kill_group(pid);
    // In the master a reload reads the config while the master's reaper (`waitpid(-1)`) runs:
    // the status may be gone already (ECHILD). The report on stdout is what counts.
    let status = match child.wait() {
        Ok(status) => Some(status),
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => None,
        Err(e) => return Err(Collect::Io(e)),
    };
    result.map(|()| (status, stdout, stderr))
}

/// Whether the child has exited, without reaping it (`WNOWAIT`), so that its process group
/// id stays reserved until [`kill_group`] has run. ECHILD means another waiter (the master's
/// reaper) has reaped it: it has exited.
fn has_exited(pid: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(pid), flags) {
        Ok(WaitStatus::StillAlive) => false,
        Ok(_) | Err(nix::errno::Errno::ECHILD) => true,
        Err(_) => false,
    }
}

/// Reads what is there; false once the pipe is closed.
fn read_some(pipe: &mut impl Read, buf: &mut [u8], into: &mut Captured) -> std::io::Result<bool> {
    match pipe.read(buf) {
        Ok(0) => Ok(false),
        Ok(n) => {
            into.take(&buf[..n]);
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
        Err(e) => Err(e),
    }
}

fn kill_group(group: Pid) {
    // ESRCH once the group is empty, which is the usual case: nothing to do.
    let _ = killpg(group, Signal::SIGKILL);
}

#[cfg(test)]
mod tests;
