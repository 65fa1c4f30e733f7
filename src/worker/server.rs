//! Accepting connections on the inherited listeners and serving each in its listener's
//! protocol: HTTP with hyper, uwsgi with [`super::uwsgi`], FastCGI with [`super::fastcgi`].
//!
//! Connections are served on a thread of their own, the serving thread, with its own event
//! loop; the worker's main thread keeps the control channel, heartbeats and signals. So when
//! the app runs inline (on the serving thread, [`super::service::Inline`]) a long request
//! delays other requests, as it would with one Python thread anyway, but never the worker's
//! heartbeat or its answer to the master.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::acceptor::{Accepted, Acceptor, Admission, Held};
use super::drain::{ConnState, Drain, DrainWatch, drain_connection};
use super::service::{Service, Shared};
use crate::config::{Limits, ListenAddr, Protocol};
use crate::http::framing::Pass;
use crate::http::sendfile::{self, FileQueue};
use crate::wsgi::{Local, Peer};

/// Starts the serving thread and, on it, one acceptor per listener, all under the same
/// `admission` (scoreboard, GIL gate, connection limit). Each stops, and closes this worker's
/// copy of the socket, when the drain starts. With `inline` the thread is a Python thread for
/// its whole life (the app runs on it; it holds the GIL only while it does), so the app's
/// `threading.local` state lasts from one request to the next. Returns once the acceptors run.
pub fn start(
    listeners: Vec<((ListenAddr, Protocol), OwnedFd)>,
    shared: Arc<Shared>,
    drain: &Drain,
    admission: Admission,
    inline: bool,
) -> io::Result<()> {
    let watches: Vec<DrainWatch> = listeners.iter().map(|_| drain.watch()).collect();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name("segue-serve".into())
        .spawn(move || {
            let _enter = span.enter();
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                    return;
                }
            };
            let serve = move || {
                runtime.block_on(async move {
                    let started = accept_all(listeners, shared, watches, admission);
                    let ok = started.is_ok();
                    let _ = started_tx.send(started);
                    if ok {
                        // The worker's main thread ends the process once the drain is over.
                        std::future::pending::<()>().await;
                    }
                })
            };
            if inline {
                pyo3::Python::attach(|py| py.detach(serve));
            } else {
                serve();
            }
        })?;
    started_rx.recv().unwrap_or_else(|_| {
        Err(io::Error::other(
            "the serving thread ended before it started",
        ))
    })
}

/// Spawns the accept loops on the current (serving) runtime.
fn accept_all(
    listeners: Vec<((ListenAddr, Protocol), OwnedFd)>,
    shared: Arc<Shared>,
    watches: Vec<DrainWatch>,
    admission: Admission,
) -> io::Result<()> {
    let http = Arc::new(http_builder(&shared));
    tokio::spawn(keep_timer_near());
    for ((i, ((addr, protocol), fd)), watch) in listeners.into_iter().enumerate().zip(watches) {
        let acceptor = Acceptor::new(fd, admission.clone())?;
        let local = match addr {
            ListenAddr::Tcp(a) => Local::Tcp(a),
            ListenAddr::Unix(_) => Local::Unix,
        };
        tokio::spawn(accept_loop(
            acceptor,
            protocol,
            (local, i),
            shared.clone(),
            http.clone(),
            watch,
        ));
    }
    Ok(())
}

/// Keeps a timer of this runtime due within a second. tokio's timer wakes its own driver (an
/// eventfd write, and one more turn of the event loop) whenever a new timer falls due before
/// the driver's planned wake-up, even from the driver's own thread; with no nearer timer, that
/// was every new connection's header timeout (`--header-timeout`, 15 s). With this one, a
/// planned wake-up is never more than a second away and those timers leave it alone.
async fn keep_timer_near() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// Room for a maximal request line and header block; beyond it hyper answers 431. The head
/// scanner follows heads up to the same size.
fn max_head(limits: &Limits) -> usize {
    limits
        .head
        .unwrap_or(
            limits.request_line
                + (limits.request_fields + 1) * (limits.request_field_size + 2)
                + 1024,
        )
        .clamp(8192, 4 << 20)
}

fn http_builder(shared: &Shared) -> http1::Builder {
    let limits = &shared.config.limits;
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_timeout)
        .keep_alive(true)
        // Vectored writes hand body buffers to our I/O uncopied, which is what lets file bodies
        // travel as placeholders (crate::http::sendfile). Never flatten.
        .writev(true)
        // No `pipeline_flush`: with it, hyper defers the flush while unread bytes remain, and
        // its automatic 400 for a malformed head is never written before the close.
        // One more than the limit, so that exceeding it reaches our 431 with a clear reason.
        .max_headers(limits.request_fields + 1)
        .max_buf_size(max_head(limits));
    b
}

