//! segue as pip installs it: the master is a plain executable, and each worker is the app's own
//! interpreter with segue's worker module loaded into it, whichever CPython build made the
//! environment.

mod support;

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{get, segue_bin, server, server_in, test_venv, workers_in};

/// The venv of a second CPython build (Debian's, beside pyenv's) that `scripts/test` makes.
fn other_venv() -> PathBuf {
    let venv = std::env::var_os("SEGUE_OTHER_VENV").map(PathBuf::from);
    venv.unwrap_or_else(|| {
        panic!("SEGUE_OTHER_VENV is not set: run scripts/test, which makes a venv from /usr/bin/python3 with the same wheel")
    })
}

/// The Debian trixie chroot (its CPython 3.13, a venv `/venv` with Flask and the wheel) that
/// `scripts/test` builds with `scripts/trixie-chroot`, or None where scripts/test was told or
/// found it could not build one (`SEGUE_NO_CHROOT` says why). Once scripts/test set
/// `SEGUE_CHROOT` the chroot is required: a failed build fails the test, it does not skip it.
fn trixie_chroot() -> Option<PathBuf> {
    if let Some(root) = std::env::var_os("SEGUE_CHROOT").map(PathBuf::from) {
        assert!(
            root.join(".debootstrap-complete").exists() && root.join("venv/bin/segue").exists(),
            "no complete chroot with segue at {} (scripts/test could not build it: see \
             target/trixie-chroot.log, or run scripts/trixie-chroot build tests/requirements.txt)",
            root.display()
        );
        return Some(root);
    }
    match std::env::var("SEGUE_NO_CHROOT") {
        Ok(why) => {
            eprintln!("no trixie chroot, not tested: {why}");
            None
        }
        Err(_) => panic!(
            "SEGUE_CHROOT is not set: run scripts/test, which builds the chroot with \
             scripts/trixie-chroot (or set SEGUE_NO_CHROOT=reason to leave it out)"
        ),
    }
}

