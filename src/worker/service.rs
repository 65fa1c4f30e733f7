//! The hyper service: validates a request, hands it to a Python thread, and turns the reply
//! into a hyper response. Runs on the worker's tokio thread; never touches Python.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response, StatusCode, header};
use tokio::sync::oneshot;

use super::drain::{ConnState, DrainWatch};
use super::pool::Pool;
use crate::config::WorkerConfig;
use crate::http::body::ResponseBody;
use crate::http::forwarded;
use crate::http::framing::HeadVerdict;
use crate::http::request_body::{BodyLimits, RequestBody, Source};
use crate::http::sendfile::FileQueue;
use crate::http::static_files::{StaticReply, StaticServer};
use crate::http::validate;
use crate::http::validate::Rejection;
use crate::logging::access;
use crate::protocol::Stats;
use crate::wsgi::{self, Job, Local, Peer, Reply};

/// Worker-wide request counters, reported in heartbeats.
#[derive(Debug, Default)]
pub struct Counters {
    started: AtomicU64,
    finished: AtomicU64,
    tx_bytes: AtomicU64,
    busy_us: AtomicU64,
    by_class: [AtomicU64; 5],
    duration: crate::metrics::histogram::AtomicHistogram,
    statics: AtomicU64,
    by_listener: Vec<AtomicU64>,
    /// Open client connections.
    pub connections: AtomicU64,
    /// This worker's `--max-requests` (with jitter).
    pub max_requests: Option<u64>,
    /// Fired once when `finished` reaches `max_requests`.
    pub limit_reached: tokio::sync::Notify,
}

impl Counters {
    /// Counters for a worker with `listeners` listeners, recycled after `max_requests`.
    pub fn new(max_requests: Option<u64>, listeners: usize) -> Self {
        Counters {
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            busy_us: AtomicU64::new(0),
            by_class: Default::default(),
            duration: Default::default(),
            statics: AtomicU64::new(0),
            by_listener: (0..listeners).map(|_| AtomicU64::new(0)).collect(),
            connections: AtomicU64::new(0),
            max_requests,
            limit_reached: tokio::sync::Notify::new(),
        }
    }

