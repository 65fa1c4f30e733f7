//! With the `python` feature outside an extension-module build (the library's own unit tests,
//! which start an interpreter), pins the libpython those test binaries load to the one
//! configured: without an rpath the loader may find Debian's system `libpython3.11.so` first.
//! The master binary has no Python at all; the `segue._worker` extension is loaded by the app's
//! interpreter and links nothing (setuptools-rust sets `PYO3_BUILD_EXTENSION_MODULE`).

fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-env-changed=PYO3_BUILD_EXTENSION_MODULE");
    println!("cargo:rerun-if-changed=build.rs");
    let python = std::env::var_os("CARGO_FEATURE_PYTHON").is_some();
    let extension = std::env::var_os("PYO3_BUILD_EXTENSION_MODULE").is_some();
    if python && !extension {
        pyo3_build_config::add_libpython_rpath_link_args();
    }
}