/// Accepts and serves connections until the drain starts; what it accepted is served on.
async fn accept_loop(
    mut acceptor: Acceptor,
    protocol: Protocol,
    (local, listener): (Local, usize),
    shared: Arc<Shared>,
    http: Arc<http1::Builder>,
    mut watch: DrainWatch,
) {
    while let Some(Accepted {
        fd,
        peer,
        nodelay,
        held,
    }) = acceptor.next(&mut watch).await
    {
        match into_conn(fd, peer, nodelay, &local) {
            Ok((conn, peer)) if protocol != Protocol::Http => {
                let sock = match conn {
                    Conn::Tcp(s) => super::socket::Sock::Tcp(s),
                    Conn::Unix(s) => super::socket::Sock::Unix(s),
                };
                let (local, shared, watch) = (local.clone(), shared.clone(), watch.clone());
                if protocol == Protocol::FastCgi {
                    tokio::spawn(super::fastcgi::serve_connection(
                        sock,
                        held,
                        peer,
                        (local, listener),
                        shared,
                        watch,
                    ));
                } else {
                    tokio::spawn(super::uwsgi::serve_connection(
                        sock,
                        held,
                        peer,
                        (local, listener),
                        shared,
                        watch,
                    ));
                }
            }
            Ok((conn, peer)) => {
                tokio::spawn(serve_connection(
                    conn,
                    held,
                    peer,
                    (local.clone(), listener),
                    shared.clone(),
                    http.clone(),
                    watch.clone(),
                ));
            }
            Err(e) => tracing::debug!("cannot use an accepted connection: {e}"),
        }
    }
}

/// An accepted connection of either kind.
enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

fn into_conn(
    fd: OwnedFd,
    peer: Option<SocketAddr>,
    nodelay: bool,
    local: &Local,
) -> io::Result<(Conn, Peer)> {
    match local {
        Local::Tcp(_) => {
            let s = tokio::net::TcpStream::from_std(std::net::TcpStream::from(fd))?;
            // Responses are written whole; Nagle would only delay the last segment.
            if !nodelay {
                let _ = s.set_nodelay(true);
            }
            let peer = match peer {
                Some(p) => p,
                None => s.peer_addr()?,
            };
            Ok((Conn::Tcp(s), Peer::Tcp(peer)))
        }
        Local::Unix => {
            let s = tokio::net::UnixStream::from_std(std::os::unix::net::UnixStream::from(fd))?;
            Ok((Conn::Unix(s), Peer::Unix))
        }
    }
}

async fn serve_connection(
    conn: Conn,
    // Held until the connection ends: this worker's count, for its limit and the scoreboard.
    _held: Held,
    peer: Peer,
    (local, listener): (Local, usize),
    shared: Arc<Shared>,
    http: Arc<http1::Builder>,
    mut watch: DrainWatch,
) {
    let limits = &shared.config.limits;
    let state = Arc::new(ConnState::new(limits.request_fields + 1, max_head(limits)));
    let fd = match &conn {
        Conn::Tcp(s) => s.as_raw_fd(),
        Conn::Unix(s) => s.as_raw_fd(),
    };
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
    let files = Arc::new(FileQueue::default());
    let service = Service {
        shared: shared.clone(),
        conn: state.clone(),
        files: files.clone(),
        drain: watch.clone(),
        peer,
        local,
        listener,
    };
    let io = TokioIo::new(Watched {
        inner: conn,
        state: state.clone(),
        files,
        cut: None,
    });
    let connection = http.serve_connection(io, service);
    tokio::pin!(connection);
    let done_early = tokio::select! {
        r = connection.as_mut() => { log_result(r); true }
        _ = watch.started() => false,
    };
    if !done_early {
        drain_connection(connection.as_mut(), |c| c.graceful_shutdown(), state, fd).await;
    }
    shared.counters.connections.fetch_sub(1, Ordering::Relaxed);
}

fn log_result(r: hyper::Result<()>) {
    if let Err(e) = r {
        // hyper's message names the step ("error writing a body"); the cause says why.
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            why = format!("{why}: {cause}");
            source = cause.source();
        }
        // Clients resetting or timing out are routine; these are for debugging only.
        tracing::debug!("connection ended: {why}");
    }
}

/// The connection's I/O: shows reads to the head scanner and the drain bookkeeping, and sends
/// file bodies' bytes with `sendfile` where hyper writes their placeholders.
struct Watched {
    inner: Conn,
    state: Arc<ConnState>,
    files: Arc<FileQueue>,
    /// Set once the head scanner cut the stream: what hyper still gets in place of the client's
    /// bytes (then nothing, until the refusal's answer closes the connection).
    cut: Option<&'static [u8]>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(rest) = &mut self.cut {
            if rest.is_empty() {
                // Not EOF: hyper would abort the answer it is writing. It closes the connection
                // once the refusal is out, and nothing wakes this read before.
                return Poll::Pending;
            }
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            *rest = &rest[n..];
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = match &mut self.inner {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
        };
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            if let Pass::Cut { at, then } = self.state.bytes_read(&buf.filled()[before..]) {
                // hyper must not parse the refused head: it gets the bytes before it, then the
                // scanner's replacement (the space the client's bytes took holds at least one).
                buf.set_filled(before + at);
                let n = then.len().min(buf.remaining());
                buf.put_slice(&then[..n]);
                self.cut = Some(&then[n..]);
            }
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match &mut this.inner {
            Conn::Tcp(s) => sendfile::poll_write_vectored(Pin::new(s), cx, bufs, &this.files),
            Conn::Unix(s) => sendfile::poll_write_vectored(Pin::new(s), cx, bufs, &this.files),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
