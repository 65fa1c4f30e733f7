//! The OS side of attached daemons, cron runs ([`super::daemons`] and [`super::cron`]
//! decide) and the emperor's vassals: starting one in a process group of its own with its
//! output going into segue's log, and reading a smart daemon's pidfile.
//! Nothing here waits on the master's loop: output is read and pidfiles are checked by tasks.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::daemons::DaemonId;
use super::effect::Event;

/// The longest line of a daemon's output logged as one; longer ones are logged in pieces.
const MAX_LINE: usize = 16 << 10;

/// The most of a pidfile read: a pid and a newline, with room to spare.
const MAX_PIDFILE: u64 = 64;

/// What a side process is, for its log lines' field (`daemon=` or `cron=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// An attached daemon.
    Daemon,
    /// A cron run.
    Cron,
    /// A gunicorn arbiter hook's process.
    Hook,
    /// An emperor's vassal: its lines are already log lines, copied to stderr as they are
    /// (`raw`, for JSON logs) or behind `[its file] `.
    Vassal {
        /// Copy without a prefix.
        raw: bool,
    },
}

/// How a side process is started beyond its command (`attach-daemon2`'s keys).
#[derive(Debug, Clone, Copy, Default)]
pub struct Launch<'a> {
    /// Its working directory; the master's own when `None`.
    pub dir: Option<&'a Path>,
    /// It keeps the master's stdin instead of `/dev/null`.
    pub stdin: bool,
    /// The user it runs as.
    pub uid: Option<u32>,
    /// The group it runs as.
    pub gid: Option<u32>,
    /// It may outlive the master (gunicorn's `on_exit` hook runs as the master exits): no
    /// `PR_SET_PDEATHSIG`.
    pub outlives_master: bool,
}

/// Starts `command` by `/bin/sh -c` as `how` says, in a new process group, stdin from
/// /dev/null (unless `how.stdin`), stdout and stderr logged line by line. Returns its pid.
pub fn start(command: &str, side: Side, how: Launch<'_>) -> std::io::Result<i32> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(command);
    // systemd (or an emperor) talks to the master only: a daemon must not speak for it.
    for var in crate::systemd::MASTER_ONLY_ENV {
        cmd.env_remove(var);
    }
    spawn(cmd, side, Arc::from(command), how)
}

/// Starts a prepared `cmd` as [`start`] does; `name` tags its output.
pub fn spawn(
    mut cmd: Command,
    side: Side,
    name: Arc<str>,
    how: Launch<'_>,
) -> std::io::Result<i32> {
    cmd.stdin(if how.stdin {
        Stdio::inherit()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    // Its own group: a stop or a reload signals everything it started, and a Ctrl-C at
    // the terminal goes to segue, which stops it in order.
    .process_group(0);
    let outlives_master = how.outlives_master;
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        cmd.pre_exec(move || {
            if outlives_master {
                return Ok(());
            }
            // If the master dies without stopping it, the daemon is told (SIGTERM) rather than
            // left running unsupervised. The main thread forks it (the master's runtime is
            // single-threaded) and survives an in-place upgrade's exec, so this fires only
            // when the master is really gone.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    if let Some(dir) = how.dir {
        cmd.current_dir(dir);
    }
    // The standard library switches the group, then the user, and drops root's supplementary
    // groups when it leaves root, before the `pre_exec` hook runs.
    if let Some(gid) = how.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = how.uid {
        cmd.uid(uid);
    }
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    if let Some(out) = child.stdout.take() {
        log_output(OwnedFd::from(out), side, name.clone(), pid, "stdout");
    }
    if let Some(err) = child.stderr.take() {
        log_output(OwnedFd::from(err), side, name, pid, "stderr");
    }
    // The reaper collects its status; the handle is dropped unwaited.
    drop(child);
    Ok(pid)
}

/// Logs what a daemon writes to `fd`, a line per event, tagged with the daemon.
fn log_output(fd: OwnedFd, side: Side, daemon: Arc<str>, pid: i32, stream: &'static str) {
    let Ok(pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        tracing::warn!(daemon = %daemon, pid, "cannot read the daemon's {stream}: its output is lost");
        return;
    };
    tokio::spawn(async move {
        let mut pipe = pipe;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            let n = match pipe.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                emit(side, &daemon, pid, stream, &line[..line.len() - 1]);
            }
            if buf.len() >= MAX_LINE {
                emit(side, &daemon, pid, stream, &buf);
                buf.clear();
            }
        }
        if !buf.is_empty() {
            emit(side, &daemon, pid, stream, &buf);
        }
    });
}

fn emit(side: Side, name: &str, pid: i32, stream: &'static str, line: &[u8]) {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches('\r');
    match side {
        Side::Daemon => tracing::info!(daemon = name, pid, stream, "{line}"),
        Side::Cron => tracing::info!(cron = name, pid, stream, "{line}"),
        Side::Hook => tracing::info!(hook = name, pid, stream, "{line}"),
        Side::Vassal { raw } => {
            use std::io::Write;
            let text = if raw {
                format!("{line}\n")
            } else {
                format!("[{name}] {line}\n")
            };
            // Like the log's own writer: a closed or full stderr loses the line, nothing else.
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }
}

/// Reads `path` and checks its pid off the loop; the answer comes back as
/// [`Event::PidfileRead`].
pub fn read_pidfile(id: DaemonId, path: PathBuf, events: mpsc::UnboundedSender<Event>) {
    tokio::spawn(async move {
        let alive = match tokio::fs::File::open(&path).await {
            Ok(f) => {
                let mut text = String::new();
                let read = f.take(MAX_PIDFILE).read_to_string(&mut text).await;
                read.ok().and_then(|_| alive_pid(&text))
            }
            Err(_) => None,
        };
        let _ = events.send(Event::PidfileRead { id, alive });
    });
}

/// `attach-daemon2`'s `daemonize`: segue writes the daemon's pidfile itself, as uWSGI does. A
/// failure is logged; the daemon runs, and is supervised as the master's child regardless.
/// Written off the loop.
pub fn write_pidfile(path: &Path, pid: i32) {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = std::fs::write(&path, format!("{pid}\n")) {
            tracing::warn!(
                pid,
                "cannot write the daemon's pidfile {}: {e}",
                path.display()
            );
        }
    });
}

/// The pid written in a pidfile, if that process exists. Only a pid above 1 counts: 0, 1 and
/// negative numbers would name process groups or init when signalled.
fn alive_pid(text: &str) -> Option<i32> {
    let pid: i32 = text.trim().parse().ok().filter(|p| *p > 1)?;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        // EPERM: it exists, owned by someone else.
        Ok(()) | Err(nix::errno::Errno::EPERM) => Some(pid),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_live_pid_above_one_counts() {
        let me = std::process::id() as i32;
        assert_eq!(alive_pid(&format!("{me}\n")), Some(me));
        for bad in ["", "0", "1", "-5", "abc", "99999999999"] {
            assert_eq!(alive_pid(bad), None, "{bad:?}");
        }
    }
}
