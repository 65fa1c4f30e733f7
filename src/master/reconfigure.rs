//! Reading the configuration again for each reload. A reload runs what the files say *now*
//! (an edited `uwsgi.ini`, a new `gunicorn.conf.py`), as uWSGI and gunicorn users expect; the
//! read happens off the loop (an ini is a file read, a `gunicorn.conf.py` a Python subprocess)
//! and comes back as [`Event::ConfigRead`](super::effect::Event::ConfigRead). A configuration
//! that no longer resolves fails the reload with the reason and the old generation keeps
//! serving. Settings the master holds for its whole life (its sockets, its own files) keep
//! their old values, and the reload's result says which ones changed and did not apply.

use std::sync::Arc;

use super::command::{Outcome, Responder};
use super::effect::Effect;
use super::supervisor::{Phase, Supervisor};
use crate::config::{Config, Endpoint, Protocol, ReloadStrategy};

/// A reload waiting for its configuration to be read.
#[derive(Debug)]
pub struct Reading {
    /// The strategy asked for.
    pub strategy: ReloadStrategy,
    /// `--wait` callers: answered when the reload is over.
    pub waiters: Vec<Responder>,
    /// Callers answered as soon as the reload starts (or fails to).
    pub now: Vec<Responder>,
}

/// The settings of `new` that cannot change without a restart, described, with `new` changed
/// back to `old`'s values for them.
pub fn keep_master_settings(old: &Config, new: &mut Config) -> Vec<String> {
    let mut notes = Vec::new();
    let mut held = |name: &str, changed: bool| {
        if changed {
            notes.push(format!(
                "{name} changed in the configuration but the master holds it for its whole life: restart segue (or run `segue upgrade`) to apply it"
            ));
        }
    };
    held(
        "http",
        speaking(&old.listen, Protocol::Http) != speaking(&new.listen, Protocol::Http)
            || old.listen_fds != new.listen_fds,
    );
    held(
        "socket",
        speaking(&old.listen, Protocol::Uwsgi) != speaking(&new.listen, Protocol::Uwsgi),
    );
    held(
        "fastcgi-socket",
        speaking(&old.listen, Protocol::FastCgi) != speaking(&new.listen, Protocol::FastCgi),
    );
    held("backlog", old.backlog != new.backlog);
    held("chmod-socket", old.socket_mode != new.socket_mode);
    held("control", old.control != new.control);
    held("pidfile", old.pidfile != new.pidfile);
    held("master-fifo", old.master_fifo != new.master_fifo);
    held("touch-reload", old.touch_reload != new.touch_reload);
    held("cheap, idle and cheaper", old.scaling != new.scaling);
    if old.workers != new.workers {
        notes.push(format!(
            "workers changed from {} to {} in the configuration; a reload keeps the live worker count: use `segue workers +1` / `-1` to change it",
            old.workers, new.workers
        ));
    }
    new.listen.clone_from(&old.listen);
    new.listen_fds.clone_from(&old.listen_fds);
    new.listen_explicit = old.listen_explicit;
    new.backlog = old.backlog;
    new.socket_mode = old.socket_mode;
    new.control.clone_from(&old.control);
    new.pidfile.clone_from(&old.pidfile);
    new.master_fifo.clone_from(&old.master_fifo);
    new.touch_reload.clone_from(&old.touch_reload);
    new.scaling.clone_from(&old.scaling);
    new.workers = old.workers;
    notes
}

impl Supervisor {
    /// Starts a reload: first the configuration is read again when segue was started from an
    /// invocation (it always is, outside tests and check-reload's child), then the generation.
    pub(super) fn start_reload(
        &mut self,
        strategy: ReloadStrategy,
        waiters: Vec<Responder>,
        now: Option<Responder>,
    ) {
        if let Some(inv) = self.base.invocation.clone() {
            self.reading = Some(Reading {
                strategy,
                waiters,
                now: now.into_iter().collect(),
            });
            self.emit(Effect::ReadConfig(inv));
            return;
        }
        let outcome = self.begin_reload(strategy, waiters, Vec::new());
        self.answer(now, Outcome::Reload(outcome));
    }

    /// The configuration read for the pending reload: adopt it and start the generation, or
    /// fail the reload with the reason.
    pub(super) fn on_config_read(&mut self, result: Result<Box<Config>, String>) {
        let Some(reading) = self.reading.take() else {
            return;
        };
        if self.phase != Phase::Running {
            for r in reading.waiters.into_iter().chain(reading.now) {
                self.emit(Effect::Reply(r, Outcome::Stopped));
            }
            return;
        }
        let outcome = match result {
            Ok(mut new) => {
                let notes = keep_master_settings(&self.base, &mut new);
                for n in &notes {
                    tracing::warn!("reload: {n}");
                }
                new.python = None;
                self.base = Arc::new(*new);
                self.begin_reload(reading.strategy, reading.waiters, notes)
            }
            Err(reason) => {
                let reason = format!("the configuration cannot be used: {reason}");
                let outcome = self.refuse_reload(reading.strategy, reading.waiters, reason);
                self.start_queued_reload();
                outcome
            }
        };
        for r in reading.now {
            self.emit(Effect::Reply(r, Outcome::Reload(outcome.clone())));
        }
    }
}

/// The listeners of `listen` that speak `protocol`, in order.
fn speaking(listen: &[Endpoint], protocol: Protocol) -> Vec<&Endpoint> {
    listen.iter().filter(|e| e.protocol == protocol).collect()
}
