//! `start_response`, `write()` and the per-request response state they share with the
//! iteration loop.
//!
//! The head is held back until the first non-empty body chunk (or the end of the body), as PEP
//! 3333 asks, so `start_response` may still be called again with `exc_info` until then. Status
//! and headers are validated when the app passes them, so a bad value raises inside the app and
//! never reaches the wire.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use http_body::Body as _;
use pyo3::exceptions::{PyAssertionError, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use tokio::sync::{mpsc, oneshot};

use super::Reply;
use super::app::format_exception;
use super::input::{RequestBodyError, RequestBodyTimeout, RequestBodyTooLarge};
use crate::http::body::{Abort, Chunk, ResponseBody, STREAM_DEPTH};
use crate::http::sendfile::FileRegion;

/// Status line and headers as `start_response` received them, validated.
#[derive(Debug)]
struct Head {
    status: StatusCode,
    reason: Option<Bytes>,
    headers: HeaderMap,
    /// The app's Content-Length, enforced: extra bytes are cut, missing ones abort.
    declared_len: Option<u64>,
}

/// One request's response, from `start_response` to the last chunk.
#[derive(Debug)]
pub struct Response {
    /// Set by `start_response`; replaced only with `exc_info` before the head is sent.
    head: Option<Head>,
    /// Present until the head is sent.
    reply: Option<oneshot::Sender<Reply>>,
    /// Present while a streamed body is open.
    stream: Option<mpsc::Sender<Chunk>>,
    /// Body bytes sent so far.
    sent: u64,
    /// HEAD requests get headers only; hyper drops the body.
    is_head: bool,
    /// The app runs on the connection's thread: nothing can be sent until it returns, so
    /// `write()` output waits in `held`.
    inline: bool,
    /// `write()` output of an inline app, sent when it returns.
    held: Vec<Bytes>,
    /// Bytes in `held`, against [`WRITE_HOLD`].
    held_len: usize,
}

/// Most `write()` output an app running inline may produce before it returns; past it
/// `write()` raises. Only the first request of an app that uses `write()` runs inline: later
/// ones go to a Python thread of their own, where `write()` streams.
pub const WRITE_HOLD: usize = 16 << 20;

fn lock(resp: &Mutex<Response>) -> MutexGuard<'_, Response> {
    // A panic on another thread while holding this lock leaves plain data behind; keep going.
    resp.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Response {
    /// A response that will reply on `reply`.
    pub fn new(reply: oneshot::Sender<Reply>, is_head: bool) -> Self {
        Response {
            head: None,
            reply: Some(reply),
            stream: None,
            sent: 0,
            is_head,
            inline: false,
            held: Vec::new(),
            held_len: 0,
        }
    }

    /// A response for an app running on the connection's own thread.
    pub fn inline(reply: oneshot::Sender<Reply>, is_head: bool) -> Self {
        Response {
            inline: true,
            ..Response::new(reply, is_head)
        }
    }

    fn reply(&mut self, body: ResponseBody) -> PyResult<()> {
        let head = self.head.as_mut().ok_or_else(|| {
            PyAssertionError::new_err("the app sent a body before calling start_response()")
        })?;
        let short = matches!(
            (head.declared_len, body.size_hint().exact()),
            (Some(declared), Some(len)) if len < declared
        );
        // HEAD bodies are empty by design; anything else short of its Content-Length must
        // end in a cut connection, not in a response hyper frames as complete.
        let body = if short && !self.is_head {
            body.inexact()
        } else {
            body
        };
        let reply = Reply {
            status: head.status,
            reason: head.reason.take(),
            headers: std::mem::take(&mut head.headers),
            body,
        };
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(reply);
        }
        Ok(())
    }

    /// Keeps `write()` output of an inline app until it returns.
    fn hold(&mut self, mut chunk: Bytes) -> PyResult<()> {
        if self.head.is_none() {
            return Err(PyAssertionError::new_err(
                "the app sent a body before calling start_response()",
            ));
        }
        let n = self.take_allowed(chunk.len());
        chunk.truncate(n);
        if self.held_len + chunk.len() > WRITE_HOLD {
            return Err(PyOSError::new_err(format!(
                "write() was given more than {} MiB before the app returned: running inline (the \
                 connection's own thread) segue holds write() output until then; later requests \
                 of this app run on a Python thread of their own, or start segue with --no-inline",
                WRITE_HOLD >> 20
            )));
        }
        self.held_len += chunk.len();
        if !chunk.is_empty() {
            self.held.push(chunk);
        }
        Ok(())
    }

    /// How many of `len` more body bytes the declared Content-Length still allows; counts them
    /// as sent.
    fn take_allowed(&mut self, len: usize) -> usize {
        let allowed = match self.head.as_ref().and_then(|h| h.declared_len) {
            Some(limit) => {
                let room = usize::try_from(limit.saturating_sub(self.sent)).unwrap_or(usize::MAX);
                if len > room {
                    tracing::warn!(
                        "the app sent more bytes than its Content-Length of {limit}: extra bytes dropped"
                    );
                }
                len.min(room)
            }
            None => len,
        };
        self.sent += allowed as u64;
        allowed
    }
}

