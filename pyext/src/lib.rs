//! `segue._worker`: the worker half of segue as an extension module of the app's own
//! interpreter. The master starts `<venv>/bin/python -c 'from segue import _worker; ...'`;
//! [`run`] then serves until the master lets the worker go, and exits the process itself, so
//! control never returns to the interpreter's own shutdown.

use pyo3::prelude::*;

/// mimalloc for the worker's Rust allocations (every request allocates a few: head, reply,
/// futures), as in the master; Python objects keep CPython's own allocator. Each allocation is
/// freed by the allocator that made it, so the two never mix.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs this process as a segue worker (the master's control channel is at fd 3). `master`
/// is the master's segue version, checked against this module's. Never returns.
#[pyfunction]
fn run(py: Python<'_>, master: &str) -> PyResult<()> {
    let code = segue::worker::run_in_interpreter(py, master);
    std::process::exit(code);
}

/// The module's version, for `python -c 'import segue._worker as w; print(w.__version__)'`.
#[pymodule]
fn _worker(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
