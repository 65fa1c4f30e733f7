//! The master's side of the control socket: accepts connections, reads one request each and
//! hands it to the supervisor with a channel for the reply.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use super::messages::{Reply, Request};
use crate::master::supervisor::Event;

/// The bound control socket; its file is removed when this is dropped.
pub struct ControlSocket {
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` (replacing a stale socket file) and serves it until the runtime ends.
pub fn serve(path: &Path, events: mpsc::UnboundedSender<Event>) -> std::io::Result<ControlSocket> {
    if std::fs::symlink_metadata(path).is_ok()
        && std::os::unix::net::UnixStream::connect(path).is_err()
    {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let events = events.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = stream.into_split();
                let mut line = String::new();
                if BufReader::new(rd).read_line(&mut line).await.is_err() {
                    return;
                }
                let reply = match serde_json::from_str::<Request>(&line) {
                    Ok(request) => {
                        let (tx, rx) = oneshot::channel();
                        if events.send(Event::Control(request, tx)).is_err() {
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
            });
        }
    });
    Ok(ControlSocket {
        path: path.to_owned(),
    })
}
