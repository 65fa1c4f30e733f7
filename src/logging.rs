//! Log setup, identical in the master and the workers so their lines interleave readably on
//! one stderr. Workers add `generation`, `worker` and `pid` through a span.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Access lines and `wsgi.errors` are ordinary events with
/// their own targets (`segue::access`, `segue::wsgi_errors`).
pub fn init(log: &LogConfig) {
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|e| {
        eprintln!(
            "segue: invalid --log-level '{}': {e}; using 'info'",
            log.level
        );
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
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
