//! `wsgi.file_wrapper`: when the app returns a wrapped real file, segue reads it in Rust with
//! the GIL released and streams it in large blocks, instead of running Python once per block.
//!
//! hyper owns the socket, so the kernel's `sendfile` cannot be used on this path; reading with
//! `pread` off the GIL removes the per-block interpreter cost, which is what dominates.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use bytes::Bytes;
use pyo3::prelude::*;

use super::response::{self, Response};

/// Block size for file bodies read in Rust.
const FILE_BLOCK: usize = 256 * 1024;

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

/// Streams a wrapped regular file from Rust. `None` if the file-like has no usable fd, in which
/// case the caller iterates it as any other iterable.
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
    let file = File::from(borrowed.as_fd().try_clone_to_owned().ok()?);
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    // Start where the app left the file position; Python may have buffered ahead, so ask it.
    let start: u64 = filelike
        .call_method0(pyo3::intern!(py, "tell"))
        .and_then(|p| p.extract())
        .unwrap_or(0);
    let len = meta.len().saturating_sub(start);
    response::set_length_if_unknown(resp, len);
    let mut offset = start;
    let end = meta.len();
    while offset < end {
        let want = FILE_BLOCK.min((end - offset) as usize);
        let block = py.detach(|| {
            let mut buf = vec![0u8; want];
            file.read_at(&mut buf, offset).map(|n| {
                buf.truncate(n);
                buf
            })
        });
        let block = match block {
            Ok(b) if b.is_empty() => break, // the file shrank under us
            Ok(b) => b,
            Err(e) => return Some(Err(e.into())),
        };
        offset += block.len() as u64;
        match response::send_bytes(py, resp, Bytes::from(block)) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(()))
}
