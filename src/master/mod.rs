//! The master process: pure Rust, never initialises Python.
//!
//! It binds (or inherits) the listening sockets and keeps them for life, starts worker processes
//! and passes them the sockets, reaps them, replaces the ones that die, and carries out reloads.
//!
//! Three layers: this module's loop turns signals, control calls, channel messages and timers
//! into [`effect::Event`]s (signals become [`command::Command`]s); the [`supervisor`] decides and
//! returns [`effect::Effect`]s; the [`executor`] carries them out and reports back.

mod cheap;
mod cheaper;
mod clock;
pub mod command;
pub mod cron;
pub mod daemon_process;
pub mod daemons;
pub mod effect;
pub mod executor;
mod first_start;
pub mod generation;
mod handover;
pub mod listener;
mod load;
pub mod reaper;
mod reconfigure;
mod recycle;
pub mod reload;
mod respawn;
pub mod server_hooks;
pub mod spawn;
mod status;
mod stop;
pub mod supervisor;
pub mod table;
pub mod triggers;
pub mod upgrade;
mod watch;
pub mod worker;
pub mod zygote;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::collections::VecDeque;

use futures_util::StreamExt;
use signal_hook::consts::{
    SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2,
};
use signal_hook_tokio::Signals;
use std::os::fd::FromRawFd;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::systemd::{Inherited, Notifier};
use command::{Command, Responder};
use effect::Event;
use executor::Executor;
use listener::Listener;
use supervisor::Supervisor;

pub use first_start::EXIT_BOOT_FAILED;