    /// A snapshot for the master.
    pub fn snapshot(&self) -> Stats {
        Stats {
            requests_started: self.started.load(Ordering::Relaxed),
            requests_finished: self.finished.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            rss_kib: rss_kib(),
            log_dropped: crate::logging::dropped(),
            tx_bytes: self.tx_bytes.load(Ordering::Relaxed),
            busy_us: self.busy_us.load(Ordering::Relaxed),
            by_class: std::array::from_fn(|i| self.by_class[i].load(Ordering::Relaxed)),
            duration: self.duration.snapshot(),
            statics: self.statics.load(Ordering::Relaxed),
            by_listener: self
                .by_listener
                .iter()
                .map(|n| n.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// This process's resident memory in KiB (0 if /proc is unreadable).
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    pages * page / 1024
}

/// Counts a request as in flight until hyper drops its response body.
struct InFlight {
    conn: Arc<ConnState>,
    counters: Arc<Counters>,
}

impl InFlight {
    fn new(conn: Arc<ConnState>, counters: Arc<Counters>) -> Self {
        conn.request_started();
        counters.started.fetch_add(1, Ordering::Relaxed);
        InFlight { conn, counters }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.request_finished();
        let finished = self.counters.finished.fetch_add(1, Ordering::Relaxed) + 1;
        if Some(finished) == self.counters.max_requests {
            self.counters.limit_reached.notify_one();
        }
    }
}

/// What every connection of a worker shares.
pub struct Shared {
    /// The configuration from `Boot`.
    pub config: Arc<WorkerConfig>,
    /// The Python threads.
    pub pool: Pool,
    /// Set when the app runs on the connection's own thread (one Python thread per worker).
    pub inline: Option<Inline>,
    /// Counters for heartbeats.
    pub counters: Arc<Counters>,
    /// Static files answered before the app (`--static-map`); `None` when none are mapped.
    pub statics: Option<Arc<StaticServer>>,
    /// The access log, when requests are logged.
    pub access: Option<Arc<AccessLog>>,
}

/// Running the app on the connection's own thread: with one Python thread per worker a request
/// then never crosses threads (two wakeups and a context switch less each way). Requests whose
/// body the app reads as it arrives (`Expect: 100-continue`, or past what is read ahead), and
/// all requests of an app that uses `write()`, still go to the pool's one thread, under the
/// same turn, so the app never runs twice at once.
pub struct Inline {
    /// The app (the pool has it too).
    pub app: Arc<wsgi::App>,
    /// The one turn to run it.
    pub turns: Arc<super::turn::Turns>,
}

/// How this worker writes access lines.
#[derive(Debug)]
pub struct AccessLog {
    /// `--access-logformat`, parsed.
    pub format: access::Format,
    /// The worker's identity for `%(g)s`, `%(w)s`, `%(p)s`.
    pub origin: access::Origin,
    /// `--log-format json`: one object per line.
    pub json: bool,
}

/// One connection's service.
#[derive(Clone)]
pub struct Service {
    /// Worker-wide state.
    pub shared: Arc<Shared>,
    /// This connection's drain bookkeeping.
    pub conn: Arc<ConnState>,
    /// Where this connection's file bodies wait for the socket.
    pub files: Arc<FileQueue>,
    /// Whether the worker is draining (responses then close the connection).
    pub drain: DrainWatch,
    /// The client.
    pub peer: Peer,
    /// The listener.
    pub local: Local,
    /// Its index among the worker's listeners (`Boot::listeners`), for per-listener counts.
    pub listener: usize,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

/// Generic over the body so that requests of other protocols (uwsgi, whose body is read from
/// the socket by segue) take the same path as hyper's.
impl<B: Source> hyper::service::Service<Request<B>> for Service {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn call(&self, req: Request<B>) -> Self::Future {
        let received = Instant::now();
        if let Some(n) = self.shared.counters.by_listener.get(self.listener) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        let guard = InFlight::new(self.conn.clone(), self.shared.counters.clone());
        let (mut parts, incoming) = req.into_parts();
        // A gateway protocol's request has no raw HTTP head for the scanner to judge.
        let gateway = parts.extensions.remove::<crate::gateway::Gateway>();
        let limits = &self.shared.config.limits;
        let access = self.shared.access.as_ref().map(|log| AccessLine {
            log: log.clone(),
            request: log.format.request(
                peer_text(&self.peer),
                &parts.method,
                &parts.uri,
                parts.version,
                &parts.headers,
            ),
        });

        // One verdict per request, in order, even when another check rejects it.
        let verdict = match &gateway {
            Some(_) => HeadVerdict::Clean,
            None => self.conn.head_verdict(),
        };
        let checked = match verdict {
            HeadVerdict::Refused(rejection) => Err(rejection),
            HeadVerdict::Clean => validate::check(
                &parts.method,
                &parts.uri,
                parts.version,
                &parts.headers,
                limits,
            ),
        };
        let checked = checked.and_then(|()| {
            forwarded::is_https(
                &parts.headers,
                &self.peer,
                &self.shared.config.forwarded_allow_ips,
            )
            .map_err(|_| Rejection {
                status: StatusCode::BAD_REQUEST,
                reason: "contradictory scheme headers (X-Forwarded-Proto, -Protocol, -Ssl)",
            })
        });
        let https = match checked {
            Ok(https) => https,
            Err(rejection) => {
                tracing::debug!(
                    status = rejection.status.as_u16(),
                    "rejected request: {}",
                    rejection.reason
                );
                let body = format!("{} {}\n", rejection.status, rejection.reason);
                let reply = wsgi::response::error_reply(rejection.status, body);
                // The stream position is unknown after a bad head; never reuse the connection.
                let response = into_response(reply, guard, true, access, received);
                return Box::pin(std::future::ready(Ok(response)));
            }
        };

        // Static files are answered here, on the tokio side: no Python thread, no GIL. A
        // request with a body is the app's (no static answer would read it).
        if let Some(statics) = &self.shared.statics {
            if statics.may_serve(&parts.method, &parts.uri) && !validate::has_body(&parts.headers) {
                let statics = statics.clone();
                let service = self.clone();
                return Box::pin(async move {
                    match statics
                        .serve(&parts.method, &parts.uri, &parts.headers)
                        .await
                    {
                        Some(reply) => Ok(service.static_response(reply, guard, access, received)),
                        None => {
                            service
                                .to_app(parts, incoming, gateway, https, guard, access, received)
                                .await
                        }
                    }
                });
            }
        }
        self.to_app(parts, incoming, gateway, https, guard, access, received)
    }
}

impl Service {
    /// Sends a static answer the way app replies go, so drain, access log and in-flight
    /// counting treat it alike.
    fn static_response(
        &self,
        reply: StaticReply,
        guard: InFlight,
        access: Option<AccessLine>,
        received: Instant,
    ) -> Response<ResponseBody> {
        self.shared.counters.statics.fetch_add(1, Ordering::Relaxed);
        let reply = Reply {
            status: reply.status,
            reason: None,
            headers: reply.headers,
            body: reply.body.with_files(self.files.clone()),
        };
        into_response(reply, guard, self.drain.is_draining(), access, received)
    }

    /// Hands the request to a Python thread and waits for the app's reply.
    #[allow(
        clippy::too_many_arguments,
        reason = "one request's parts, passed on once"
    )]
    fn to_app<B: Source>(
        &self,
        parts: http::request::Parts,
        incoming: B,
        gateway: Option<crate::gateway::Gateway>,
        https: bool,
        guard: InFlight,
        access: Option<AccessLine>,
        received: Instant,
    ) -> BoxFuture {
        let limits = &self.shared.config.limits;
        let body_limits = BodyLimits {
            max: limits.request_body,
            timeout: self.shared.config.socket_timeout,
        };
        let mut request = wsgi::Request {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
            peer: self.peer.clone(),
            local: self.local.clone(),
            https,
            body: None,
            gateway,
        };
        let (tx, rx) = oneshot::channel();
        let inline = self
            .shared
            .inline
            .as_ref()
            .map(|i| (i.app.clone(), i.turns.clone()));
        let pending = Pending {
            rx,
            harakiri: self.shared.config.harakiri,
            drain: self.drain.clone(),
            files: self.files.clone(),
            guard,
            access,
            received,
        };
        if let Some((app, turns)) = inline {
            let shared = self.shared.clone();
            return Box::pin(async move {
                if validate::has_body(&request.headers) {
                    request.body = Some(if RequestBody::reads_ahead(&request.headers) {
                        RequestBody::read_ahead(incoming, body_limits).await
                    } else {
                        RequestBody::lazy(incoming, body_limits)
                    });
                }
                let turn: wsgi::Hold = Box::new(turns.take().await);
                let waits = request.body.as_ref().is_some_and(|b| !b.is_complete());
                if waits || app.uses_write.load(Ordering::Relaxed) {
                    let mut job = Job::new(request, tx);
                    job.hold = Some(turn);
                    shared.pool.submit(job);
                } else {
                    run_inline(&app, request, tx, turn);
                }
                pending.answer().await
            });
        }
        if !validate::has_body(&request.headers) {
            self.shared.pool.submit(Job::new(request, tx));
            return Box::pin(pending.answer());
        }
        if RequestBody::reads_ahead(&request.headers) {
            // Read on this task before a Python thread is taken: a client trickling its body
            // then holds a socket, not a thread.
            let shared = self.shared.clone();
            return Box::pin(async move {
                request.body = Some(RequestBody::read_ahead(incoming, body_limits).await);
                shared.pool.submit(Job::new(request, tx));
                pending.answer().await
            });
        }
        // The client waits for 100 Continue: the app's first read asks for the body.
        request.body = Some(RequestBody::lazy(incoming, body_limits));
        self.shared.pool.submit(Job::new(request, tx));
        Box::pin(pending.answer())
    }
}

/// Runs the app for `request` here, on the connection's thread.
fn run_inline(
    app: &wsgi::App,
    request: wsgi::Request,
    reply: oneshot::Sender<Reply>,
    turn: wsgi::Hold,
) {
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pyo3::Python::attach(|py| wsgi::handle_inline(py, app, request, reply, turn));
    }));
    // A bug in segue must cost one request (its reply is dropped: a 500), not the thread.
    if ran.is_err() {
        tracing::error!("internal error while handling a request (a panic); the request got a 500");
    }
}

