//! uWSGI users' configuration, as they wrote it: the seeds' `[uwsgi]` blocks verbatim, their
//! commands (`--http :PORT --wsgi-file ./main.py --processes 3 --threads 4`), placeholders,
//! typos, the refusal that lists every unsupported option at once, precedence against the
//! environment and the command line, and an edited ini taking effect on reload.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::oneshot::{run, scratch};
use support::{apps_dir, bare, get, test_venv};

const SECS: Duration = Duration::from_secs(30);

/// New Relic's article (seed 000): the three `[uwsgi]` blocks, verbatim.
const SEED_MODULE: &str = "[uwsgi]
socket = /tmp/uwsgi.sock
enable-threads = true
single-interpreter = true
chdir = /var/www/myapp
pythonpath = /var/www
env = DJANGO_SETTINGS_MODULE=myapp.settings
module = django.core.handlers.wsgi:WSGIHandler()
";
const SEED_EVAL: &str = "[uwsgi]
socket = /tmp/uwsgi.sock
enable-threads = true
single-interpreter = true
eval = import newrelic.agent, wsgi; application = newrelic.agent.wsgi_application()(wsgi.application)
";
const SEED_LAZY: &str = "[uwsgi]
socket = /tmp/uwsgi.sock
enable-threads = true
single-interpreter = true
master = true
lazy-apps = true
file = wsgi.py
";
/// The advanced-features article (seed 001): every block, in one file.
const SEED_ADVANCED: &str = "[uwsgi]
# %(app_dir) -> /path/to/app
set-placeholder = app_dir=/path/to/app

