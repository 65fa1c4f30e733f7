//! The metrics listener (`--metrics ADDR`), its own socket, never the app's: `GET /metrics`
//! (Prometheus' text format), `/readyz` for load balancers and orchestrators (200 while a
//! generation serves with ready workers, 503 while stopping or with none) and `/livez` (200
//! when the master's loop answers within [`LIVE_WITHIN`]). Connections are bounded and timed as
//! the stats server's ([`super::stats::listen`]).

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::server::Call;
use super::stats::{Bound, Conn, listen, read_head, status};
use crate::config::ListenAddr;
use crate::metrics::exposition::{Kernel, render};

/// How long `/livez` waits for the master's loop.
pub const LIVE_WITHIN: Duration = Duration::from_secs(2);

/// Binds `addr` and answers the metrics paths from the master's status, asked through `calls`.
pub fn serve(addr: &ListenAddr, calls: mpsc::UnboundedSender<Call>) -> std::io::Result<Bound> {
    listen(addr, move |conn| answer(conn, calls.clone()))
}

/// What a path gets: status code, content type, body.
async fn route(path: &str, calls: &mpsc::UnboundedSender<Call>) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    match path {
        "/metrics" => match status(calls).await {
            Some(report) => (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                render(&report, Kernel::read()),
            ),
            None => (503, TEXT, "the master is stopping\n".into()),
        },
        "/readyz" => match status(calls).await {
            Some(report) => {
                let serving = report
                    .workers
                    .iter()
                    .filter(|w| w.generation == report.serving && w.state == "ready")
                    .count();
                if report.ready && serving > 0 {
                    (
                        200,
                        TEXT,
                        format!(
                            "ready: generation {} serves with {serving} worker(s)\n",
                            report.serving
                        ),
                    )
                } else {
                    (
                        503,
                        TEXT,
                        "not ready: no ready worker of the serving generation\n".into(),
                    )
                }
            }
            None => (503, TEXT, "not ready: the master is stopping\n".into()),
        },
        "/livez" => match tokio::time::timeout(LIVE_WITHIN, status(calls)).await {
            Ok(Some(_)) => (200, TEXT, "live\n".into()),
            Ok(None) => (503, TEXT, "the master is stopping\n".into()),
            Err(_) => (
                503,
                TEXT,
                format!(
                    "the master's loop did not answer within {}s\n",
                    LIVE_WITHIN.as_secs()
                ),
            ),
        },
        _ => (404, TEXT, "not found: /metrics, /readyz, /livez\n".into()),
    }
}

async fn answer(mut stream: Box<dyn Conn>, calls: mpsc::UnboundedSender<Call>) {
    let head = read_head(&mut stream).await;
    let line = String::from_utf8_lossy(&head);
    let mut words = line.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (code, kind, body) = if method == "GET" || method == "HEAD" {
        route(path, &calls).await
    } else {
        (
            405,
            "text/plain; charset=utf-8",
            "only GET and HEAD\n".into(),
        )
    };
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        out.push_str(&body);
    }
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.shutdown().await;
}
