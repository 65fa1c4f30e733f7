//! The `str` objects environs share from one request to the next. Building an environ was a
//! third of a hello-world request's instructions, most of it making strings that the previous
//! request had made already: `HTTP_USER_AGENT` and its value, `REMOTE_ADDR`, `SERVER_NAME`.
//! Python strings are immutable, so one object can stand in every environ that needs it.
//!
//! Bounded: at most [`MAX_NAMES`] header names are remembered (later ones are converted per
//! request, as before), each with its last value if that is at most [`MAX_VALUE`] bytes, so a
//! client sending endless distinct names or huge values changes the cost, never the memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use http::{HeaderName, header};
use pyo3::prelude::*;
use pyo3::types::PyString;

/// Most header names whose CGI keys (and last values) are kept.
pub const MAX_NAMES: usize = 256;
/// Longest header value kept for reuse, in bytes.
pub const MAX_VALUE: usize = 256;

/// The shared strings of one worker; used with the GIL held.
#[derive(Default)]
pub struct Strings {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    fields: HashMap<HeaderName, Field, std::hash::BuildHasherDefault<Fnv>>,
    remote_ip: Option<(IpAddr, Py<PyString>)>,
    /// The last `Host` and what it gave.
    host: Option<Server>,
}

/// A `Host` value, whether the request was HTTPS (the default port), and its `SERVER_NAME`
/// and `SERVER_PORT`.
struct Server {
    host: Vec<u8>,
    https: bool,
    name: Py<PyString>,
    port: Py<PyString>,
}

/// FNV-1a: header names are short, and SipHash's resistance to chosen collisions buys nothing
/// for a map that stops growing at [`MAX_NAMES`]. (A standard name hashes as one small number.)
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A header name's CGI key (`None`: the field never reaches the environ) and its last value.
struct Field {
    key: Option<Py<PyString>>,
    last: Option<(Vec<u8>, Py<PyString>)>,
}

/// [`Strings`] taken for one environ; `None` when another thread has them (then every string
/// is made afresh, as without the cache).
pub struct Locked<'a>(Option<MutexGuard<'a, Inner>>);

impl Strings {
    /// Takes the strings for one environ, without waiting: the holder may have let the GIL go
    /// in the middle of its environ (a collection running a finalizer can switch threads), and
    /// waiting for it while holding the GIL would deadlock both.
    pub fn lock(&self) -> Locked<'_> {
        Locked(match self.inner.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        })
    }
}

/// `bytes` as a Python `str` by latin-1: every byte one character, in one pass.
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    // SAFETY: the pointer and length describe `bytes`, valid for the call; the GIL is held. The
    // result is a new reference (latin-1 decoding cannot fail but for memory, then NULL).
    let obj = unsafe {
        pyo3::ffi::PyUnicode_DecodeLatin1(
            bytes.as_ptr().cast(),
            bytes.len() as pyo3::ffi::Py_ssize_t,
            std::ptr::null(),
        )
    };
    if obj.is_null() {
        // Out of memory: the safe constructor raises the same way, in a form we can return.
        return PyString::new(py, &bytes.iter().map(|&b| b as char).collect::<String>());
    }
    // SAFETY: PyUnicode_DecodeLatin1 returns a new `str` reference.
    unsafe { Bound::from_owned_ptr(py, obj).cast_into_unchecked() }
}

/// Writes the CGI name of a header field into `key`; false if the field must not appear in
/// the environ (a `_` in its name: `X_User` and `X-User` would both be `HTTP_X_USER`, and a
/// client could spoof a header a proxy set).
pub fn cgi_name(name: &HeaderName, key: &mut String) -> bool {
    let n = name.as_str();
    if n.contains('_') {
        return false;
    }
    key.clear();
    if name == header::CONTENT_TYPE {
        key.push_str("CONTENT_TYPE");
    } else if name == header::CONTENT_LENGTH {
        key.push_str("CONTENT_LENGTH");
    } else {
        key.push_str("HTTP_");
        key.extend(n.chars().map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        }));
    }
    true
}

