//! The master's side of `--preload`: one zygote per generation, which imports the app once and
//! forks that generation's workers (docs/preload.md).
//!
//! The supervisor does not know zygotes exist: it asks for workers as always ([`Effect::Spawn`])
//! and the executor gets each one from its generation's zygote instead of exec'ing it. What a
//! zygote says is translated into what a worker would have said, so every rule (the readiness
//! gate, rollback, first-start failure, crash backoff) holds unchanged: a failed import reaches
//! the supervisor as each waiting worker's `BootFailed` and, when the zygote is reaped, as each
//! one's exit with the zygote's status. A zygote is retired when the supervisor forgets its
//! generation ([`Effect::Retire`]): it exits once its channel closes, or is killed if it is still
//! importing.
//!
//! [`Effect::Spawn`]: super::effect::Effect::Spawn
//! [`Effect::Retire`]: super::effect::Effect::Retire

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;

use tokio::sync::mpsc;

use super::effect::Event;
use super::generation::GenerationId;
use super::worker::WorkerId;
use crate::protocol::zygote::{FromZygote, ZygoteChannel};
use crate::protocol::{Boot, BootFailure, FdRole, FrameError, write_boot};

/// A worker the executor wants forked.
#[derive(Debug)]
pub struct ForkRequest {
    /// Which worker.
    pub id: WorkerId,
    /// Its `Boot`, written to it once its pid is known.
    pub boot: Boot,
    /// The fds that go with the `Boot` (listeners, scoreboard), by role; they live as long as
    /// the master.
    pub fds: Vec<(FdRole, RawFd)>,
}

/// What a zygote's task reports; the executor consumes these itself
/// ([`super::executor::Executor::absorb`]).
#[derive(Debug)]
pub enum News {
    /// The zygote finished its import.
    Ready {
        /// Which zygote.
        instance: u64,
        /// Its import time.
        import_ms: u64,
    },
    /// The zygote cannot import the app; it exits once this is taken.
    BootFailed {
        /// Which zygote.
        instance: u64,
        /// Why.
        failure: BootFailure,
    },
    /// A worker was forked and sent its `Boot`.
    Forked {
        /// Which worker.
        id: WorkerId,
        /// Its pid.
        pid: i32,
        /// The master's end of its control channel.
        control: tokio::net::UnixStream,
    },
    /// A worker could not be forked.
    ForkFailed {
        /// Which worker.
        id: WorkerId,
        /// Why.
        error: String,
    },
}

/// One generation's zygote, as the executor sees it.
#[derive(Debug)]
struct Zygote {
    instance: u64,
    pid: i32,
    ready: bool,
    requests: mpsc::UnboundedSender<ForkRequest>,
}

/// A worker asked of a zygote and not yet forked.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    /// The zygote (instance) that has the request.
    pub instance: u64,
    /// The scoreboard cell reserved for it, released if it never runs.
    pub cell: Option<usize>,
}

/// Every live zygote and the workers waiting on them.
#[derive(Debug, Default)]
pub struct Zygotes {
    by_generation: HashMap<GenerationId, Zygote>,
    pending: HashMap<WorkerId, Pending>,
    next_instance: u64,
}