/// A request queued for a Python thread, waiting for its reply.
struct Pending {
    rx: oneshot::Receiver<Reply>,
    harakiri: Option<Duration>,
    drain: DrainWatch,
    files: Arc<FileQueue>,
    guard: InFlight,
    access: Option<AccessLine>,
    received: Instant,
}

impl Pending {
    /// Waits for the Python thread's reply (or answers 504 past `--harakiri`) as hyper's response.
    async fn answer(self) -> Result<Response<ResponseBody>, Infallible> {
        let answer = match self.harakiri {
            // The tokio side answers even while the Python thread stays stuck.
            Some(limit) => match tokio::time::timeout(limit, self.rx).await {
                Ok(reply) => reply,
                Err(_) => {
                    let mut reply = wsgi::response::error_reply(
                        StatusCode::GATEWAY_TIMEOUT,
                        "504 Gateway Timeout\n",
                    );
                    reply
                        .headers
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    Ok(reply)
                }
            },
            None => self.rx.await,
        };
        let mut reply = answer.unwrap_or_else(|_| {
            wsgi::response::error_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error\n",
            )
        });
        reply.body = reply.body.with_files(self.files);
        Ok(into_response(
            reply,
            self.guard,
            self.drain.is_draining(),
            self.access,
            self.received,
        ))
    }
}

