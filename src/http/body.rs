//! Response bodies crossing from the Python threads to hyper (request bodies go the other way
//! in [`super::request_body`]).
//!
//! A response body is complete (one buffer, so hyper can send a Content-Length), a file region
//! the kernel sends ([`super::sendfile`]), a bounded stream a Python thread feeds as the app
//! yields, or pulled: the connection's own thread asks the app's iterator for the next chunk
//! when hyper wants one (the inline mode, where the app runs on the connection's thread).

use std::any::Any;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

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

/// A body produced on demand, on the thread that polls it: the app's iterator when it runs on
/// the connection's own thread. `None` ends the body.
pub trait Pull: Send + Sync {
    /// The next chunk; blocks while the app computes it (the thread is the app's meanwhile).
    fn next(&mut self) -> Option<Chunk>;
}

enum Kind {
    Full(Option<Bytes>),
    File(Option<FileRegion>),
    Stream(mpsc::Receiver<Chunk>),
    /// Chunks already produced, then the source (dropped at its end).
    Pull(std::collections::VecDeque<Chunk>, Option<Box<dyn Pull>>),
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
    /// Body bytes handed to hyper so far (file regions by their length).
    sent: u64,
    /// Called with `sent` when hyper is done with the body: the access line.
    on_end: Option<Box<dyn FnOnce(u64) + Send + Sync>>,
    /// A pulled body returns `Pending` once after each chunk (waking itself at once), so that
    /// hyper flushes what it has before the app computes more.
    yield_after_chunk: bool,
    /// Set once the body yielded after its last chunk.
    yielded: bool,
}

impl ResponseBody {
    fn new(kind: Kind) -> Self {
        ResponseBody {
            kind,
            files: None,
            placeholders: 0,
            exact: true,
            _guard: None,
            sent: 0,
            on_end: None,
            yield_after_chunk: false,
            yielded: false,
        }
    }

    /// Runs `f` with the body bytes sent once hyper is done with the body (all sent, or the
    /// client went away).
    pub fn on_end(mut self, f: impl FnOnce(u64) + Send + Sync + 'static) -> Self {
        self.on_end = Some(Box::new(f));
        self
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

    /// A body whose first chunks are `ready`, then whatever `source` gives. After each chunk
    /// the body yields once, so hyper writes it out before the app is asked for the next
    /// (PEP 3333: no chunk may wait for the app to compute the next).
    pub fn pull(ready: Vec<Chunk>, source: Box<dyn Pull>) -> Self {
        let mut body = Self::new(Kind::Pull(ready.into(), Some(source)));
        body.yield_after_chunk = true;
        body
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
            Kind::Pull(ready, source) => {
                if let Some(chunk) = ready.pop_front() {
                    return Poll::Ready(Some(chunk));
                }
                let next = source.as_mut().and_then(|s| s.next());
                if next.is_none() {
                    // Ended: the source lets go of the app's iterator now, not when hyper drops
                    // the body.
                    *source = None;
                }
                Poll::Ready(next)
            }
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
            Kind::Pull(ready, _) => write!(f, "ResponseBody::Pull({} ready)", ready.len()),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(f) = self.on_end.take() {
            f(self.sent);
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
            if self.yield_after_chunk && self.sent > 0 && !self.yielded {
                let waiting = matches!(&self.kind, Kind::Pull(ready, _) if ready.is_empty());
                if waiting {
                    self.yielded = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            self.yielded = false;
            return Poll::Ready(match ready!(self.next_chunk(cx)) {
                None => None,
                Some(Chunk::Data(bytes)) => {
                    self.sent += bytes.len() as u64;
                    Some(Ok(Frame::data(bytes)))
                }
                Some(Chunk::Abort(abort)) => Some(Err(abort)),
                Some(Chunk::File(region)) if region.is_empty() => continue,
                Some(Chunk::File(region)) => match self.files.clone() {
                    Some(files) => {
                        self.placeholders = region.len();
                        self.sent += region.len();
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
            Kind::Stream(_) | Kind::Pull(..) => SizeHint::default(),
        }
    }
}
