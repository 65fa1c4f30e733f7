//! `wsgi.input`: a file-like view of the request body that pulls pieces from the tokio side
//! only when the app reads, with the GIL released while it waits, and keeps only what the app
//! has not read yet.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::http::request_body::{Piece, RequestBody, RequestBodyError as BodyError};

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
pyo3::create_exception!(
    segue,
    RequestBodyTimeout,
    RequestBodyError,
    "The client sent nothing more of the request body for --socket-timeout. Unhandled, it becomes a 408."
);

/// Bytes a read hands to Python: slices of the received pieces, copied once, into the `bytes`
/// object the app gets.
#[derive(Debug, Default)]
struct Taken {
    parts: Vec<Bytes>,
    len: usize,
}

impl Taken {
    fn push(&mut self, part: Bytes) {
        self.len += part.len();
        self.parts.push(part);
    }

    fn into_py(self, py: Python<'_>) -> PyResult<Bound<'_, PyBytes>> {
        match self.parts.as_slice() {
            [] => Ok(PyBytes::new(py, b"")),
            [one] => Ok(PyBytes::new(py, one)),
            parts => PyBytes::new_with(py, self.len, |buf| {
                let mut at = 0;
                for p in parts {
                    buf[at..at + p.len()].copy_from_slice(p);
                    at += p.len();
                }
                Ok(())
            }),
        }
    }
}

/// Body state. All of it is touched only with the GIL released, so a read that blocks on the
/// network never holds the GIL while waiting for this lock.
///
/// Only what the app has not read yet is kept: every read moves what it returns out of
/// `pending` as it goes, so between reads at most the unread rest of one piece is held here,
/// and the pump's budget ([`crate::http::request_body::BODY_BUFFER`]) bounds the rest.
#[derive(Debug, Default)]
struct State {
    /// Pieces received and not yet returned, oldest first; the first may be partly read.
    pending: VecDeque<Piece>,
    /// The pump; `None` for a request without a body or once it is exhausted.
    source: Option<RequestBody>,
    /// A read error, repeated on every later read.
    error: Option<BodyError>,
}

impl State {
    /// Waits for one more piece; false at the end of the body.
    fn fill(&mut self) -> Result<bool, BodyError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let Some(source) = self.source.as_mut() else {
            return Ok(false);
        };
        match source.next_blocking() {
            Some(Ok(piece)) => {
                self.pending.push_back(piece);
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

    /// Moves up to `max` pending bytes into `out`, stopping after the first newline when
    /// `line`; true if it stopped at a newline.
    fn move_into(&mut self, out: &mut Taken, max: usize, line: bool) -> bool {
        let mut room = max;
        while room > 0 {
            let Some(front) = self.pending.front_mut() else {
                return false;
            };
            let avail = &front.bytes()[..front.bytes().len().min(room)];
            let newline = if line {
                avail.iter().position(|&b| b == b'\n')
            } else {
                None
            };
            let n = newline.map_or(avail.len(), |i| i + 1);
            out.push(front.split_to(n));
            room -= n;
            if front.is_empty() {
                self.pending.pop_front();
            }
            if newline.is_some() {
                return true;
            }
        }
        false
    }

    /// Up to `limit` bytes (all if `None`), blocking until that many or the end.
    fn read(&mut self, limit: Option<usize>) -> Result<Taken, BodyError> {
        let mut out = Taken::default();
        loop {
            let room = limit.map_or(usize::MAX, |n| n - out.len);
            if room == 0 {
                return Ok(out);
            }
            self.move_into(&mut out, room, false);
            if limit.is_some_and(|n| out.len >= n) || !self.fill()? {
                return Ok(out);
            }
        }
    }

    /// One line including its `\n`, at most `limit` bytes.
    fn readline(&mut self, limit: Option<usize>) -> Result<Taken, BodyError> {
        let mut out = Taken::default();
        loop {
            let room = limit.map_or(usize::MAX, |n| n - out.len);
            if room == 0 || self.move_into(&mut out, room, true) {
                return Ok(out);
            }
            if limit.is_some_and(|n| out.len >= n) || !self.fill()? {
                return Ok(out);
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
            BodyError::TimedOut(_) => RequestBodyTimeout::new_err(e.to_string()),
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
        self.with(py, |s| s.read(limit(size)))?.into_py(py)
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.with(py, |s| s.readline(limit(size)))?.into_py(py)
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let lines = self.with(py, |s| {
            let mut lines = Vec::new();
            let mut total = 0;
            loop {
                let line = s.readline(None)?;
                if line.len == 0 {
                    break;
                }
                total += line.len;
                lines.push(line);
                if hint.is_some_and(|h| total >= h) {
                    break;
                }
            }
            Ok(lines)
        })?;
        let lines = lines
            .into_iter()
            .map(|l| l.into_py(py))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.with(py, |s| s.readline(None))?;
        (line.len > 0).then(|| line.into_py(py)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A state over a body that arrives as `pieces`, then ends (or fails with `end`).
    fn state(pieces: &[&'static [u8]], end: Option<BodyError>) -> State {
        State {
            source: Some(RequestBody::from_pieces(pieces, end)),
            ..State::default()
        }
    }

    fn bytes(t: Taken) -> Vec<u8> {
        t.parts.concat()
    }

    /// Bytes held for the app between reads.
    fn held(s: &State) -> usize {
        s.pending.iter().map(|p| p.bytes().len()).sum()
    }

    #[test]
    fn sized_reads_across_pieces_keep_only_the_unread_rest() {
        // Piece and read sizes that never line up: the old buffer never emptied, so it grew
        // with the whole body.
        let mut s = state(&[b"abcde", b"fghijkl", b"mnopqrstu", b"vwxyz"], None);
        let mut got = Vec::new();
        loop {
            let chunk = bytes(s.read(Some(4)).unwrap());
            assert!(held(&s) < 9, "held {} bytes between reads", held(&s));
            if chunk.is_empty() {
                break;
            }
            assert!(chunk.len() <= 4);
            got.extend(chunk);
        }
        assert_eq!(got, b"abcdefghijklmnopqrstuvwxyz");
    }

    #[test]
    fn read_without_a_size_returns_the_rest_and_then_nothing() {
        let mut s = state(&[b"ab", b"cd"], None);
        assert_eq!(bytes(s.read(Some(1)).unwrap()), b"a");
        assert_eq!(bytes(s.read(None).unwrap()), b"bcd");
        assert_eq!(bytes(s.read(None).unwrap()), b"");
        assert_eq!(bytes(s.read(Some(0)).unwrap()), b"");
    }

    #[test]
    fn readline_stops_at_newlines_and_limits_across_pieces() {
        let mut s = state(&[b"one\ntw", b"o\nthree-long", b"-line\nlast"], None);
        assert_eq!(bytes(s.readline(None).unwrap()), b"one\n");
        assert_eq!(bytes(s.readline(Some(100)).unwrap()), b"two\n");
        assert_eq!(bytes(s.readline(Some(5)).unwrap()), b"three");
        assert!(held(&s) <= b"-long".len());
        assert_eq!(bytes(s.readline(None).unwrap()), b"-long-line\n");
        assert_eq!(bytes(s.readline(Some(2)).unwrap()), b"la");
        assert_eq!(bytes(s.readline(None).unwrap()), b"st");
        assert_eq!(bytes(s.readline(None).unwrap()), b"");
    }

    #[test]
    fn a_body_error_is_raised_now_and_on_every_later_read() {
        let mut s = state(&[b"abc"], Some(BodyError::TimedOut(Duration::from_secs(1))));
        assert_eq!(bytes(s.read(Some(2)).unwrap()), b"ab");
        assert!(matches!(s.read(Some(2)), Err(BodyError::TimedOut(_))));
        assert!(matches!(s.readline(None), Err(BodyError::TimedOut(_))));
    }
}
