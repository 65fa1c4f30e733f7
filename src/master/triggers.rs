//! Reload and stop triggers besides signals and the control socket: `--touch-reload FILE`
//! (reload when its mtime changes, as uWSGI's option) and `--master-fifo PATH` (uWSGI's one-letter
//! commands: `r` respawn reload, `c` chain reload, `q` graceful stop, `Q` quick stop, `+`/`-`
//! workers).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::command::Command;
use super::effect::Event;
use crate::config::ReloadStrategy;

/// How often the touch file is checked.
const TOUCH_POLL: Duration = Duration::from_secs(1);

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Polls `path` and asks for a reload (with `strategy`) whenever its mtime changes. A file
/// that does not exist yet counts as changed when it appears.
pub fn watch_touch_file(
    path: PathBuf,
    strategy: ReloadStrategy,
    events: mpsc::UnboundedSender<Event>,
) {
    tokio::spawn(async move {
        let mut last = mtime(&path);
        let mut tick = tokio::time::interval(TOUCH_POLL);
        loop {
            tick.tick().await;
            let now = mtime(&path);
            if now.is_some() && now != last {
                tracing::info!("{} was touched: reloading", path.display());
                if events
                    .send(Event::Command(
                        Command::Reload {
                            strategy: Some(strategy),
                            wait: false,
                        },
                        None,
                    ))
                    .is_err()
                {
                    return;
                }
            }
            last = now;
        }
    });
}

/// The master FIFO; its file is removed when this is dropped.
pub struct MasterFifo {
    path: PathBuf,
}

impl Drop for MasterFifo {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why the FIFO could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot create --master-fifo '{}': {source}", path.display())]
pub struct FifoError {
    path: PathBuf,
    source: std::io::Error,
}

/// Creates the FIFO at `path` (replacing a stale one) and obeys the letters written to it.
pub fn serve_fifo(
    path: &Path,
    events: mpsc::UnboundedSender<Event>,
) -> Result<MasterFifo, FifoError> {
    let fail = |source: std::io::Error| FifoError {
        path: path.to_owned(),
        source,
    };
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_fifo() {
            return Err(fail(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a FIFO exists there",
            )));
        }
        std::fs::remove_file(path).map_err(fail)?;
    }
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| fail(e.into()))?;
    // Opened read-write so that the last writer closing it does not give us EOF.
    let mut rx = tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(path)
        .map_err(fail)?;
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        loop {
            let n = match rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            for &b in &buf[..n] {
                if matches!(b, b'\n' | b'\r' | b' ') {
                    continue;
                }
                let Some(command) = Command::from_fifo(b) else {
                    tracing::warn!(
                        "master fifo: unknown command {:?} (known: r c q Q + -)",
                        b as char
                    );
                    continue;
                };
                tracing::info!("master fifo: {:?}", b as char);
                if events.send(Event::Command(command, None)).is_err() {
                    return;
                }
            }
        }
    });
    Ok(MasterFifo {
        path: path.to_owned(),
    })
}