fn into_response(
    reply: Reply,
    guard: InFlight,
    close: bool,
    access: Option<AccessLine>,
    received: Instant,
) -> Response<ResponseBody> {
    let Reply {
        status,
        reason,
        mut headers,
        body,
    } = reply;
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let counters = guard.counters.clone();
    let body = body.with_guard(guard);
    let line = access.map(|AccessLine { log, request }| {
        let line = request.respond(&log.format, status.as_u16(), &headers);
        (log, line)
    });
    let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
    // Once per response, when hyper is done with the body: the stats, and the access line.
    let body = body.on_end(move |bytes| {
        let took = received.elapsed();
        counters.tx_bytes.fetch_add(bytes, Ordering::Relaxed);
        counters
            .busy_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        counters.by_class[class].fetch_add(1, Ordering::Relaxed);
        counters.duration.observe(took.as_micros() as u64);
        if let Some((log, line)) = line {
            crate::logging::access(if log.json {
                line.json(&log.format, log.origin, bytes, took)
            } else {
                line.text(&log.format, log.origin, bytes, took)
            });
        }
    });
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    if let Some(reason) = reason.and_then(|r| hyper::ext::ReasonPhrase::try_from(r).ok()) {
        response.extensions_mut().insert(reason);
    }
    response
}

/// The parts of an access-log line known when the request arrives.
struct AccessLine {
    log: Arc<AccessLog>,
    request: access::Request,
}

fn peer_text(peer: &Peer) -> String {
    match peer {
        Peer::Tcp(a) => a.ip().to_string(),
        Peer::Unix => "unix".into(),
    }
}
