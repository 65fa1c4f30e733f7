//! Serving a connection of a FastCGI listener (`--fastcgi-socket`, nginx's `fastcgi_pass`).
//!
//! Two tasks share the socket. The *reader* takes records off it, runs them through the
//! connection's [`Session`] and carries out what it says: body bytes go to the active
//! request's body through a small bounded channel (so a client sending faster than the app
//! reads waits, and memory stays bounded), management answers are written at once, and
//! requests, aborts and the end of the input go to the *driver*. The driver serves one request
//! at a time through the same service HTTP uses, writes the response as STDOUT records (file
//! bodies still go by `sendfile`, inside the records), and ends it with `FCGI_END_REQUEST`.
//! Records are written whole under one lock, so management answers never split a response
//! record.
//!
//! With `FCGI_KEEP_CONN` (nginx's `fastcgi_keep_conn on`) the connection waits for the next
//! request, up to [`KEEP_CONN_IDLE`]; without it, it closes after the response, as the
//! specification asks.
//!
//! Drain: a request being served is finished, then the connection is closed even if the web
//! server asked to keep it (nginx then opens a new one, to the new generation). An idle
//! connection is given [`IDLE_GRACE`] for a request that may already be on its way; once bytes
//! of one have arrived, it is served.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::acceptor::Held;
use super::drain::{ConnState, DrainWatch, IDLE_GRACE};
use super::service::{Service, Shared};
use super::socket::{HeadStyle, Sock, Writer, response_head};
use crate::fastcgi::record::{self, ProtocolStatus};
use crate::fastcgi::{Session, SessionError, Start, Step, Values, params};
use crate::gateway::request::{self, Proxy, Reading};
use crate::http::body::ResponseBody;
use crate::http::sendfile::FileQueue;
use crate::wsgi::{Local, Peer};

/// How long a kept connection waits for its next request: longer than nginx's own
/// `keepalive_timeout` for upstream connections (60 s), so that nginx, not segue, closes an
/// idle connection, and never while it is sending a request on it.
pub const KEEP_CONN_IDLE: Duration = Duration::from_secs(75);

/// Body pieces (each at most one record, 64 KiB) waiting for the app to read them.
const BODY_QUEUE: usize = 4;

/// Most bytes read from the socket at once.
const READ_CHUNK: usize = 64 << 10;

/// What the reader tells the driver.
#[derive(Debug)]
enum Event {
    /// A request's params are complete; its body arrives on the receiver.
    Start(Start, mpsc::Receiver<Bytes>),
    /// The web server aborted the request being served.
    Abort,
    /// A request ended before it started; close the connection if `close`.
    Ended { close: bool },
    /// The records are malformed: close the connection.
    Failed(SessionError),
    /// The web server closed its side, or reading failed.
    Closed,
}

/// What both tasks share.
struct Conn {
    sock: Arc<Sock>,
    /// Held while whole records are written.
    write: tokio::sync::Mutex<Writer>,
    session: Mutex<Session>,
    /// Bytes read so far: whether a request has started to arrive during an idle wait.
    received: AtomicUsize,
    /// A write of records started and did not finish (its future was dropped on an abort):
    /// the stream is cut inside a record and the connection cannot go on.
    midway: AtomicBool,
}

impl Conn {
    fn session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes whole records.
    async fn write(&self, bufs: &mut Vec<Bytes>, files: &FileQueue) -> io::Result<()> {
        let mut writer = self.write.lock().await;
        self.midway.store(true, Ordering::Relaxed);
        writer.write_all_bufs(bufs, files).await?;
        self.midway.store(false, Ordering::Relaxed);
        Ok(())
    }
}