# virtualenv = /path/to/app/env와 동일
virtualenv = %(app_dir)/env
attach-daemon = /path/to/worker/script
# crontab: */5 * * * * /path/to/some/script
cron = -5 -1 -1 -1 -1 /path/to/some/script
# /static/a.jpg -> /path/to/static/a.jpg
static-map = /static=/path/to/static
static-expires-uri = /static/build/* 2592000
cheap = true
idle = 60
emperor = /etc/uwsgi-emperor/vassals
emperor = /home/ditto/uwsgi-services
";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Every key of the file appears exactly once in `--print-config`, as a setting's source, or
/// among the implied, unsupported, unknown or invalid entries.
fn accounted(doc: &serde_json::Value, file: &str, text: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for list in ["implied", "unsupported", "unknown", "invalid"] {
        for e in doc[list].as_array().unwrap() {
            seen.push(e["source"].as_str().unwrap().to_owned());
        }
    }
    for (_, s) in doc["settings"].as_object().unwrap() {
        seen.push(s["source"].as_str().unwrap().to_owned());
        for each in s["sources"].as_array().into_iter().flatten() {
            seen.push(each.as_str().unwrap().to_owned());
        }
    }
    let mut missing = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty()
            || line.starts_with(['#', ';', '['])
            || line.starts_with("set-placeholder")
        {
            continue;
        }
        let source = format!("{file}:{}", i + 1);
        if !seen.contains(&source) {
            missing.push(format!("{source} {line}"));
        }
    }
    missing
}

#[test]
fn the_seeds_blocks_verbatim_have_every_key_accounted_for() {
    let dir = scratch("seed-blocks");
    for (name, text) in [
        ("module.ini", SEED_MODULE),
        ("eval.ini", SEED_EVAL),
        ("lazy.ini", SEED_LAZY),
        ("advanced.ini", SEED_ADVANCED),
    ] {
        let file = write(&dir, name, text);
        let out = run(&dir, &["--ini", &file, "--print-config"], &[], SECS);
        assert_eq!(out.code, Some(0), "{name}: {}", out.stderr);
        let doc = out.json();
        assert_eq!(doc["unknown"], serde_json::json!([]), "{name}: {doc:#}");
        let missing = accounted(&doc, &file, text);
        assert!(
            missing.is_empty(),
            "{name}: keys not accounted for: {missing:?}\n{doc:#}"
        );
    }
    // What each means.
    let file = write(&dir, "module.ini", SEED_MODULE);
    let doc = run(&dir, &["--ini", &file, "--print-config"], &[], SECS).json();
    let s = &doc["settings"];
    assert_eq!(s["app"]["value"], "django.core.handlers.wsgi:WSGIHandler()");
    assert_eq!(s["app"]["as"], "module");
    assert_eq!(
        s["env"]["value"],
        serde_json::json!(["DJANGO_SETTINGS_MODULE=myapp.settings"])
    );
    assert_eq!(s["chdir"]["value"], "/var/www/myapp");
    let implied: Vec<&str> = doc["implied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["option"].as_str().unwrap())
        .collect();
    assert_eq!(implied, ["enable-threads", "single-interpreter"]);
    assert_eq!(
        doc["unsupported"],
        serde_json::json!([]),
        "socket is segue's uwsgi listener"
    );
    assert_eq!(
        s["socket"]["value"],
        serde_json::json!(["unix:/tmp/uwsgi.sock"])
    );

    let file = write(&dir, "advanced.ini", SEED_ADVANCED);
    let doc = run(&dir, &["--ini", &file, "--print-config"], &[], SECS).json();
    assert_eq!(
        doc["settings"]["virtualenv"]["value"], "/path/to/app/env",
        "the placeholder expands"
    );
    let unsupported: Vec<&str> = doc["unsupported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["option"].as_str().unwrap())
        .collect();
    // segue has an emperor: the seed's two directories are one repeatable setting.
    assert_eq!(
        doc["settings"]["emperor"]["value"],
        serde_json::json!(["/etc/uwsgi-emperor/vassals", "/home/ditto/uwsgi-services"])
    );
    assert!(!unsupported.contains(&"emperor"), "{unsupported:?}");
    // segue has cheap and idle mode: the seed's lines are settings.
    assert_eq!(doc["settings"]["cheap"]["value"], true);
    assert_eq!(doc["settings"]["idle"]["value"], 60.0);
    for key in ["cheap", "idle"] {
        assert!(!unsupported.contains(&key), "{key} in {unsupported:?}");
    }
    // segue runs attached daemons and cron jobs: the seed's lines are settings.
    assert_eq!(
        doc["settings"]["attach-daemon"]["value"][0],
        "/path/to/worker/script"
    );
    assert_eq!(
        doc["settings"]["cron"]["value"][0],
        "-5 -1 -1 -1 -1 /path/to/some/script"
    );
    assert!(!unsupported.contains(&"attach-daemon"), "{unsupported:?}");
    assert!(!unsupported.contains(&"cron"), "{unsupported:?}");
    // segue serves static files itself: the seed's two lines are settings now.
    assert_eq!(
        doc["settings"]["static-map"]["value"][0], "/static=/path/to/static",
        "{}",
        doc["settings"]
    );
    assert_eq!(
        doc["settings"]["static-expires-uri"]["value"][0],
        "/static/build/* 2592000"
    );
    assert!(!unsupported.contains(&"static-map"), "{unsupported:?}");
    assert!(
        !unsupported.contains(&"static-expires-uri"),
        "{unsupported:?}"
    );
}

#[test]
fn serving_a_seed_block_with_missing_paths_refuses_with_the_whole_list() {
    let dir = scratch("seed-refusal");
    let file = write(&dir, "uwsgi.ini", SEED_ADVANCED);
    let out = run(&dir, &["--ini", &file], &[], SECS);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    // With `emperor` and no app the block is an emperor's, and its settings are checked as
    // a server's would be: the seed's /path/to/static and /path/to/app/env do not exist here.
    assert!(
        out.stderr.contains("cannot start the emperor"),
        "{}",
        out.stderr
    );
    for key in ["static-map", "virtualenv"] {
        assert!(
            out.stderr.contains(&format!(": {key}: ")),
            "{key} missing from:\n{}",
            out.stderr
        );
    }

    // Ignoring what is unsupported must not quietly serve on a default address instead of
    // a listener segue cannot open (an SCGI socket).
    let file = write(
        &dir,
        "scgi.ini",
        "[uwsgi]\nscgi-socket = /tmp/scgi.sock\nmodule = cases\n",
    );
    let out = run(&dir, &["--ini", &file, "--ignore-unsupported"], &[], SECS);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("scgi-socket: segue cannot listen this way"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_typo_is_refused_with_the_option_meant() {
    let dir = scratch("ini-typo");
    let file = write(
        &dir,
        "uwsgi.ini",
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nprocesess = 4\nmodule = cases\n",
    );
    let out = run(&dir, &["--ini", &file], &[], SECS);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains(&format!(
            "{file}:3: procesess: not an option (did you mean 'processes'?)"
        )),
        "{}",
        out.stderr
    );
}

/// seed 004's commands, verbatim apart from the port: `--http :PORT --wsgi-file ./main.py
/// --processes 3 --threads 4`, in the app's directory, and two slow requests served side by
/// side by different processes.
#[test]
fn the_processes_and_threads_article_runs_as_written() {
    let dir = apps_dir().join("seed004");
    let s = bare()
        .cwd(&dir)
        .args(&[
            "--wsgi-file",
            "./main.py",
            "--processes",
            "3",
            "--threads",
            "4",
        ])
        .start();
    let st = s.status();
    let ready = st["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["state"] == "ready")
        .count();
    assert_eq!(ready, 3, "{st}");
    let addr = s.addr();
    let started = Instant::now();
    let a = std::thread::spawn(move || get(addr, "/sleep1"));
    let b = std::thread::spawn(move || get(addr, "/sleep2"));
    for r in [a.join().unwrap(), b.join().unwrap()] {
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "Hello world!\n");
    }
    assert!(
        started.elapsed() < Duration::from_secs(19),
        "the two 10 s requests ran one after the other"
    );
}

/// New Relic's module block with this machine's paths: a Django project through
/// `django.core.handlers.wsgi:WSGIHandler()`, in the test venv.
#[test]
fn the_new_relic_module_block_serves_django_through_wsgihandler() {
    let dir = scratch("seed-django");
    let apps = apps_dir();
    let ini = format!(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nenable-threads = true\nsingle-interpreter = true\n\
         chdir = {apps}\npythonpath = {apps}\nenv = DJANGO_SETTINGS_MODULE=djangoproj.settings\n\
         module = django.core.handlers.wsgi:WSGIHandler()\nvirtualenv = {venv}\n",
        apps = apps.display(),
        venv = test_venv().display()
    );
    let file = write(&dir, "uwsgi.ini", &ini);
    let s = bare().args(&["--ini", &file]).start();
    assert_eq!(get(s.addr(), "/").text(), "django says hi");
}

/// The advanced-features article's placeholder, with real directories: `%(app_dir)` and the
/// `%d` magic variable (the ini's own directory).
#[test]
fn placeholders_and_magic_variables_expand_to_real_paths() {
    let dir = scratch("placeholders");
    let venv = test_venv();
    let ini = format!(
        "[uwsgi]\nset-placeholder = app_dir={parent}\nvirtualenv = %(app_dir)/{name}\n\
         chdir = {apps}\nmodule = cases\nprocesses = %(1 + 1)\nenv = FROM_INI=%n in %d\n",
        parent = venv.parent().unwrap().display(),
        name = venv.file_name().unwrap().to_str().unwrap(),
        apps = apps_dir().display(),
    );
    let file = write(&dir, "app.ini", &ini);
    let s = bare().args(&["--ini", &file]).start();
    let sys = get(s.addr(), "/sys").json();
    assert_eq!(
        std::fs::canonicalize(sys["prefix"].as_str().unwrap()).unwrap(),
        std::fs::canonicalize(&venv).unwrap()
    );
    let env = get(s.addr(), "/osenv?keys=FROM_INI").json();
    assert_eq!(env["FROM_INI"], format!("app in {}/", dir.display()));
    let st = s.status();
    assert_eq!(
        st["workers"].as_array().unwrap().len(),
        2,
        "%(1 + 1) processes"
    );
}

#[test]
fn the_command_line_beats_the_environment_which_beats_the_file() {
    let dir = scratch("precedence");
    let file = write(
        &dir,
        "uwsgi.ini",
        "[uwsgi]\nprocesses = 2\nthreads = 3\nmodule = cases\nharakiri = 20\n",
    );
    let doc = run(
        &dir,
        &["--ini", &file, "--threads", "5", "--print-config"],
        &[
            ("SEGUE_WORKERS", "4"),
            ("SEGUE_HARAKIRI", "7"),
            ("WEB_CONCURRENCY", "6"),
        ],
        SECS,
    )
    .json();
    let s = &doc["settings"];
    assert_eq!(s["threads"]["value"], 5);
    assert_eq!(s["threads"]["source"], "command line --threads");
    // SEGUE_WORKERS outranks the file; WEB_CONCURRENCY is only a default, as in gunicorn.
    assert_eq!(s["workers"]["value"], 4, "{s:#}");
    assert_eq!(s["workers"]["source"], "environment SEGUE_WORKERS");
    assert_eq!(s["harakiri"]["value"], 7.0);
    assert_eq!(s["app"]["source"], format!("{file}:4"));
    assert_eq!(doc["problems"], serde_json::json!([]));
}

#[test]
fn an_edited_ini_applies_on_reload_and_a_broken_one_rolls_back() {
    let dir = scratch("ini-reload");
    let ini = |version: &str, extra: &str| {
        format!(
            "[uwsgi]\nchdir = {}\nmodule = cases\nprocesses = 2\nenv = VERSION={version}\n{extra}",
            apps_dir().display()
        )
    };
    let file = write(&dir, "uwsgi.ini", &ini("1", ""));
    let s = bare().args(&["--ini", &file]).start();
    assert_eq!(get(s.addr(), "/osenv?keys=VERSION").json()["VERSION"], "1");

    write(&dir, "uwsgi.ini", &ini("2", "listen = 77\n"));
    s.signal(libc::SIGHUP);
    let r = s.wait_reload(1);
    assert_eq!(r["ok"], true, "{r}");
    let notes = r["notes"].to_string();
    assert!(
        notes.contains("backlog changed"),
        "the accept queue is the master's: {r}"
    );
    // An old worker may still take a connection it was accepting when told to drain (that is
    // what loses nothing); once generation 1 is gone, every answer is the new one's.
    s.wait_status("generation 1 gone", |st| {
        st["workers"]
            .as_array()
            .is_some_and(|w| w.iter().all(|w| w["generation"] == 2))
    });
    assert_eq!(get(s.addr(), "/osenv?keys=VERSION").json()["VERSION"], "2");

    write(&dir, "uwsgi.ini", &ini("3", "procesess = 4\n"));
    s.signal(libc::SIGHUP);
    s.wait_rolled_back(2, "did you mean 'processes'");
    assert_eq!(
        get(s.addr(), "/osenv?keys=VERSION").json()["VERSION"],
        "2",
        "the old generation serves"
    );
}

#[test]
fn a_bare_python_file_argument_is_the_wsgi_file_as_in_uwsgi() {
    // seed 000's `uwsgi --socket /tmp/uwsgi.sock --single-interpreter --enable-threads wsgi.py`
    // with an HTTP listener instead of the uwsgi socket.
    let s = bare()
        .cwd(&apps_dir().join("seed004"))
        .args(&[
            "--single-interpreter",
            "--enable-threads",
            "--master",
            "main.py",
        ])
        .start();
    assert!(s.status()["ready"] == true);
}

#[test]
fn an_ini_section_and_segue_ini_select_what_is_read() {
    let dir = scratch("ini-section");
    let file = write(
        &dir,
        "multi.ini",
        "[uwsgi]\nprocesses = 2\nmodule = cases\n[staging]\nprocesses = 3\nmodule = cases\n",
    );
    let doc = run(
        &dir,
        &["--ini", &format!("{file}:staging"), "--print-config"],
        &[],
        SECS,
    )
    .json();
    assert_eq!(doc["settings"]["workers"]["value"], 3);
    let doc = run(&dir, &["--print-config"], &[("SEGUE_INI", &file)], SECS).json();
    assert_eq!(doc["settings"]["workers"]["value"], 2);
    assert_eq!(doc["settings"]["workers"]["as"], "processes");
    let out = run(
        &dir,
        &["--ini", &format!("{file}:nosuch"), "--print-config"],
        &[],
        SECS,
    );
    assert_ne!(
        out.code,
        Some(0),
        "a missing section is an error: {}",
        out.stdout
    );
    assert!(out.stderr.contains("nosuch"), "{}", out.stderr);
}

#[test]
fn the_example_ini_serves() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/uwsgi.ini");
    let s = bare().args(&["--ini", file.to_str().unwrap()]).start();
    assert_eq!(get(s.addr(), "/").text(), "Hello, World!\n");
    assert_eq!(s.status()["workers"].as_array().unwrap().len(), 2);
}
