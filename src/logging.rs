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
