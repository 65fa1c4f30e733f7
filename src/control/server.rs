//! The master's side of the control socket: accepts connections, reads one request each and
//! hands it on as a [`Call`] with a channel for the reply. It knows nothing of the master's
//! internals: whoever reads the calls decides what they mean.
//!
//! It runs on the master's one thread beside reaping and signals, so every connection is
//! bounded (request size, time to send the request and to take the reply, connections open at
//! once) and accept errors pause the loop: a misbehaving client costs the master a slot, never
//! its memory, its fds for good, or its CPU.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::messages::{Reply, Request};

/// Longest request line, newline excluded. Real requests are under 200 bytes; the cap is what
/// stops a line that never ends from growing the master's memory (nothing past it is read).
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// How long a client has, from the accept, to send its whole request line. The CLI sends it
/// at once; an idle or trickling client is told and closed, so it cannot hold a slot and an
/// fd. The master's time to answer (a `reload --wait`) is not counted.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long writing the reply may take. A reply fits in the socket buffer unless the client
/// stops reading; such a client is dropped rather than left holding its slot.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Most control connections open at once. When all are taken, the oldest one that has not
/// sent its request yet is closed to make room (as nginx reuses idle keep-alive connections
/// when it runs out of `worker_connections`), so a pile of idle clients cannot lock
/// `segue status` out; only when every one is waiting for the master's answer is the new one
/// refused. Bounding them also bounds the calls the master can have queued.
const MAX_CONNECTIONS: usize = 64;

/// First pause after a failed accept (EMFILE, ENFILE, ENOBUFS...). The error repeats until
/// something frees the resource, so retrying at once would only spin the master's thread.
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(100);

/// Longest pause between accepts while they keep failing: the pause doubles up to this, so
/// the socket answers again within about a second of the fds coming back.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

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
    tokio::spawn(accept_loop(listener, path.to_owned(), calls));
    Ok(ControlSocket {
        path: path.to_owned(),
        fd,
    })
}

async fn accept_loop(listener: UnixListener, path: PathBuf, calls: mpsc::UnboundedSender<Call>) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    // Failed accepts in a row: the current backoff episode.
    let mut failures: u32 = 0;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // About one connection that went away before we took it; the next is fine.
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                let pause = accept_backoff(failures);
                if failures == 0 {
                    tracing::warn!(
                        "control socket {}: cannot accept connections: {e}; retrying every {:?} \
                         to {:?} until it works (if this is EMFILE, raise the master's fd limit, \
                         e.g. LimitNOFILE= or ulimit -n, or find what holds its fds)",
                        path.display(),
                        ACCEPT_BACKOFF_FIRST,
                        ACCEPT_BACKOFF_MAX
                    );
                }
                failures = failures.saturating_add(1);
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        if failures > 0 {
            tracing::info!(
                "control socket {}: accepting again after {failures} failed attempts",
                path.display()
            );
            failures = 0;
        }
        match Slots::admit(&slots) {
            Some(conn) => tokio::spawn(answer(stream, conn, calls.clone())),
            None => tokio::spawn(refuse(stream, Refusal::Busy)),
        };
    }
}

/// Errors that concern one connection only (the peer left while it was queued), not the
/// listener: retried at once, as hyper's accept loop does.
fn is_per_connection(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
    )
}

/// The pause after the `failures`-th failed accept in a row (0-based): 100 ms doubling to 1 s.
fn accept_backoff(failures: u32) -> Duration {
    ACCEPT_BACKOFF_FIRST
        .saturating_mul(2u32.saturating_pow(failures))
        .min(ACCEPT_BACKOFF_MAX)
}

/// The open control connections, oldest first; shared by the accept loop, which admits and
/// evicts, and the connection tasks, which leave when they end.
#[derive(Default)]
struct Slots {
    /// The id the next connection gets; ids grow, so the map's order is the connections' age.
    next: u64,
    /// Each open connection, with the trigger that closes it while it is still waiting for its
    /// request (`None` once the request is in: it is being answered and is never evicted).
    open: BTreeMap<u64, Option<oneshot::Sender<()>>>,
}

