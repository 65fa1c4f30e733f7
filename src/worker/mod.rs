//! The worker process: embeds CPython, imports the app, serves HTTP on the listeners the master
//! passed it, and obeys the master's commands on the control channel.
//!
//! Order matters: the control fd and listeners get FD_CLOEXEC before any app code runs; the
//! worker's own signal handlers are installed after the app import, because app code that
//! calls `signal.signal` would otherwise replace them silently. The listeners and the
//! scoreboard are taken from `Boot`'s fds by the role the master declared for each, and after
//! its last message to the master (`Bye`, `BootFailed`) the worker waits until the master has
//! taken it (the master then closes its side), so exiting cannot lose it or overtake it.

pub mod acceptor;
pub mod drain;
pub mod fastcgi;
pub mod hooks;
pub mod pool;
pub mod ready;
pub mod server;
pub mod service;
pub mod socket;
pub mod turn;
pub mod uwsgi;
pub mod watchdog;
pub mod zygote;

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pyo3::Python;
use pyo3::types::PyAnyMethods;
use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM};
use signal_hook_tokio::Signals;

use crate::config::{ListenAddr, Protocol, WorkerConfig};
use crate::protocol::scoreboard;
use crate::protocol::{
    Boot, BootFailure, CONTROL_FD, Channel, FdRole, Fds, FrameError, Receiver, Sender, ToMaster,
    ToWorker, read_boot, set_cloexec,
};
use drain::Drain;
use service::{Counters, Shared};

/// How often a worker reports to the master.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// How often the GIL probe takes the GIL: a wedge is seen at most this long after it starts
/// plus [`watchdog::WEDGED`].
const GIL_PROBE: Duration = Duration::from_millis(100);
/// A worker whose GIL probe has not succeeded for this long stops heartbeating.
const GIL_STALE: Duration = Duration::from_secs(3);
/// Longest wait for the master to take the last message: only a master that stopped reading
/// makes it wait this long, and such a master must not keep a finished worker alive.
const LAST_WORD: Duration = Duration::from_secs(1);

/// Sends heartbeats, but only while the interpreter is responsive: a worker wedged holding the
/// GIL must look silent to the master, which then replaces it.
struct Pulse {
    to_master: Sender<ToMaster>,
    counters: Arc<Counters>,
    gil: Arc<watchdog::GilProbe>,
}

impl Pulse {
    fn beat(&self) {
        let stale = self.gil.stale_for();
        if stale > GIL_STALE {
            tracing::warn!(
                "the GIL has been held for {:.1}s by one thread: not heartbeating",
                stale.as_secs_f64()
            );
            return;
        }
        let _ = self
            .to_master
            .send(ToMaster::Heartbeat(self.counters.snapshot()));
    }
}

/// Reports requests past `--harakiri` with the Python stack of their thread.
async fn harakiri_watch(
    requests: Arc<watchdog::Requests>,
    limit: Duration,
    to_master: Sender<ToMaster>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100).min(limit));
    loop {
        tick.tick().await;
        for stuck in requests.overdue(limit) {
            let ident = stuck.thread;
            let stack = tokio::task::spawn_blocking(move || {
                watchdog::python_stack(ident, Duration::from_secs(2))
            })
            .await
            .ok()
            .flatten();
            let stack =
                stack.unwrap_or_else(|| "(stack unavailable: the thread holds the GIL)\n".into());
            tracing::error!(
                "harakiri: {} has run {:.1}s (--harakiri {:.1}s); its Python stack:\n{}",
                stuck.what,
                stuck.age.as_secs_f64(),
                limit.as_secs_f64(),
                stack.trim_end()
            );
            let _ = to_master.send(ToMaster::Stuck {
                request: stuck.what,
                age_ms: stuck.age.as_millis() as u64,
            });
        }
    }
}

/// Exit code of a worker that could not boot (the master also gets the reason as a message).
pub const EXIT_BOOT_FAILED: i32 = 3;

/// The entry point of `segue._worker.run`: called by the app's interpreter on its main thread,
/// with the GIL held. Checks that this module is the master's version, then serves with the GIL
/// released (Python threads attach as they need it) and returns the exit code.
pub fn run_in_interpreter(py: Python<'_>, master_version: &str) -> i32 {
    py.detach(|| run(master_version))
}

