//! Pins the embedded interpreter to the one segue was built against.
//!
//! Without an rpath the loader finds Debian's system `libpython3.11.so` before the build
//! interpreter's (pyenv's, say) and the worker silently runs another Python with another
//! `sys.prefix`. The rpath makes `cargo build` alone give a binary that loads the right one.

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    let config = pyo3_build_config::get();
    if let Some(executable) = config.executable() {
        // Used as `sys.executable` when no virtualenv is configured, so that apps spawning
        // `sys.executable` get a real Python rather than the segue binary.
        println!("cargo:rustc-env=SEGUE_BUILD_PYTHON={executable}");
    }
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-changed=build.rs");
}
