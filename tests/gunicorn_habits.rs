//! gunicorn users' habits: short flags, `-c gunicorn.conf.py` (and the default file),
//! `GUNICORN_CMD_ARGS`, `WEB_CONCURRENCY`, worker classes, `--timeout`, hooks reported as
//! unsupported, typos gunicorn would silently ignore, and a conf file that cannot run.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::oneshot::{run, scratch};
use support::{apps_dir, bare, get, server};

const SECS: Duration = Duration::from_secs(30);

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn conf(extra: &str) -> String {
    format!(
        "import multiprocessing\n\
         chdir = {apps:?}\n\
         wsgi_app = 'cases:application'\n\
         workers = 2\n\
         threads = 2\n\
         raw_env = ['FROM_CONF=yes', 'SPAM=eggs']\n\
         accesslog = '-'\n\
         graceful_timeout = 5\n\
         cores = multiprocessing.cpu_count()\n\
         {extra}",
        apps = apps_dir().display().to_string()
    )
}

#[test]
fn short_flags_work_as_in_gunicorn() {
    let s = server("cases:application")
        .args(&["-w", "2", "--threads", "2", "-e", "SHORT=1"])
        .start();
    let st = s.status();
    assert_eq!(st["workers"].as_array().unwrap().len(), 2, "{st}");
    assert_eq!(get(s.addr(), "/osenv?keys=SHORT").json()["SHORT"], "1");
    let doc = run(
        &apps_dir(),
        &[
            "-w",
            "3",
            "-b",
            "127.0.0.1:9",
            "--bind",
            "unix:/tmp/x.sock",
            "-t",
            "45",
            "-k",
            "sync",
            "-p",
            "/tmp/p.pid",
            "-n",
            "shop",
            "cases:application",
            "--print-config",
        ],
        &[],
        SECS,
    )
    .json();
    let s = &doc["settings"];
    assert_eq!(s["workers"]["value"], 3);
    assert_eq!(
        s["http"]["value"],
        serde_json::json!(["127.0.0.1:9", "unix:/tmp/x.sock"])
    );
    assert_eq!(s["pidfile"]["value"], "/tmp/p.pid");
    assert_eq!(s["name"]["value"], "shop");
    // With the sync class, a request running past --timeout is killed, as in gunicorn.
    let e = &doc["effective"];
    assert_eq!(e["worker"]["harakiri"]["secs"], 45, "{e:#}");
    assert_eq!(e["heartbeat_timeout"]["secs"], 45, "{e:#}");
    let doc = run(
        &apps_dir(),
        &[
            "-t",
            "45",
            "-k",
            "gthread",
            "cases:application",
            "--print-config",
        ],
        &[],
        SECS,
    )
    .json();
    assert_eq!(
        doc["effective"]["worker"]["harakiri"],
        serde_json::Value::Null,
        "gthread: liveness only"
    );
}

#[test]
fn a_gunicorn_conf_file_runs_and_its_master_hooks_are_listed_as_unsupported() {
    let dir = scratch("gunicorn-conf");
    let file = write(
        &dir,
        "gunicorn.conf.py",
        &conf("def pre_fork(server, worker):\n    pass\n"),
    );
    let out = run(&dir, &["-c", &file], &[], SECS);
    assert_eq!(
        out.code,
        Some(2),
        "a master hook segue cannot run refuses: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("pre_fork: not supported"),
        "{}",
        out.stderr
    );

    let s = bare()
        .cwd(&dir)
        .args(&["-c", &file, "--ignore-unsupported"])
        .start();
    assert_eq!(s.status()["workers"].as_array().unwrap().len(), 2);
    let env = get(s.addr(), "/osenv?keys=FROM_CONF,SPAM").json();
    assert_eq!(env["FROM_CONF"], "yes");
    assert_eq!(env["SPAM"], "eggs");
    s.wait_log(&["pre_fork", "not supported, ignored"]);
}

#[test]
fn the_default_gunicorn_conf_py_is_read_from_the_working_directory() {
    let dir = scratch("gunicorn-default");
    write(&dir, "gunicorn.conf.py", &conf(""));
    let doc = run(&dir, &["--print-config"], &[], SECS).json();
    assert_eq!(doc["settings"]["workers"]["value"], 2);
    assert_eq!(
        doc["settings"]["workers"]["source"],
        format!("{}:4", dir.join("gunicorn.conf.py").display())
    );
    assert_eq!(doc["settings"]["app"]["as"], "wsgi_app");
    // `cores` is a helper variable: listed, not fatal.
    let unknown = doc["unknown"].as_array().unwrap();
    assert!(
        unknown
            .iter()
            .any(|u| u["option"] == "cores" && u["fatal"] == false),
        "{doc:#}"
    );
    assert_eq!(doc["problems"], serde_json::json!([]));
}

