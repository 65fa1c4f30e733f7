//! Starting the embedded interpreter exactly as the virtualenv's own `python` would start.
//!
//! CPython ignores `VIRTUAL_ENV`, and `PYTHONHOME=<venv>` is fatal; what works is initialising
//! from a PyConfig whose `executable` is `<venv>/bin/python`, so CPython finds `pyvenv.cfg` and
//! derives `sys.prefix` and site-packages from it. Without a venv, `executable` is the build
//! interpreter, so `sys.executable` is a real Python rather than the segue binary.
//! `install_signal_handlers = 0`: the worker decides what signals do.

use std::ffi::CString;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use pyo3::ffi;

use crate::config::WorkerConfig;

/// The interpreter could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start Python (executable {executable}): {message}")]
pub struct InitError {
    executable: String,
    message: String,
}

/// The interpreter `sys.executable` should name.
fn executable(config: &WorkerConfig) -> Option<PathBuf> {
    match &config.virtualenv {
        Some(venv) => Some(venv.join("bin/python")),
        None => option_env!("SEGUE_BUILD_PYTHON").map(PathBuf::from),
    }
}

/// Initialises CPython on the calling thread (which becomes Python's main thread) and releases
/// the GIL, after which any thread may attach with `Python::attach`.
pub fn initialize(config: &WorkerConfig) -> Result<(), InitError> {
    let exe = executable(config);
    let fail = |message: String| InitError {
        executable: exe
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        message,
    };
    // SAFETY: PyConfig is plain C data initialised by PyConfig_InitPythonConfig before any
    // field is read; strings are set through the API that copies them; the config is cleared
    // on every path; initialisation happens once, before any other Python call in the process.
    unsafe {
        let mut cfg = MaybeUninit::<ffi::PyConfig>::uninit();
        ffi::PyConfig_InitPythonConfig(cfg.as_mut_ptr());
        let mut cfg = cfg.assume_init();
        cfg.install_signal_handlers = 0;
        cfg.parse_argv = 0;
        let status = match &exe {
            Some(path) => {
                let c = CString::new(path.as_os_str().as_bytes())
                    .map_err(|_| fail("the path contains a NUL byte".into()))?;
                ffi::PyConfig_SetBytesString(&mut cfg, &mut cfg.executable, c.as_ptr())
            }
            None => ffi::PyStatus_Ok(),
        };
        if ffi::PyStatus_Exception(status) != 0 {
            ffi::PyConfig_Clear(&mut cfg);
            return Err(fail(status_message(status)));
        }
        let argv0 = CString::new("segue").unwrap_or_default();
        let mut argv = [argv0.as_ptr()];
        let status = ffi::PyConfig_SetBytesArgv(&mut cfg, 1, argv.as_mut_ptr());
        if ffi::PyStatus_Exception(status) != 0 {
            ffi::PyConfig_Clear(&mut cfg);
            return Err(fail(status_message(status)));
        }
        let status = ffi::Py_InitializeFromConfig(&cfg);
        ffi::PyConfig_Clear(&mut cfg);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(fail(status_message(status)));
        }
        // Import threading while this thread holds the GIL so that it is registered as the
        // main thread (threading.main_thread(), and a clean atexit).
        let threading = ffi::PyImport_ImportModule(c"threading".as_ptr());
        if threading.is_null() {
            ffi::PyErr_Clear();
        } else {
            ffi::Py_DecRef(threading);
        }
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

fn status_message(status: ffi::PyStatus) -> String {
    if status.err_msg.is_null() {
        return "unknown error".into();
    }
    // SAFETY: CPython sets err_msg to a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(status.err_msg) }
        .to_string_lossy()
        .into_owned()
}