/// A connection's place among [`Slots`]; dropping it frees the place.
struct Slot {
    id: u64,
    slots: Arc<Mutex<Slots>>,
}

/// What a connection task is given when it is admitted.
struct Admitted {
    slot: Slot,
    /// Fires when a newer connection needed the slot before this one sent its request.
    evicted: oneshot::Receiver<()>,
}

impl Slots {
    fn lock(slots: &Mutex<Slots>) -> std::sync::MutexGuard<'_, Slots> {
        // Nothing here can panic while holding the lock; if it did, the map is still whole.
        slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a new connection, evicting the oldest one still waiting for its request if all
    /// [`MAX_CONNECTIONS`] are taken; `None` when every open connection is being answered.
    fn admit(slots: &Arc<Mutex<Slots>>) -> Option<Admitted> {
        let mut s = Self::lock(slots);
        if s.open.len() >= MAX_CONNECTIONS {
            let oldest_idle = s
                .open
                .iter()
                .find(|(_, evict)| evict.is_some())
                .map(|(&id, _)| id)?;
            if let Some(Some(evict)) = s.open.remove(&oldest_idle) {
                let _ = evict.send(());
            }
        }
        let id = s.next;
        s.next += 1;
        let (tx, evicted) = oneshot::channel();
        s.open.insert(id, Some(tx));
        Some(Admitted {
            slot: Slot {
                id,
                slots: slots.clone(),
            },
            evicted,
        })
    }
}

impl Slot {
    /// Marks the connection as being answered (no longer evictable); false if it was evicted
    /// in the meantime.
    fn answering(&self) -> bool {
        match Slots::lock(&self.slots).open.get_mut(&self.id) {
            Some(evict) => {
                *evict = None;
                true
            }
            None => false,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        Slots::lock(&self.slots).open.remove(&self.id);
    }
}

/// Why a connection was closed without handing a call to the master; the text is the error
/// reply the client gets.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// The request line passed [`MAX_REQUEST_BYTES`].
    #[error(
        "control request longer than {MAX_REQUEST_BYTES} bytes (64 KiB); a request is one JSON \
         line ending in a newline"
    )]
    TooLong,
    /// The request line did not arrive within [`REQUEST_TIMEOUT`].
    #[error(
        "no complete control request within {REQUEST_TIMEOUT:?}; send the JSON line, ending in \
         a newline, as soon as you connect"
    )]
    TooSlow,
    /// A newer connection took the slot.
    #[error(
        "closed to make room: {MAX_CONNECTIONS} control connections were open and this one had \
         sent no request (close idle connections to the control socket)"
    )]
    Evicted,
    /// Every slot is waiting for the master's answer.
    #[error(
        "{MAX_CONNECTIONS} control connections are already waiting for the master's answer; \
         retry when one has finished (e.g. a reload --wait)"
    )]
    Busy,
    /// The line is not a request.
    #[error("malformed control request: {0}")]
    Malformed(serde_json::Error),
}

/// Reads the request line: `Ok(None)` if the client left without sending anything.
async fn read_request(
    rd: impl AsyncRead + Unpin,
) -> std::io::Result<Result<Option<Request>, Refusal>> {
    // One byte past the cap tells a line at the cap from a longer one.
    let mut reader = BufReader::new(rd.take(MAX_REQUEST_BYTES as u64 + 1));
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await?;
    if line.last() != Some(&b'\n') {
        if line.len() > MAX_REQUEST_BYTES {
            return Ok(Err(Refusal::TooLong));
        }
        // EOF ends the line too (`printf '{"cmd":"status"}' | socat`), unless nothing came.
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(Ok(None));
        }
    }
    Ok(serde_json::from_slice(&line)
        .map(Some)
        .map_err(Refusal::Malformed))
}

