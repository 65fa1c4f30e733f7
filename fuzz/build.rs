//! The targets link segue, and so libpython (they never start it): the same rpath as segue's
//! own build.rs, so that they load the build interpreter's library rather than another.

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    println!("cargo:rerun-if-changed=build.rs");
}
