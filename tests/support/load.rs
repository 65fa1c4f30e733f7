//! Bounded load on 127.0.0.1 for reload tests, and a deploy directory whose version changes.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::*;

/// One response seen by the load generator.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When the request was sent.
    pub sent: Instant,
    pub status: u16,
    pub body: String,
}

/// What a load run observed.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub seen: Vec<Seen>,
    /// Requests that got no complete response, with why.
    pub failures: Vec<String>,
}

impl LoadReport {
    pub fn ok(&self) -> usize {
        self.seen.iter().filter(|s| s.status == 200).count()
    }

    /// Responses that were not 200, as failures.
    pub fn bad_statuses(&self) -> Vec<&Seen> {
        self.seen.iter().filter(|s| s.status != 200).collect()
    }
}

/// A bounded HTTP load on 127.0.0.1: keep-alive clients that reconnect when told to close,
/// and clients that open a new connection per request. Stops on `stop()` or after `limit`.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<LoadReport>>,
}

impl Load {
    pub fn start(
        addr: SocketAddr,
        path: &str,
        keep_alive: usize,
        fresh: usize,
        limit: Duration,
    ) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let deadline = Instant::now() + limit;
        let mut threads = vec![];
        for i in 0..keep_alive + fresh {
            let (stop, path) = (stop.clone(), path.to_string());
            let persistent = i < keep_alive;
            threads.push(std::thread::spawn(move || {
                let mut report = LoadReport::default();
                let mut conn: Option<Conn> = None;
                // Bounded in count and time.
                for _ in 0..200_000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                        break;
                    }
                    let sent = Instant::now();
                    let result = if persistent {
                        let c = match conn.as_mut() {
                            Some(c) => c,
                            None => match TcpStream::connect(addr) {
                                Ok(s) => {
                                    s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
                                    conn.insert(Conn {
                                        reader: BufReader::new(s),
                                    })
                                }
                                Err(e) => {
                                    report.failures.push(format!("connect: {e}"));
                                    continue;
                                }
                            },
                        };
                        let sent_ok = c.reader.get_mut().write_all(
                            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes(),
                        );
                        match sent_ok {
                            Err(e) => Err(format!("send: {e}")),
                            Ok(()) => c.try_read_response(false),
                        }
                    } else {
                        try_get(addr, &path)
                    };
                    match result {
                        Ok(r) => {
                            if r.header("connection")
                                .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                            {
                                conn = None;
                            }
                            report.seen.push(Seen {
                                sent,
                                status: r.status,
                                body: r.text(),
                            });
                        }
                        Err(e) => {
                            report.failures.push(format!(
                                "{} client: {e}",
                                if persistent {
                                    "keep-alive"
                                } else {
                                    "new-connection"
                                }
                            ));
                            conn = None;
                        }
                    }
                }
                report
            }));
        }
        Load { stop, threads }
    }

    pub fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = LoadReport::default();
        for t in self.threads {
            let r = t.join().expect("load thread panicked");
            all.seen.extend(r.seen);
            all.failures.extend(r.failures);
        }
        all
    }
}

/// A deploy directory holding `versioned.py` and its `version.txt`.
pub struct Deploy {
    /// The directory (the server's --chdir).
    pub root: PathBuf,
}

impl Deploy {
    /// A file path inside the deploy directory.
    pub fn path(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }

    pub fn new(version: &str) -> Deploy {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("segue-deploy-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let d = Deploy { root };
        d.release(&d.root, version);
        d
    }

    /// Puts a release (the app and its version) into `dir`.
    pub fn release(&self, dir: &Path, version: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(apps_dir().join("versioned.py"), dir.join("versioned.py")).unwrap();
        self.set(dir, version);
    }

    fn set(&self, dir: &Path, version: &str) {
        // Write then rename, as a deploy tool would: a worker never reads half a file.
        let tmp = dir.join("version.txt.tmp");
        std::fs::write(&tmp, version).unwrap();
        std::fs::rename(tmp, dir.join("version.txt")).unwrap();
    }

    /// Changes the version in place, as a deploy that edits files would.
    pub fn version(&self, version: &str) {
        self.set(&self.root, version);
    }
}

impl Drop for Deploy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