#[test]
fn settings_gunicorn_would_silently_ignore_are_typos_here() {
    let dir = scratch("gunicorn-typo");
    let file = write(
        &dir,
        "conf.py",
        &conf("grateful_timeout = 30\nkeep_alive = 5\n"),
    );
    let out = run(&dir, &["-c", &file], &[], SECS);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("grateful_timeout: not an option (did you mean 'graceful_timeout'?)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("keep_alive: not an option (did you mean 'keepalive'?)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_conf_file_that_cannot_run_names_the_exception_and_line() {
    let dir = scratch("gunicorn-raises");
    let file = write(&dir, "conf.py", "workers = 2\nimport no_such_module_here\n");
    let out = run(&dir, &["-c", &file, "cases:application"], &[], SECS);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("ModuleNotFoundError"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("{file}:2")) || out.stderr.contains("line 2"),
        "{}",
        out.stderr
    );
    // Even --print-config cannot show a file it could not read.
    let out = run(&dir, &["-c", &file, "--print-config"], &[], SECS);
    assert_ne!(out.code, Some(0));

    let file = write(&dir, "hang.py", "while True:\n    pass\n");
    let started = Instant::now();
    let out = run(
        &dir,
        &["-c", &file, "cases:application"],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("took longer than"), "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn environment_variables_sit_between_the_command_line_and_the_file() {
    let dir = scratch("gunicorn-env");
    let file = write(&dir, "conf.py", &conf("timeout = 50\n"));
    let doc = run(
        &dir,
        &["-c", &file, "--threads", "7", "--print-config"],
        &[
            (
                "GUNICORN_CMD_ARGS",
                "--workers 5 --threads 6 --bind 127.0.0.1:7",
            ),
            ("WEB_CONCURRENCY", "9"),
        ],
        SECS,
    )
    .json();
    let s = &doc["settings"];
    assert_eq!(s["threads"]["value"], 7, "command line first");
    assert_eq!(s["workers"]["value"], 5, "GUNICORN_CMD_ARGS over the file");
    assert_eq!(s["workers"]["source"], "environment GUNICORN_CMD_ARGS");
    assert_eq!(s["http"]["value"], serde_json::json!(["127.0.0.1:7"]));
    assert_eq!(s["timeout"]["value"], 50.0, "the file over defaults");
    // WEB_CONCURRENCY is gunicorn's default for workers: a file setting beats it.
    let doc = run(
        &dir,
        &["-c", &file, "--print-config"],
        &[("WEB_CONCURRENCY", "9")],
        SECS,
    )
    .json();
    assert_eq!(doc["settings"]["workers"]["value"], 2);
    let doc = run(
        &apps_dir(),
        &["cases:application", "--print-config"],
        &[("WEB_CONCURRENCY", "9")],
        SECS,
    )
    .json();
    assert_eq!(doc["settings"]["workers"]["value"], 9);
}

#[test]
fn worker_classes_segue_cannot_be_are_refused_with_the_reason() {
    let out = run(
        &apps_dir(),
        &["-k", "gevent", "cases:application"],
        &[],
        SECS,
    );
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("-k: not supported"), "{}", out.stderr);
    let out = run(
        &apps_dir(),
        &["-k", "uvicorn.workers.UvicornWorker", "cases:application"],
        &[],
        SECS,
    );
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("ASGI"), "{}", out.stderr);
    let s = server("cases:application")
        .args(&["-k", "gthread", "--threads", "2"])
        .start();
    assert_eq!(get(s.addr(), "/").text(), "hello\n");
}