fn libraries(file: &Path) -> String {
    let out = Command::new("ldd").arg(file).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn worker_module(venv: &Path) -> PathBuf {
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", "import segue._worker as w; print(w.__file__)"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[test]
fn neither_the_master_nor_the_worker_module_links_libpython() {
    let master = libraries(Path::new(segue_bin()));
    assert!(
        !master.is_empty() && !master.contains("libpython"),
        "{master}"
    );
    // The module takes the interpreter's symbols from whatever loads it, which is why one build
    // serves shared and static CPython builds alike.
    let module = worker_module(&test_venv());
    assert!(
        module.to_str().unwrap().ends_with(".abi3.so"),
        "{}",
        module.display()
    );
    let linked = libraries(&module);
    assert!(!linked.contains("libpython"), "{linked}");
}

#[test]
fn a_venv_of_another_cpython_build_serves_flask_with_its_own_interpreter() {
    let venv = other_venv();
    let python = venv.join("bin/python");
    let s = server("flask_app:application")
        .args(&["--workers", "2", "--virtualenv", venv.to_str().unwrap()])
        .start();
    assert_eq!(get(s.addr(), "/").text(), "flask says hi");
    drop(s);
    let s = server("cases:application")
        .args(&["--virtualenv", venv.to_str().unwrap()])
        .start();
    let sys = get(s.addr(), "/sys").json();
    let own = Command::new(&python)
        .args(["-c", "import sys; print(sys.version)"])
        .output()
        .unwrap();
    assert_eq!(
        sys["version"].as_str().unwrap(),
        String::from_utf8_lossy(&own.stdout).trim_end()
    );
    assert_eq!(sys["executable"], python.display().to_string());
    assert_ne!(
        sys["version"],
        get_version(&test_venv()),
        "the second venv is the same CPython build: the test proves nothing"
    );
}

#[test]
fn a_second_cpython_minor_version_serves_flask_from_the_same_wheel() {
    let Some(root) = trixie_chroot() else { return };
    // The apps are copied in: inside the chroot only its own files exist (and the host's /tmp,
    // which `run` binds so the harness's control socket is one file on both sides).
    let apps = root.join("srv/segue-test");
    std::fs::create_dir_all(&apps).unwrap();
    for app in ["flask_app.py", "cases.py"] {
        std::fs::copy(support::apps_dir().join(app), apps.join(app)).unwrap();
    }
    let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/trixie-chroot");
    let start = |app: &str, args: &[&str]| {
        server_in(Path::new("/srv/segue-test"), app)
            .args(args)
            .env("SEGUE_CHROOT", root.to_str().unwrap())
            .inside(&[run.to_str().unwrap(), "run"], "/venv/bin/segue")
            .start()
    };
    let s = start("flask_app:application", &["--workers", "2"]);
    assert_eq!(get(s.addr(), "/").text(), "flask says hi");
    drop(s);
    // No --virtualenv: the master finds the python beside its own bin/segue, as installed.
    let s = start("cases:application", &[]);
    let sys = get(s.addr(), "/sys").json();
    let version = sys["version"].as_str().unwrap();
    assert!(version.starts_with("3.13."), "{version}");
    assert_eq!(sys["executable"], "/venv/bin/python");
}

#[test]
fn one_wheel_serves_every_cpython_on_the_machine_from_3_9_on() {
    let venvs = std::env::var("SEGUE_MORE_VENVS").unwrap_or_else(|_| {
        panic!("SEGUE_MORE_VENVS is not set: run scripts/test, which makes a venv with the same wheel for every other CPython 3.9+ that pyenv holds")
    });
    if venvs.is_empty() {
        eprintln!(
            "no CPython besides the test venv's and Debian's on this machine: nothing to check"
        );
    }
    for venv in venvs
        .split(':')
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
    {
        let s = server("cases:application")
            .args(&["--workers", "2", "--virtualenv", venv.to_str().unwrap()])
            .start();
        let sys = get(s.addr(), "/sys").json();
        assert_eq!(sys["version"], get_version(&venv), "{}", venv.display());
        // start_response's str conversions, which the stable ABI of each version must carry.
        let raw = support::exchange(
            s.addr(),
            b"GET /bad-header?kind=e-acute HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(
            raw.windows(12)
                .any(|w| w.eq_ignore_ascii_case(b"x-test: caf\xe9")),
            "{}: {}",
            venv.display(),
            String::from_utf8_lossy(&raw)
        );
        let bad = get(s.addr(), "/bad-header?kind=latin");
        assert_eq!(bad.status, 500, "{}", venv.display());
        s.wait_log(&["is not latin-1"]);
    }
}

fn get_version(venv: &Path) -> String {
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", "import sys; print(sys.version)"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn a_venv_without_segue_is_named_with_the_fix_and_a_reload_into_it_rolls_back() {
    // ... and at first start it ends the master with the same words (see the end).
    let dir = std::env::temp_dir().join(format!("segue-nosegue-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bare = dir.join("bare");
    let made = Command::new(test_venv().join("bin/python"))
        .args(["-m", "venv", "--without-pip"])
        .arg(&bare)
        .status()
        .unwrap();
    assert!(made.success());
    // `current` points at the test venv (which has segue), then at one without.
    let current = dir.join("current");
    std::os::unix::fs::symlink(test_venv(), &current).unwrap();
    let s = server("cases:application")
        .args(&["--virtualenv", current.to_str().unwrap()])
        .start();
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink(&bare, &current).unwrap();
    let out = Command::new(segue_bin())
        .args(["reload", "--wait", "--json", "--control"])
        .arg(&s.control)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("cannot import segue's worker module")
            && reason.contains(&format!("{}/bin/python", bare.display()))
            && reason.contains("pip install segue==0.1.0"),
        "{r}"
    );
    // The old generation keeps serving.
    assert_eq!(get(s.addr(), "/").status, 200);
    assert_eq!(workers_in(&s.status(), "ready").len(), 1);

    let mut first = server("cases:application")
        .args(&["--virtualenv", bare.to_str().unwrap()])
        .exits()
        .start();
    let status = first.wait_exit(std::time::Duration::from_secs(15));
    let log = first.log.all();
    assert_eq!(status.and_then(|st| st.code()), Some(3), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("cannot import segue's worker module")
                && l.contains("pip install segue==0.1.0")
                && l.contains("segue exits: the app did not boot at first start")),
        "{log}"
    );
}

#[test]
fn a_worker_module_of_another_version_names_both() {
    use segue::protocol::{Boot, Channel, PROTOCOL_VERSION, ToMaster, ToWorker, write_boot};
    let (master, worker) = std::os::unix::net::UnixStream::pair().unwrap();
    let worker_fd = worker.as_raw_fd();
    let mut cmd = Command::new(test_venv().join("bin/python"));
    cmd.args(["-c", "from segue import _worker; _worker.run('9.9.9')"]);
    // SAFETY: dup2 is async-signal-safe; the fd is valid in the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(worker_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(worker);
    let config = segue::config::from_args(&["cases:application"])
        .unwrap()
        .worker;
    let boot = Boot {
        protocol: PROTOCOL_VERSION,
        worker_id: 1,
        generation: 1,
        config,
        listeners: vec![],
        protocols: vec![],
        max_requests: None,
        scoreboard_cell: None,
        zygote: false,
    };
    write_boot(&master, &boot, &[]).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let failure = rt.block_on(async {
        let (mut from_worker, _to_worker) = Channel::<ToMaster, ToWorker>::from_std(master)
            .unwrap()
            .split();
        loop {
            match from_worker.recv().await.unwrap() {
                ToMaster::BootFailed(f) => break f,
                _ => continue,
            }
        }
    });
    assert!(
        failure.error.contains("9.9.9") && failure.error.contains("segue 0.1.0"),
        "{}",
        failure.error
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "the boot-failure exit code");
}

#[test]
fn the_python_package_and_the_crate_have_one_version() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pyproject = std::fs::read_to_string(root.join("pyproject.toml")).unwrap();
    let init = std::fs::read_to_string(root.join("python/segue/__init__.py")).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        pyproject.contains(&format!("version = \"{version}\"")),
        "pyproject.toml's version is not {version}"
    );
    assert!(init.contains(&format!("__version__ = \"{version}\"")));
}
