//! Log setup, identical in the master and the workers so their lines interleave readably on
//! one stderr (or one `--error-logfile`). Workers add `generation`, `worker` and `pid` through
//! a span. Access lines ([`access`]) are written by segue itself, in `--access-logformat`, to
//! `--access-logfile` or else into the error log; files are written off the request path
//! ([`sink`]) and opened again on SIGUSR1 ([`reopen`]).

pub mod access;
pub mod sink;

use std::io::{self, IsTerminal};
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogConfig, LogFormat, LogTarget};
use sink::Sink;

static ERROR: OnceLock<Sink> = OnceLock::new();
static ACCESS: OnceLock<Sink> = OnceLock::new();
/// `--capture-output`'s file, put under stdout and stderr again at each reopen.
static CAPTURE: OnceLock<std::path::PathBuf> = OnceLock::new();

fn error_sink() -> &'static Sink {
    ERROR.get_or_init(|| Sink::new(LogTarget::Stderr))
}

/// Installs the global subscriber and the log destinations. `wsgi.errors` lines are ordinary
/// events with their own target (`segue::wsgi_errors`).
pub fn init(log: &LogConfig) {
    let _ = ERROR.set(Sink::new(log.error_logfile.clone()));
    if let Some(target) = &log.access_logfile {
        let _ = ACCESS.set(Sink::new(target.clone()));
    }
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|e| {
        eprintln!(
            "segue: invalid --log-level '{}': {e}; using 'info'",
            log.level
        );
        EnvFilter::new("info")
    });
    let terminal = log.error_logfile == LogTarget::Stderr && io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(ErrorLog);
    let _ = match log.format {
        LogFormat::Text => builder.with_ansi(terminal).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Opens each log file once, as the processes will, so that a path that cannot be written (a
/// missing directory, no permission) stops the start with its reason instead of dropping every
/// line later.
pub fn check_files(log: &LogConfig) -> Result<(), String> {
    let files = [
        ("--error-logfile", sink::file_of(&log.error_logfile)),
        (
            "--access-logfile",
            log.access_logfile.as_ref().and_then(sink::file_of),
        ),
    ];
    for (option, path) in files {
        let Some(path) = path else { continue };
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {option} {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Starts the writer threads of file destinations. Not in a zygote, which must stay
/// single-threaded until it forks (its lines are appended directly meanwhile).
pub fn start_writers() {
    for sink in [ERROR.get(), ACCESS.get()].into_iter().flatten() {
        if let Err(e) = sink.start() {
            eprintln!(
                "segue: cannot start the log writer thread ({e}): lines are written directly"
            );
        }
    }
}

/// Opens every log file again (SIGUSR1, after logrotate moved them): the next line goes to a
/// new file at the same path. Never waits.
pub fn reopen() {
    for sink in [ERROR.get(), ACCESS.get()].into_iter().flatten() {
        sink.reopen();
    }
    if let Some(path) = CAPTURE.get() {
        if let Err(e) = redirect_output(path) {
            tracing::warn!("cannot reopen {} for --capture-output: {e}", path.display());
        }
    }
}

/// Writes one access line (without its newline): to `--access-logfile`, else into the error
/// log.
pub fn access(mut line: String) {
    line.push('\n');
    ACCESS
        .get()
        .unwrap_or_else(error_sink)
        .write(line.into_bytes());
}

/// Log lines dropped so far because a log file could not keep up.
pub fn dropped() -> u64 {
    [ERROR.get(), ACCESS.get()]
        .into_iter()
        .flatten()
        .map(Sink::dropped)
        .sum()
}

/// `--capture-output`: puts the error log file under this process's stdout and stderr, so the
/// app's `print` and C libraries' output land there (as gunicorn does). Nothing when the error
/// log is stderr itself.
pub fn capture_output(log: &LogConfig) -> io::Result<()> {
    let Some(path) = sink::file_of(&log.error_logfile) else {
        return Ok(());
    };
    redirect_output(path)?;
    let _ = CAPTURE.set(path.clone());
    Ok(())
}

fn redirect_output(path: &std::path::Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2 onto the standard streams, which this process owns; `file` stays open
        // until after the calls.
        if unsafe { libc::dup2(file.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The subscriber's writer: each event is collected, then handed to the error log's sink as
/// one line.
struct ErrorLog;

impl<'a> MakeWriter<'a> for ErrorLog {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter(Vec::new())
    }
}

/// One event's bytes, written to the error log when the subscriber is done with it.
struct LineWriter(Vec<u8>);

impl io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            error_sink().write(std::mem::take(&mut self.0));
        }
    }
}

/// `--name`: the kernel's name of this process (`comm`: what `ps -e`, `top`, `pgrep` and
/// `/proc/PID/comm` show), so an operator can tell the master and the workers of one server
/// from another's. The kernel keeps 15 bytes; longer names are cut at a character boundary,
/// keeping the end (` w3`) of a worker's name.
pub fn set_process_name(name: &str) {
    let mut bytes: Vec<u8> = Vec::new();
    let (head, tail) = match name.rsplit_once(' ') {
        Some((h, t)) if t.starts_with('w') && t[1..].bytes().all(|b| b.is_ascii_digit()) => {
            (h, format!(" {t}"))
        }
        _ => (name, String::new()),
    };
    let room = 15usize.saturating_sub(tail.len());
    for c in head.chars() {
        if bytes.len() + c.len_utf8() > room {
            break;
        }
        let mut buf = [0u8; 4];
        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    bytes.extend_from_slice(tail.as_bytes());
    bytes.retain(|b| *b != 0);
    if let Ok(c) = std::ffi::CString::new(bytes) {
        if let Err(e) = nix::sys::prctl::set_name(&c) {
            tracing::warn!("cannot set the process name to {name:?}: {e}");
        }
    }
}