impl Locked<'_> {
    /// The environ key of header `name` and the `str` of its `value`; `None` if the field does
    /// not go into the environ.
    pub fn header<'py>(
        &mut self,
        py: Python<'py>,
        name: &HeaderName,
        value: &[u8],
    ) -> Option<(Bound<'py, PyString>, Bound<'py, PyString>)> {
        let Some(inner) = self.0.as_mut() else {
            let mut key = String::new();
            return cgi_name(name, &mut key).then(|| (PyString::new(py, &key), latin1(py, value)));
        };
        let fields = &mut inner.fields;
        if !fields.contains_key(name) {
            let mut key = String::new();
            let key = cgi_name(name, &mut key).then(|| PyString::new(py, &key));
            if fields.len() >= MAX_NAMES {
                // Full: this name is converted for this request only.
                return key.map(|k| (k, latin1(py, value)));
            }
            let key = key.map(Bound::unbind);
            fields.insert(name.clone(), Field { key, last: None });
        }
        let field = fields.get_mut(name)?;
        let key = field.key.as_ref()?.bind(py).clone();
        if let Some((bytes, s)) = &field.last {
            if bytes.as_slice() == value {
                return Some((key, s.bind(py).clone()));
            }
        }
        let s = latin1(py, value);
        if value.len() <= MAX_VALUE {
            field.last = Some((value.to_vec(), s.clone().unbind()));
        }
        Some((key, s))
    }

    /// `REMOTE_ADDR` for `ip`.
    pub fn remote_ip<'py>(&mut self, py: Python<'py>, ip: IpAddr) -> Bound<'py, PyString> {
        let Some(inner) = self.0.as_mut() else {
            return PyString::new(py, &ip.to_string());
        };
        if let Some((last, s)) = &inner.remote_ip {
            if *last == ip {
                return s.bind(py).clone();
            }
        }
        let s = PyString::new(py, &ip.to_string());
        inner.remote_ip = Some((ip, s.clone().unbind()));
        s
    }

    /// `SERVER_NAME` and `SERVER_PORT` for a `Host` of `host` (the port defaults to the
    /// scheme's), computed by `split`.
    pub fn server<'py>(
        &mut self,
        py: Python<'py>,
        host: &str,
        https: bool,
        split: impl FnOnce(&str) -> (&str, Option<&str>),
    ) -> (Bound<'py, PyString>, Bound<'py, PyString>) {
        if let Some(last) = self.0.as_ref().and_then(|i| i.host.as_ref()) {
            if last.host == host.as_bytes() && last.https == https {
                return (last.name.bind(py).clone(), last.port.bind(py).clone());
            }
        }
        let (name, port) = split(host);
        let default = if https { "443" } else { "80" };
        let (name, port) = (
            PyString::new(py, name),
            PyString::new(py, port.unwrap_or(default)),
        );
        if let Some(inner) = self.0.as_mut().filter(|_| host.len() <= MAX_VALUE) {
            inner.host = Some(Server {
                host: host.as_bytes().to_vec(),
                https,
                name: name.clone().unbind(),
                port: port.clone().unbind(),
            });
        }
        (name, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cgi(name: &HeaderName) -> Option<String> {
        let mut key = String::new();
        cgi_name(name, &mut key).then_some(key)
    }

    #[test]
    fn header_names_map_to_cgi_and_underscores_are_dropped() {
        assert_eq!(
            cgi(&HeaderName::from_static("x-forwarded-for")).as_deref(),
            Some("HTTP_X_FORWARDED_FOR")
        );
        assert_eq!(cgi(&header::CONTENT_TYPE).as_deref(), Some("CONTENT_TYPE"));
        assert_eq!(cgi(&HeaderName::from_static("x_user")), None);
    }
}
