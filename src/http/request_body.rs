//! Request bodies on their way from hyper to `wsgi.input`, under hostile clients.
//!
//! The first [`READ_AHEAD`] bytes of a body (all of a small one) are read on the tokio side
//! before its request takes a Python thread, so a client that trickles them occupies a socket,
//! not a thread. The rest is pumped by a tokio task once the app reads that far (and when the
//! client sent `Expect: 100-continue`, all of it, so the interim response goes out only if the
//! app wants the body), within a byte budget per request, so any upload streams. Every wait for
//! the client is bounded by `--socket-timeout`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// Most bytes of one body segue queues for the app (received, not yet returned by a read).
/// Enough to overlap the socket with Python, small enough that a 1 GiB upload costs a worker
/// no more memory than a small one. The piece the pump has just taken from hyper waits outside
/// it for room, so the worst case is this plus one socket read (hyper's read buffer, about
/// 0.8 MiB with the default header limits).
pub const BODY_BUFFER: usize = 1 << 20;

/// What each queued piece counts for beyond its bytes, so that a flood of one-byte chunks
/// (each a piece with its own bookkeeping) stays within [`BODY_BUFFER`] too.
const PIECE_COST: usize = 1024;

/// How much of a body is read before its request is queued for a Python thread: all of nearly
/// every form post and JSON call, and what one socket read usually brings anyway. A client
/// must send this much (or all of its body) before it can hold a thread waiting for the rest.
pub const READ_AHEAD: usize = 64 << 10;

/// Why reading a request body failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestBodyError {
    /// The body grew past `--limit-request-body` (chunked bodies are only counted as they come).
    #[error("request body larger than the {0} byte limit (--limit-request-body)")]
    TooLarge(u64),
    /// Bad chunked framing, or the client closed the connection mid-body.
    #[error("request body unreadable: {0}")]
    Broken(String),
    /// The client sent nothing more of the body for `--socket-timeout`.
    #[error(
        "no request body data for {}s: the client stopped sending (raise --socket-timeout for slower clients)",
        .0.as_secs_f64()
    )]
    TimedOut(Duration),
}

/// How one body may be read: `--limit-request-body` and `--socket-timeout`.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body in bytes; `None` is unlimited.
    pub max: Option<u64>,
    /// Longest wait for the next bytes of the body; `None` waits as long as the client.
    pub timeout: Option<Duration>,
}

/// A piece of a body, counted against its request's [`BODY_BUFFER`] until it is dropped.
#[derive(Debug)]
pub struct Piece {
    bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

impl Piece {
    /// The bytes not yet taken.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Takes the first `n` bytes without copying; the rest stays counted in the budget.
    pub fn split_to(&mut self, n: usize) -> Bytes {
        self.bytes.split_to(n.min(self.bytes.len()))
    }

    /// Whether every byte has been taken.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// The Python side's handle on a request body.
#[derive(Debug)]
pub struct RequestBody {
    /// Read before the request was queued, oldest first; an error, if any, is last.
    early: VecDeque<Result<Piece, RequestBodyError>>,
    /// The rest of the body, pumped on demand; `None` when `early` holds all of it.
    rest: Option<Pump>,
}

#[derive(Debug)]
struct Pump {
    /// Fired on the first read that needs it; until then the pump does not touch the socket.
    start: Option<oneshot::Sender<()>>,
    pieces: mpsc::UnboundedReceiver<Result<Piece, RequestBodyError>>,
}

/// Whether the client waits for `100 Continue` before it sends the body. hyper sends the
/// interim response on the first poll of the body, so such a body is left to the app.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

impl RequestBody {
    /// Whether this body's start should be read before its request takes a Python thread:
    /// unless the client waits for the app to ask for it with `100 Continue`.
    pub fn reads_ahead(headers: &HeaderMap) -> bool {
        !expects_continue(headers)
    }

    /// A body pumped from the socket once the app first reads it.
    pub fn lazy<B: Source>(incoming: B, limits: BodyLimits) -> RequestBody {
        RequestBody::pumped(
            VecDeque::new(),
            Reader::new(incoming, limits),
            Arc::new(Semaphore::new(BODY_BUFFER)),
        )
    }

