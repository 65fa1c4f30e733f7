//! Shared pieces of segue's fuzz targets (`fuzz_targets/`): the macro every target is written
//! with, the replay driver used when libFuzzer is not linked, and the oracles the targets check
//! segue's parsers against. See docs/fuzzing.md.

pub mod gateway;
pub mod hyper_view;
pub mod requests;
pub mod split;

/// Declares a fuzz target: `fuzz_target!(|data| { ... })`.
///
/// With the `libfuzzer` feature (what `scripts/fuzz` builds) it is libFuzzer's entry point.
/// Without it the binary replays the files and directories named on its command line through
/// the same body, so that `scripts/test` checks the committed corpora and regression inputs on
/// a machine without libFuzzer's C++ build.
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident| $body:block) => {
        #[cfg(feature = "libfuzzer")]
        libfuzzer_sys::fuzz_target!(|$data: &[u8]| $body);

        #[cfg(not(feature = "libfuzzer"))]
        fn main() {
            $crate::replay(env!("CARGO_BIN_NAME"), |$data: &[u8]| $body);
        }
    };
}

/// Runs `check` on every file named in the arguments, and on every file in the directories
/// named; panics (naming the file) on the first input whose invariant fails.
pub fn replay(target: &str, check: impl Fn(&[u8])) {
    let mut files = Vec::new();
    for arg in std::env::args_os().skip(1) {
        let path = std::path::PathBuf::from(arg);
        match std::fs::read_dir(&path) {
            Ok(dir) => files.extend(dir.filter_map(|e| e.ok()).map(|e| e.path())),
            Err(_) => files.push(path),
        }
    }
    files.sort();
    for file in &files {
        let data = std::fs::read(file)
            .unwrap_or_else(|e| panic!("{target}: cannot read {}: {e}", file.display()));
        let _named = NameOnPanic(target, file);
        check(&data);
    }
    println!(
        "{target}: {} inputs replayed, all invariants held",
        files.len()
    );
}

/// Names the input whose check panicked (the panic message says which invariant failed).
struct NameOnPanic<'a>(&'a str, &'a std::path::Path);

impl Drop for NameOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}: invariant failed on {}", self.0, self.1.display());
        }
    }
}
