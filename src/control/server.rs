//! The master's side of the control socket: accepts connections, reads one request each and
//! hands it on as a [`Call`] with a channel for the reply. It knows nothing of the master's
//! internals: whoever reads the calls decides what they mean.

use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use super::messages::{Reply, Request};

/// One request from a control client and where its reply goes.
#[derive(Debug)]
pub struct Call {
    /// What the client asked.
    pub request: Request,
    /// Where the answer goes; dropped unanswered, the client is told the master is stopping.
    pub reply: oneshot::Sender<Reply>,
}

/// The bound control socket; its file is removed when this is dropped.
pub struct ControlSocket {
    path: PathBuf,
    /// The listening fd, handed over by an in-place upgrade.
    pub fd: RawFd,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` (replacing a stale socket file) and serves it until the runtime ends.
pub fn serve(path: &Path, calls: mpsc::UnboundedSender<Call>) -> std::io::Result<ControlSocket> {
    if std::fs::symlink_metadata(path).is_ok()
        && std::os::unix::net::UnixStream::connect(path).is_err()
    {
        std::fs::remove_file(path)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    // Whoever can connect can reload or stop the server: owner only (like the master FIFO).
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    serve_listener(listener, path, calls)
}

/// Serves an already bound control socket (one an in-place upgrade handed over).
pub fn serve_listener(
    listener: std::os::unix::net::UnixListener,
    path: &Path,
    calls: mpsc::UnboundedSender<Call>,
) -> std::io::Result<ControlSocket> {
    listener.set_nonblocking(true)?;
    let fd = listener.as_raw_fd();
    let listener = UnixListener::from_std(listener)?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(answer(stream, calls.clone()));
        }
    });
    Ok(ControlSocket {
        path: path.to_owned(),
        fd,
    })
}

async fn answer(stream: tokio::net::UnixStream, calls: mpsc::UnboundedSender<Call>) {
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    if BufReader::new(rd).read_line(&mut line).await.is_err() {
        return;
    }
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            let (tx, rx) = oneshot::channel();
            if calls.send(Call { request, reply: tx }).is_err() {
                return;
            }
            match rx.await {
                Ok(reply) => reply,
                Err(_) => Reply::Error {
                    message: "the master is stopping".into(),
                },
            }
        }
        Err(e) => Reply::Error {
            message: format!("malformed control request: {e}"),
        },
    };
    if let Ok(mut json) = serde_json::to_vec(&reply) {
        json.push(b'\n');
        let _ = wr.write_all(&json).await;
    }
}
