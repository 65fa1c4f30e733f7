//! What the server wrote to stderr, read by a thread and waited on by tests.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Lines the server wrote to stderr, shared with the reader thread.
#[derive(Default)]
pub struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
    /// Set when segue's stderr reached end of file (it and its workers are gone).
    ended: std::sync::atomic::AtomicBool,
}

impl Log {
    /// A log filled by a thread that reads `stderr` line by line until it ends.
    pub fn reading(stderr: impl Read + Send + 'static) -> Arc<Log> {
        let log = Arc::new(Log::default());
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lines.lock().unwrap().push(line);
                sink.grew.notify_all();
            }
            let _guard = sink.lines.lock().unwrap();
            sink.ended.store(true, Ordering::SeqCst);
            sink.grew.notify_all();
        });
        log
    }

    /// Waits (at most `timeout`) until every line segue wrote has been read: after the master
    /// exits, its last lines may still be in the pipe.
    pub fn wait_ended(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        while !self.ended.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            lines = self.grew.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Waits until a line containing every one of `needles` appears; returns it.
    pub fn wait_for(&self, needles: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| needles.iter().all(|n| l.contains(n))) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = self.grew.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// How many lines contain every one of `needles`.
    pub fn count(&self, needles: &[&str]) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    /// Waits until `count(needles) >= n`.
    pub fn wait_count(&self, needles: &[&str], n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if lines
                .iter()
                .filter(|l| needles.iter().all(|x| l.contains(x)))
                .count()
                >= n
            {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            lines = self.grew.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    pub fn all(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}