/// Why the master could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener could not be bound or adopted.
    #[error(transparent)]
    Listener(#[from] listener::Error),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// Our own binary's path is unknown (needed to start workers).
    #[error("cannot find segue's own executable to start workers: {0}")]
    Exe(std::io::Error),
    /// No interpreter to run the workers with.
    #[error("no Python to run the workers: {} does not exist (install segue with pip into the app's virtualenv and run its bin/segue, or pass --virtualenv DIR)", .0.display())]
    NoPython(PathBuf),
    /// The pidfile could not be written.
    #[error("cannot write --pidfile '{}': {source}", path.display())]
    Pidfile {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The first generation's paths do not resolve.
    #[error(transparent)]
    Generation(generation::ResolveError),
    /// The control socket could not be bound.
    #[error("cannot bind --control '{}': {source}", path.display())]
    Control {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The master FIFO could not be created.
    #[error(transparent)]
    Fifo(#[from] triggers::FifoError),
    /// The async runtime could not start.
    #[error("cannot start the master's event loop: {0}")]
    Runtime(std::io::Error),
    /// The stats server could not be bound.
    #[error(
        "cannot serve --stats or --metrics on {addr}: {source} (is another process listening there?)"
    )]
    Stats {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// gunicorn's `on_starting` hook failed.
    #[error(transparent)]
    OnStarting(#[from] server_hooks::StartingError),
}

/// How this master came to be.
pub enum Start {
    /// A new start; sockets from systemd's `LISTEN_FDS`, if any, are used instead of binding
    /// (and an explicit `--http` must name the same addresses).
    Fresh(Vec<Inherited>),
    /// The new image of an in-place upgrade: everything comes from the old one.
    Upgraded(upgrade::Handover),
}

/// Runs the master until it is stopped; returns the status to exit with: 0 after a stop,
/// [`EXIT_BOOT_FAILED`] when the app did not boot at first start.
pub fn run(config: Config, start: Start) -> Result<i32, Error> {
    let exe = std::env::current_exe().map_err(Error::Exe)?;
    if let Some(name) = &config.worker.name {
        crate::logging::set_process_name(name);
    }
    if config.worker.virtualenv.is_none() {
        let python = generation::own_python();
        if !python.exists() {
            return Err(Error::NoPython(python));
        }
    }
    let notifier = Notifier::from_env();
    let (inherited, handover) = match start {
        Start::Fresh(inherited) => (inherited, None),
        Start::Upgraded(h) => (Vec::new(), Some(h)),
    };
    let listeners = if let Some(h) = &handover {
        h.listeners
            .iter()
            // SAFETY: the old image handed these fds over across exec; nothing else owns them.
            .map(|l| {
                Listener::handed(
                    unsafe { std::os::fd::OwnedFd::from_raw_fd(l.fd) },
                    l.addr.clone(),
                    l.protocol,
                    l.systemd_name.clone(),
                )
            })
            .collect()
    } else if inherited.is_empty() {
        let bound = config
            .listen
            .iter()
            .map(|e| Listener::bind_endpoint(e, config.backlog, config.socket_mode))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(n) = &notifier {
            store_with_systemd(n, &bound);
        }
        bound
    } else {
        let mut adopted = inherited
            .into_iter()
            .map(|i| Listener::inherited(i.fd, i.name))
            .collect::<Result<Vec<_>, _>>()?;
        // A socket from systemd speaks HTTP, unless --socket names its address.
        for l in &mut adopted {
            if let Some(e) = config.listen.iter().find(|e| e.addr == l.addr) {
                l.protocol = e.protocol;
            }
        }
        if config.listen_explicit {
            check_activation_matches(&adopted, &config.listen)?;
        }
        adopted
    };
    let mut listeners = listeners;
    if handover.is_none() {
        for &fd in &config.listen_fds {
            listeners.push(Listener::inherited_fd(fd)?);
        }
    }
    if let Some(path) = &config.pidfile {
        write_pidfile(path).map_err(|source| Error::Pidfile {
            path: path.clone(),
            source,
        })?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let result = runtime.block_on(serve(
        Arc::new(config.clone()),
        exe,
        listeners,
        notifier,
        handover,
    ));
    if let Some(path) = &config.pidfile {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Writes this process's pid to `path`, as `--pidfile` asks (the master's and the emperor's).
pub fn write_pidfile(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
}

/// Parks the listening sockets in systemd's fd store (`FileDescriptorStoreMax=` must be set),
/// so that after a crash or `systemctl restart` the new master gets them back as `LISTEN_FDS`
/// and the accept queue never closes. Without the setting systemd drops them; harmless.
fn store_with_systemd(notifier: &Notifier, listeners: &[Listener]) {
    for (i, l) in listeners.iter().enumerate() {
        let message = format!("FDSTORE=1\nFDNAME=segue-listen-{i}");
        if let Err(e) = notifier.send_fds(&message, &[l.raw_fd()]) {
            tracing::debug!("FDSTORE for {} failed: {e}", l.addr);
        }
    }
}

/// With both `LISTEN_FDS` and `--http`, each must have a counterpart in the other.
fn check_activation_matches(
    adopted: &[Listener],
    requested: &[crate::config::Endpoint],
) -> Result<(), listener::Error> {
    let have: Vec<_> = adopted.iter().map(Listener::endpoint).collect();
    let same = have.len() == requested.len() && requested.iter().all(|r| have.contains(r));
    if same {
        return Ok(());
    }
    let list = |v: &[crate::config::Endpoint]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(listener::Error::Mismatch {
        inherited: list(&have),
        requested: list(requested),
    })
}

async fn serve(
    config: Arc<Config>,
    exe: PathBuf,
    listeners: Vec<Listener>,
    notifier: Option<Notifier>,
    handover: Option<upgrade::Handover>,
) -> Result<i32, Error> {
    let watchdog_every = notifier.as_ref().and_then(Notifier::watchdog_interval);
    reaper::become_subreaper();
    // Installed before the first spawn so that no SIGCHLD is missed.
    let mut signals = Signals::new([
        SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2,
    ])
    .map_err(Error::Signals)?;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (calls_tx, mut calls) = mpsc::unbounded_channel::<crate::control::server::Call>();
    // Held until the master exits; dropping them removes the socket and FIFO files.
    let control_error = |path: &PathBuf| {
        let path = path.clone();
        move |source| Error::Control { path, source }
    };
    let _control = match (
        &config.control,
        handover.as_ref().and_then(|h| h.control_fd),
    ) {
        (Some(path), Some(fd)) => {
            // SAFETY: the old image handed this fd over across exec; nothing else owns it.
            let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
            let _ = crate::protocol::set_cloexec(fd, true);
            Some(
                crate::control::server::serve_listener(listener, path, calls_tx.clone())
                    .map_err(control_error(path))?,
            )
        }
        (Some(path), None) => Some(
            crate::control::server::serve(path, calls_tx.clone()).map_err(control_error(path))?,
        ),
        (None, _) => None,
    };
    // Held until the master exits; dropping it removes a unix socket's file.
    let _stats = match &config.stats {
        Some(addr) => Some(
            crate::control::stats::serve(addr, config.stats_http, calls_tx.clone()).map_err(
                |source| Error::Stats {
                    addr: addr.to_string(),
                    source,
                },
            )?,
        ),
        None => None,
    };
    let _metrics = match &config.metrics {
        Some(addr) => Some(
            crate::control::metrics::serve(addr, calls_tx.clone()).map_err(|source| {
                Error::Stats {
                    addr: addr.to_string(),
                    source,
                }
            })?,
        ),
        None => None,
    };
    let _fifo = match &config.master_fifo {
        Some(path) => Some(triggers::serve_fifo(path, events_tx.clone())?),
        None => None,
    };
    if let Some(path) = &config.touch_reload {
        triggers::watch_touch_file(path.clone(), config.reload_strategy, events_tx.clone());
    }
    let control_fd = _control.as_ref().map(|c| c.fd);
    let addrs = listeners.iter().map(|l| l.endpoint().to_string()).collect();
    let mut exec = Executor::new(listeners, events_tx, notifier, control_fd);
    let mut sup = Supervisor::new(config.clone(), exe, addrs);
    for l in exec.listeners() {
        let origin = match l.systemd_name.as_deref() {
            Some("") => " (socket from systemd)".to_string(),
            Some(name) => format!(" (socket '{name}' from systemd)"),
            None => String::new(),
        };
        match (&l.addr, l.protocol) {
            (crate::config::ListenAddr::Tcp(a), crate::config::Protocol::Http) => {
                tracing::info!("listening on http://{a}{origin}")
            }
            _ => tracing::info!("listening on {}{origin}", l.endpoint()),
        }
    }
    tracing::info!(pid = std::process::id(), workers = config.workers, threads = config.worker.threads, app = %config.worker.app, "master started");
    if handover.is_none()
        && let Some(file) = &config.worker.gunicorn_hooks
        && config.master_hooks.iter().any(|h| h == "on_starting")
    {
        let python = server_hooks::hook_python(&config);
        server_hooks::on_starting(&python, file, config.worker.chdir.as_deref()).await?;
    }
    let first = match handover {
        Some(h) => {
            let adopted = exec.adopt(&h);
            sup.adopt(&h, &adopted).map_err(Error::Generation)?
        }
        None => sup.start().map_err(Error::Generation)?,
    };
    carry_out(&mut sup, &mut exec, first, Vec::new());

    // Signals coalesce, so a periodic sweep catches exits whose SIGCHLD merged with another.
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    // Cron jobs are checked once per new minute of local time.
    let cron_seconds = clock::test_seconds();
    let mut last_minute = None;
    let mut watchdog = tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
    let status = loop {
        if let Some(status) = exec.exit_status() {
            break status;
        }
        let inputs = tokio::select! {
            // Worker messages first: a worker exits only once its last word is queued here (see
            // `executor::run_channel`), so taking the queue before SIGCHLD and the sweep means a
            // reap never overtakes the `BootFailed` or `Bye` that explains it.
            biased;
            Some(event) = events.recv() => vec![event],
            Some(sig) = signals.next() => match sig {
                SIGCHLD => exec.reap(&sup),
                sig => Command::from_signal(sig)
                    .map(|c| Event::Command(c, None))
                    .into_iter()
                    .collect(),
            },
            Some(call) = calls.recv() => vec![Event::Command(
                call.request.into(),
                Some(Responder::new(call.reply)),
            )],
            _ = sweep.tick() => {
                let mut inputs = exec.reap(&sup);
                inputs.push(Event::Tick);
                inputs.push(exec.load());
                let now = clock::wall_clock(cron_seconds);
                if last_minute != Some(now) {
                    last_minute = Some(now);
                    inputs.push(Event::Minute(now));
                }
                inputs
            }
            _ = watchdog.tick(), if watchdog_every.is_some() => vec![Event::Watchdog],
        };
        carry_out(&mut sup, &mut exec, Vec::new(), inputs);
    };
    tracing::info!("master exiting");
    Ok(status)
}

/// Runs `effects`, then feeds each event (and whatever the executor learns on the way) to the
/// supervisor until nothing is left to do.
fn carry_out(
    sup: &mut Supervisor,
    exec: &mut Executor,
    effects: Vec<effect::Effect>,
    events: Vec<Event>,
) {
    let mut queue: VecDeque<Event> = events.into();
    for effect in effects {
        queue.extend(exec.execute(effect, sup));
    }
    while let Some(event) = queue.pop_front() {
        for event in exec.absorb(event) {
            for effect in sup.handle(event) {
                queue.extend(exec.execute(effect, sup));
            }
        }
    }
}

#[cfg(test)]
mod tests;