impl Zygotes {
    /// Asks `generation`'s zygote for a worker, starting the zygote with `start` if the
    /// generation has none (or its zygote is gone). `start` returns the zygote's pid and the
    /// master's end of its channel. Returns the pid of a zygote it started, so the reaper knows
    /// it, or why none could be started.
    pub fn fork(
        &mut self,
        generation: GenerationId,
        request: ForkRequest,
        cell: Option<usize>,
        events: &mpsc::UnboundedSender<Event>,
        start: impl FnOnce() -> Result<(i32, tokio::net::UnixStream), String>,
    ) -> Result<Option<(i32, u64)>, String> {
        let id = request.id;
        let request = match self.by_generation.get(&generation) {
            Some(z) => match z.requests.send(request) {
                Ok(()) => {
                    let instance = z.instance;
                    self.pending.insert(id, Pending { instance, cell });
                    return Ok(None);
                }
                // Its task has ended: the zygote is gone; start another.
                Err(mpsc::error::SendError(request)) => request,
            },
            None => request,
        };
        let (pid, stream) = start()?;
        self.next_instance += 1;
        let instance = self.next_instance;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(instance, stream, rx, events.clone()));
        let _ = tx.send(request);
        self.pending.insert(id, Pending { instance, cell });
        self.by_generation.insert(
            generation,
            Zygote {
                instance,
                pid,
                ready: false,
                requests: tx,
            },
        );
        Ok(Some((pid, instance)))
    }

    /// Takes a waiting worker out (it was forked, failed, or was cancelled).
    pub fn take_pending(&mut self, id: WorkerId) -> Option<Pending> {
        self.pending.remove(&id)
    }

    /// Cancels a worker that was asked for and not yet forked (it was killed: its boot timed
    /// out, or it was drained before it existed). Returns its reservation, and the pid of its
    /// zygote when no other worker waits on that zygote any more: a zygote that did not fork
    /// within a worker's boot time is stuck (or was stopped with it) and is killed, so that the
    /// next worker its generation needs starts a fresh one instead of waiting on it too.
    pub fn cancel(&mut self, id: WorkerId) -> Option<(Pending, Option<i32>)> {
        let pending = self.pending.remove(&id)?;
        let idle = self.waiting_on(pending.instance).is_empty();
        let zygote = self
            .by_generation
            .iter()
            .find(|(_, z)| z.instance == pending.instance)
            .map(|(g, z)| (*g, z.pid));
        let kill = match zygote {
            Some((generation, pid)) if idle => {
                self.by_generation.remove(&generation);
                Some(pid)
            }
            _ => None,
        };
        Some((pending, kill))
    }

    /// The workers waiting on zygote `instance`.
    pub fn waiting_on(&self, instance: u64) -> Vec<WorkerId> {
        let mut ids: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, p)| p.instance == instance)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// Zygote `instance` finished its import.
    pub fn mark_ready(&mut self, instance: u64) {
        if let Some(z) = self
            .by_generation
            .values_mut()
            .find(|z| z.instance == instance)
        {
            z.ready = true;
        }
    }

    /// Zygote `instance` was reaped: forget it (the next worker of its generation starts a new
    /// one).
    pub fn exited(&mut self, instance: u64) {
        self.by_generation.retain(|_, z| z.instance != instance);
    }

    /// The generation's workers are all gone and it gets no more: let its zygote go. Returns
    /// its pid when it must be killed (it is still importing, and would not read the close).
    pub fn retire(&mut self, generation: GenerationId) -> Option<i32> {
        let z = self.by_generation.remove(&generation)?;
        // Dropping the sender ends the task once its requests are answered; the zygote then
        // reads EOF and exits.
        (!z.ready).then_some(z.pid)
    }
}