async fn answer(stream: UnixStream, conn: Admitted, calls: mpsc::UnboundedSender<Call>) {
    let Admitted { slot, mut evicted } = conn;
    let (rd, mut wr) = stream.into_split();
    let read = tokio::select! {
        biased;
        _ = &mut evicted => Err(Refusal::Evicted),
        read = tokio::time::timeout(REQUEST_TIMEOUT, read_request(rd)) => match read {
            Err(_) => Err(Refusal::TooSlow),
            // The client is gone; nobody to answer.
            Ok(Err(_)) | Ok(Ok(Ok(None))) => return,
            Ok(Ok(Ok(Some(request)))) => Ok(request),
            Ok(Ok(Err(refusal))) => Err(refusal),
        },
    };
    let request = match read {
        Ok(request) if slot.answering() => request,
        Ok(_) => return send_refusal(&mut wr, Refusal::Evicted).await,
        Err(refusal) => return send_refusal(&mut wr, refusal).await,
    };
    let (tx, rx) = oneshot::channel();
    if calls.send(Call { request, reply: tx }).is_err() {
        return;
    }
    // No timeout here: a `reload --wait` is answered when the reload is over.
    let reply = rx.await.unwrap_or_else(|_| Reply::Error {
        message: "the master is stopping".into(),
    });
    send(&mut wr, &reply).await;
    drop(slot);
}

/// Answers a connection that got no slot, and closes it.
async fn refuse(stream: UnixStream, refusal: Refusal) {
    let mut stream = stream;
    send_refusal(&mut stream, refusal).await;
}

async fn send_refusal(wr: &mut (impl AsyncWrite + Unpin), refusal: Refusal) {
    tracing::debug!("control connection closed: {refusal}");
    let reply = Reply::Error {
        message: refusal.to_string(),
    };
    send(wr, &reply).await;
}