/// This build's version, which the master's must equal: master and worker module are one
/// release, installed together by pip.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where a worker's process came from: exec'd by the master, or forked by a zygote with the
/// app already imported.
struct Origin<'a> {
    /// When this process started (exec, or fork): the boot time counts from here.
    exec_at: Instant,
    /// The master's version, which must be this module's.
    master_version: &'a str,
    /// The app, when a zygote imported it before the fork.
    preloaded: Option<crate::wsgi::App>,
}

/// Runs a worker to completion and returns its exit code.
fn run(master_version: &str) -> i32 {
    let exec_at = Instant::now();
    // SAFETY: the master's pre_exec placed our end of the control socketpair at CONTROL_FD;
    // nothing else in this fresh process refers to that descriptor.
    let control = unsafe { StdUnixStream::from_raw_fd(CONTROL_FD) };
    if let Err(e) = set_cloexec(CONTROL_FD, true) {
        eprintln!("segue worker: cannot set FD_CLOEXEC on the control channel: {e}");
        return 2;
    }
    let (boot, fds) = match read_boot(&control) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "segue worker: cannot read Boot from the master (segue {master_version}; this \
                 module is segue {VERSION}): {e}"
            );
            return 2;
        }
    };
    crate::logging::init(&boot.config.log);
    if boot.config.log.capture_output {
        if let Err(e) = crate::logging::capture_output(&boot.config.log) {
            tracing::warn!(
                "--capture-output: cannot put the error log under stdout and stderr: {e}"
            );
        }
    }
    if boot.zygote {
        if let Some(name) = &boot.config.name {
            crate::logging::set_process_name(&format!("{name} zygote"));
        }
        let span = tracing::info_span!(
            "zygote",
            generation = boot.generation,
            pid = std::process::id()
        );
        let outcome = {
            let _enter = span.enter();
            zygote::run(boot, control, master_version, exec_at)
        };
        return match outcome {
            zygote::Outcome::Exit(code) => code,
            zygote::Outcome::Worker {
                app,
                control,
                forked_at,
            } => match read_boot(&control) {
                Ok((boot, fds)) => worker(boot, fds, control, forked_at, master_version, Some(app)),
                Err(e) => {
                    eprintln!("segue worker: cannot read Boot from the master after the fork: {e}");
                    2
                }
            },
        };
    }
    worker(boot, fds, control, exec_at, master_version, None)
}

/// Serves as the worker `boot` describes, importing the app unless `preloaded` brings it.
fn worker(
    mut boot: Boot,
    mut fds: Fds,
    control: StdUnixStream,
    exec_at: Instant,
    master_version: &str,
    preloaded: Option<crate::wsgi::App>,
) -> i32 {
    if let Some(name) = &boot.config.name {
        crate::logging::set_process_name(&format!("{name} w{}", boot.worker_id));
    }
    // A worker may have threads (a zygote may not, so it has none until here).
    crate::logging::start_writers();
    let span = tracing::info_span!(
        "worker",
        generation = boot.generation,
        worker = boot.worker_id,
        pid = std::process::id()
    );
    let _enter = span.enter();
    let addrs: Vec<(ListenAddr, Protocol)> = std::mem::take(&mut boot.listeners)
        .into_iter()
        .enumerate()
        .map(|(i, addr)| (addr, boot.protocol(i)))
        .collect();
    let listeners = match fds.take_listeners(addrs) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot take the listening sockets from Boot: {e}");
            return 2;
        }
    };

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the worker's event loop: {e}");
            return 2;
        }
    };
    runtime.block_on(serve(
        boot,
        listeners,
        fds,
        control,
        Origin {
            exec_at,
            master_version,
            preloaded,
        },
        span.clone(),
    ))
}

