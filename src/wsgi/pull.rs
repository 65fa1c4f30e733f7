//! The app's response when it runs inline, on the connection's own thread: a list is sent as
//! one buffer, a wrapped file by `sendfile`, and any other iterable is pulled, one item each
//! time hyper asks the body for more, on that same thread. So a streaming app keeps its
//! backpressure (nothing is asked of it while the socket is full), no chunk waits for the
//! next to be computed (the body yields to hyper after each), and nothing crosses threads.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyList, PyTuple};

use super::response::{self, Response};
use super::{Hold, body_bytes, file_wrapper, send_sequence};
use crate::http::body::{Abort, Chunk, Pull};

/// Most items of an iterator read and dropped after its declared Content-Length was sent, so
/// that code after an app's last `yield` still runs before `close()` (as when a Python thread
/// iterates it to its end), without looping for ever on an endless one.
const DRAIN_AFTER_LENGTH: usize = 64;

/// Sends the response of an inline app that returned `iterable`, after `held` (its `write()`
/// output). `hold` is let go once the iterable is closed: now, or when the pulled body ends.
pub fn respond(
    py: Python<'_>,
    resp: &Arc<Mutex<Response>>,
    iterable: Bound<'_, PyAny>,
    held: Vec<Bytes>,
    hold: Hold,
) -> PyResult<()> {
    if held.is_empty() {
        // The shapes nearly every framework returns: all in memory, or a file.
        let sent = if let Ok(list) = iterable.cast::<PyList>() {
            Some(send_sequence(py, resp, list.iter()))
        } else if let Ok(tuple) = iterable.cast::<PyTuple>() {
            Some(send_sequence(py, resp, tuple.iter()))
        } else if let Ok(wrapper) = iterable.cast::<file_wrapper::FileWrapper>() {
            file_wrapper::send_file(py, resp, wrapper)
        } else {
            None
        };
        if let Some(sent) = sent {
            let closed = close(&iterable);
            drop(hold);
            sent.and(closed)?;
            response::finish(py, resp);
            return Ok(());
        }
    }
    let mut ready: Vec<Chunk> = held.into_iter().map(Chunk::Data).collect();
    let iterator = match iterable.try_iter() {
        Ok(it) => it,
        Err(e) => {
            let _ = close(&iterable);
            return Err(e);
        }
    };
    // The head waits for the first non-empty item (PEP 3333): a generator app calls
    // start_response from inside, and may still call it again with exc_info until then.
    if ready.is_empty() {
        let first = loop {
            match first_item(py, resp, &iterator) {
                Ok(Some(chunk)) if chunk.is_empty() => continue,
                Ok(first) => break first,
                Err(e) => {
                    let _ = close(&iterable);
                    return Err(e);
                }
            }
        };
        match first {
            Some(chunk) => ready.push(Chunk::Data(chunk)),
            None => {
                let closed = close(&iterable);
                drop(hold);
                closed?;
                response::finish(py, resp);
                return Ok(());
            }
        }
    }
    let source = IterPull {
        iterator: Some(iterator.unbind()),
        iterable: Some(iterable.unbind()),
        resp: resp.clone(),
        hold: Some(hold),
    };
    response::send_pull(resp, ready, Box::new(source))
}

/// The next item as body bytes (cut to the declared length); `None` at the end.
fn first_item(
    py: Python<'_>,
    resp: &Mutex<Response>,
    iterator: &Bound<'_, PyIterator>,
) -> PyResult<Option<Bytes>> {
    let _ = py;
    match iterator.clone().next() {
        None => Ok(None),
        Some(item) => {
            let item = item?;
            let bytes = body_bytes(&item)?;
            Ok(Some(response::allow(resp, bytes.as_bytes())))
        }
    }
}

/// `close()` on the app's iterable, if it has one (a list or tuple has not).
fn close(iterable: &Bound<'_, PyAny>) -> PyResult<()> {
    if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    match iterable.getattr_opt(pyo3::intern!(iterable.py(), "close")) {
        Ok(Some(close)) => close.call0().map(drop),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The rest of an inline app's iterator, read as hyper asks for it.
pub struct IterPull {
    iterator: Option<Py<PyIterator>>,
    iterable: Option<Py<PyAny>>,
    resp: Arc<Mutex<Response>>,
    /// The worker's turn, given back once the iterable is closed.
    hold: Option<Hold>,
}

impl IterPull {
    /// Closes the iterable (after reading what is left, within reason, if the declared length
    /// is complete) and gives the turn back. Idempotent.
    fn end(&mut self, py: Python<'_>) {
        let (Some(iterator), Some(iterable)) = (self.iterator.take(), self.iterable.take()) else {
            return;
        };
        if response::length_reached(&self.resp) {
            let mut rest = iterator.bind(py).clone();
            for _ in 0..DRAIN_AFTER_LENGTH {
                match rest.next() {
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        response::fail(py, &self.resp, e);
                        break;
                    }
                    None => break,
                }
            }
        }
        if let Err(e) = close(iterable.bind(py)) {
            response::fail(py, &self.resp, e);
        }
        response::finish(py, &self.resp);
        drop((iterator, iterable));
        self.hold = None;
    }
}

impl Pull for IterPull {
    fn next(&mut self) -> Option<Chunk> {
        Python::attach(|py| {
            let mut iterator = self.iterator.as_ref()?.bind(py).clone();
            loop {
                match iterator.next() {
                    None => {
                        self.end(py);
                        return None;
                    }
                    Some(item) => {
                        let bytes = match item.and_then(|i| body_bytes(&i).map(|b| b.unbind())) {
                            Ok(b) => b,
                            Err(e) => {
                                // The head is out: logged, and the connection is cut.
                                response::fail(py, &self.resp, e);
                                self.end(py);
                                return Some(Chunk::Abort(Abort(
                                    "the app raised after the response started".into(),
                                )));
                            }
                        };
                        let chunk = response::allow(&self.resp, bytes.bind(py).as_bytes());
                        if !chunk.is_empty() {
                            return Some(Chunk::Data(chunk));
                        }
                    }
                }
            }
        })
    }
}

impl Drop for IterPull {
    fn drop(&mut self) {
        if self.iterator.is_some() {
            // Done early: the client left, or hyper has sent the declared length.
            Python::attach(|py| self.end(py));
        }
    }
}
