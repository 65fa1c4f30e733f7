//! `wsgi.file_wrapper`: when the app returns a wrapped real file, the kernel copies it to the
//! socket with `sendfile(2)`; the Python thread is free as soon as it has handed the file over.
//! Other file-likes are read with `read(blksize)` like any iterable.

use std::fs::File;
use std::os::fd::BorrowedFd;
use std::sync::Mutex;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use pyo3::prelude::*;

use super::response::{self, Response};
use crate::http::sendfile::FileRegion;

/// The `wsgi.file_wrapper` type.
#[pyclass(frozen, module = "segue")]
pub struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        FileWrapper {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Generic path (file-likes without a real fd): `read(blksize)` until empty.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1(pyo3::intern!(py, "read"), (self.blksize,))?;
        Ok((data.len()? > 0).then_some(data))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if let Some(close) = f.getattr_opt(pyo3::intern!(py, "close"))? {
            close.call0()?;
        }
        Ok(())
    }
}

/// Sends a wrapped regular file with `sendfile(2)`. `None` if the file-like has no usable fd
/// (or is a regular file that does not know its size, as in /proc), in which case the caller
/// iterates it as any other iterable.
pub fn send_file(
    py: Python<'_>,
    resp: &Mutex<Response>,
    wrapper: &Bound<'_, FileWrapper>,
) -> Option<PyResult<()>> {
    let filelike = wrapper.get().filelike.bind(py);
    let fd: i32 = filelike
        .call_method0(pyo3::intern!(py, "fileno"))
        .ok()?
        .extract()
        .ok()?;
    // SAFETY: the file-like object keeps the fd open for the duration of this call; we only
    // duplicate it and never close the borrowed descriptor.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    // A descriptor of our own: the app closes its file object as soon as the body is handed
    // over, long before the kernel has sent the last byte.
    let file = File::from(borrowed.try_clone_to_owned().ok()?);
    let meta = file.metadata().ok()?;
    let mode = fcntl(&file, FcntlArg::F_GETFL).ok()?;
    let write_only = OFlag::from_bits_truncate(mode) & OFlag::O_ACCMODE == OFlag::O_WRONLY;
    if !meta.is_file() || meta.len() == 0 || write_only {
        return None;
    }
    // Start where the app left the file position; Python may have buffered ahead, so ask it.
    let start: u64 = filelike
        .call_method0(pyo3::intern!(py, "tell"))
        .and_then(|p| p.extract())
        .unwrap_or(0);
    let len = meta.len().saturating_sub(start);
    response::set_length_if_unknown(resp, len);
    Some(response::send_file(py, resp, FileRegion::new(file, start, len)).map(drop))
}
