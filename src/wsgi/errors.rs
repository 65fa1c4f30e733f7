//! `wsgi.errors`: what the app writes there goes to segue's log, one event per line.

use std::sync::Mutex;

use pyo3::prelude::*;

/// The `wsgi.errors` stream; one per worker, line-buffered.
#[pyclass(frozen, module = "segue")]
#[derive(Default)]
pub struct ErrorStream {
    /// A partial line waiting for its `\n`.
    pending: Mutex<String>,
}

impl ErrorStream {
    fn emit(line: &str) {
        tracing::warn!(target: "segue::wsgi_errors", "{line}");
    }
}

#[pymethods]
impl ErrorStream {
    fn write(&self, s: &str) -> usize {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.push_str(s);
        while let Some(i) = pending.find('\n') {
            let line: String = pending.drain(..=i).collect();
            Self::emit(line.trim_end_matches(['\n', '\r']));
        }
        s.len()
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?.extract::<String>()?);
        }
        Ok(())
    }

    fn flush(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if !pending.is_empty() {
            Self::emit(&pending);
            pending.clear();
        }
    }
}