#[test]
fn the_real_gunicorn_example_config_is_fully_accounted_for() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gunicorn/gunicorn_example_config.py");
    let doc = run(
        &apps_dir(),
        &[
            "-c",
            file.to_str().unwrap(),
            "cases:application",
            "--print-config",
        ],
        &[],
        SECS,
    )
    .json();
    let fatal: Vec<_> = doc["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["fatal"] == true)
        .collect();
    assert!(fatal.is_empty(), "{fatal:?}");
    let unsupported: Vec<&str> = doc["unsupported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["option"].as_str().unwrap())
        .collect();
    // The arbiter's hooks are refused; the workers' run, from the file that defines them.
    assert!(unsupported.contains(&"pre_fork"), "{unsupported:?}");
    assert!(!unsupported.contains(&"when_ready"), "{unsupported:?}");
    assert!(!unsupported.contains(&"post_fork"), "{unsupported:?}");
    assert!(
        doc["settings"]["gunicorn-hooks"]["value"]
            .as_str()
            .is_some_and(|f| f.ends_with("gunicorn_example_config.py")),
        "{}",
        doc["settings"]["gunicorn-hooks"]
    );
    assert_eq!(doc["settings"]["backlog"]["value"], 2048);
    assert_eq!(
        doc["settings"]["env"]["value"],
        serde_json::json!(["DJANGO_SECRET_KEY=something", "SPAM=eggs"])
    );
}

#[test]
fn check_config_imports_the_app_and_exits_zero_or_one() {
    let apps = apps_dir();
    let dir = apps.to_str().unwrap();
    let out = run(
        &apps,
        &["--check-config", "--chdir", dir, "cases:application"],
        &[],
        SECS,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("the app loads"), "{}", out.stdout);
    let out = run(
        &apps,
        &[
            "--check-config",
            "--chdir",
            dir,
            "broken_import:application",
        ],
        &[],
        SECS,
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("broken_import"), "{}", out.stderr);
    let out = run(
        &apps,
        &["--check-config", "--chdir", dir, "cases:create_nothing()"],
        &[],
        SECS,
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
}

#[test]
fn name_sets_the_process_names_of_the_master_and_workers() {
    let s = server("cases:application")
        .args(&["-n", "shop", "-w", "2"])
        .start();
    let comm = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(comm(s.pid()), "shop");
    let mut names: Vec<String> = s.worker_pids().into_iter().map(comm).collect();
    names.sort();
    assert_eq!(names.len(), 2);
    assert!(names.iter().all(|n| n.starts_with("shop w")), "{names:?}");
}

/// gunicorn's `--bind fd://N`: a socket the parent bound, inherited as fd N.
#[test]
fn bind_fd_adopts_a_socket_the_parent_bound() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let raw = listener.as_raw_fd();
    let dir = scratch("bind-fd");
    let control = dir.join("control.sock");
    let mut cmd = std::process::Command::new(support::segue_bin());
    cmd.args(["--bind", "fd://7", "--control"])
        .arg(&control)
        .args(["--chdir", apps_dir().to_str().unwrap(), "cases:application"])
        .env_remove("VIRTUAL_ENV")
        .stderr(std::process::Stdio::null())
        .process_group(0);
    // SAFETY: dup2 in the child before exec, on an fd the test owns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(listener);
    let ok = support::eventually(SECS, || {
        support::control_status(&control).is_ok_and(|st| st["ready"] == true)
    });
    let body = if ok {
        Some(get(addr, "/").text())
    } else {
        None
    };
    // SAFETY: kill(2) on the process group the test started.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
    let _ = child.wait();
    assert_eq!(
        body.as_deref(),
        Some("hello\n"),
        "segue did not serve on the inherited socket"
    );

    let out = run(
        &apps_dir(),
        &["--bind", "fd://9", "cases:application"],
        &[],
        SECS,
    );
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("fd 9") || out.stderr.contains("9"),
        "{}",
        out.stderr
    );
}

#[test]
fn gunicorn_and_uwsgi_options_segue_lacks_say_what_to_do() {
    // clap used to suggest --reload-surge for options it did not know (then --preload, which
    // segue has since gained); each gets the dialect's own advice instead.
    let out = run(
        &apps_dir(),
        &["--daemon", "--py-autoreload=3", "cases:application"],
        &[],
        SECS,
    );
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("--daemon: not supported: segue stays in the foreground"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--py-autoreload: not supported"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("reload-surge"), "{}", out.stderr);
}

#[test]
fn the_example_gunicorn_conf_serves() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gunicorn.conf.py");
    let s = bare().args(&["-c", file.to_str().unwrap()]).start();
    assert_eq!(get(s.addr(), "/").text(), "Hello, World!\n");
    assert_eq!(s.status()["workers"].as_array().unwrap().len(), 2);
}
