//! The bounded load `segue check-reload` drives: keep-alive clients and clients that open a new
//! connection per request, over 127.0.0.1 only, each outcome classified.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Longest a request may take before it counts as a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A response below 500.
    Ok,
    /// A 5xx response.
    ServerError,
    /// The connection was refused.
    Refused,
    /// The connection was reset.
    Reset,
    /// The server closed the connection without a (complete) response.
    Closed,
    /// No response within the request timeout.
    Timeout,
    /// Anything else.
    Other,
}

impl Outcome {
    /// Whether it counts as a failed request.
    pub fn failed(self) -> bool {
        self != Outcome::Ok
    }
}

/// One request's record.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it was sent, relative to the start of the run.
    pub at: Duration,
    /// How long until the response (or the failure).
    pub latency: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

/// A running load; `stop` collects every sample.
pub struct Load {
    stop: Arc<AtomicBool>,
    /// Requests sent so far, for the progress line.
    pub sent: Arc<AtomicU64>,
    /// Failures so far, for the progress line.
    pub failed: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<Vec<Sample>>>,
}

impl Load {
    /// Starts `concurrency` clients (half keep-alive, at least one of each kind when
    /// concurrency > 1), cycling through `paths`, for at most `limit` and `max_requests`.
    pub fn start(
        addr: SocketAddr,
        paths: Vec<String>,
        concurrency: usize,
        start: Instant,
        limit: Duration,
        max_requests: u64,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let paths = Arc::new(paths);
        let threads = (0..concurrency.max(1))
            .map(|i| {
                let (stop, sent, failed, paths) =
                    (stop.clone(), sent.clone(), failed.clone(), paths.clone());
                let keep_alive = i % 2 == 0;
                std::thread::spawn(move || {
                    let mut samples = Vec::new();
                    let mut conn: Option<BufReader<TcpStream>> = None;
                    let mut n = i;
                    while !stop.load(Ordering::Relaxed)
                        && start.elapsed() < limit
                        && sent.fetch_add(1, Ordering::Relaxed) < max_requests
                    {
                        let path = &paths[n % paths.len()];
                        n += 1;
                        let at = start.elapsed();
                        let t = Instant::now();
                        let outcome = request(addr, path, keep_alive, &mut conn);
                        if outcome.failed() {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        samples.push(Sample {
                            at,
                            latency: t.elapsed(),
                            outcome,
                        });
                    }
                    samples
                })
            })
            .collect();
        Load {
            stop,
            sent,
            failed,
            threads,
        }
    }

    /// Stops the clients and returns every sample, in no particular order.
    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_default())
            .collect()
    }
}

fn classify(e: &std::io::Error) -> Outcome {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => Outcome::Refused,
        ConnectionReset | BrokenPipe | ConnectionAborted => Outcome::Reset,
        WouldBlock | TimedOut => Outcome::Timeout,
        UnexpectedEof => Outcome::Closed,
        _ => Outcome::Other,
    }
}

fn request(
    addr: SocketAddr,
    path: &str,
    keep_alive: bool,
    conn: &mut Option<BufReader<TcpStream>>,
) -> Outcome {
    if conn.is_none() {
        match TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT) {
            Ok(s) => {
                let _ = s.set_read_timeout(Some(REQUEST_TIMEOUT));
                let _ = s.set_nodelay(true);
                *conn = Some(BufReader::new(s));
            }
            Err(e) => return classify(&e),
        }
    }
    let Some(reader) = conn.as_mut() else {
        return Outcome::Other;
    };
    let close = if keep_alive {
        ""
    } else {
        "Connection: close\r\n"
    };
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: segue-check-reload\r\n{close}\r\n"
    );
    let result = reader
        .get_mut()
        .write_all(head.as_bytes())
        .and_then(|_| read_response(reader));
    match result {
        Ok((status, server_closes)) => {
            if !keep_alive || server_closes {
                *conn = None;
            }
            if status >= 500 {
                Outcome::ServerError
            } else {
                Outcome::Ok
            }
        }
        Err(e) => {
            *conn = None;
            classify(&e)
        }
    }
}

/// Reads one response; returns its status and whether the server closes the connection.
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool)> {
    let eof = || {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed without a response",
        )
    };
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(eof());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(eof)?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(eof());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let Some((k, v)) = h.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
        match k.as_str() {
            "content-length" => length = v.parse::<u64>().ok(),
            "transfer-encoding" => chunked = v.ends_with("chunked"),
            "connection" => close = v.contains("close"),
            _ => {}
        }
    }
    if chunked {
        loop {
            let mut size = String::new();
            if r.read_line(&mut size)? == 0 {
                return Err(eof());
            }
            let n = u64::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| eof())?;
            std::io::copy(&mut r.by_ref().take(n + 2), &mut std::io::sink())?;
            if n == 0 {
                break;
            }
        }
    } else if let Some(n) = length {
        if std::io::copy(&mut r.by_ref().take(n), &mut std::io::sink())? < n {
            return Err(eof());
        }
    } else {
        std::io::copy(r, &mut std::io::sink())?;
        close = true;
    }
    Ok((status, close))
}