/// Runs one zygote's channel: sends the fork requests in order, turns its answers into
/// [`News`], and writes each forked worker's `Boot`. Ends when the zygote exits, or when the
/// executor drops the request sender and nothing is outstanding (closing the channel, which
/// retires the zygote).
async fn run(
    instance: u64,
    stream: tokio::net::UnixStream,
    mut requests: mpsc::UnboundedReceiver<ForkRequest>,
    events: mpsc::UnboundedSender<Event>,
) {
    let news = |n: News| events.send(Event::Zygote(n)).is_ok();
    let (mut reader, mut writer) = ZygoteChannel::split(stream);
    // A reader of its own, so that a frame half read is never dropped by the select below.
    let (answers_tx, mut answers) = mpsc::unbounded_channel();
    let read_task = tokio::spawn(async move {
        loop {
            let msg = reader.recv().await;
            let end = msg.is_err();
            if answers_tx.send(msg).is_err() || end {
                return;
            }
        }
    });
    let mut outstanding: HashMap<u64, (ForkRequest, StdUnixStream)> = HashMap::new();
    // Requests wait here until the import is done: nothing but the `Boot` may be in the
    // zygote's socket when it reads the `Boot`, or a request's fd would arrive with it.
    let mut queued: Vec<ForkRequest> = Vec::new();
    let mut ready = false;
    let mut open = true;
    loop {
        if !open && outstanding.is_empty() && queued.is_empty() {
            break;
        }
        if ready {
            for request in std::mem::take(&mut queued) {
                let id = request.id;
                match send_fork(&mut writer, &request).await {
                    Ok(master_end) => {
                        outstanding.insert(id.0, (request, master_end));
                    }
                    Err(error) => {
                        news(News::ForkFailed { id, error });
                    }
                }
            }
        }
        tokio::select! {
            request = requests.recv(), if open => match request {
                Some(request) => queued.push(request),
                None => open = false,
            },
            answer = answers.recv() => match answer {
                Some(Ok(FromZygote::Ready { import_ms })) => {
                    ready = true;
                    if !news(News::Ready { instance, import_ms }) {
                        break;
                    }
                }
                Some(Ok(FromZygote::BootFailed(failure))) => {
                    news(News::BootFailed { instance, failure });
                    // Closing our side is the zygote's cue to exit (after its news is queued).
                    break;
                }
                Some(Ok(FromZygote::Forked { worker, pid })) => {
                    let Some((request, master_end)) = outstanding.remove(&worker) else {
                        tracing::warn!(pid, "the zygote forked a worker nobody asked for: killing it");
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                        continue;
                    };
                    let id = request.id;
                    let sent = match boot(&request, master_end) {
                        Ok(control) => News::Forked { id, pid, control },
                        Err(e) => {
                            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                            News::ForkFailed { id, error: format!("cannot send Boot to the forked worker: {e}") }
                        }
                    };
                    if !news(sent) {
                        break;
                    }
                }
                Some(Ok(FromZygote::ForkFailed { worker, error })) => {
                    if let Some((request, _)) = outstanding.remove(&worker) {
                        news(News::ForkFailed { id: request.id, error: format!("the zygote cannot fork: {error}") });
                    }
                }
                Some(Err(e)) => {
                    if !matches!(e, FrameError::Closed) {
                        tracing::warn!(instance, "zygote channel: {e}");
                    }
                    // The zygote is gone; its waiting workers fail when the reaper reports
                    // its exit status.
                    break;
                }
                None => break,
            },
        }
    }
    read_task.abort();
}

/// Creates the worker's control socketpair and sends the zygote its end.
async fn send_fork(
    writer: &mut crate::protocol::zygote::ZygoteWriter,
    request: &ForkRequest,
) -> Result<StdUnixStream, String> {
    let (master_end, worker_end) = StdUnixStream::pair().map_err(|e| {
        format!(
            "cannot create the control socketpair: {e} (raise the open-files limit, `ulimit -n`)"
        )
    })?;
    writer
        .fork(request.id.0, worker_end.as_raw_fd())
        .await
        .map_err(|e| format!("cannot ask the zygote for a worker: {e}"))?;
    Ok(master_end)
}