async fn serve(
    boot: Boot,
    listeners: Vec<((ListenAddr, Protocol), OwnedFd)>,
    mut fds: Fds,
    control: StdUnixStream,
    origin: Origin<'_>,
    span: tracing::Span,
) -> i32 {
    let Origin {
        exec_at,
        master_version,
        preloaded,
    } = origin;
    let (to_master, mut from_master) = match Channel::<ToWorker, ToMaster>::from_std(control) {
        Ok(c) => c.spawn(),
        Err(e) => {
            tracing::error!("control channel: {e}");
            return 2;
        }
    };
    let is_preloaded = preloaded.is_some();
    let (boot_generation, boot_worker) = (boot.generation, boot.worker_id);
    let boot_listeners = listeners.len();
    if let Err(e) =
        Python::attach(|py| hooks::publish(py, Some(boot.worker_id), boot.generation, is_preloaded))
    {
        tracing::warn!("cannot tell the segue module who this worker is: {e}");
    }
    let config = Arc::new(boot.config);
    let app = match preloaded {
        // The zygote checked the version and installed the modules before its import.
        Some(app) => app,
        None => {
            if master_version != VERSION {
                return boot_failed(
                    &to_master,
                    &mut from_master,
                    version_mismatch(master_version),
                )
                .await;
            }
            if let Err(failure) = Python::attach(|py| prepare_import(py, &config)) {
                return boot_failed(&to_master, &mut from_master, failure).await;
            }
            match boot_app(&config) {
                Ok(app) => app,
                Err(failure) => return boot_failed(&to_master, &mut from_master, failure).await,
            }
        }
    };
    if let Err(failure) = Python::attach(hooks::postfork) {
        return boot_failed(&to_master, &mut from_master, failure).await;
    }
    let mut signals = match Signals::new([SIGTERM, SIGINT, SIGQUIT]) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return 2;
        }
    };
    let counters = Arc::new(Counters::new(boot.max_requests, boot_listeners));
    let requests = config
        .harakiri
        .map(|_| Arc::new(watchdog::Requests::default()));
    let cell = boot
        .scoreboard_cell
        .and_then(|index| scoreboard_cell(fds.take(FdRole::Scoreboard), index));
    let app = Arc::new(app);
    // One Python thread and no --harakiri (whose 504 needs a thread that is not the app's):
    // the app runs on the connection's thread. The pool's thread takes what cannot run there,
    // and the turn, not the pool, shows the free thread on the scoreboard.
    let inline =
        (config.threads == 1 && config.harakiri.is_none() && !config.no_inline).then(|| {
            service::Inline {
                app: app.clone(),
                turns: turn::Turns::new(cell.clone()),
            }
        });
    let pool = match pool::Pool::start(
        config.threads,
        app,
        requests.clone(),
        span,
        if inline.is_some() { None } else { cell.clone() },
    ) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("cannot start Python threads: {e}");
            return 2;
        }
    };
    if let Some(path) = &config.ready_check {
        if let Err(failure) = ready::check(&pool, path, config.boot_timeout).await {
            return boot_failed(&to_master, &mut from_master, failure).await;
        }
    }
    let access = config.log.logs_requests().then(|| {
        Arc::new(service::AccessLog {
            // Checked when the configuration was read; a bad one logs nothing rather than fail.
            format: crate::logging::access::Format::parse(&config.log.access_format)
                .unwrap_or_else(|_| {
                    crate::logging::access::Format::parse(crate::logging::access::COMBINED)
                        .expect("the combined format parses")
                }),
            origin: crate::logging::access::Origin {
                generation: boot_generation,
                worker: boot_worker,
                pid: std::process::id(),
            },
            json: config.log.format == crate::config::LogFormat::Json,
        })
    });
    let inlined = inline.is_some();
    let shared = Arc::new(Shared {
        config: config.clone(),
        pool,
        inline,
        counters: counters.clone(),
        statics: crate::http::static_files::StaticServer::new(&config.static_files),
        access,
    });
    let mut drain = Drain::default();
    let gil = watchdog::GilProbe::start(GIL_PROBE);
    let gate = Arc::new(watchdog::GilGate::new(gil.clone(), cell.clone()));
    // The acceptors ask the gate only when they run, and with the app inline a wedge stops
    // the serving thread, acceptors and all: this thread keeps the verdict current, so that
    // the wedge is logged and posted for the peers all the same.
    tokio::spawn(watchdog::watch_gate(gate.clone()));
    let admission = acceptor::Admission {
        gil: Some(gate),
        cell,
        capacity: acceptor::Capacity::new(config.worker_connections),
    };
    if let Err(e) = server::start(listeners, shared, &drain, admission, inlined) {
        tracing::error!("cannot serve on the inherited listeners: {e}");
        return 2;
    }
    let _ = to_master.send(ToMaster::Ready {
        boot_ms: exec_at.elapsed().as_millis() as u64,
    });
    if let (Some(limit), Some(requests)) = (config.harakiri, requests) {
        tokio::spawn(harakiri_watch(requests, limit, to_master.clone()));
    }
    let pulse = Pulse {
        to_master: to_master.clone(),
        counters: counters.clone(),
        gil,
    };

    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    // Cleared once the channel has ended, whose receiver would then answer every poll at once.
    let mut listening = true;
    let why = loop {
        tokio::select! {
            msg = from_master.recv() => match msg {
                Ok(ToWorker::Drain { reason }) => break format!("{reason:?}"),
                Ok(ToWorker::Boot { .. }) => tracing::warn!("ignoring a second Boot"),
                Ok(ToWorker::ReopenLogs) => crate::logging::reopen(),
                Err(FrameError::Closed) => {
                    listening = false;
                    break "the master is gone (control channel closed)".to_string();
                }
                Err(e) => {
                    listening = false;
                    break format!("the control channel broke: {e}");
                }
            },
            _ = heartbeat.tick() => pulse.beat(),
            _ = counters.limit_reached.notified() => pulse.beat(),
            Some(sig) = signals.next() => match sig {
                SIGTERM => break "SIGTERM".to_string(),
                _ => { tracing::info!("quick stop on signal {sig}"); quick_stop_hooks(); return 0; }
            },
        }
    };
    tracing::info!(
        connections = counters.snapshot().connections,
        "draining ({why})"
    );
    drain.start();
    // On a thread of its own: a hook that blocks must not stop the drain it is told about.
    let drain_span = tracing::Span::current();
    let drain_hooks = tokio::task::spawn_blocking(move || {
        let _enter = drain_span.enter();
        Python::attach(|py| hooks::run_logged(py, hooks::Hook::Drain));
    });
    let finished = drain.finished();
    tokio::pin!(finished);
    loop {
        tokio::select! {
            _ = &mut finished => break,
            _ = heartbeat.tick() => pulse.beat(),
            Some(sig) = signals.next() => if sig != SIGTERM { tracing::info!("quick stop on signal {sig}"); quick_stop_hooks(); return 0; },
            // The master's orders no longer matter; only its disappearance is not a reason to
            // cut in-flight requests short.
            msg = from_master.recv(), if listening => listening = msg.is_ok(),
        }
    }
    let stats = counters.snapshot();
    tracing::info!(served = stats.requests_finished, "drained");
    // The drain hooks finish before the exit hooks start (a hung one is ended by the master's
    // graceful timeout, like a hung request).
    let _ = drain_hooks.await;
    Python::attach(|py| hooks::run_logged(py, hooks::Hook::Exit));
    last_word(&to_master, &mut from_master, ToMaster::Bye(stats)).await;
    run_atexit();
    0
}

