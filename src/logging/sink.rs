//! Where log lines go: stderr, stdout, or a file that logrotate may move away.
//!
//! A file is written by a thread of its own, fed through a bounded queue, so that a slow or
//! full disk never stalls a request: when the queue is full the line is dropped and counted,
//! and the writer notes how many were lost in the file as soon as it can write again. SIGUSR1
//! (`reopen`) makes the writer open the path again, after `mv access.log access.log.1`.
//!
//! A zygote (`--preload`) must stay single-threaded until it forks, so until a process starts
//! the writer ([`Sink::start`]) lines are appended directly, opening the file for each one:
//! slower, but the zygote logs a handful of lines, and each lands in whatever file the path
//! names at that moment.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::config::LogTarget;

/// Lines a file's queue holds before new ones are dropped.
pub const QUEUE_LINES: usize = 8192;

/// What the writer thread gets, in order: a reopen lands between the lines written before and
/// after it.
#[derive(Debug)]
enum Message {
    Line(Vec<u8>),
    Reopen,
}

/// One log destination.
#[derive(Debug)]
pub struct Sink {
    target: LogTarget,
    /// Set once the writer thread runs.
    queue: OnceLock<Sender<Message>>,
    /// Asks the writer to open the path again before its next write, when the queue had no
    /// room for [`Message::Reopen`].
    reopen: AtomicBool,
    /// Lines lost (queue full, or the file could not be written).
    dropped: AtomicU64,
}

impl Sink {
    /// A sink for `target`; a file is not opened until the first line (or [`Sink::start`]).
    pub fn new(target: LogTarget) -> Sink {
        Sink {
            target,
            queue: OnceLock::new(),
            reopen: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        }
    }

    /// Where it writes.
    pub fn target(&self) -> &LogTarget {
        &self.target
    }

    /// Lines lost so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes one line (`line` ends with its newline). Never waits for a file.
    pub fn write(&'static self, line: Vec<u8>) {
        match &self.target {
            LogTarget::Stderr => {
                let _ = io::stderr().lock().write_all(&line);
            }
            LogTarget::Stdout => {
                let mut out = io::stdout().lock();
                let _ = out.write_all(&line).and_then(|()| out.flush());
            }
            LogTarget::File(path) => match self.queue.get() {
                Some(queue) => match queue.try_send(Message::Line(line)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                },
                None => {
                    if append(path).and_then(|mut f| f.write_all(&line)).is_err() {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
        }
    }

    /// Starts the writer thread of a file sink (nothing for the standard streams). Only in a
    /// process that will not fork without exec: the master, a worker.
    pub fn start(&'static self) -> io::Result<()> {
        let LogTarget::File(path) = &self.target else {
            return Ok(());
        };
        if self.queue.get().is_some() {
            return Ok(());
        }
        let (tx, rx) = bounded(QUEUE_LINES);
        let file = append(path).ok();
        std::thread::Builder::new()
            .name("segue-log".into())
            .spawn(move || self.run(path, file, rx))?;
        let _ = self.queue.set(tx);
        Ok(())
    }

    /// Opens the file again before the next line (logrotate moved it). Never waits.
    pub fn reopen(&self) {
        if let Some(queue) = self.queue.get() {
            if queue.try_send(Message::Reopen).is_ok() {
                return;
            }
        }
        // Full: the writer is busy and sees the flag before its next line.
        self.reopen.store(true, Ordering::Relaxed);
    }

    fn run(&self, path: &Path, mut file: Option<File>, rx: Receiver<Message>) {
        let mut reported = 0;
        for message in rx {
            let line = match message {
                Message::Reopen => {
                    self.reopen.store(false, Ordering::Relaxed);
                    file = append(path).ok();
                    continue;
                }
                Message::Line(line) => line,
            };
            if self.reopen.swap(false, Ordering::Relaxed) || file.is_none() {
                file = append(path).ok();
            }
            let Some(f) = file.as_mut() else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let dropped = self.dropped.load(Ordering::Relaxed);
            if dropped > reported {
                let note = format!(
                    "segue: {} log line(s) dropped: {} could not keep up (or could not be written)\n",
                    dropped - reported,
                    path.display()
                );
                if f.write_all(note.as_bytes()).is_ok() {
                    reported = dropped;
                }
            }
            if f.write_all(&line).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The path of a file target, for messages and `--capture-output`.
pub fn file_of(target: &LogTarget) -> Option<&PathBuf> {
    match target {
        LogTarget::File(p) => Some(p),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leak(target: LogTarget) -> &'static Sink {
        Box::leak(Box::new(Sink::new(target)))
    }

    fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        for _ in 0..500 {
            if cond() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn direct_then_queued_and_reopened_after_a_move() {
        let dir = std::env::temp_dir().join(format!("segue-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let sink = leak(LogTarget::File(path.clone()));
        sink.write(b"direct\n".to_vec());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "direct\n");
        sink.start().unwrap();
        sink.write(b"queued\n".to_vec());
        assert!(eventually(
            || std::fs::read_to_string(&path).unwrap() == "direct\nqueued\n"
        ));
        // logrotate: move, then SIGUSR1.
        std::fs::rename(&path, dir.join("access.log.1")).unwrap();
        sink.write(b"still old\n".to_vec());
        assert!(eventually(|| std::fs::read_to_string(
            dir.join("access.log.1")
        )
        .unwrap()
        .ends_with("still old\n")));
        sink.reopen();
        sink.write(b"new file\n".to_vec());
        assert!(eventually(|| std::fs::read_to_string(&path)
            .ok()
            .as_deref()
            == Some("new file\n")));
        assert_eq!(sink.dropped(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_that_cannot_be_written_drops_and_counts() {
        let sink = leak(LogTarget::File(PathBuf::from("/nonexistent-dir/segue.log")));
        sink.write(b"x\n".to_vec());
        assert_eq!(sink.dropped(), 1);
        sink.start().unwrap();
        sink.write(b"y\n".to_vec());
        assert!(eventually(|| sink.dropped() == 2));
    }
}
