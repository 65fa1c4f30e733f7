//! These run a real CPython: `$SEGUE_TEST_VENV/bin/python`, else the test venv under
//! `target/`, else `python3` on PATH.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;
use crate::config::entry::Verdict;
use crate::config::gunicorn::translate;

const TIMEOUT: Duration = Duration::from_secs(20);

fn python() -> PathBuf {
    if let Some(venv) = std::env::var_os("SEGUE_TEST_VENV") {
        return Path::new(&venv).join("bin/python");
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gunicorn")
        .join(name)
}

/// A directory of its own per test, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("segue-gconf-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read(path: &Path) -> Conf {
    read_conf(&python(), path.to_str().unwrap(), TIMEOUT).unwrap()
}

fn values<'a>(conf: &'a Conf, key: &str) -> Vec<&'a str> {
    conf.entries
        .iter()
        .filter(|e| e.key == key)
        .filter_map(|e| e.value.as_deref())
        .collect()
}

fn line(conf: &Conf, key: &str) -> usize {
    match conf
        .entries
        .iter()
        .find(|e| e.key == key)
        .map(|e| &e.origin)
    {
        Some(Origin::File { line, .. }) => *line,
        other => panic!("{key}: {other:?}"),
    }
}

fn keys(conf: &Conf) -> Vec<&str> {
    let mut keys: Vec<_> = conf.entries.iter().map(|e| e.key.as_str()).collect();
    keys.dedup();
    keys
}

/// The names of `conf` that translate to Unknown.
fn unknown(conf: &Conf) -> Vec<&str> {
    conf.entries
        .iter()
        .filter(|e| {
            matches!(
                translate(&e.key, e.value.as_deref()),
                Verdict::Unknown { .. }
            )
        })
        .map(|e| e.key.as_str())
        .collect()
}

const REALISTIC: &str = r#"import multiprocessing
import os
from os import environ
from os.path import join

BASE_DIR = os.path.dirname(__file__)
_private = "hidden"

bind = ["127.0.0.1:8000", "unix:/run/app.sock"]
workers = multiprocessing.cpu_count() * 2 + 1
threads = 4
timeout = 120
accesslog = "-"
raw_env = ("DJANGO_SETTINGS_MODULE=app.settings", "MODE=prod")
pidfile = None
preload_app = True
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
grateful_timeout = 30
if os.environ.get("NEVER_SET_IN_TESTS"):
    loglevel = "debug"
else:
    loglevel = "warning"

def helper():
    return 1

def post_fork(server, worker):
    server.log.info("spawned %s", worker.pid)

class Unrelated:
    pass
"#;