/// Why a worker (or zygote) whose module is another version than its master's cannot serve.
fn version_mismatch(master_version: &str) -> BootFailure {
    let python = Python::attach(|py| {
        py.import("sys")
            .and_then(|sys| sys.getattr("executable"))
            .and_then(|exe| exe.extract::<String>())
    })
    .unwrap_or_else(|_| "python".into());
    BootFailure {
        error: format!(
            "the master is segue {master_version} but {python} has segue {VERSION}: install \
             the same version in both (`{python} -m pip install segue=={master_version}`), \
             or, after upgrading segue there, run `segue upgrade` so that the master is the \
             new version too"
        ),
        traceback: None,
    }
}

/// What must be in place before the app is imported in a worker that imports it itself:
/// `--uwsgi-compat`'s modules, gunicorn's worker hooks (and its `post_fork`).
fn prepare_import(py: Python<'_>, config: &WorkerConfig) -> Result<(), BootFailure> {
    if let Some(compat) = config.uwsgi_compat {
        hooks::install_uwsgi_compat(py, compat).map_err(|e| BootFailure {
            error: format!("cannot install the uwsgi compatibility modules (--uwsgi-compat): {e}"),
            traceback: None,
        })?;
    }
    if let Some(path) = &config.gunicorn_hooks {
        hooks::install_gunicorn(py, path, false)?;
    }
    Ok(())
}

/// Logs why the worker cannot serve, tells the master, and gives the exit code.
async fn boot_failed(
    to_master: &Sender<ToMaster>,
    from_master: &mut Receiver<ToWorker>,
    failure: BootFailure,
) -> i32 {
    match &failure.traceback {
        Some(tb) => tracing::error!("{}\n{}", failure.error, tb.trim_end()),
        None => tracing::error!("{}", failure.error),
    }
    last_word(to_master, from_master, ToMaster::BootFailed(failure)).await;
    EXIT_BOOT_FAILED
}

