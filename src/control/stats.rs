//! uWSGI's stats server (`--stats ADDR`): each connection gets one JSON document describing the
//! master and its workers, in the shape uWSGI writes, so `uwsgitop` and other tools that read
//! uWSGI's stats work unchanged; with `--stats-http` the document comes as an HTTP response.
//!
//! The master's loop is asked for its status as the control socket asks ([`Call`]); turning the
//! answer into uWSGI's shape ([`uwsgi_json`]) is pure, and the per-worker `/proc` reads (VSZ)
//! happen on the connection's task. Connections are bounded ([`MAX_CONNECTIONS`]) and each has
//! [`IO_TIMEOUT`] to be answered, so a client that never reads cannot hold the master's
//! resources.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::messages::{Reply, Request, StatusReport};
use super::server::Call;
use crate::config::ListenAddr;

/// Stats connections answered at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Time to read an HTTP request head and to write the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Most of an HTTP request head read before answering.
const HEAD_LIMIT: usize = 8192;

/// A bound stats or metrics listener; a unix socket's file is removed when this is dropped.
pub struct Bound {
    unix_path: Option<PathBuf>,
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A connection of either kind of listener.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// Binds `addr` (TCP, or a unix socket path: a stale socket file is replaced) and runs
/// `answer` on each connection, at most [`MAX_CONNECTIONS`] at once (more are closed at once),
/// each within [`IO_TIMEOUT`].
pub(super) fn listen<F, Fut>(addr: &ListenAddr, answer: F) -> std::io::Result<Bound>
where
    F: Fn(Box<dyn Conn>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let answer = Arc::new(answer);
    let admit = move |conn: Box<dyn Conn>| {
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            return;
        };
        let work = answer(conn);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(IO_TIMEOUT, work).await;
        });
    };
    match addr {
        ListenAddr::Tcp(a) => {
            let listener = std::net::TcpListener::bind(a)?;
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => admit(Box::new(stream)),
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            });
            Ok(Bound { unix_path: None })
        }
        ListenAddr::Unix(path) => {
            if std::fs::symlink_metadata(path).is_ok()
                && std::os::unix::net::UnixStream::connect(path).is_err()
            {
                std::fs::remove_file(path)?;
            }
            let listener = std::os::unix::net::UnixListener::bind(path)?;
            listener.set_nonblocking(true)?;
            let listener = tokio::net::UnixListener::from_std(listener)?;
            tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => admit(Box::new(stream)),
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            });
            Ok(Bound {
                unix_path: Some(path.clone()),
            })
        }
    }
}

/// Binds `addr` and serves stats from the master's status, answered through `calls`.
pub fn serve(
    addr: &ListenAddr,
    http: bool,
    calls: mpsc::UnboundedSender<Call>,
) -> std::io::Result<Bound> {
    listen(addr, move |conn| answer(conn, http, calls.clone()))
}

/// Asks the master's loop for its status; `None` if it is stopping.
pub(super) async fn status(calls: &mpsc::UnboundedSender<Call>) -> Option<StatusReport> {
    let (tx, rx) = oneshot::channel();
    calls
        .send(Call {
            request: Request::Status,
            reply: tx,
        })
        .ok()?;
    match rx.await {
        Ok(Reply::Status(report)) => Some(report),
        _ => None,
    }
}