    /// Reads the body until it ends, fails, or [`READ_AHEAD`] bytes have come; the rest, if
    /// any, is pumped as for [`RequestBody::lazy`]. A failure is kept for the app's read to
    /// raise, as if it had happened while the app read.
    pub async fn read_ahead<B: Source>(incoming: B, limits: BodyLimits) -> RequestBody {
        let mut reader = Reader::new(incoming, limits);
        let budget = Arc::new(Semaphore::new(BODY_BUFFER));
        // Frames within READ_AHEAD, and the one that went past it (kept apart, uncopied).
        let (mut within, mut beyond, mut total) = (Vec::new(), None, 0);
        let end = loop {
            match reader.next().await {
                Some(Ok(bytes)) if total + bytes.len() > READ_AHEAD => {
                    beyond = Some(bytes);
                    break None;
                }
                Some(Ok(bytes)) => {
                    total += bytes.len();
                    within.push(bytes);
                    if total == READ_AHEAD {
                        break None;
                    }
                }
                Some(Err(e)) => break Some(Err(e)),
                None => break Some(Ok(())),
            }
        };
        let mut early = VecDeque::new();
        for bytes in [join(within), beyond.unwrap_or_default()] {
            if !bytes.is_empty() {
                // Nothing else takes from this budget yet, so this cannot fail; a frame past
                // READ_AHEAD that is bigger than the room left takes what is left.
                let permits = cost(bytes.len()).min(budget.available_permits() as u32);
                let budget = budget.clone().try_acquire_many_owned(permits).ok();
                early.push_back(Ok(Piece {
                    bytes,
                    _budget: budget,
                }));
            }
        }
        match end {
            Some(Err(e)) => {
                early.push_back(Err(e));
                RequestBody { early, rest: None }
            }
            // A Content-Length body of exactly READ_AHEAD bytes needs no pump either.
            None if !reader.incoming.is_end_stream() => RequestBody::pumped(early, reader, budget),
            Some(Ok(())) | None => RequestBody { early, rest: None },
        }
    }

    fn pumped<B: Source>(
        early: VecDeque<Result<Piece, RequestBodyError>>,
        reader: Reader<B>,
        budget: Arc<Semaphore>,
    ) -> RequestBody {
        let (start_tx, start_rx) = oneshot::channel();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(pump(reader, start_rx, budget, tx));
        RequestBody {
            early,
            rest: Some(Pump {
                start: Some(start_tx),
                pieces: rx,
            }),
        }
    }

    /// Whether all of the body is here already (read ahead): reading it then never waits.
    pub fn is_complete(&self) -> bool {
        self.rest.is_none()
    }

    /// Blocks the calling (non-runtime) thread for the next piece; `None` at the end.
    pub fn next_blocking(&mut self) -> Option<Result<Piece, RequestBodyError>> {
        if let Some(item) = self.early.pop_front() {
            return Some(item);
        }
        let rest = self.rest.as_mut()?;
        if let Some(start) = rest.start.take() {
            let _ = start.send(());
        }
        rest.pieces.blocking_recv()
    }

    /// [`RequestBody::next_blocking`] for tests on a (paused-time) runtime.
    #[cfg(test)]
    async fn next(&mut self) -> Option<Result<Piece, RequestBodyError>> {
        if let Some(item) = self.early.pop_front() {
            return Some(item);
        }
        let rest = self.rest.as_mut()?;
        if let Some(start) = rest.start.take() {
            let _ = start.send(());
        }
        rest.pieces.recv().await
    }

    /// A body that arrived as `pieces`, then ended with `end` (the end of the body if `None`).
    #[cfg(test)]
    pub(crate) fn from_pieces(pieces: &[&'static [u8]], end: Option<RequestBodyError>) -> Self {
        let early = pieces
            .iter()
            .map(|&p| {
                Ok(Piece {
                    bytes: Bytes::from_static(p),
                    _budget: None,
                })
            })
            .chain(end.map(Err))
            .collect();
        RequestBody { early, rest: None }
    }
}

/// One buffer from the frames read ahead: the usual single frame as it came, several (a client
/// writing in small pieces) copied together, at most [`READ_AHEAD`] bytes.
fn join(frames: Vec<Bytes>) -> Bytes {
    match <[Bytes; 1]>::try_from(frames) {
        Ok([one]) => one,
        Err(frames) => {
            let mut joined = BytesMut::with_capacity(frames.iter().map(Bytes::len).sum());
            for f in &frames {
                joined.extend_from_slice(f);
            }
            joined.freeze()
        }
    }
}

/// What a body can be read from: hyper's `Incoming`, or a test's own frames.
pub trait Source: Body<Data = Bytes, Error: std::fmt::Display> + Send + Unpin + 'static {}

impl<B> Source for B where B: Body<Data = Bytes, Error: std::fmt::Display> + Send + Unpin + 'static {}

/// The budget permits a piece of `len` bytes takes; one piece larger than the whole budget
/// takes all of it and travels alone.
fn cost(len: usize) -> u32 {
    // BODY_BUFFER fits in u32, so the conversion cannot fail.
    u32::try_from((len + PIECE_COST).min(BODY_BUFFER)).unwrap_or(u32::MAX)
}

/// Reads one body's data frames, counting them against the size limit and bounding each wait
/// for the client.
#[derive(Debug)]
struct Reader<B> {
    incoming: B,
    limits: BodyLimits,
    /// Bytes read so far.
    total: u64,
}

impl<B: Source> Reader<B> {
    fn new(incoming: B, limits: BodyLimits) -> Self {
        Reader {
            incoming,
            limits,
            total: 0,
        }
    }

