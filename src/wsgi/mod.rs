//! PEP 3333 on top of the embedded interpreter: building the environ, `wsgi.input`,
//! `start_response` and `write`, iterating the app's response, `wsgi.errors` and
//! `wsgi.file_wrapper`.
//!
//! Everything here runs on a worker's Python threads. The tokio side hands a [`Job`] over and
//! gets a [`Reply`] back; the body of a streamed reply keeps flowing through a bounded channel.

pub mod app;
pub mod environ;
pub mod errors;
pub mod factory;
pub mod file_wrapper;
pub mod input;
pub mod mounts;
pub mod pull;
pub mod response;
pub mod strings;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use tokio::sync::oneshot;

use crate::http::body::ResponseBody;
use crate::http::request_body::RequestBody;
pub use crate::peer::{Local, Peer};
pub use app::{App, Mounted};
use response::{Response, StartResponse};

/// One request handed to a Python thread.
#[derive(Debug)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Target as received (origin-form or absolute-form).
    pub uri: Uri,
    /// HTTP version.
    pub version: Version,
    /// Header fields.
    pub headers: HeaderMap,
    /// The client.
    pub peer: Peer,
    /// The listener.
    pub local: Local,
    /// A trusted proxy says the client used HTTPS (`wsgi.url_scheme`).
    pub https: bool,
    /// The body, if the request has one.
    pub body: Option<RequestBody>,
    /// What a gateway protocol (uwsgi) said beyond the HTTP head; it takes precedence in the
    /// environ. `None` for HTTP.
    pub gateway: Option<crate::gateway::Gateway>,
}

/// A response head and body, produced once per request.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// The app's reason phrase, when it differs from the canonical one.
    pub reason: Option<Bytes>,
    /// Header fields, validated.
    pub headers: HeaderMap,
    /// The body.
    pub body: ResponseBody,
}

/// A request and the channel its reply goes back on.
pub struct Job {
    /// The request.
    pub request: Request,
    /// Where the head (and body handle) goes.
    pub reply: oneshot::Sender<Reply>,
    /// Dropped once the app's iterable is closed (the worker's turn, in the inline mode).
    pub hold: Option<Hold>,
}

impl Job {
    /// A job holding nothing.
    pub fn new(request: Request, reply: oneshot::Sender<Reply>) -> Job {
        Job {
            request,
            reply,
            hold: None,
        }
    }
}

/// What a request holds while its app runs (the worker's turn, in the inline mode); dropped
/// when the app's iterable is closed.
pub type Hold = Box<dyn std::any::Any + Send + Sync>;

/// Runs the app mounted at the request's path for one request, on a Python thread, and always
/// produces a reply: no app there is a 404, an app error before the headers went out becomes a
/// 500 (or the 400/413 a body read failure calls for), one after aborts the connection.
pub fn handle(py: Python<'_>, app: &App, job: Job) {
    let Job {
        mut request,
        reply,
        hold: _hold,
    } = job;
    let body = request.body.take();
    let path = environ::decoded_path(&request);
    let Some((mount, prefix_len)) = app.mounts.route(&path) else {
        return not_found(&request, reply);
    };
    let head = request.method == Method::HEAD;
    let resp = Arc::new(Mutex::new(Response::new(reply, head)));
    let result = call(
        py,
        &app.strings,
        mount,
        &request,
        &path[prefix_len..],
        body,
        &resp,
    );
    if let Err(err) = result {
        response::fail(py, &resp, err);
    } else {
        response::finish(py, &resp);
    }
}

fn not_found(request: &Request, reply: oneshot::Sender<Reply>) {
    let target = request.uri.path();
    tracing::debug!(path = target, "no app mounted at the request's path: 404");
    let _ = reply.send(response::error_reply(
        StatusCode::NOT_FOUND,
        format!("no app mounted at {target}\n"),
    ));
}

