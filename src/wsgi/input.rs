//! `wsgi.input`: a file-like view of the request body that pulls chunks from the tokio pump
//! only when the app reads, with the GIL released while it waits.

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use std::sync::Mutex;

use crate::http::body::{RequestBody, RequestBodyError as BodyError};

pyo3::create_exception!(
    segue,
    RequestBodyError,
    PyOSError,
    "The request body could not be read (bad chunked framing, or the client went away). Unhandled, it becomes a 400."
);
pyo3::create_exception!(
    segue,
    RequestBodyTooLarge,
    RequestBodyError,
    "The request body exceeds --limit-request-body. Unhandled, it becomes a 413."
);

/// Buffered body state. All of it is touched only with the GIL released, so a read that blocks
/// on the network never holds the GIL while waiting for this lock.
#[derive(Debug, Default)]
struct State {
    /// Bytes received and not yet returned.
    buf: Vec<u8>,
    /// Read position in `buf`.
    pos: usize,
    /// The pump; `None` for a request without a body or once it is exhausted.
    source: Option<RequestBody>,
    /// A read error, repeated on every later read.
    error: Option<BodyError>,
}

impl State {
    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Pulls one more chunk; false at the end of the body.
    fn fill(&mut self) -> Result<bool, BodyError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let Some(source) = self.source.as_mut() else {
            return Ok(false);
        };
        match source.next_blocking() {
            Some(Ok(chunk)) => {
                if self.pos > 0 && self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                }
                self.buf.extend_from_slice(&chunk);
                Ok(true)
            }
            Some(Err(e)) => {
                self.source = None;
                self.error = Some(e.clone());
                Err(e)
            }
            None => {
                self.source = None;
                Ok(false)
            }
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.buf.len() - self.pos);
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        out
    }

    /// Up to `limit` bytes (all if `None`), blocking until that many or the end.
    fn read(&mut self, limit: Option<usize>) -> Result<Vec<u8>, BodyError> {
        while limit.is_none_or(|n| self.available().len() < n) {
            if !self.fill()? {
                break;
            }
        }
        Ok(self.take(limit.unwrap_or(usize::MAX)))
    }

    /// One line including its `\n`, at most `limit` bytes.
    fn readline(&mut self, limit: Option<usize>) -> Result<Vec<u8>, BodyError> {
        let mut scanned = 0;
        loop {
            let avail = self.available();
            if let Some(i) = avail[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + i + 1;
                return Ok(self.take(limit.map_or(end, |l| l.min(end))));
            }
            if limit.is_some_and(|l| avail.len() >= l) {
                return Ok(self.take(limit.unwrap_or(0)));
            }
            scanned = avail.len();
            if !self.fill()? {
                return Ok(self.take(usize::MAX));
            }
        }
    }
}

/// The `wsgi.input` object.
#[pyclass(frozen, module = "segue")]
pub struct Input {
    state: Mutex<State>,
}

impl Input {
    /// An input over `body` (`None` when the request has no body).
    pub fn new(body: Option<RequestBody>) -> Self {
        Input {
            state: Mutex::new(State {
                source: body,
                ..State::default()
            }),
        }
    }

    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut State) -> Result<T, BodyError> + Send,
    ) -> PyResult<T> {
        let result = py.detach(|| {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut state)
        });
        result.map_err(|e| match e {
            BodyError::TooLarge(_) => RequestBodyTooLarge::new_err(e.to_string()),
            BodyError::Broken(_) => RequestBodyError::new_err(e.to_string()),
        })
    }
}

/// `None` or a negative size means "no limit", as for Python files.
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|n| usize::try_from(n).ok())
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.with(py, |s| s.read(limit(size)))?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.with(py, |s| s.readline(limit(size)))?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let lines = self.with(py, |s| {
            let mut lines = Vec::new();
            let mut total = 0;
            loop {
                let line = s.readline(None)?;
                if line.is_empty() {
                    break;
                }
                total += line.len();
                lines.push(line);
                if hint.is_some_and(|h| total >= h) {
                    break;
                }
            }
            Ok(lines)
        })?;
        PyList::new(py, lines.iter().map(|l| PyBytes::new(py, l)))
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.with(py, |s| s.readline(None))?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }
}
