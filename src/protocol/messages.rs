//! The messages themselves. Nouns, one per event; JSON on the wire because the channel carries
//! a handful of messages per second and readable dumps are worth more than bytes.

use serde::{Deserialize, Serialize};

use super::fd::FdRole;
use crate::config::{ListenAddr, Protocol, WorkerConfig};

/// Bumped whenever a message changes shape, so that a worker started by another master version
/// (during an in-place upgrade) refuses to run rather than misread its orders.
///
/// 2: the `Boot` frame declares its fds in a manifest.
pub const PROTOCOL_VERSION: u32 = 2;

/// First message to a worker, sent with the listening sockets (and the scoreboard) attached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Boot {
    /// Must equal [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The worker's id, unique over the master's life (log field `worker`).
    pub worker_id: u64,
    /// The generation this worker belongs to (log field `generation`).
    pub generation: u64,
    /// What to serve and how.
    pub config: WorkerConfig,
    /// The addresses served, so the worker can log and fill `SERVER_NAME`; the socket of
    /// `listeners[i]` comes as the fd of role [`FdRole::Listener`]`(i)`.
    pub listeners: Vec<ListenAddr>,
    /// What `listeners[i]` speaks, so the worker serves each socket in its protocol. Missing
    /// entries (a master from before protocols existed) are HTTP.
    #[serde(default)]
    pub protocols: Vec<Protocol>,
    /// This worker's request limit (with its jitter applied): on reaching it the worker sends a
    /// heartbeat at once, so the master starts the replacement without waiting a second.
    #[serde(default)]
    pub max_requests: Option<u64>,
    /// This worker's cell on the scoreboard, whose fd comes as [`FdRole::Scoreboard`] when set.
    #[serde(default)]
    pub scoreboard_cell: Option<usize>,
    /// Be the generation's zygote (`--preload`): import the app, then fork workers when asked
    /// ([`super::zygote`]) instead of serving. A zygote's `Boot` carries no fds.
    #[serde(default)]
    pub zygote: bool,
}

impl Boot {
    /// The protocol of `listeners[i]`.
    pub fn protocol(&self, i: usize) -> Protocol {
        self.protocols.get(i).copied().unwrap_or_default()
    }

    /// The fds this `Boot` goes with, in the order `spawn_worker` takes them: each listener's,
    /// then the scoreboard's if a cell is set.
    pub fn fd_roles(&self) -> Vec<FdRole> {
        (0..self.listeners.len())
            .map(FdRole::Listener)
            .chain(self.scoreboard_cell.map(|_| FdRole::Scoreboard))
            .collect()
    }
}

/// Why the master asks a worker to drain; logged by the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DrainReason {
    /// The server is stopping (SIGTERM).
    Shutdown,
    /// A newer generation replaces this worker.
    Reload,
    /// The worker count was lowered.
    ScaleDown,
    /// A replacement took over from this worker (max-requests, lifetime, memory).
    Recycle,
}

/// Master to worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ToWorker {
    /// Start up. Sent once, first, with the fds `fds` declares attached; boxed because it
    /// dwarfs the others.
    Boot {
        /// The manifest: the role of each attached fd, in the order they were attached. The
        /// worker checks that exactly these many came and takes each by its role.
        fds: Vec<FdRole>,
        /// The orders; flattened, so `protocol` sits at the top of the frame in every version.
        #[serde(flatten)]
        boot: Box<Boot>,
    },
    /// Stop accepting, finish in-flight requests, close keep-alive connections, then say `Bye`.
    Drain {
        /// Why, for the log.
        reason: DrainReason,
    },
    /// Open the log files again (the master got SIGUSR1: logrotate moved them).
    ReopenLogs,
}

/// Counters a worker reports with each heartbeat; later used for timeouts and status. All of
/// them count up over the worker's life, so the master can add those of exited workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests whose response has finished (or failed).
    pub requests_finished: u64,
    /// Requests handed to the app so far.
    pub requests_started: u64,
    /// Open client connections.
    pub connections: u64,
    /// Resident memory in KiB.
    #[serde(default)]
    pub rss_kib: u64,
    /// Log lines this worker dropped because a log file could not keep up.
    #[serde(default)]
    pub log_dropped: u64,
    /// Response body bytes sent.
    #[serde(default)]
    pub tx_bytes: u64,
    /// Microseconds spent on finished requests, arrival to end of response, summed.
    #[serde(default)]
    pub busy_us: u64,
    /// Responses by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    #[serde(default)]
    pub by_class: [u64; 5],
    /// Request durations (arrival to end of response).
    #[serde(default)]
    pub duration: crate::metrics::histogram::Histogram,
    /// Responses served from `--static-map` files.
    #[serde(default)]
    pub statics: u64,
    /// Responses per listener, in `Boot::listeners` order.
    #[serde(default)]
    pub by_listener: Vec<u64>,
}

impl Stats {
    /// Adds `other`'s counters (an exited worker's into the master's totals). Gauges
    /// (connections, memory) are left alone.
    pub fn add_counters(&mut self, other: &Stats) {
        self.requests_finished += other.requests_finished;
        self.requests_started += other.requests_started;
        self.log_dropped += other.log_dropped;
        self.tx_bytes += other.tx_bytes;
        self.busy_us += other.busy_us;
        for (a, b) in self.by_class.iter_mut().zip(other.by_class) {
            *a += b;
        }
        self.duration.add(&other.duration);
        self.statics += other.statics;
        if self.by_listener.len() < other.by_listener.len() {
            self.by_listener.resize(other.by_listener.len(), 0);
        }
        for (a, b) in self.by_listener.iter_mut().zip(&other.by_listener) {
            *a += b;
        }
    }
}

/// Why a worker could not become ready.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootFailure {
    /// One line: what failed and how to fix it.
    pub error: String,
    /// The Python traceback, if Python raised.
    pub traceback: Option<String>,
}

/// Worker to master.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ToMaster {
    /// The app is imported and the worker accepts connections.
    Ready {
        /// Milliseconds from exec to ready.
        boot_ms: u64,
    },
    /// The worker cannot serve; it exits right after.
    BootFailed(BootFailure),
    /// Sent every second while the worker lives.
    Heartbeat(Stats),
    /// Draining finished; the worker exits right after.
    Bye(Stats),
    /// A request has run past `--harakiri`; the worker logged its Python stack.
    Stuck {
        /// "GET /path".
        request: String,
        /// How long it had run, in ms.
        age_ms: u64,
    },
}

impl ToMaster {
    /// `Bye` and `BootFailed`: the worker exits right after sending one. The master closes its
    /// side of the channel once it has queued one for the supervisor, and the worker exits only
    /// then, so its exit cannot overtake its last word in the master.
    pub fn is_last_word(&self) -> bool {
        matches!(self, ToMaster::Bye(_) | ToMaster::BootFailed(_))
    }
}