/// [`handle`] on the connection's own thread (the inline mode): nothing can be sent until the
/// app returns, so the reply is complete when this returns, or its body pulls the rest of the
/// app's iterator as hyper asks for it ([`pull::IterPull`]), on this same thread. `hold` is
/// dropped once the app's iterable is closed.
pub fn handle_inline(
    py: Python<'_>,
    app: &App,
    request: Request,
    reply: oneshot::Sender<Reply>,
    hold: Hold,
) {
    let mut request = request;
    let body = request.body.take();
    let path = environ::decoded_path(&request);
    let Some((mount, prefix_len)) = app.mounts.route(&path) else {
        return not_found(&request, reply);
    };
    let head = request.method == Method::HEAD;
    let resp = Arc::new(Mutex::new(Response::inline(reply, head)));
    let called = (|| {
        let environ = environ::build(py, &app.strings, mount, &request, &path[prefix_len..], body)?;
        let start_response = Bound::new(py, StartResponse::new(resp.clone()))?;
        mount.callable.bind(py).call1((environ, start_response))
    })();
    let iterable = match called {
        Ok(iterable) => iterable,
        Err(err) => return response::fail(py, &resp, err),
    };
    let held = response::take_held(&resp);
    if !held.is_empty()
        && !app
            .uses_write
            .swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::info!(
            "the app calls write(): its later requests run on a Python thread of their own, \
             where write() output streams (inline, it waits until the app returns)"
        );
    }
    match pull::respond(py, &resp, iterable, held, hold) {
        Ok(()) => {}
        Err(err) => response::fail(py, &resp, err),
    }
}

fn call(
    py: Python<'_>,
    strings: &strings::Strings,
    mount: &Mounted,
    request: &Request,
    path_info: &[u8],
    body: Option<RequestBody>,
    resp: &Arc<Mutex<Response>>,
) -> PyResult<()> {
    let environ = environ::build(py, strings, mount, request, path_info, body)?;
    let start_response = Bound::new(py, StartResponse::new(resp.clone()))?;
    let iterable = mount.callable.bind(py).call1((environ, start_response))?;
    let outcome = drive(py, resp, &iterable);
    // A plain list or tuple has no close(); asking would build and discard an AttributeError,
    // a formatted message on every request of most frameworks.
    if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
        return outcome;
    }
    // close() exactly once, whether iteration finished, failed, or the client went away.
    let closed = match iterable.getattr_opt(pyo3::intern!(py, "close")) {
        Ok(Some(close)) => close.call0().map(drop),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    outcome.and(closed)
}

/// Iterates the app's response into the reply.
fn drive(py: Python<'_>, resp: &Arc<Mutex<Response>>, iterable: &Bound<'_, PyAny>) -> PyResult<()> {
    // A list or tuple is already in memory: send it as one buffer so hyper can set
    // Content-Length, which is what nearly every framework returns.
    if let Ok(list) = iterable.cast::<PyList>() {
        return send_sequence(py, resp, list.iter());
    }
    if let Ok(tuple) = iterable.cast::<PyTuple>() {
        return send_sequence(py, resp, tuple.iter());
    }
    if let Ok(wrapper) = iterable.cast::<file_wrapper::FileWrapper>() {
        if let Some(result) = file_wrapper::send_file(py, resp, wrapper) {
            return result;
        }
    }
    for item in iterable.try_iter()? {
        let item = item?;
        let bytes = body_bytes(&item)?;
        if bytes.as_bytes().is_empty() {
            continue;
        }
        if !response::send(py, resp, bytes.as_bytes())? {
            break; // the client went away: stop iterating, close() still runs
        }
    }
    Ok(())
}

pub(crate) fn send_sequence<'py>(
    py: Python<'py>,
    resp: &Arc<Mutex<Response>>,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
) -> PyResult<()> {
    let items: Vec<Bound<'py, PyBytes>> = items.map(|i| body_bytes(&i)).collect::<PyResult<_>>()?;
    if !response::head_sent(resp) {
        let body = match items.as_slice() {
            [] => Bytes::new(),
            [one] => Bytes::copy_from_slice(one.as_bytes()),
            many => Bytes::from(
                many.iter()
                    .flat_map(|b| b.as_bytes().iter().copied())
                    .collect::<Vec<u8>>(),
            ),
        };
        return response::send_full(resp, body);
    }
    for b in items {
        if !response::send(py, resp, b.as_bytes())? {
            break;
        }
    }
    Ok(())
}

pub(crate) fn body_bytes<'py>(item: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    item.cast::<PyBytes>().cloned().map_err(|_| {
        let ty = item.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        pyo3::exceptions::PyTypeError::new_err(format!(
            "WSGI response body items must be bytes, not {ty} (encode str bodies, e.g. body.encode('utf-8'))"
        ))
    })
}