/// Serves the requests of a FastCGI connection, then closes it.
pub async fn serve_connection(
    sock: Sock,
    // Held until the connection ends: this worker's count, for its limit and the scoreboard.
    _held: Held,
    peer: Peer,
    (local, listener): (Local, usize),
    shared: Arc<Shared>,
    watch: DrainWatch,
) {
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
    let limit = crate::gateway::variables_limit(&shared.config.limits);
    let most = shared
        .config
        .worker_connections
        .unwrap_or(u32::MAX as usize);
    let values = Values {
        max_conns: most,
        max_reqs: most,
    };
    let sock = Arc::new(sock);
    let conn = Arc::new(Conn {
        sock: sock.clone(),
        write: tokio::sync::Mutex::new(Writer(sock.clone())),
        session: Mutex::new(Session::new(limit, values)),
        received: AtomicUsize::new(0),
        midway: AtomicBool::new(false),
    });
    let (events_tx, events) = mpsc::channel(4);
    let mut reader = tokio::spawn(read_records(conn.clone(), events_tx));
    let driver = Driver {
        conn: conn.clone(),
        peer,
        local,
        listener,
        shared: shared.clone(),
        watch,
    };
    driver.run(events).await;
    // Closing: the reader reads (and drops) what still comes until the web server closes too,
    // so unread bytes do not turn the close into a reset that destroys the last response.
    let _ = sock.shutdown_write();
    if tokio::time::timeout(super::socket::LINGER, &mut reader)
        .await
        .is_err()
    {
        reader.abort();
    }
    shared.counters.connections.fetch_sub(1, Ordering::Relaxed);
}

/// The reader task: records in, steps carried out.
async fn read_records(conn: Arc<Conn>, events: mpsc::Sender<Event>) {
    let mut buf = BytesMut::new();
    let mut body: Option<mpsc::Sender<Bytes>> = None;
    let no_files = FileQueue::default();
    let mut scratch = vec![0u8; READ_CHUNK];
    loop {
        // The buffer holds at most a record's worth beyond what one read added.
        let n = conn.sock.read(&mut scratch).await.unwrap_or_default();
        buf.extend_from_slice(&scratch[..n]);
        if n == 0 {
            let _ = events.send(Event::Closed).await;
            return;
        }
        conn.received.fetch_add(n, Ordering::Relaxed);
        loop {
            let rec = match record::take(&mut buf) {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(e) => {
                    let _ = events.send(Event::Failed(e.into())).await;
                    return discard(&conn.sock).await;
                }
            };
            let step = conn.session().on_record(rec);
            let event = match step {
                Err(e) => {
                    let _ = events.send(Event::Failed(e)).await;
                    return discard(&conn.sock).await;
                }
                Ok(Step::Nothing) => continue,
                Ok(Step::Reply(bytes)) => {
                    if conn
                        .write(&mut vec![bytes.into()], &no_files)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    continue;
                }
                Ok(Step::Stdin(data)) => {
                    // The app may stop reading (it answered without the body): the rest of
                    // the body is dropped.
                    if let Some(tx) = &body {
                        if tx.send(data).await.is_err() {
                            body = None;
                        }
                    }
                    continue;
                }
                Ok(Step::StdinEnd) => {
                    body = None;
                    continue;
                }
                Ok(Step::Start(start)) => {
                    let (tx, rx) = mpsc::channel(BODY_QUEUE);
                    body = Some(tx);
                    Event::Start(start, rx)
                }
                Ok(Step::Abort) => {
                    body = None;
                    Event::Abort
                }
                Ok(Step::Ended { reply, close }) => {
                    if conn
                        .write(&mut vec![reply.into()], &no_files)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    Event::Ended { close }
                }
            };
            if events.send(event).await.is_err() {
                return discard(&conn.sock).await;
            }
        }
    }
}

/// Reads and drops everything until the web server closes (the driver bounds how long).
async fn discard(sock: &Sock) {
    let mut sink = vec![0u8; 16 << 10];
    while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
}

/// How serving one request ended.
enum Served {
    /// Answered (or aborted and ended): the connection may take another request.
    Done,
    /// The connection cannot go on (malformed records, a failed write, a broken body).
    Broken,
}

/// The driver: waits for requests and serves them one at a time.
struct Driver {
    conn: Arc<Conn>,
    peer: Peer,
    local: Local,
    listener: usize,
    shared: Arc<Shared>,
    watch: DrainWatch,
}

