//! The Python threads. Each stays attached to the interpreter for its whole life and releases
//! the GIL only while it waits for the next job: attaching per request, or `spawn_blocking`,
//! costs several times the CPU and resets `threading.local` (per-thread DB connections) on
//! every request.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use http::StatusCode;
use pyo3::prelude::*;

use super::watchdog::Requests;
use crate::protocol::scoreboard::Cell;
use crate::wsgi::{self, App, Job};

/// Hands jobs to the Python threads.
pub struct Pool {
    jobs: crossbeam_channel::Sender<Job>,
    /// Where queued jobs are counted for the master (`--cheaper-algo backlog`).
    cell: Option<Cell>,
}

impl Pool {
    /// Starts `threads` Python threads serving `app`; each enters `span` so its logs carry the
    /// worker's fields, and shows on the scoreboard `cell` while it waits for work.
    pub fn start(
        threads: usize,
        app: Arc<App>,
        requests: Option<Arc<Requests>>,
        span: tracing::Span,
        cell: Option<Cell>,
    ) -> std::io::Result<Pool> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        for i in 0..threads {
            let (rx, app, span, requests, cell) = (
                rx.clone(),
                app.clone(),
                span.clone(),
                requests.clone(),
                cell.clone(),
            );
            std::thread::Builder::new().name(format!("segue-python-{i}")).spawn(move || {
                let _enter = span.enter();
                Python::attach(|py| {
                    // Harakiri finds this thread's stack by its Python ident.
                    let ident: u64 = py.import("threading").and_then(|t| t.call_method0("get_ident")).and_then(|i| i.extract()).unwrap_or(0);
                    while let Ok(job) = py.detach(|| {
                        let _idle = cell.as_ref().map(Cell::idle);
                        rx.recv()
                    }) {
                        if let Some(c) = &cell {
                            c.job_taken();
                        }
                        // Only with --harakiri: the registry costs an allocation and a lock per request.
                        let _running = requests.as_ref().map(|r| r.begin(ident, format!("{} {}", job.request.method, job.request.uri)));
                        // A bug in segue must cost one request, not a thread of the pool.
                        if std::panic::catch_unwind(AssertUnwindSafe(|| wsgi::handle(py, &app, job))).is_err() {
                            tracing::error!("internal error while handling a request (a panic); the request got a 500");
                        }
                    }
                });
            })?;
        }
        Ok(Pool { jobs: tx, cell })
    }

    /// Queues a job. If every Python thread is gone the client gets a 503 rather than a hang.
    pub fn submit(&self, job: Job) {
        if let Some(c) = &self.cell {
            c.job_queued();
        }
        if let Err(crossbeam_channel::SendError(job)) = self.jobs.send(job) {
            if let Some(c) = &self.cell {
                c.job_taken();
            }
            let _ = job.reply.send(wsgi::response::error_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable\n",
            ));
        }
    }
}