/// Writes the forked worker's `Boot` on the fresh socketpair (it fits in the buffer, so this
/// does not wait) and turns the master's end async.
fn boot(
    request: &ForkRequest,
    master_end: StdUnixStream,
) -> Result<tokio::net::UnixStream, FrameError> {
    write_boot(&master_end, &request.boot, &request.fds)?;
    master_end.set_nonblocking(true)?;
    Ok(tokio::net::UnixStream::from_std(master_end)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::zygote::{FromZygote, ZygoteLink};
    use crate::protocol::{PROTOCOL_VERSION, read_boot};

    fn request(id: u64) -> ForkRequest {
        ForkRequest {
            id: WorkerId(id),
            boot: Boot {
                protocol: PROTOCOL_VERSION,
                worker_id: id,
                generation: 1,
                config: crate::config::from_args(&["app:application"])
                    .unwrap()
                    .worker,
                listeners: Vec::new(),
                protocols: Vec::new(),
                max_requests: None,
                scoreboard_cell: None,
                zygote: false,
            },
            fds: Vec::new(),
        }
    }

    /// A zygote's channel: the master's end for `start`, the zygote's end as a blocking link.
    fn channel() -> (tokio::net::UnixStream, ZygoteLink) {
        let (master, zygote) = StdUnixStream::pair().unwrap();
        master.set_nonblocking(true).unwrap();
        (
            tokio::net::UnixStream::from_std(master).unwrap(),
            ZygoteLink::new(zygote),
        )
    }

    #[tokio::test]
    async fn one_zygote_per_generation_and_forks_wait_for_its_import() {
        let (events, mut news) = mpsc::unbounded_channel();
        let mut zygotes = Zygotes::default();
        let (stream, link) = channel();
        let started = zygotes
            .fork(1, request(1), Some(4), &events, || Ok((100, stream)))
            .unwrap();
        assert_eq!(started, Some((100, 1)));
        // The second worker of the generation goes to the same zygote.
        let again = zygotes
            .fork(1, request(2), None, &events, || panic!("a second zygote"))
            .unwrap();
        assert_eq!(again, None);
        assert_eq!(zygotes.waiting_on(1), vec![WorkerId(1), WorkerId(2)]);
        // The reserved scoreboard cell stays with the waiting worker.
        assert_eq!(zygotes.pending.get(&WorkerId(1)).unwrap().cell, Some(4));

        let zygote = tokio::task::spawn_blocking(move || {
            let mut link = link;
            link.send(&FromZygote::Ready { import_ms: 7 }).unwrap();
            let (w1, fd1) = link.next_fork().unwrap();
            link.send(&FromZygote::Forked {
                worker: w1,
                pid: 201,
            })
            .unwrap();
            let (w2, _fd2) = link.next_fork().unwrap();
            link.send(&FromZygote::ForkFailed {
                worker: w2,
                error: "EAGAIN".into(),
            })
            .unwrap();
            // The forked worker reads its Boot from the master on the fd it was given.
            let (boot, _) = read_boot(&StdUnixStream::from(fd1)).unwrap();
            (w1, w2, boot.worker_id, link)
        });
        let Some(Event::Zygote(News::Ready {
            instance,
            import_ms,
        })) = news.recv().await
        else {
            panic!("no Ready");
        };
        assert_eq!((instance, import_ms), (1, 7));
        zygotes.mark_ready(instance);
        let Some(Event::Zygote(News::Forked { id, pid, .. })) = news.recv().await else {
            panic!("no Forked");
        };
        assert_eq!((id, pid), (WorkerId(1), 201));
        let Some(Event::Zygote(News::ForkFailed { id, error })) = news.recv().await else {
            panic!("no ForkFailed");
        };
        assert_eq!(id, WorkerId(2));
        assert!(error.contains("EAGAIN"), "{error}");
        let (w1, w2, booted, mut link) = zygote.await.unwrap();
        assert_eq!((w1, w2, booted), (1, 2, 1));

        // Ready now: retiring closes the channel instead of killing, and the zygote sees EOF.
        assert_eq!(zygotes.retire(1), None);
        let eof = tokio::task::spawn_blocking(move || link.next_fork().map(|_| ()));
        assert!(matches!(eof.await.unwrap(), Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn a_zygote_that_is_gone_is_replaced_by_the_next_fork() {
        let (events, _news) = mpsc::unbounded_channel();
        let mut zygotes = Zygotes::default();
        let (stream, link) = channel();
        zygotes
            .fork(3, request(1), None, &events, || Ok((300, stream)))
            .unwrap();
        // It dies before its import: its task ends when the channel does.
        drop(link);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let (stream, _link) = channel();
            match zygotes.fork(3, request(2), None, &events, || Ok((301, stream))) {
                Ok(Some((pid, instance))) => {
                    assert_eq!((pid, instance), (301, 2));
                    break;
                }
                Ok(None) => {
                    // The task had not noticed yet; the request went to the dead zygote.
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the task never ended"
                    );
                    zygotes.take_pending(WorkerId(2));
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
        // Cancelling one of two waiting workers leaves the zygote; the last one kills it.
        let (stream, _link) = channel();
        zygotes
            .fork(4, request(7), None, &events, || Ok((400, stream)))
            .unwrap();
        zygotes
            .fork(4, request(8), None, &events, || panic!("one zygote"))
            .unwrap();
        assert_eq!(zygotes.cancel(WorkerId(7)).map(|c| c.1), Some(None));
        assert_eq!(zygotes.cancel(WorkerId(8)).map(|c| c.1), Some(Some(400)));
        assert!(zygotes.cancel(WorkerId(8)).is_none());
        assert_eq!(zygotes.retire(4), None, "already gone");
        // Retiring a zygote that never said Ready: the executor must kill it.
        assert_eq!(zygotes.retire(3), Some(301));
        // The first worker is still waiting on the dead one, until the reaper reports it.
        assert_eq!(zygotes.waiting_on(1), vec![WorkerId(1)]);
        zygotes.exited(1);
    }
}