    /// The next non-empty data frame; `None` at the end. After an error, do not call again.
    async fn next(&mut self) -> Option<Result<Bytes, RequestBodyError>> {
        loop {
            // A Content-Length body ends with its last byte: no need to poll for the end.
            if self.incoming.is_end_stream() {
                return None;
            }
            let frame = match self.limits.timeout {
                Some(limit) => match tokio::time::timeout(limit, self.incoming.frame()).await {
                    Ok(frame) => frame,
                    Err(_) => return Some(Err(RequestBodyError::TimedOut(limit))),
                },
                None => self.incoming.frame().await,
            };
            let data = match frame? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_trailers) => continue,
                },
                Err(e) => return Some(Err(RequestBodyError::Broken(e.to_string()))),
            };
            if data.is_empty() {
                continue;
            }
            self.total += data.len() as u64;
            return Some(match self.limits.max {
                Some(max) if self.total > max => Err(RequestBodyError::TooLarge(max)),
                _ => Ok(data),
            });
        }
    }
}

async fn pump<B: Source>(
    mut reader: Reader<B>,
    start: oneshot::Receiver<()>,
    budget: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Result<Piece, RequestBodyError>>,
) {
    if start.await.is_err() {
        return; // the app never read the rest
    }
    loop {
        // Stop as soon as the app is done with the body, rather than waiting on a client that
        // is itself waiting for the response.
        let item = tokio::select! {
            item = reader.next() => item,
            _ = tx.closed() => return,
        };
        let item = match item {
            None => return,
            Some(Ok(bytes)) => {
                let permit = tokio::select! {
                    permit = budget.clone().acquire_many_owned(cost(bytes.len())) => permit,
                    _ = tx.closed() => return,
                };
                Ok(Piece {
                    bytes,
                    _budget: permit.ok(),
                })
            }
            Some(Err(e)) => Err(e),
        };
        let stop = item.is_err();
        if tx.send(item).is_err() || stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use http_body::Frame;
    use tokio::time::{Instant, sleep};

    /// A body whose frames the test sends, counting those the reader has taken.
    struct Frames {
        rx: mpsc::UnboundedReceiver<Bytes>,
        taken: Arc<AtomicUsize>,
    }

    impl Body for Frames {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            let taken = self.taken.clone();
            self.rx.poll_recv(cx).map(|frame| {
                frame.map(|bytes| {
                    taken.fetch_add(1, Ordering::Relaxed);
                    Ok(Frame::data(bytes))
                })
            })
        }
    }

    fn frames() -> (mpsc::UnboundedSender<Bytes>, Frames, Arc<AtomicUsize>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let taken = Arc::new(AtomicUsize::new(0));
        (
            tx,
            Frames {
                rx,
                taken: taken.clone(),
            },
            taken,
        )
    }

    const LIMITS: BodyLimits = BodyLimits {
        max: None,
        timeout: Some(Duration::from_secs(30)),
    };

    /// Everything the app would read, and the error that ended it, if any.
    async fn drain(body: &mut RequestBody) -> (Vec<u8>, Option<RequestBodyError>) {
        let mut out = Vec::new();
        while let Some(item) = body.next().await {
            match item {
                Ok(piece) => out.extend_from_slice(piece.bytes()),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_body_is_read_whole_into_one_piece_before_the_app_runs() {
        let (tx, body, _) = frames();
        tx.send(Bytes::from_static(b"hello ")).unwrap();
        tx.send(Bytes::from_static(b"world")).unwrap();
        drop(tx);
        let mut body = RequestBody::read_ahead(body, LIMITS).await;
        assert!(body.rest.is_none(), "no pump for a body that ended");
        assert_eq!(body.early.len(), 1);
        let (data, err) = drain(&mut body).await;
        assert_eq!(
            (data.as_slice(), err.is_none()),
            (&b"hello world"[..], true)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_mid_body_times_out_after_the_socket_timeout() {
        let (tx, body, _) = frames();
        tx.send(Bytes::from_static(b"0123456789")).unwrap();
        let started = Instant::now();
        let mut body = RequestBody::read_ahead(body, LIMITS).await;
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        let (data, err) = drain(&mut body).await;
        assert_eq!(data, b"0123456789", "what came is still read first");
        assert!(
            matches!(err, Some(RequestBodyError::TimedOut(_))),
            "{err:?}"
        );
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_past_the_read_ahead_times_out_once_the_app_reads_that_far() {
        let (tx, body, _) = frames();
        tx.send(Bytes::from(vec![b'a'; READ_AHEAD])).unwrap();
        let mut body = RequestBody::read_ahead(body, LIMITS).await;
        assert!(body.rest.is_some(), "the rest is left to the pump");
        // The app takes its time before reading on: that is not the client's delay.
        sleep(Duration::from_secs(100)).await;
        tx.send(Bytes::from_static(b"tail")).unwrap();
        let started = Instant::now();
        let (data, err) = drain(&mut body).await;
        assert_eq!(data.len(), READ_AHEAD + 4);
        assert!(
            matches!(err, Some(RequestBodyError::TimedOut(_))),
            "{err:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_body_never_times_out() {
        let (tx, body, _) = frames();
        tokio::spawn(async move {
            for b in b"steady" {
                sleep(Duration::from_secs(20)).await;
                tx.send(Bytes::copy_from_slice(&[*b])).unwrap();
            }
        });
        let mut body = RequestBody::read_ahead(body, LIMITS).await;
        let (data, err) = drain(&mut body).await;
        assert_eq!(
            (data.as_slice(), err.is_none()),
            (&b"steady"[..], true),
            "{err:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_pump_holds_about_the_body_buffer_while_the_app_does_not_read() {
        let (tx, body, taken) = frames();
        let frame = 64 << 10;
        for _ in 0..200 {
            tx.send(Bytes::from(vec![0; frame])).unwrap();
        }
        drop(tx);
        let mut body = RequestBody::read_ahead(body, LIMITS).await;
        let first = body.next().await;
        let second = body.next().await; // starts the pump
        sleep(Duration::from_secs(1)).await; // lets it run until the budget is spent
        let held = taken.load(Ordering::Relaxed);
        assert!(
            (8..=BODY_BUFFER / frame + 2).contains(&held),
            "the pump took {held} frames of 64 KiB while the app read two"
        );
        drop((first, second));
        let (data, err) = drain(&mut body).await;
        assert_eq!((data.len(), err.is_none()), (198 * frame, true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_chunked_body_past_the_size_limit_fails_when_it_gets_there() {
        let (tx, body, _) = frames();
        tx.send(Bytes::from_static(b"12345678")).unwrap();
        tx.send(Bytes::from_static(b"12345678")).unwrap();
        drop(tx);
        let limits = BodyLimits {
            max: Some(10),
            ..LIMITS
        };
        let mut body = RequestBody::read_ahead(body, limits).await;
        let (data, err) = drain(&mut body).await;
        assert_eq!(data, b"12345678");
        assert!(
            matches!(err, Some(RequestBodyError::TooLarge(10))),
            "{err:?}"
        );
    }

    #[test]
    fn one_frame_is_kept_uncopied_and_several_are_joined() {
        let one = Bytes::from_static(b"abc");
        let ptr = one.as_ptr();
        assert_eq!(join(vec![one]).as_ptr(), ptr);
        let joined = join(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]);
        assert_eq!(&joined[..], b"abcd");
        assert!(join(vec![]).is_empty());
    }

    #[test]
    fn pieces_cost_their_bytes_plus_bookkeeping_within_the_budget() {
        assert_eq!(cost(1) as usize, 1 + PIECE_COST);
        assert_eq!(cost(usize::MAX / 2) as usize, BODY_BUFFER);
    }

    #[test]
    fn only_the_exact_100_continue_expectation_defers_the_body() {
        let mut h = HeaderMap::new();
        assert!(!expects_continue(&h));
        h.insert(header::EXPECT, "100-Continue".parse().unwrap());
        assert!(expects_continue(&h));
    }
}