/// Whether the head has gone out.
pub fn head_sent(resp: &Mutex<Response>) -> bool {
    lock(resp).reply.is_none()
}

/// What an inline app passed to `write()` before it returned (empty if it never wrote bytes).
pub fn take_held(resp: &Mutex<Response>) -> Vec<Bytes> {
    std::mem::take(&mut lock(resp).held)
}

/// Sends the head with a body whose first chunks are `ready` and whose rest `source` pulls.
pub fn send_pull(
    resp: &Mutex<Response>,
    ready: Vec<Chunk>,
    source: Box<dyn crate::http::body::Pull>,
) -> PyResult<()> {
    lock(resp).reply(ResponseBody::pull(ready, source))
}

/// Counts `chunk` against the declared Content-Length, cutting what goes past it.
pub fn allow(resp: &Mutex<Response>, data: &[u8]) -> Bytes {
    let n = lock(resp).take_allowed(data.len());
    Bytes::copy_from_slice(&data[..n])
}

/// Whether the app's declared Content-Length has been sent in full (false without one).
pub fn length_reached(resp: &Mutex<Response>) -> bool {
    let r = lock(resp);
    r.head
        .as_ref()
        .and_then(|h| h.declared_len)
        .is_some_and(|declared| r.sent >= declared)
}

/// Sends the head with a complete body (only before the head is sent).
pub fn send_full(resp: &Mutex<Response>, mut body: Bytes) -> PyResult<()> {
    let mut r = lock(resp);
    let n = r.take_allowed(body.len());
    body.truncate(n);
    r.reply(ResponseBody::full(body))
}

/// Sends one body chunk, opening the stream (and sending the head) on the first. Returns
/// `Ok(false)` when the client has gone away.
pub fn send(py: Python<'_>, resp: &Mutex<Response>, data: &[u8]) -> PyResult<bool> {
    send_bytes(py, resp, Bytes::copy_from_slice(data))
}

/// [`send`] for a chunk that is already owned.
pub fn send_bytes(py: Python<'_>, resp: &Mutex<Response>, mut chunk: Bytes) -> PyResult<bool> {
    let tx = {
        let mut r = lock(resp);
        if r.inline {
            return r.hold(chunk).map(|()| true);
        }
        if r.reply.is_some() {
            let (tx, rx) = mpsc::channel(STREAM_DEPTH);
            r.reply(ResponseBody::stream(rx))?;
            r.stream = Some(tx);
        }
        let n = r.take_allowed(chunk.len());
        chunk.truncate(n);
        match &r.stream {
            Some(tx) => tx.clone(),
            None => return Ok(false),
        }
    };
    if chunk.is_empty() {
        return Ok(true);
    }
    // Blocks while the client is slower than the app: backpressure, with the GIL released.
    Ok(py.detach(|| tx.blocking_send(Chunk::Data(chunk)).is_ok()))
}

/// Sends a file region for the kernel to copy to the socket: as the whole body when nothing
/// was sent yet, else as the next chunk of the stream. Returns `Ok(false)` when the client has
/// gone away.
pub fn send_file(py: Python<'_>, resp: &Mutex<Response>, mut region: FileRegion) -> PyResult<bool> {
    let tx = {
        let mut r = lock(resp);
        let allowed = r.take_allowed(usize::try_from(region.len()).unwrap_or(usize::MAX));
        region.truncate(allowed as u64);
        if r.reply.is_some() {
            r.reply(ResponseBody::file(region))?;
            return Ok(true);
        }
        match &r.stream {
            Some(tx) => tx.clone(),
            None => return Ok(false),
        }
    };
    if region.is_empty() {
        return Ok(true);
    }
    Ok(py.detach(|| tx.blocking_send(Chunk::File(region)).is_ok()))
}

