//! A cheap, deterministic guard for the request path's cost: the instructions a worker executes
//! per hello-world request, counted by valgrind's callgrind (the same on a busy machine as on an
//! idle one, unlike time). A benchmark is not a test; this only catches a large regression.
//!
//! The worker runs under callgrind through a copy of the test venv whose `bin/python` is a
//! wrapper; collection is switched on after a warm-up and dumped after the measured requests,
//! all on one kept-alive connection.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Conn, test_venv};

/// Measured on 2026-12-03 (release wheel, CPython 3.11): 35 061 instructions per request
/// (49 779 before the app ran inline and the environ reused its strings). The limit leaves room
/// for other interpreters and builds; a request path that goes back to crossing threads or to
/// converting every string stays under it, so this catches only gross regressions.
const LIMIT: u64 = 70_000;
const WARMUP: usize = 200;
const MEASURED: u64 = 1000;

fn wrapper_venv(dir: &Path) -> std::path::PathBuf {
    let venv = test_venv();
    let fake = dir.join("venv");
    std::fs::create_dir_all(fake.join("bin")).unwrap();
    std::os::unix::fs::symlink(venv.join("lib"), fake.join("lib")).unwrap();
    std::fs::copy(venv.join("pyvenv.cfg"), fake.join("pyvenv.cfg")).unwrap();
    let real = std::fs::canonicalize(venv.join("bin/python")).unwrap();
    let python3 = fake.join("bin/python3");
    std::os::unix::fs::symlink(&real, &python3).unwrap();
    let wrapper = fake.join("bin/python");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file={}/cg.%p {} \"$@\"\n",
            dir.display(),
            python3.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    fake
}

fn callgrind_control(args: &[&str]) {
    let out = Command::new("callgrind_control")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "callgrind_control {args:?}: {out:?}");
}

fn get(c: &mut Conn) {
    c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: guard\r\nAccept: */*\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.text(), "Hello, World!\n");
}

#[test]
fn a_hello_world_request_costs_fewer_instructions_than_the_limit() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        panic!("valgrind is not installed (scripts/test installs it)");
    }
    let dir = std::env::temp_dir().join(format!("segue-instructions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fake = wrapper_venv(&dir);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let s = support::server_without_app()
        .args(&[
            "hello",
            "--chdir",
            examples.to_str().unwrap(),
            "--workers",
            "1",
            "--boot-timeout",
            "120",
            "--virtualenv",
            fake.to_str().unwrap(),
        ])
        .start();
    let mut c = Conn::open(s.addr());
    c.set_read_timeout(Duration::from_secs(60));
    for _ in 0..WARMUP {
        get(&mut c);
    }
    let worker = s.worker_pids()[0].to_string();
    callgrind_control(&["-i", "on", &worker]);
    for _ in 0..MEASURED {
        get(&mut c);
    }
    callgrind_control(&["-d", &worker]);
    // The dump is written by the worker's next scheduling of valgrind's own thread.
    let deadline = Instant::now() + Duration::from_secs(60);
    let total = loop {
        let dumped = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("cg.{worker}."))
            })
            .find_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                text.lines()
                    .find_map(|l| l.strip_prefix("summary: ").or(l.strip_prefix("totals: ")))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            });
        if let Some(n) = dumped {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "no callgrind dump from worker {worker}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let per_request = total / MEASURED;
    eprintln!("instructions per hello-world request: {per_request} (limit {LIMIT})");
    assert!(
        per_request > 1000,
        "implausibly few instructions: {per_request}"
    );
    assert!(
        per_request < LIMIT,
        "a hello-world request took {per_request} instructions (limit {LIMIT}): profile with \
         scripts/bench's notes in docs/benchmarks.md"
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
