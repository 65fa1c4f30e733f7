//! One end of a control channel: typed frames in, typed frames out, over the unix socketpair.
//!
//! Both sides use the same type with the message types swapped: the master holds a
//! `Channel<ToMaster, ToWorker>` per worker, a worker its `Channel<ToWorker, ToMaster>`.
//! [`Channel::split`] gives plain async halves for one owner each (a read is not cancel-safe);
//! [`Channel::spawn`] runs them as two tasks instead, for a [`Receiver`] that `select!` may
//! cancel and a [`Sender`] that every reporting task can share.
//!
//! A last word (`Bye`, `BootFailed`) goes with [`Sender::deliver`], which returns once the frame
//! is written to the socket. The process may exit right after: a unix socket keeps written data
//! readable after its writer closes, whereas a message still queued for the writer task would die
//! with the process. That is what replaces a sleep before exit.

use std::io;
use std::marker::PhantomData;
use std::os::unix::net::UnixStream as StdUnixStream;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use super::framing::{FrameError, read_frame, write_frame};

/// Our end of a control channel: receives `In`, sends `Out`.
#[derive(Debug)]
pub struct Channel<In, Out> {
    reader: Reader<In>,
    writer: Writer<Out>,
}

impl<In, Out> Channel<In, Out>
where
    In: DeserializeOwned + Send + 'static,
    Out: Serialize + Send + Sync + 'static,
{
    /// Wraps a connected stream.
    pub fn new(stream: UnixStream) -> Self {
        let (rd, wr) = stream.into_split();
        Channel {
            reader: Reader {
                half: rd,
                _in: PhantomData,
            },
            writer: Writer {
                half: wr,
                _out: PhantomData,
            },
        }
    }

    /// Wraps a blocking std stream (switching it to non-blocking); must run inside a tokio
    /// runtime.
    pub fn from_std(stream: StdUnixStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self::new(UnixStream::from_std(stream)?))
    }

    /// The two halves, for a reader loop and a writer loop that each own one. Dropping the
    /// [`Writer`] shuts down the sending direction, which the peer reads as EOF.
    pub fn split(self) -> (Reader<In>, Writer<Out>) {
        (self.reader, self.writer)
    }

    /// Runs the halves as two tasks on the current runtime: the [`Sender`] queues messages for
    /// the writer task (which stops, shutting down the sending direction, when the last sender
    /// is dropped or a write fails); the [`Receiver`] gets what the reader task reads.
    pub fn spawn(self) -> (Sender<Out>, Receiver<In>) {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        tokio::spawn(write_queue(self.writer, out_rx));
        tokio::spawn(read_into(self.reader, in_tx));
        (Sender { queue: out_tx }, Receiver { queue: in_rx })
    }
}

/// The receiving half of a [`Channel`].
#[derive(Debug)]
pub struct Reader<In> {
    half: OwnedReadHalf,
    _in: PhantomData<fn() -> In>,
}

impl<In: DeserializeOwned> Reader<In> {
    /// The next message; `Err(Closed)` when the peer has closed the channel. Not cancel-safe:
    /// a read cancelled mid-frame loses the frame's start.
    pub async fn recv(&mut self) -> Result<In, FrameError> {
        read_frame(&mut self.half).await
    }
}

/// The sending half of a [`Channel`].
#[derive(Debug)]
pub struct Writer<Out> {
    half: OwnedWriteHalf,
    _out: PhantomData<fn(Out)>,
}

impl<Out: Serialize> Writer<Out> {
    /// Writes one message; returns once the whole frame is in the socket.
    pub async fn send(&mut self, msg: &Out) -> Result<(), FrameError> {
        write_frame(&mut self.half, msg).await
    }
}

/// A message waiting for the writer task, and whoever waits for it to be written.
#[derive(Debug)]
struct Outgoing<Out> {
    msg: Out,
    written: Option<oneshot::Sender<Result<(), FrameError>>>,
}

/// A shared handle on a spawned [`Channel`]'s writer task; messages go out in the order sent.
#[derive(Debug)]
pub struct Sender<Out> {
    queue: mpsc::UnboundedSender<Outgoing<Out>>,
}

impl<Out> Clone for Sender<Out> {
    fn clone(&self) -> Self {
        Sender {
            queue: self.queue.clone(),
        }
    }
}

impl<Out> Sender<Out> {
    /// Queues `msg` without waiting; `Err(Closed)` if the writer task has stopped (a write
    /// failed: the peer is gone).
    pub fn send(&self, msg: Out) -> Result<(), FrameError> {
        self.queue
            .send(Outgoing { msg, written: None })
            .map_err(|_| FrameError::Closed)
    }

    /// Sends `msg` and waits until it, and everything sent before it, is written to the
    /// socket; for a last message before the process exits.
    pub async fn deliver(&self, msg: Out) -> Result<(), FrameError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(Outgoing {
                msg,
                written: Some(tx),
            })
            .map_err(|_| FrameError::Closed)?;
        // Dropped unanswered: the writer task stopped on an earlier message's failure.
        rx.await.unwrap_or(Err(FrameError::Closed))
    }
}