/// Declares the body length when the app did not (file bodies of known size), so the client
/// gets a Content-Length instead of chunked framing.
pub fn set_length_if_unknown(resp: &Mutex<Response>, len: u64) {
    let mut r = lock(resp);
    if r.reply.is_none() {
        return;
    }
    if let Some(head) = r.head.as_mut() {
        if head.declared_len.is_none() {
            head.declared_len = Some(len);
            head.headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
    }
}

/// Ends the response after the app's iterable is exhausted.
pub fn finish(py: Python<'_>, resp: &Mutex<Response>) {
    let mut r = lock(resp);
    if r.reply.is_some() {
        if r.head.is_none() {
            drop(r);
            let err = PyRuntimeError::new_err("the app returned without calling start_response()");
            fail(py, resp, err);
            return;
        }
        let _ = r.reply(ResponseBody::full(Bytes::new()));
    }
    if let Some(declared) = r.head.as_ref().and_then(|h| h.declared_len) {
        if r.sent < declared && !r.is_head {
            tracing::warn!(
                declared,
                sent = r.sent,
                "the app sent fewer bytes than its Content-Length: the connection is closed"
            );
        }
    }
    r.stream = None;
}

/// Turns an error from the app (or from reading the request body) into a response: a clean
/// error status if the head has not gone out, else an aborted connection.
pub fn fail(py: Python<'_>, resp: &Mutex<Response>, err: PyErr) {
    let (status, text) = if err.is_instance_of::<RequestBodyTooLarge>(py) {
        (StatusCode::PAYLOAD_TOO_LARGE, "413 Payload Too Large\n")
    } else if err.is_instance_of::<RequestBodyTimeout>(py) {
        tracing::debug!("{err}");
        (StatusCode::REQUEST_TIMEOUT, "408 Request Timeout\n")
    } else if err.is_instance_of::<RequestBodyError>(py) {
        (StatusCode::BAD_REQUEST, "400 Bad Request\n")
    } else {
        tracing::error!(target: "segue::app", "error in the WSGI app:\n{}", format_exception(py, &err).trim_end());
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error\n",
        )
    };
    let mut r = lock(resp);
    if let Some(tx) = r.reply.take() {
        let mut reply = error_reply(status, text);
        if status != StatusCode::INTERNAL_SERVER_ERROR {
            // The request body was not read to its end: the connection cannot be reused.
            reply
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let _ = tx.send(reply);
    } else if let Some(tx) = r.stream.take() {
        drop(r);
        py.detach(|| {
            let _ = tx.blocking_send(Chunk::Abort(Abort(
                "the app raised after the response started".into(),
            )));
        });
    }
}

/// A plain-text error reply.
pub fn error_reply(status: StatusCode, text: impl Into<Bytes>) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Reply {
        status,
        reason: None,
        headers,
        body: ResponseBody::full(text.into()),
    }
}

/// The `start_response` callable passed to the app.
#[pyclass(frozen, module = "segue")]
pub struct StartResponse {
    resp: Arc<Mutex<Response>>,
}

impl StartResponse {
    /// A `start_response` bound to one request.
    pub fn new(resp: Arc<Mutex<Response>>) -> Self {
        StartResponse { resp }
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Write> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        let head = parse_head(status, headers)?;
        let mut r = lock(&self.resp);
        match exc_info {
            // PEP 3333: with the head already sent, re-raise the app's exception.
            Some(exc) if r.reply.is_none() => return Err(PyErr::from_value(exc.get_item(1)?)),
            Some(_) => {}
            None if r.head.is_some() => {
                return Err(PyAssertionError::new_err(
                    "start_response() called a second time without exc_info",
                ));
            }
            None => {}
        }
        r.head = Some(head);
        Ok(Write {
            resp: self.resp.clone(),
        })
    }
}