/// Writes `reply` as one line, giving up after [`REPLY_TIMEOUT`].
async fn send(wr: &mut (impl AsyncWrite + Unpin), reply: &Reply) {
    let Ok(mut json) = serde_json::to_vec(reply) else {
        return;
    };
    json.push(b'\n');
    match tokio::time::timeout(REPLY_TIMEOUT, wr.write_all(&json)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("control reply not delivered: {e}"),
        Err(_) => tracing::debug!(
            "control reply not delivered: the client did not read it within {REPLY_TIMEOUT:?}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::AsyncReadExt;
    use tokio::time::Instant;

    fn table() -> Arc<Mutex<Slots>> {
        Arc::new(Mutex::new(Slots::default()))
    }

    /// Starts one connection's task; returns the client end and the task.
    fn connect(
        slots: &Arc<Mutex<Slots>>,
        calls: &mpsc::UnboundedSender<Call>,
    ) -> (UnixStream, tokio::task::JoinHandle<()>) {
        let (client, server) = UnixStream::pair().unwrap();
        let conn = Slots::admit(slots).expect("a free slot");
        (client, tokio::spawn(answer(server, conn, calls.clone())))
    }

    async fn reply_of(client: &mut UnixStream) -> Reply {
        let mut all = Vec::new();
        client.read_to_end(&mut all).await.unwrap();
        serde_json::from_slice(&all).unwrap()
    }

    fn error_message(reply: Reply) -> String {
        match reply {
            Reply::Error { message } => message,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn accept_backoff_doubles_from_100ms_to_1s() {
        let pauses: Vec<u128> = (0..7).map(|n| accept_backoff(n).as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(accept_backoff(u32::MAX), ACCEPT_BACKOFF_MAX);
    }

    #[test]
    fn a_full_table_evicts_its_oldest_idle_connection_and_never_one_being_answered() {
        let slots = table();
        let mut admitted: Vec<Admitted> = (0..MAX_CONNECTIONS)
            .map(|_| Slots::admit(&slots).unwrap())
            .collect();
        // The oldest is being answered: the second oldest goes.
        assert!(admitted[0].slot.answering());
        let newest = Slots::admit(&slots).unwrap();
        assert!(admitted[1].evicted.try_recv().is_ok());
        assert!(!admitted[1].slot.answering());
        assert!(admitted[2].evicted.try_recv().is_err());
        assert_eq!(Slots::lock(&slots).open.len(), MAX_CONNECTIONS);
        // Every slot being answered: the next connection is refused.
        for a in admitted.iter().skip(2) {
            assert!(a.slot.answering());
        }
        assert!(newest.slot.answering());
        assert!(Slots::admit(&slots).is_none());
        // One finishes: there is room again.
        admitted.pop();
        assert!(Slots::admit(&slots).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_client_is_told_and_closed_after_the_request_timeout() {
        let (calls, _master) = mpsc::unbounded_channel();
        let slots = table();
        let (mut client, task) = connect(&slots, &calls);
        let started = Instant::now();
        let reply = tokio::time::timeout(REQUEST_TIMEOUT * 4, reply_of(&mut client)).await;
        let message = error_message(reply.expect("the idle client was never closed"));
        assert!(message.contains("within 5s"), "{message}");
        assert!(started.elapsed() >= REQUEST_TIMEOUT);
        task.await.unwrap();
        assert!(Slots::lock(&slots).open.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_past_the_cap_is_refused_without_reading_further() {
        let (calls, mut master) = mpsc::unbounded_channel();
        let (mut client, task) = connect(&table(), &calls);
        client
            .write_all(&vec![b' '; MAX_REQUEST_BYTES + 1])
            .await
            .unwrap();
        let message = error_message(reply_of(&mut client).await);
        assert!(message.contains("65536 bytes"), "{message}");
        task.await.unwrap();
        assert!(master.try_recv().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_at_the_cap_is_a_request() {
        let (calls, mut master) = mpsc::unbounded_channel();
        let (mut client, task) = connect(&table(), &calls);
        let mut line = br#"{"cmd":"status"}"#.to_vec();
        line.resize(MAX_REQUEST_BYTES, b' ');
        line.push(b'\n');
        client.write_all(&line).await.unwrap();
        let call: Call = master.recv().await.unwrap();
        assert!(matches!(call.request, Request::Status));
        drop(call);
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_masters_time_to_answer_is_not_limited() {
        let (calls, mut master) = mpsc::unbounded_channel();
        let (mut client, task) = connect(&table(), &calls);
        client
            .write_all(b"{\"cmd\":\"reload\",\"strategy\":null,\"wait\":true}\n")
            .await
            .unwrap();
        let call: Call = master.recv().await.unwrap();
        // A long reload: far past both timeouts.
        tokio::time::sleep(Duration::from_secs(600)).await;
        let _ = call.reply.send(Reply::Ok {
            message: "done".into(),
        });
        assert!(matches!(reply_of(&mut client).await, Reply::Ok { .. }));
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_does_not_read_its_reply_is_dropped_after_the_reply_timeout() {
        let (calls, mut master) = mpsc::unbounded_channel();
        let slots = table();
        let (mut client, task) = connect(&slots, &calls);
        client.write_all(b"{\"cmd\":\"status\"}\n").await.unwrap();
        let call: Call = master.recv().await.unwrap();
        let answered = Instant::now();
        // Far more than a socket buffer holds, and the client never reads.
        let _ = call.reply.send(Reply::Ok {
            message: "x".repeat(16 << 20),
        });
        let ended = tokio::time::timeout(REPLY_TIMEOUT * 4, task).await;
        ended
            .expect("a client that never reads held its connection")
            .unwrap();
        assert!(answered.elapsed() >= REPLY_TIMEOUT);
        assert!(Slots::lock(&slots).open.is_empty());
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn an_evicted_client_is_told_why() {
        let (calls, _master) = mpsc::unbounded_channel();
        let slots = table();
        let (mut first, _task) = connect(&slots, &calls);
        let _rest: Vec<_> = (1..MAX_CONNECTIONS)
            .map(|_| connect(&slots, &calls))
            .collect();
        let _newest = connect(&slots, &calls);
        let message = error_message(reply_of(&mut first).await);
        assert!(message.contains("closed to make room"), "{message}");
    }
}