/// Sends the worker's last message, waits until it is written, then until the master closes
/// its side, which it does once the message is in its supervisor's queue: exiting earlier would
/// let the master reap this process before it has read why it exits.
async fn last_word(
    to_master: &Sender<ToMaster>,
    from_master: &mut Receiver<ToWorker>,
    msg: ToMaster,
) {
    let handshake = async {
        to_master.deliver(msg).await?;
        // Orders that crossed the last word no longer matter.
        while from_master.recv().await.is_ok() {}
        Ok::<(), FrameError>(())
    };
    match tokio::time::timeout(LAST_WORD, handshake).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("the master did not get our last message: {e}"),
        Err(_) => tracing::warn!(
            "the master has not taken our last message within {}s: exiting anyway",
            LAST_WORD.as_secs()
        ),
    }
}

/// Imports the app: chdir, interpreter, import. Failures carry the fix and the traceback.
fn boot_app(config: &WorkerConfig) -> Result<crate::wsgi::App, BootFailure> {
    if let Some(dir) = &config.chdir {
        std::env::set_current_dir(dir).map_err(|e| BootFailure {
            error: format!("cannot chdir to '{}': {e} (check --chdir)", dir.display()),
            traceback: None,
        })?;
    }
    Python::attach(|py| crate::wsgi::app::load(py, config)).map_err(|e| BootFailure {
        error: e.message,
        traceback: e.traceback,
    })
}

/// A quick stop runs only gunicorn's `worker_int`, the hook meant for it.
fn quick_stop_hooks() {
    Python::attach(|py| hooks::run_logged(py, hooks::Hook::Quick));
}

/// Runs Python's atexit handlers so apps can flush what they buffered, without a full
/// interpreter finalisation (which can hang on threads the app started).
fn run_atexit() {
    Python::attach(|py| {
        if let Ok(atexit) = py.import("atexit") {
            let _ = atexit.call_method0("_run_exitfuncs");
        }
    });
}

/// Maps the master's scoreboard; without it the worker still serves, unbalanced.
fn scoreboard_cell(fd: Option<OwnedFd>, index: usize) -> Option<scoreboard::Cell> {
    let Some(fd) = fd else {
        tracing::warn!(
            cell = index,
            "Boot names a scoreboard cell but no scoreboard fd came with it: accepting without balancing"
        );
        return None;
    };
    match scoreboard::Scoreboard::open(fd) {
        Ok(board) => {
            tracing::debug!(cell = index, "balancing accepts with the other workers");
            Arc::new(board).cell(index)
        }
        Err(e) => {
            tracing::warn!("cannot map the scoreboard ({e}): accepting without balancing");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Stats;

    #[tokio::test]
    async fn last_word_waits_until_the_master_closes_its_side() {
        let (w, m) = tokio::net::UnixStream::pair().unwrap();
        let (to_master, mut from_master) = Channel::<ToWorker, ToMaster>::new(w).spawn();
        let (mut from_worker, to_worker) = Channel::<ToMaster, ToWorker>::new(m).split();
        let worker = tokio::spawn(async move {
            last_word(
                &to_master,
                &mut from_master,
                ToMaster::Bye(Stats::default()),
            )
            .await;
        });
        assert!(matches!(
            from_worker.recv().await.unwrap(),
            ToMaster::Bye(_)
        ));
        tokio::task::yield_now().await;
        assert!(
            !worker.is_finished(),
            "the worker left before the master closed"
        );
        drop(to_worker);
        worker.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn last_word_gives_up_on_a_master_that_never_closes() {
        let (w, m) = tokio::net::UnixStream::pair().unwrap();
        let (to_master, mut from_master) = Channel::<ToWorker, ToMaster>::new(w).spawn();
        let started = tokio::time::Instant::now();
        last_word(
            &to_master,
            &mut from_master,
            ToMaster::Bye(Stats::default()),
        )
        .await;
        assert_eq!(started.elapsed(), LAST_WORD);
        drop(m);
    }

    #[tokio::test]
    async fn last_word_to_a_master_that_is_gone_returns_at_once() {
        let (w, m) = tokio::net::UnixStream::pair().unwrap();
        drop(m);
        let (to_master, mut from_master) = Channel::<ToWorker, ToMaster>::new(w).spawn();
        tokio::time::timeout(
            Duration::from_millis(500),
            last_word(
                &to_master,
                &mut from_master,
                ToMaster::Bye(Stats::default()),
            ),
        )
        .await
        .expect("no wait for a master that has closed");
    }
}