/// The `write()` callable `start_response` returns (for legacy apps).
#[pyclass(frozen, module = "segue")]
pub struct Write {
    resp: Arc<Mutex<Response>>,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("write() takes bytes"))?;
        if data.as_bytes().is_empty() {
            return Ok(());
        }
        if send(py, &self.resp, data.as_bytes())? {
            Ok(())
        } else {
            Err(PyOSError::new_err("client disconnected"))
        }
    }
}

/// A status or header string from the app. PEP 3333 makes them native strings holding latin-1,
/// so CPython encodes them as such in one call: the 3.9 stable ABI has no borrowed UTF-8 view of
/// a `str` (`PyUnicode_AsUTF8AndSize` is 3.10's), and going through UTF-8 would copy twice.
enum Native<'a, 'py> {
    /// ASCII, read in place (no copy).
    Ascii(&'a [u8]),
    /// Encoded as ISO-8859-1: every character is at most U+00FF.
    Latin1(Bound<'py, PyBytes>),
    /// It holds a character above U+00FF, which [`latin1`] reports.
    Text(String),
}

/// CPython's `PyUnicode_AsUTF8AndSize`, a borrowed view of a `str`'s UTF-8 bytes: in the stable
/// ABI from 3.10, and exported with the same signature by every CPython 3 before, so it is
/// looked up in the running interpreter rather than linked (the wheel targets the 3.9 ABI).
/// For an ASCII string (nearly every header an app sends) it is the string's own storage.
type AsUtf8 =
    unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::Py_ssize_t) -> *const std::ffi::c_char;

fn as_utf8() -> Option<AsUtf8> {
    static FOUND: std::sync::OnceLock<Option<AsUtf8>> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks a symbol up.
        let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"PyUnicode_AsUTF8AndSize".as_ptr()) };
        // SAFETY: the symbol, when present, is CPython's function of exactly this signature.
        (!sym.is_null()).then(|| unsafe { std::mem::transmute::<*mut libc::c_void, AsUtf8>(sym) })
    })
}

/// The bytes of `s` if it is ASCII, borrowed from the object.
fn ascii<'a>(s: &'a Bound<'_, PyString>) -> Option<&'a [u8]> {
    let f = as_utf8()?;
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a live `str` and the GIL is held; on success the pointer refers to `len`
    // bytes owned by `s`, which outlives the returned borrow ('a).
    let ptr = unsafe { f(s.as_ptr(), &mut len) };
    if ptr.is_null() {
        // A lone surrogate: leave the error to the slow path, which reports it.
        // SAFETY: clearing the exception this call set; the GIL is held.
        unsafe { ffi::PyErr_Clear() };
        return None;
    }
    // SAFETY: see above.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len as usize) };
    bytes.is_ascii().then_some(bytes)
}

impl<'a, 'py> Native<'a, 'py> {
    /// Raises (UnicodeEncodeError) only for a `str` that is not valid UTF-8, a lone surrogate.
    fn new(s: &'a Bound<'py, PyString>) -> PyResult<Self> {
        if let Some(bytes) = ascii(s) {
            return Ok(Native::Ascii(bytes));
        }
        // SAFETY: `s` is a live `str` and the GIL is held (we have a `Bound`); the call returns
        // a new reference or NULL with an exception set, which `from_owned_ptr_or_err` takes.
        let encoded = unsafe {
            Bound::from_owned_ptr_or_err(s.py(), ffi::PyUnicode_AsLatin1String(s.as_ptr()))
        };
        match encoded {
            // SAFETY: PyUnicode_AsLatin1String returns a `bytes` object.
            Ok(b) => Ok(Native::Latin1(unsafe { b.cast_into_unchecked() })),
            // Above U+00FF somewhere; the surrogate check is UTF-8's, as with any `str` to Rust.
            Err(_) => Ok(Native::Text(s.to_cow()?.into_owned())),
        }
    }

    /// The string itself, for messages and parsing.
    fn text(&self) -> Cow<'_, str> {
        match self {
            // ASCII is UTF-8.
            Native::Ascii(b) => Cow::Borrowed(std::str::from_utf8(b).unwrap_or_default()),
            Native::Latin1(b) => match std::str::from_utf8(b.as_bytes()) {
                Ok(ascii) if ascii.is_ascii() => Cow::Borrowed(ascii),
                _ => Cow::Owned(b.as_bytes().iter().map(|&b| b as char).collect()),
            },
            Native::Text(s) => Cow::Borrowed(s),
        }
    }
}