/// What a spawned [`Channel`]'s reader task has read.
#[derive(Debug)]
pub struct Receiver<In> {
    queue: mpsc::UnboundedReceiver<Result<In, FrameError>>,
}

impl<In> Receiver<In> {
    /// The next message. `Err(Closed)` once the peer has closed the channel, and on every call
    /// after that or after another error, which is returned once. Cancel-safe.
    pub async fn recv(&mut self) -> Result<In, FrameError> {
        self.queue.recv().await.unwrap_or(Err(FrameError::Closed))
    }
}

async fn write_queue<Out: Serialize>(
    mut writer: Writer<Out>,
    mut queue: mpsc::UnboundedReceiver<Outgoing<Out>>,
) {
    while let Some(Outgoing { msg, written }) = queue.recv().await {
        let result = writer.send(&msg).await;
        let failed = result.is_err();
        if let Some(written) = written {
            let _ = written.send(result);
        }
        if failed {
            return;
        }
    }
}

async fn read_into<In: DeserializeOwned>(
    mut reader: Reader<In>,
    queue: mpsc::UnboundedSender<Result<In, FrameError>>,
) {
    loop {
        tokio::select! {
            msg = reader.recv() => {
                let end = msg.is_err();
                if queue.send(msg).is_err() || end {
                    return;
                }
            }
            // Nobody listens any more: stop reading (the frame cut short no longer matters).
            _ = queue.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::{BootFailure, DrainReason, Stats, ToMaster, ToWorker};
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn halves_carry_typed_messages_both_ways() {
        let (m, w) = UnixStream::pair().unwrap();
        let (mut from_worker, mut to_worker) = Channel::<ToMaster, ToWorker>::new(m).split();
        let (to_master, mut from_master) = Channel::<ToWorker, ToMaster>::new(w).spawn();
        to_worker
            .send(&ToWorker::Drain {
                reason: DrainReason::Reload,
            })
            .await
            .unwrap();
        assert!(matches!(
            from_master.recv().await.unwrap(),
            ToWorker::Drain {
                reason: DrainReason::Reload
            }
        ));
        to_master.send(ToMaster::Ready { boot_ms: 12 }).unwrap();
        assert!(matches!(
            from_worker.recv().await.unwrap(),
            ToMaster::Ready { boot_ms: 12 }
        ));
        drop(to_worker);
        assert!(matches!(from_master.recv().await, Err(FrameError::Closed)));
        assert!(matches!(from_master.recv().await, Err(FrameError::Closed)));
    }

    /// What a worker does last: report, then exit. Dropping the runtime abandons its tasks
    /// unpolled, exactly as exiting the process would.
    fn last_word_then_exit(end: StdUnixStream, last: ToMaster) {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (to_master, _from_master) = Channel::<ToWorker, ToMaster>::from_std(end)
                    .unwrap()
                    .spawn();
                to_master
                    .send(ToMaster::Heartbeat(Stats::default()))
                    .unwrap();
                to_master.deliver(last).await.unwrap();
            });
        })
        .join()
        .unwrap();
    }

    #[tokio::test]
    async fn a_last_word_delivered_just_before_exit_always_arrives() {
        for round in 0..50 {
            let (m, w) = StdUnixStream::pair().unwrap();
            let last = if round % 2 == 0 {
                ToMaster::Bye(Stats {
                    requests_finished: round,
                    ..Default::default()
                })
            } else {
                ToMaster::BootFailed(BootFailure {
                    error: format!("round {round}"),
                    traceback: None,
                })
            };
            last_word_then_exit(w, last);
            let (mut from_worker, _to_worker) =
                Channel::<ToMaster, ToWorker>::from_std(m).unwrap().split();
            assert!(matches!(
                from_worker.recv().await.unwrap(),
                ToMaster::Heartbeat(_)
            ));
            match from_worker.recv().await.unwrap() {
                ToMaster::Bye(s) => assert_eq!(s.requests_finished, round),
                ToMaster::BootFailed(f) => assert_eq!(f.error, format!("round {round}")),
                other => panic!("round {round}: {other:?}"),
            }
            assert!(matches!(from_worker.recv().await, Err(FrameError::Closed)));
        }
    }

    #[tokio::test]
    async fn a_broken_channel_is_reported_once_then_closed() {
        let (mut m, w) = UnixStream::pair().unwrap();
        let (_to_master, mut from_master) = Channel::<ToWorker, ToMaster>::new(w).spawn();
        m.write_all(b"\0\0\0\x02{]").await.unwrap();
        assert!(matches!(
            from_master.recv().await,
            Err(FrameError::Decode(_))
        ));
        assert!(matches!(from_master.recv().await, Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn delivering_to_a_peer_that_is_gone_fails() {
        let (m, w) = UnixStream::pair().unwrap();
        drop(m);
        let (to_master, _from_master) = Channel::<ToWorker, ToMaster>::new(w).spawn();
        assert!(
            to_master
                .deliver(ToMaster::Bye(Stats::default()))
                .await
                .is_err()
        );
    }
}