impl Driver {
    async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        let mut first = true;
        // Set once the web server closed its side: no request can follow the current one.
        let mut input_closed = false;
        loop {
            let Some((start, body)) = self
                .next_request(&mut events, first, &mut input_closed)
                .await
            else {
                return;
            };
            first = false;
            let keep = start.keep_conn;
            match self
                .serve(start, body, &mut events, &mut input_closed)
                .await
            {
                Served::Done if keep && !input_closed && !self.watch.is_draining() => {}
                _ => return,
            }
        }
    }

    /// Waits for the next request (the `first` of the connection within `--header-timeout`,
    /// later ones within [`KEEP_CONN_IDLE`]): `None` when the connection should close instead.
    async fn next_request(
        &mut self,
        events: &mut mpsc::Receiver<Event>,
        first: bool,
        input_closed: &mut bool,
    ) -> Option<(Start, mpsc::Receiver<Bytes>)> {
        if *input_closed {
            return None;
        }
        let wait = if first {
            self.shared.config.header_timeout
        } else {
            KEEP_CONN_IDLE
        };
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        let idle_since = self.conn.received.load(Ordering::Relaxed);
        let mut grace: Option<Instant> = self
            .watch
            .is_draining()
            .then(|| Instant::now() + IDLE_GRACE);
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(Event::Start(start, body)) => return Some((start, body)),
                    Some(Event::Ended { close }) => {
                        if close {
                            return None;
                        }
                    }
                    Some(Event::Abort) => {}
                    Some(Event::Failed(e)) => {
                        tracing::warn!("FastCGI connection from {:?} closed: {e}", self.peer);
                        return None;
                    }
                    Some(Event::Closed) | None => {
                        *input_closed = true;
                        return None;
                    }
                },
                _ = &mut deadline => {
                    // An idle kept connection closes quietly; a request begun and not finished
                    // in time is worth a warning.
                    if first || self.conn.received.load(Ordering::Relaxed) > idle_since {
                        tracing::warn!(
                            "FastCGI connection from {:?} closed: no complete request within {wait:?}{}",
                            self.peer,
                            if first { " (--header-timeout)" } else { "" }
                        );
                    }
                    return None;
                }
                _ = self.watch.started(), if grace.is_none() => {
                    grace = Some(Instant::now() + IDLE_GRACE);
                }
                _ = tokio::time::sleep_until(grace.unwrap_or_else(Instant::now)), if grace.is_some() => {
                    if self.conn.received.load(Ordering::Relaxed) == idle_since {
                        return None;
                    }
                    // A request has started to arrive: it is served whatever the drain.
                    grace = Some(Instant::now() + self.shared.config.header_timeout);
                }
            }
        }
    }

    /// Serves one request and ends it with `FCGI_END_REQUEST`.
    async fn serve(
        &mut self,
        start: Start,
        body: mpsc::Receiver<Bytes>,
        events: &mut mpsc::Receiver<Event>,
        input_closed: &mut bool,
    ) -> Served {
        let id = start.id;
        let files = Arc::new(FileQueue::default());
        // Boxed, so that dropping it (on an abort) ends the app's request at once.
        let mut answer = Box::pin(async {
            let response = self.call(&start, body, &files).await;
            self.write_response(id, response, &files).await
        });
        let written = loop {
            tokio::select! {
                r = &mut answer => break r,
                ev = events.recv(), if !*input_closed => match ev {
                    Some(Event::Abort) => {
                        tracing::debug!("FastCGI request {id} from {:?} aborted by the web server", self.peer);
                        break Ok(true);
                    }
                    Some(Event::Failed(e)) => {
                        tracing::warn!("FastCGI connection from {:?} closed: {e}", self.peer);
                        return Served::Broken;
                    }
                    // No more input; the response can still be written.
                    Some(Event::Closed) | None => *input_closed = true,
                    Some(Event::Start(..) | Event::Ended { .. }) => {}
                },
            }
        };
        // Drops the response and its body: the app's request is over, whatever remains.
        drop(answer);
        if self.conn.midway.load(Ordering::Relaxed) {
            // Aborted inside a record: no record can follow.
            return Served::Broken;
        }
        match written {
            Ok(aborted) => {
                self.conn.session().finished();
                let end = if aborted {
                    record::end_request(id, 0, ProtocolStatus::Complete)
                } else {
                    record::end_of_response(id, 0)
                };
                match self.conn.write(&mut vec![end.into()], &files).await {
                    Ok(()) => Served::Done,
                    Err(_) => Served::Broken,
                }
            }
            Err(e) => {
                tracing::debug!("FastCGI response to {:?} cut short: {e}", self.peer);
                Served::Broken
            }
        }
    }

    /// Runs the request through the service; params that describe no request get a 400 (the
    /// connection stays usable: the record framing is intact).
    async fn call(
        &self,
        start: &Start,
        body: mpsc::Receiver<Bytes>,
        files: &Arc<FileQueue>,
    ) -> (http::Response<ResponseBody>, bool) {
        let trusted = self.shared.config.forwarded_allow_ips.trusts(&self.peer);
        let head = params::parse(&start.params)
            .map_err(|e| e.to_string())
            .and_then(|pairs| {
                request::head(
                    &pairs,
                    Reading {
                        proxy: Proxy::FastCgi,
                        strip_script_name: false,
                        trusted,
                    },
                )
                .map_err(|e| e.to_string())
            });
        let head = match head {
            Ok(h) => h,
            Err(reason) => {
                tracing::warn!("FastCGI request from {:?} refused: {reason}", self.peer);
                let reply = crate::wsgi::response::error_reply(
                    StatusCode::BAD_REQUEST,
                    format!("400 Bad Request: {reason}\n"),
                );
                let mut response = http::Response::new(reply.body);
                *response.status_mut() = reply.status;
                *response.headers_mut() = reply.headers;
                return (response, false);
            }
        };
        let head_request = head.method == Method::HEAD;
        let service = Service {
            shared: self.shared.clone(),
            conn: Arc::new(ConnState::default()),
            files: files.clone(),
            drain: self.watch.clone(),
            peer: self.peer.clone(),
            local: self.local.clone(),
            listener: self.listener,
        };
        let mut req = http::Request::new(StdinBody {
            rx: body,
            remaining: head.content_length,
        });
        *req.method_mut() = head.method;
        *req.uri_mut() = head.uri;
        *req.version_mut() = head.version;
        *req.headers_mut() = head.headers;
        req.extensions_mut().insert(head.gateway);
        match hyper::service::Service::call(&service, req).await {
            Ok(r) => (r, head_request),
            Err(never) => match never {},
        }
    }

    /// Writes the response as STDOUT records; `Ok(false)` once all of it is written.
    async fn write_response(
        &self,
        id: u16,
        (response, head_request): (http::Response<ResponseBody>, bool),
        files: &FileQueue,
    ) -> io::Result<bool> {
        let (parts, mut body) = response.into_parts();
        let (head, has_body) = response_head(HeadStyle::Cgi, &parts, &body, head_request);
        let mut pending = Vec::new();
        record::stdout(id, &Bytes::from(head), &mut pending);
        if has_body {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| io::Error::other(e.to_string()))?;
                if let Ok(data) = frame.into_data() {
                    record::stdout(id, &data, &mut pending);
                    self.conn.write(&mut pending, files).await?;
                }
            }
        }
        self.conn.write(&mut pending, files).await?;
        Ok(false)
    }
}

/// A request body from FCGI_STDIN records: `CONTENT_LENGTH` bytes (what a web server sends
/// beyond them is dropped), an error if the stream ends or is aborted before them.
#[derive(Debug)]
struct StdinBody {
    rx: mpsc::Receiver<Bytes>,
    remaining: u64,
}

impl Body for StdinBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        match this.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(mut data)) => {
                if data.len() as u64 > this.remaining {
                    data.truncate(this.remaining as usize);
                }
                this.remaining -= data.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the FastCGI body ended {} bytes before its CONTENT_LENGTH",
                    this.remaining
                ),
            )))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_body_stops_at_content_length_and_fails_if_cut_short() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"hello world")).await.unwrap();
        let mut body = StdinBody { rx, remaining: 5 };
        let got = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&got[..], b"hello");
        assert!(body.frame().await.is_none());

        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        drop(tx);
        let mut body = StdinBody { rx, remaining: 10 };
        body.frame().await.unwrap().unwrap();
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
