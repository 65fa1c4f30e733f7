//! The readiness gate: before a worker reports `Ready`, its own app must answer
//! `GET --ready-check` with a 2xx, in-process (no socket involved), through the same Python
//! threads and WSGI path that real requests take.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Uri, Version, header};
use http_body_util::BodyExt;
use tokio::sync::oneshot;

use super::pool::Pool;
use crate::protocol::BootFailure;
use crate::wsgi::{Job, Local, Peer, Request};

/// Runs the check; the error explains what the app answered.
pub async fn check(pool: &Pool, path: &str, timeout: Duration) -> Result<(), BootFailure> {
    let fail = |error: String| BootFailure {
        error,
        traceback: None,
    };
    let uri: Uri = path.parse().map_err(|_| {
        fail(format!(
            "--ready-check '{path}' is not a valid request target"
        ))
    })?;
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("localhost"));
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static("segue-ready-check"),
    );
    let request = Request {
        method: Method::GET,
        uri,
        version: Version::HTTP_11,
        headers,
        peer: Peer::Tcp(([127, 0, 0, 1], 0).into()),
        local: Local::Tcp(([127, 0, 0, 1], 0).into()),
        https: false,
        body: None,
        gateway: None,
    };
    let (tx, rx) = oneshot::channel();
    pool.submit(Job::new(request, tx));
    let answer = async {
        let reply = rx
            .await
            .map_err(|_| fail("the ready check got no reply from the app".into()))?;
        // Consume the body so a streaming app finishes and close() runs.
        let body = reply
            .body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok::<_, BootFailure>((reply.status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, answer).await.map_err(|_| {
        fail(format!(
            "ready check GET {path} did not answer within {timeout:?}"
        ))
    })??;
    if status.is_success() {
        return Ok(());
    }
    let snippet: String = String::from_utf8_lossy(&body).chars().take(200).collect();
    Err(fail(format!(
        "ready check GET {path} answered {status}, not 2xx: {}",
        snippet.trim()
    )))
}