async fn answer(mut stream: Box<dyn Conn>, http: bool, calls: mpsc::UnboundedSender<Call>) {
    if http {
        read_head(&mut stream).await;
    }
    let Some(report) = status(&calls).await else {
        return;
    };
    let mut doc = uwsgi_json(&report, &Host::current());
    add_vsz(&mut doc);
    let body = doc.to_string();
    let out = if http {
        format!(
            "HTTP/1.0 200 OK\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    } else {
        body
    };
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads an HTTP request head, up to its blank line or [`HEAD_LIMIT`]; what was read.
pub(super) async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < HEAD_LIMIT && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head
}

/// What the document says about the master's process.
#[derive(Debug, Clone)]
pub struct Host {
    /// `uid`.
    pub uid: u32,
    /// `gid`.
    pub gid: u32,
    /// `cwd`.
    pub cwd: String,
}

impl Host {
    fn current() -> Host {
        Host {
            // SAFETY: getuid and getgid cannot fail and touch nothing.
            uid: unsafe { libc::getuid() },
            // SAFETY: as above.
            gid: unsafe { libc::getgid() },
            cwd: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
        }
    }
}

/// The status in uWSGI's stats shape (the fields uwsgitop and uWSGI's other readers use), with
/// segue's generations and reloads as extra keys. Counters uWSGI keeps that segue does not
/// (signals, per-thread request counts) are 0.
pub fn uwsgi_json(report: &StatusReport, host: &Host) -> Value {
    let workers: Vec<Value> = report
        .workers
        .iter()
        .map(|w| {
            let status = match w.state.as_str() {
                "ready" if w.in_flight > 0 => "busy",
                "ready" => "idle",
                other => other,
            };
            let cores: Vec<Value> = (0..w.threads.max(1) as u64)
                .map(|id| {
                    json!({
                        "id": id,
                        "requests": 0,
                        "static_requests": 0,
                        "routed_requests": 0,
                        "offloaded_requests": 0,
                        "write_errors": 0,
                        "read_errors": 0,
                        "in_request": u8::from(id < w.in_flight),
                        "vars": [],
                        "req_info": {},
                    })
                })
                .collect();
            json!({
                "id": w.id,
                "pid": w.pid,
                "accepting": u8::from(w.state == "ready"),
                "requests": w.requests,
                "delta_requests": 0,
                "exceptions": w.errors_5xx,
                "harakiri_count": w.harakiri_count,
                "signals": 0,
                "signal_queue": 0,
                "status": status,
                "rss": w.rss_kib * 1024,
                "vsz": 0,
                "running_time": w.busy_us,
                "last_spawn": w.started_unix,
                "respawn_count": w.respawns,
                "tx": w.tx_bytes,
                "avg_rt": w.busy_us.checked_div(w.requests).unwrap_or(0),
                "apps": [],
                "cores": cores,
                "generation": w.generation,
                "connections": w.connections,
            })
        })
        .collect();
    let sockets: Vec<Value> = report
        .listeners
        .iter()
        .map(|l| {
            let (proto, name) = l.split_once("://").unwrap_or(("http", l.as_str()));
            json!({"name": name, "proto": proto, "queue": 0, "max_queue": 0, "shared": 0, "can_offload": 0})
        })
        .collect();
    json!({
        "version": format!("segue-{}", env!("CARGO_PKG_VERSION")),
        "listen_queue": report.scaling.queued,
        "listen_queue_errors": 0,
        "signal_queue": 0,
        "load": report.scaling.queued,
        "pid": report.pid,
        "uid": host.uid,
        "gid": host.gid,
        "cwd": host.cwd,
        "locks": [],
        "sockets": sockets,
        "workers": workers,
        "segue": {
            "serving_generation": report.serving,
            "workers_wanted": report.workers_wanted,
            "ready": report.ready,
            "reloading": report.reloading,
            "reloads": report.reloads,
        },
    })
}

/// Fills each worker's `vsz` from `/proc/PID/statm`.
fn add_vsz(doc: &mut Value) {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    let Some(workers) = doc["workers"].as_array_mut() else {
        return;
    };
    for w in workers {
        let Some(pid) = w["pid"].as_i64().filter(|p| *p > 0) else {
            continue;
        };
        let pages = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        if let Some(pages) = pages {
            w["vsz"] = json!(pages * page);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::messages::WorkerReport;

    fn worker(id: u64, state: &str, in_flight: u64) -> WorkerReport {
        WorkerReport {
            id,
            pid: 100 + id as i32,
            generation: 1,
            state: state.into(),
            requests: 10,
            uptime_s: 3.0,
            rss_kib: 2048,
            connections: 1,
            log_dropped: 0,
            in_flight,
            tx_bytes: 5000,
            busy_us: 20_000,
            errors_5xx: 2,
            started_unix: 1_700_000_000,
            respawns: 1,
            harakiri_count: 0,
            threads: 2,
            queued: 0,
        }
    }

    #[test]
    fn workers_in_uwsgis_shape() {
        let report: StatusReport = serde_json::from_value(json!({
            "pid": 42, "serving": 3, "workers_wanted": 2, "ready": true,
            "listeners": ["127.0.0.1:8000", "uwsgi://127.0.0.1:3031"],
            "reloading": null, "workers": [], "reloads": [], "crash_loops": [],
            "upgrades": 0, "upgrade_error": null, "daemons": [], "crons": [],
            "scaling": {"asleep": false, "asleep_s": null, "idle_s": null, "quiet_s": null, "cheaper": null, "queued": 7}
        }))
        .unwrap();
        let mut report = report;
        report.workers = vec![
            worker(1, "ready", 1),
            worker(2, "ready", 0),
            worker(3, "starting", 0),
        ];
        let host = Host {
            uid: 1000,
            gid: 1000,
            cwd: "/srv".into(),
        };
        let doc = uwsgi_json(&report, &host);
        assert_eq!(doc["listen_queue"], 7);
        assert_eq!(doc["pid"], 42);
        assert_eq!(doc["sockets"][1]["proto"], "uwsgi");
        let w = &doc["workers"];
        assert_eq!(
            (
                w[0]["status"].as_str(),
                w[1]["status"].as_str(),
                w[2]["status"].as_str()
            ),
            (Some("busy"), Some("idle"), Some("starting"))
        );
        assert_eq!(w[0]["rss"], 2048 * 1024);
        assert_eq!(w[0]["avg_rt"], 2000);
        assert_eq!(w[0]["cores"].as_array().unwrap().len(), 2);
        assert_eq!(w[0]["cores"][0]["in_request"], 1);
        assert_eq!(w[0]["cores"][1]["in_request"], 0);
        assert_eq!(w[2]["accepting"], 0);
        assert_eq!(doc["segue"]["serving_generation"], 3);
    }
}