#[test]
fn realistic_config_reports_settings_typos_and_hooks_with_lines() {
    let dir = Scratch::new("realistic");
    let path = dir.write("gunicorn.conf.py", REALISTIC);
    let conf = read(&path);
    assert_eq!(conf.file, ConfSource::File(path.clone()));
    assert_eq!(
        keys(&conf),
        [
            "bind",
            "workers",
            "threads",
            "timeout",
            "accesslog",
            "raw_env",
            "preload_app",
            "secure_scheme_headers",
            "grateful_timeout",
            "loglevel",
            "post_fork"
        ]
    );
    assert_eq!(
        values(&conf, "bind"),
        ["127.0.0.1:8000", "unix:/run/app.sock"]
    );
    let workers: usize = values(&conf, "workers")[0].parse().unwrap();
    assert!(workers >= 3 && workers % 2 == 1, "{workers}");
    assert_eq!(
        values(&conf, "raw_env"),
        ["DJANGO_SETTINGS_MODULE=app.settings", "MODE=prod"]
    );
    assert_eq!(values(&conf, "preload_app"), ["true"]);
    assert_eq!(
        values(&conf, "secure_scheme_headers"),
        [r#"{"X-FORWARDED-PROTO": "https"}"#]
    );
    // A worker hook's value is the file the workers run it from.
    let file = std::path::absolute(&path).unwrap();
    assert_eq!(values(&conf, "post_fork"), [file.display().to_string()]);
    assert_eq!(values(&conf, "loglevel"), ["warning"]);
    assert_eq!(line(&conf, "bind"), 9);
    assert_eq!(line(&conf, "workers"), 10);
    assert_eq!(line(&conf, "grateful_timeout"), 18);
    assert_eq!(line(&conf, "loglevel"), 22);
    assert_eq!(line(&conf, "post_fork"), 27);
    assert_eq!(unknown(&conf), ["grateful_timeout"]);
    assert_eq!(
        translate("grateful_timeout", Some("30")),
        Verdict::Unknown {
            nearest: Some("graceful_timeout".into())
        }
    );
}

#[test]
fn a_file_that_raises_names_the_exception_and_its_line() {
    let dir = Scratch::new("raises");
    let path = dir.write(
        "gunicorn.conf.py",
        "workers = 2\n\nimport missing_module_xyz\n",
    );
    match read_conf(&python(), path.to_str().unwrap(), TIMEOUT) {
        Err(ConfError::Raised {
            file,
            line,
            exception,
            traceback,
        }) => {
            assert_eq!(file, path);
            assert_eq!(line, 3);
            assert!(
                exception.starts_with("ModuleNotFoundError: "),
                "{exception}"
            );
            assert!(exception.contains("missing_module_xyz"), "{exception}");
            assert!(traceback.contains("Traceback"), "{traceback}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_syntax_error_points_at_its_line() {
    let dir = Scratch::new("syntax");
    let path = dir.write("gunicorn.conf.py", "workers = 2\nbind = [\n");
    match read_conf(&python(), path.to_str().unwrap(), TIMEOUT) {
        Err(ConfError::Raised {
            line, exception, ..
        }) => {
            assert!(exception.starts_with("SyntaxError"), "{exception}");
            assert!(line == 2 || line == 3, "{line}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_file_is_named() {
    let err = read_conf(&python(), "/nonexistent/gunicorn.conf.py", TIMEOUT).unwrap_err();
    assert!(matches!(err, ConfError::NotFound { .. }));
    assert!(
        err.to_string()
            .contains("/nonexistent/gunicorn.conf.py does not exist")
    );
}

fn gone(pid: i32) -> bool {
    // A killed orphan may linger as a zombie until init reaps it; that is gone too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: i32) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_file_that_loops_is_stopped_at_the_deadline_with_what_it_started() {
    let dir = Scratch::new("loops");
    let pids = dir.0.join("pids");
    let path = dir.write(
        "gunicorn.conf.py",
        &format!(
            "import os, subprocess\n\
             child = subprocess.Popen(['sleep', '60'])\n\
             open({pids:?}, 'w').write('%d %d' % (os.getpid(), child.pid))\n\
             while True:\n    pass\n"
        ),
    );
    let started = Instant::now();
    let err = read_conf(
        &python(),
        path.to_str().unwrap(),
        Duration::from_millis(1500),
    );
    let took = started.elapsed();
    match err {
        Err(ConfError::Timeout { file, timeout }) => {
            assert_eq!(file, path);
            assert_eq!(timeout, Duration::from_millis(1500));
        }
        other => panic!("{other:?}"),
    }
    assert!(took < Duration::from_secs(4), "{took:?}");
    let text = std::fs::read_to_string(&pids).unwrap();
    for pid in text.split_whitespace() {
        let pid: i32 = pid.parse().unwrap();
        assert!(wait_gone(pid), "process {pid} survived");
    }
}

#[test]
fn a_background_process_left_running_neither_delays_nor_survives() {
    let dir = Scratch::new("orphan");
    let pids = dir.0.join("pids");
    let path = dir.write(
        "gunicorn.conf.py",
        &format!(
            "import subprocess\n\
             child = subprocess.Popen(['sleep', '60'])\n\
             open({pids:?}, 'w').write(str(child.pid))\n\
             workers = 2\n"
        ),
    );
    let started = Instant::now();
    let conf = read(&path);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(values(&conf, "workers"), ["2"]);
    let pid: i32 = std::fs::read_to_string(&pids).unwrap().parse().unwrap();
    assert!(wait_gone(pid), "process {pid} survived");
}

#[test]
fn what_the_file_prints_cannot_be_taken_for_the_report() {
    let dir = Scratch::new("prints");
    let path = dir.write(
        "gunicorn.conf.py",
        "import os, sys\n\
         print('{\"ok\": false, \"type\": \"Fake\"}')\n\
         sys.stdout.write(']]] not json')\n\
         sys.stdout.flush()\n\
         os.write(1, b'raw bytes on fd 1')\n\
         print('x' * (4 << 20))\n\
         workers = 3\n",
    );
    let conf = read(&path);
    assert_eq!(values(&conf, "workers"), ["3"]);
}

#[test]
fn python_module_configs_are_imported_from_the_working_directory() {
    let dir = Scratch::new("module");
    std::fs::create_dir(dir.0.join("deploy")).unwrap();
    dir.write("deploy/__init__.py", "");
    let module = dir.write(
        "deploy/gconf.py",
        "import deploy\nworkers = 5\nbind = ':9000'\n",
    );
    let conf = read_conf_in(&python(), "python:deploy.gconf", TIMEOUT, &dir.0).unwrap();
    assert_eq!(
        conf.file,
        ConfSource::Module {
            name: "deploy.gconf".into(),
            path: Some(module.clone())
        }
    );
    assert_eq!(values(&conf, "workers"), ["5"]);
    assert_eq!(
        conf.entries[0].origin,
        Origin::File {
            path: module,
            line: 2
        }
    );
    match read_conf_in(&python(), "python:no_such_conf_module", TIMEOUT, &dir.0) {
        Err(ConfError::Raised { exception, .. }) => {
            assert!(exception.contains("ModuleNotFoundError"), "{exception}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_config_may_import_the_projects_modules() {
    let dir = Scratch::new("project");
    dir.write("project_settings.py", "PORT = 8123\n");
    dir.write(
        "gunicorn.conf.py",
        "from project_settings import PORT\nbind = '127.0.0.1:%d' % PORT\n",
    );
    let conf = read_conf_in(&python(), "gunicorn.conf.py", TIMEOUT, &dir.0).unwrap();
    assert_eq!(values(&conf, "bind"), ["127.0.0.1:8123"]);
}

#[test]
fn a_huge_report_is_refused() {
    let dir = Scratch::new("huge");
    let path = dir.write(
        "gunicorn.conf.py",
        "raw_env = ['K%d=%s' % (i, 'v' * 100) for i in range(20000)]\n\
         helper_blob = 'x' * (8 << 20)\n",
    );
    match read_conf(&python(), path.to_str().unwrap(), TIMEOUT) {
        Err(e @ ConfError::Report { .. }) => assert!(e.to_string().contains("larger than")),
        other => panic!("{other:?}"),
    }
    // A big helper that is no setting is cut short instead: only its name matters.
    let path = dir.write("small.py", "helper_blob = 'x' * (8 << 20)\nworkers = 2\n");
    let conf = read(&path);
    assert!(values(&conf, "helper_blob")[0].len() < 300);
}

#[test]
fn lists_of_single_valued_settings_are_joined() {
    let dir = Scratch::new("lists");
    let path = dir.write(
        "gunicorn.conf.py",
        "forwarded_allow_ips = ['10.0.0.1', '10.0.0.2']\npythonpath = ('a', 'b')\n",
    );
    let conf = read(&path);
    assert_eq!(values(&conf, "forwarded_allow_ips"), ["10.0.0.1,10.0.0.2"]);
    assert_eq!(values(&conf, "pythonpath"), ["a,b"]);
}

#[test]
fn default_conf_is_gunicorn_conf_py_in_the_directory() {
    let dir = Scratch::new("default");
    assert_eq!(default_conf(&dir.0), None);
    let path = dir.write("gunicorn.conf.py", "workers = 1\n");
    assert_eq!(default_conf(&dir.0), Some(path));
}

#[test]
fn gunicorns_own_example_config_gets_a_verdict_for_every_name() {
    let conf = read(&fixture("gunicorn_example_config.py"));
    assert!(unknown(&conf).is_empty(), "{:?}", unknown(&conf));
    assert_eq!(
        values(&conf, "raw_env"),
        ["DJANGO_SECRET_KEY=something", "SPAM=eggs"]
    );
    // The arbiter's hooks are refused; the workers' are run (their value names the file).
    for hook in ["pre_fork", "pre_exec"] {
        assert!(
            matches!(translate(hook, Some("f")), Verdict::Unsupported(_)),
            "{hook}"
        );
        assert!(!values(&conf, hook).is_empty(), "{hook}");
    }
    for hook in ["post_fork", "worker_int", "when_ready"] {
        let v = values(&conf, hook);
        assert!(
            matches!(translate(hook, Some(v[0])), Verdict::Applied(_)),
            "{hook}: {v:?}"
        );
    }
    assert!(matches!(
        translate("worker_abort", Some("f")),
        Verdict::Implied(_)
    ));
    // pidfile, user, group, tmp_upload_dir and proc_name are None: gunicorn's defaults.
    assert!(values(&conf, "pidfile").is_empty());
}

#[test]
fn a_docker_image_config_leaves_only_its_helpers_unknown() {
    let conf = read(&fixture("uvicorn_gunicorn_docker.py"));
    assert_eq!(
        unknown(&conf),
        [
            "workers_per_core_str",
            "host",
            "port",
            "use_loglevel",
            "use_bind",
            "cores",
            "workers_per_core",
            "default_web_concurrency",
            "web_concurrency",
            "worker_class_str",
            "graceful_timeout_str",
            "timeout_str",
            "keepalive_str",
            "log_data"
        ]
    );
    assert!(matches!(
        translate("worker_class", values(&conf, "worker_class").first().copied()),
        Verdict::Unsupported(r) if r.contains("WSGI")
    ));
}

#[test]
fn a_config_without_the_py_extension_is_still_python() {
    let conf = read(&fixture("netbox_gunicorn.conf"));
    assert!(unknown(&conf).is_empty(), "{:?}", unknown(&conf));
    assert_eq!(values(&conf, "threads"), ["3"]);
    assert_eq!(line(&conf, "bind"), 5);
}