/// `s` as ISO-8859-1 bytes, refusing characters above U+00FF and control characters; `what`
/// names it in the error.
fn latin1<'a>(what: impl FnOnce() -> String, s: &'a Native<'_, '_>) -> PyResult<&'a [u8]> {
    let bad = |c: u32| {
        let (what, s) = (what(), s.text());
        if c <= 0xff {
            PyValueError::new_err(format!(
                "{what} {s:?} contains a control character (CR, LF, ...)"
            ))
        } else {
            PyValueError::new_err(format!(
                "{what} {s:?} is not latin-1 (encode non-ASCII values, e.g. RFC 8187)"
            ))
        }
    };
    let allowed = |c: u32| matches!(c, 0x09 | 0x20..=0x7e | 0x80..=0xff);
    match s {
        Native::Ascii(b) => match b.iter().find(|&&b| !allowed(b.into())) {
            Some(&c) => Err(bad(c.into())),
            None => Ok(b),
        },
        Native::Latin1(b) => match b.as_bytes().iter().find(|&&b| !allowed(b.into())) {
            Some(&c) => Err(bad(c.into())),
            None => Ok(b.as_bytes()),
        },
        // A `Text` holds a character above U+00FF; the first bad character picks the message.
        Native::Text(t) => {
            let first = t.chars().map(u32::from).find(|&c| !allowed(c));
            Err(bad(first.unwrap_or(0x100)))
        }
    }
}

fn parse_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<Head> {
    let status = status
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err("status must be a str such as '200 OK'"))?;
    let status = Native::new(status)?;
    let raw = latin1(|| "status".into(), &status)?;
    let bad = || {
        PyValueError::new_err(format!(
            "invalid status {:?}: expected three digits, a space and a reason, e.g. '200 OK'",
            status.text()
        ))
    };
    if raw.len() < 4 || raw[3] != b' ' || !raw[..3].iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let code = StatusCode::from_bytes(&raw[..3]).map_err(|_| bad())?;
    if code.as_u16() < 200 && code.as_u16() != 100 {
        // 1xx other than informational use is not something a WSGI app can send.
        return Err(bad());
    }
    let reason = &raw[4..];
    let reason = (code.canonical_reason().map(str::as_bytes) != Some(reason))
        .then(|| Bytes::copy_from_slice(reason));

    let mut map = HeaderMap::new();
    let mut declared_len = None;
    let shape = || PyTypeError::new_err("response headers must be a list of (str, str) tuples");
    for item in headers.try_iter().map_err(|_| shape())? {
        let item = item?;
        let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
            item.extract().map_err(|_| shape())?;
        let name = Native::new(name.cast::<PyString>().map_err(|_| shape())?)?;
        let value = Native::new(value.cast::<PyString>().map_err(|_| shape())?)?;
        let name_bytes = latin1(|| "header name".into(), &name)?;
        let hname = HeaderName::from_bytes(name_bytes)
            .map_err(|_| PyValueError::new_err(format!("invalid header name {:?}", name.text())))?;
        let value_bytes = latin1(|| format!("value of header {:?}", name.text()), &value)?;
        let hvalue = HeaderValue::from_bytes(value_bytes).map_err(|_| {
            PyValueError::new_err(format!(
                "invalid value for header {:?}: {:?}",
                name.text(),
                value.text()
            ))
        })?;
        if hname == header::TRANSFER_ENCODING {
            // Framing is the server's job (PEP 3333: no hop-by-hop headers from apps).
            continue;
        }
        if hname == header::CONTENT_LENGTH {
            let value = value.text();
            let n = value
                .trim()
                .parse::<u64>()
                .map_err(|_| PyValueError::new_err(format!("invalid Content-Length {value:?}")))?;
            if declared_len.replace(n).is_some_and(|old| old != n) {
                return Err(PyValueError::new_err("conflicting Content-Length headers"));
            }
            map.insert(hname, hvalue);
            continue;
        }
        map.append(hname, hvalue);
    }
    Ok(Head {
        status: code,
        reason,
        headers: map,
        declared_len,
    })
}
