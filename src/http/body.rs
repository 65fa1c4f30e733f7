//! Bodies crossing between hyper's tasks and the Python threads.
//!
//! Request bodies are pumped lazily: nothing is read (and no `100 Continue` is sent) until the
//! app first reads `wsgi.input`, and a bounded channel keeps at most a few chunks in memory, so a
//! 1 GB upload streams through. Response bodies are complete (one buffer, so hyper can send a
//! Content-Length), a file region the kernel sends ([`super::sendfile`]), or a bounded stream
//! the Python thread feeds as the app yields.

use std::any::Any;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::{mpsc, oneshot};

use super::sendfile::{FileQueue, FileRegion, PLACEHOLDER_LEN, placeholder};

/// Chunks in flight per response stream: enough to overlap Python and the socket, small enough
/// that a slow client applies backpressure to the app rather than filling memory.
pub const STREAM_DEPTH: usize = 4;

/// Why a response stream was cut short; hyper then closes the connection without finishing the
/// message, which is how a client learns the response is incomplete.
#[derive(Debug, thiserror::Error)]
#[error("response aborted: {0}")]
pub struct Abort(pub String);

/// One piece of a streamed response body.
#[derive(Debug)]
pub enum Chunk {
    /// Bytes the app produced.
    Data(Bytes),
    /// Part of a file, sent by the kernel.
    File(FileRegion),
    /// The body cannot be completed.
    Abort(Abort),
}

enum Kind {
    Full(Option<Bytes>),
    File(Option<FileRegion>),
    Stream(mpsc::Receiver<Chunk>),
}

/// A response body as hyper sees it.
pub struct ResponseBody {
    kind: Kind,
    /// Where file regions go while hyper carries their placeholders; set by the connection.
    files: Option<Arc<FileQueue>>,
    /// Placeholder bytes of the current file region not yet handed to hyper.
    placeholders: u64,
    /// Whether hyper may take the body's length as the response's. hyper trusts an exact
    /// length over the Content-Length header, so a body shorter than the header must hide it.
    exact: bool,
    /// Dropped when hyper is done with the body (sent, or the client went away): the worker uses
    /// it to count in-flight requests without hooking into hyper.
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl ResponseBody {
    fn new(kind: Kind) -> Self {
        ResponseBody {
            kind,
            files: None,
            placeholders: 0,
            exact: true,
            _guard: None,
        }
    }

    /// A complete body; hyper derives Content-Length from it.
    pub fn full(bytes: Bytes) -> Self {
        Self::new(Kind::Full(Some(bytes)))
    }

    /// A body that is one file region, of known length.
    pub fn file(region: FileRegion) -> Self {
        Self::new(Kind::File(Some(region)))
    }

    /// A body fed chunk by chunk through `rx`.
    pub fn stream(rx: mpsc::Receiver<Chunk>) -> Self {
        Self::new(Kind::Stream(rx))
    }

    /// Attaches a value dropped together with the body.
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }

    /// Hides the body's length from hyper, which then frames the response by the
    /// Content-Length header and cuts the connection when the body falls short of it.
    pub fn inexact(mut self) -> Self {
        self.exact = false;
        self
    }

    /// Lets the body carry file regions on the connection that owns `files`.
    pub fn with_files(mut self, files: Arc<FileQueue>) -> Self {
        self.files = Some(files);
        self
    }

    fn next_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        match &mut self.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(Chunk::Data)),
            Kind::File(region) => Poll::Ready(region.take().map(Chunk::File)),
            Kind::Stream(rx) => rx.poll_recv(cx),
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Full(b) => write!(
                f,
                "ResponseBody::Full({:?} bytes)",
                b.as_ref().map(Bytes::len)
            ),
            Kind::File(r) => write!(
                f,
                "ResponseBody::File({:?} bytes)",
                r.as_ref().map(FileRegion::len)
            ),
            Kind::Stream(_) => f.write_str("ResponseBody::Stream"),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Abort;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Abort>>> {
        loop {
            if self.placeholders > 0 {
                let n = self.placeholders.min(PLACEHOLDER_LEN as u64);
                self.placeholders -= n;
                return Poll::Ready(Some(Ok(Frame::data(placeholder(n as usize)))));
            }
            return Poll::Ready(match ready!(self.next_chunk(cx)) {
                None => None,
                Some(Chunk::Data(bytes)) => Some(Ok(Frame::data(bytes))),
                Some(Chunk::Abort(abort)) => Some(Err(abort)),
                Some(Chunk::File(region)) if region.is_empty() => continue,
                Some(Chunk::File(region)) => match self.files.clone() {
                    Some(files) => {
                        self.placeholders = region.len();
                        files.push(region);
                        continue;
                    }
                    None => Some(Err(Abort(
                        "a file body on a connection that cannot send files".into(),
                    ))),
                },
            });
        }
    }

    fn is_end_stream(&self) -> bool {
        self.placeholders == 0 && matches!(self.kind, Kind::Full(None) | Kind::File(None))
    }

    fn size_hint(&self) -> SizeHint {
        let queued = self.placeholders;
        if !self.exact {
            return SizeHint::default();
        }
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::File(Some(r)) => SizeHint::with_exact(r.len()),
            Kind::Full(None) | Kind::File(None) => SizeHint::with_exact(queued),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}

/// Why reading a request body failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestBodyError {
    /// The body grew past `--limit-request-body` (chunked bodies are only counted as they come).
    #[error("request body larger than the {0} byte limit (--limit-request-body)")]
    TooLarge(u64),
    /// Bad chunked framing, or the client closed the connection mid-body.
    #[error("request body unreadable: {0}")]
    Broken(String),
}

/// The Python side's handle on a request body that a tokio task pumps.
#[derive(Debug)]
pub struct RequestBody {
    /// Fired on the first read; until then the pump does not touch the socket.
    start: Option<oneshot::Sender<()>>,
    chunks: mpsc::Receiver<Result<Bytes, RequestBodyError>>,
}

impl RequestBody {
    /// Spawns the pump task for `incoming` on the current runtime.
    pub fn spawn(incoming: Incoming, limit: Option<u64>) -> RequestBody {
        let (start_tx, start_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(pump(incoming, limit, start_rx, tx));
        RequestBody {
            start: Some(start_tx),
            chunks: rx,
        }
    }

    /// Blocks the calling (non-runtime) thread for the next chunk; `None` at the end.
    pub fn next_blocking(&mut self) -> Option<Result<Bytes, RequestBodyError>> {
        if let Some(start) = self.start.take() {
            let _ = start.send(());
        }
        self.chunks.blocking_recv()
    }
}

async fn pump(
    mut incoming: Incoming,
    limit: Option<u64>,
    start: oneshot::Receiver<()>,
    tx: mpsc::Sender<Result<Bytes, RequestBodyError>>,
) {
    use http_body_util::BodyExt;
    if start.await.is_err() {
        return; // the app never read the body
    }
    let mut total: u64 = 0;
    while let Some(frame) = incoming.frame().await {
        let item = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => {
                    total += data.len() as u64;
                    match limit {
                        Some(limit) if total > limit => Err(RequestBodyError::TooLarge(limit)),
                        _ => Ok(data),
                    }
                }
                Err(_trailers) => continue,
            },
            Err(e) => Err(RequestBodyError::Broken(e.to_string())),
        };
        let stop = item.is_err();
        if tx.send(item).await.is_err() || stop {
            return;
        }
    }
}
