//! The reader and the translation together, on the examples users migrate from (New Relic's
//! uWSGI articles, real projects' files) and on hostile input.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::config::entry::Verdict;

/// A fresh directory for one test's files.
fn dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "segue-uwsgi-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn ctx<'a>(env: &'a dyn Fn(&str) -> Option<String>, cwd: &Path) -> Context<'a> {
    Context {
        env,
        cwd: cwd.to_owned(),
        hostname: "web1".into(),
        cpus: 8,
        uid: (1000, "deploy".into()),
        gid: (1000, "www".into()),
        binary: "/usr/bin/segue".into(),
        now_micros: 0,
        reload: false,
    }
}

/// Writes `text` as `name` in `d` and reads it with `env`.
fn read_in(
    d: &Path,
    name: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Ini, IniError> {
    std::fs::write(d.join(name), text).unwrap();
    read_ini_with(&d.join(name).to_string_lossy(), &ctx(env, d))
}

fn read(text: &str) -> Ini {
    read_in(&dir(), "app.ini", text, &no_env).unwrap()
}

fn pairs(ini: &Ini) -> Vec<(&str, Option<&str>)> {
    ini.entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_deref()))
        .collect()
}

pub(super) fn verdict(key: &str, value: Option<&str>) -> Verdict {
    translate(key, value, Path::new("/srv"))
}

pub(super) fn applied(name: &'static str, value: &str) -> Verdict {
    Verdict::Applied(vec![(name, value.to_owned())])
}

pub(super) fn is_implied(v: &Verdict) -> bool {
    matches!(v, Verdict::Implied(_))
}

pub(super) fn is_unsupported(v: &Verdict, containing: &str) -> bool {
    matches!(v, Verdict::Unsupported(t) if t.contains(containing))
}

#[test]
fn new_relic_django_block() {
    let ini = read(
        "[uwsgi]
socket = /tmp/uwsgi.sock
enable-threads = true
single-interpreter = true
chdir = /var/www/myapp
pythonpath = /var/www
env = DJANGO_SETTINGS_MODULE=myapp.settings
module = django.core.handlers.wsgi:WSGIHandler()
",
    );
    let v: Vec<Verdict> = ini
        .entries
        .iter()
        .map(|e| verdict(&e.key, e.value.as_deref()))
        .collect();
    assert_eq!(v[0], applied("socket", "unix:/tmp/uwsgi.sock"));
    assert!(is_implied(&v[1]) && is_implied(&v[2]));
    assert_eq!(v[3], applied("chdir", "/var/www/myapp"));
    assert_eq!(v[4], applied("pythonpath", "/var/www"));
    assert_eq!(
        v[5],
        applied("env", "DJANGO_SETTINGS_MODULE=myapp.settings")
    );
    assert_eq!(
        v[6],
        applied("app", "django.core.handlers.wsgi:WSGIHandler()")
    );
    assert!(ini.warnings.is_empty(), "{:?}", ini.warnings);
}

#[test]
fn new_relic_file_block_and_eval() {
    let ini = read(
        "[uwsgi]
socket = /tmp/uwsgi.sock
enable-threads = true
single-interpreter = true
master = true
lazy-apps = true
file = wsgi.py
eval = import newrelic.agent, wsgi; application = newrelic.agent.wsgi_application()(wsgi.application)
",
    );
    let v: Vec<Verdict> = ini
        .entries
        .iter()
        .map(|e| verdict(&e.key, e.value.as_deref()))
        .collect();
    assert_eq!(v[0], applied("socket", "unix:/tmp/uwsgi.sock"));
    assert!(v[1..5].iter().all(is_implied), "{v:?}");
    assert_eq!(v[5], applied("wsgi-file", "wsgi.py"));
    assert_eq!(
        v[6],
        applied(
            "eval",
            "import newrelic.agent, wsgi; application = newrelic.agent.wsgi_application()(wsgi.application)"
        )
    );
}

#[test]
fn new_relic_advanced_features() {
    let ini = read(
        "[uwsgi]
set-placeholder = app_dir=/path/to/app
virtualenv = %(app_dir)/env
attach-daemon = /path/to/worker/script
cron = -5 -1 -1 -1 -1 /path/to/some/script
static-map = /static=/path/to/static
static-expires-uri = /static/build/* 2592000
cheap = true
idle = 60
emperor = /etc/uwsgi-emperor/vassals
",
    );
    let keys: Vec<&str> = ini.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "virtualenv",
            "attach-daemon",
            "cron",
            "static-map",
            "static-expires-uri",
            "cheap",
            "idle",
            "emperor"
        ]
    );
    let v: Vec<Verdict> = ini
        .entries
        .iter()
        .map(|e| verdict(&e.key, e.value.as_deref()))
        .collect();
    assert_eq!(v[0], applied("virtualenv", "/path/to/app/env"));
    assert_eq!(v[1], applied("attach-daemon", "/path/to/worker/script"));
    assert_eq!(v[2], applied("cron", "-5 -1 -1 -1 -1 /path/to/some/script"));
    assert_eq!(v[3], applied("static-map", "/static=/path/to/static"));
    assert_eq!(
        v[4],
        applied("static-expires-uri", "/static/build/* 2592000")
    );
    assert_eq!(v[5], applied("cheap", "true"));
    assert_eq!(v[6], applied("idle", "60"));
    assert_eq!(v[7], applied("emperor", "/etc/uwsgi-emperor/vassals"));
}

#[test]
fn every_entry_knows_its_line() {
    let ini = read("[other]\nx = 1\n\n[uwsgi]\n; comment\n# comment\nmaster\nprocesses = 4\n");
    let lines: Vec<String> = ini.entries.iter().map(|e| e.origin.to_string()).collect();
    assert!(
        lines[0].ends_with("app.ini:7") && lines[1].ends_with("app.ini:8"),
        "{lines:?}"
    );
    assert_eq!(pairs(&ini), [("master", None), ("processes", Some("4"))]);
}

#[test]
fn placeholders_options_and_user_keys() {
    let env = |k: &str| (k == "UWSGI_PORT").then(|| "9000".to_owned());
    let d = dir();
    let ini = read_in(
        &d,
        "app.ini",
        "[uwsgi]
project = shop
base = /srv/%(project)
chdir = %(base)/src
processes = 4
threads = %(processes)
http-socket = :%(port)
pidfile = /run/%(missing).pid
log-format = %(addr) %(status)
",
        &env,
    )
    .unwrap();
    assert_eq!(
        pairs(&ini),
        [
            ("chdir", Some("/srv/shop/src")),
            ("processes", Some("4")),
            ("threads", Some("4")),
            ("http-socket", Some(":9000")),
            ("pidfile", Some("/run/%(missing).pid")),
            ("log-format", Some("%(addr) %(status)")),
        ]
    );
    // Only the unknown placeholder of a non-log option is worth a warning.
    assert_eq!(ini.warnings.len(), 1, "{:?}", ini.warnings);
    assert!(ini.warnings[0].contains("%(missing)"));
}

#[test]
fn set_makes_options_and_placeholders_cannot_shadow_options() {
    let ini = read("[uwsgi]\nset = processes=3\nset = flavour=mint\nenv = F=%(flavour)\n");
    assert_eq!(
        pairs(&ini),
        [("processes", Some("3")), ("env", Some("F=mint"))]
    );
    let err = read_in(&dir(), "a.ini", "[uwsgi]\nset-ph = processes=3\n", &no_env).unwrap_err();
    assert!(err.to_string().contains("cannot be a placeholder"), "{err}");
    let err = read_in(
        &dir(),
        "a.ini",
        "[uwsgi]\nset-placeholder = nothing\n",
        &no_env,
    )
    .unwrap_err();
    assert!(err.to_string().contains("NAME=VALUE"), "{err}");
}

#[test]
fn magic_variables_of_the_file() {
    let d = dir();
    std::fs::create_dir_all(d.join("conf")).unwrap();
    let ini = read_in(
        &d,
        "conf/site.ini",
        "[uwsgi]\nchdir = %dapp\nname = %n.%e:%c:%s\ntouch-reload = %p\nthreads = %(%k * 2)\nenv = H=%h U=%U:%u G=%G:%g P=100%%\n",
        &no_env,
    )
    .unwrap();
    let real = std::fs::canonicalize(d.join("conf")).unwrap();
    let chdir = format!("{}/app", real.display());
    let touch = format!("{}/site.ini", real.display());
    assert_eq!(
        pairs(&ini),
        [
            ("chdir", Some(chdir.as_str())),
            ("name", Some("site.ini:conf:site.ini")),
            ("touch-reload", Some(touch.as_str())),
            ("threads", Some("16")),
            ("env", Some("H=web1 U=deploy:1000 G=www:1000 P=100%")),
        ]
    );
}

#[test]
fn arithmetic_in_placeholders() {
    let ini = read(
        "[uwsgi]\nfoo = 41\nbuffer-size = %(2 * 1024)\nprocesses = %(foo + 1)\nthreads = %(%k * 2)\n",
    );
    assert_eq!(
        pairs(&ini),
        [
            ("buffer-size", Some("2048")),
            ("processes", Some("42")),
            ("threads", Some("16"))
        ]
    );
}

#[test]
fn includes_read_in_place_with_their_own_magic() {
    let d = dir();
    std::fs::create_dir_all(d.join("inc")).unwrap();
    std::fs::write(
        d.join("inc/common.ini"),
        "[uwsgi]\nthreads = 2\nchdir = %d\n[prod]\nworkers = 8\n",
    )
    .unwrap();
    let top = "[uwsgi]\nprocesses = 1\nini = %dinc/common.ini\ninclude = inc/common.ini:prod\nmaster\n[extra]\nharakiri = 5\n";
    std::fs::write(d.join("top.ini"), top).unwrap();
    let ini = read_ini_with(
        &format!("{}", d.join("top.ini").display()),
        &ctx(&no_env, &d),
    )
    .unwrap();
    let inc = std::fs::canonicalize(d.join("inc")).unwrap();
    let inc_dir = format!("{}/", inc.display());
    assert_eq!(
        pairs(&ini),
        [
            ("processes", Some("1")),
            ("threads", Some("2")),
            ("chdir", Some(inc_dir.as_str())),
            ("workers", Some("8")),
            ("master", None),
        ]
    );
    // Each entry names the file that holds its line.
    assert!(
        ini.entries[1]
            .origin
            .to_string()
            .ends_with("inc/common.ini:2")
    );
    assert!(
        ini.entries[3]
            .origin
            .to_string()
            .ends_with("inc/common.ini:5")
    );
    assert_eq!(ini.files.len(), 3);
    // `:section` alone is another section of the same file.
    let ini = read_ini_with(
        &format!("{}:uwsgi", d.join("top.ini").display()),
        &ctx(&no_env, &d),
    )
    .unwrap();
    assert_eq!(ini.entries.len(), 5);
    std::fs::write(
        d.join("self.ini"),
        "[uwsgi]\nmaster\nini = :extra\n[extra]\nharakiri = 5\n",
    )
    .unwrap();
    let ini = read_ini_with(&d.join("self.ini").to_string_lossy(), &ctx(&no_env, &d)).unwrap();
    assert_eq!(pairs(&ini), [("master", None), ("harakiri", Some("5"))]);
}

#[test]
fn include_loops_and_depth_are_refused() {
    let d = dir();
    std::fs::write(d.join("a.ini"), "[uwsgi]\nini = b.ini\n").unwrap();
    std::fs::write(d.join("b.ini"), "[uwsgi]\nmaster\nini = a.ini\n").unwrap();
    let err = read_ini_with("a.ini", &ctx(&no_env, &d)).unwrap_err();
    assert!(matches!(err, IniError::IncludeLoop { .. }), "{err}");
    assert!(err.to_string().contains("b.ini:3"), "{err}");
    for i in 0..40 {
        std::fs::write(
            d.join(format!("d{i}.ini")),
            format!("[uwsgi]\nini = d{}.ini\n", i + 1),
        )
        .unwrap();
    }
    std::fs::write(d.join("d40.ini"), "[uwsgi]\nmaster\n").unwrap();
    let err = read_ini_with("d0.ini", &ctx(&no_env, &d)).unwrap_err();
    assert!(matches!(err, IniError::TooDeep { .. }), "{err}");
    let err = read_in(&d, "x.ini", "[uwsgi]\ninclude = conf.yaml\n", &no_env).unwrap_err();
    assert!(err.to_string().contains("ini files only"), "{err}");
    let err = read_in(
        &d,
        "x.ini",
        "[uwsgi]\nini = http://example.com/x.ini\n",
        &no_env,
    )
    .unwrap_err();
    assert!(err.to_string().contains("paths only"), "{err}");
}

#[test]
fn if_blocks_bind_their_value() {
    let env = |k: &str| match k {
        "PORT" => Some("8001".to_owned()),
        "MODE" => Some("prod".to_owned()),
        _ => None,
    };
    let ini = read_in(
        &dir(),
        "a.ini",
        "[uwsgi]
if-env = PORT
http-socket = :%(_)
endif =
if-env = MODE=dev
processes = 1
else =
processes = 8
endif =
if-not-env = DEBUG
harakiri = 30
endif =
if-env = MISSING
threads = 9
endif =
if-opt = processes=8
threads = 4
end-if =
if-exists = /
chdir = %(_)
endif =
if-not-file = /nonexistent
pidfile = /run/x.pid
endif =
if-hostname = web1
name = on-%(_)
endif =
",
        &env,
    )
    .unwrap();
    assert_eq!(
        pairs(&ini),
        [
            ("http-socket", Some(":8001")),
            ("processes", Some("8")),
            ("harakiri", Some("30")),
            ("threads", Some("4")),
            ("chdir", Some("/")),
            ("pidfile", Some("/run/x.pid")),
            ("name", Some("on-web1")),
        ]
    );
}

#[test]
fn for_blocks_repeat_each_line() {
    let d = dir();
    std::fs::write(d.join("vars"), "A=1\n\nB=2\n").unwrap();
    let ini = read_in(
        &d,
        "a.ini",
        "[uwsgi]\nfor = 8001 8002\nhttp-socket = :%(_)\nenv = PORT_%(_)=1\nendfor =\nfor-times = 2\npythonpath = /lib/%(_)\nend-for =\nfor-readline = vars\nenv = %(_)\nendfor\n",
        &no_env,
    )
    .unwrap();
    assert_eq!(
        pairs(&ini),
        [
            ("http-socket", Some(":8001")),
            ("http-socket", Some(":8002")),
            ("env", Some("PORT_8001=1")),
            ("env", Some("PORT_8002=1")),
            ("pythonpath", Some("/lib/1")),
            ("pythonpath", Some("/lib/2")),
            ("env", Some("A=1")),
            ("env", Some("B=2")),
        ]
    );
}

#[test]
fn logic_errors_name_the_line() {
    let err = read_in(&dir(), "a.ini", "[uwsgi]\nif-env = X\nmaster\n", &no_env).unwrap_err();
    assert!(
        matches!(err, IniError::Unterminated { .. }) && err.to_string().contains("a.ini:2"),
        "{err}"
    );
    assert!(err.to_string().contains("endif"), "{err}");
    let err = read_in(
        &dir(),
        "a.ini",
        "[uwsgi]\nfor = a b\nif-env = X\nendif\n",
        &no_env,
    )
    .unwrap_err();
    assert!(matches!(err, IniError::Nested { .. }), "{err}");
    let err = read_in(
        &dir(),
        "a.ini",
        "[uwsgi]\nfor-glob = *.ini\nendfor\n",
        &no_env,
    )
    .unwrap_err();
    assert!(err.to_string().contains("for-glob"), "{err}");
}

#[test]
fn at_file_reads_contents_and_refuses_commands() {
    let d = dir();
    std::fs::write(d.join("secret"), "s3cr3t\n").unwrap();
    let ini = read_in(&d, "a.ini", "[uwsgi]\nenv = KEY=@(secret)\n", &no_env).unwrap();
    assert_eq!(pairs(&ini), [("env", Some("KEY=s3cr3t"))]);
    assert!(ini.files.iter().any(|f| f.ends_with("secret")));
    let err = read_in(&d, "a.ini", "[uwsgi]\nenv = U=@(exec://whoami)\n", &no_env).unwrap_err();
    assert!(err.to_string().contains("never from commands"), "{err}");
}

#[test]
fn env_variables_expand_with_defaults() {
    let env = |k: &str| (k == "HOME").then(|| "/home/d".to_owned());
    let ini = read_in(
        &dir(),
        "a.ini",
        "[uwsgi]\nchdir = $(HOME)/app\nprocesses = $(WORKERS:-3)\npidfile = $(NOPE)/x\n",
        &env,
    )
    .unwrap();
    assert_eq!(
        pairs(&ini),
        [
            ("chdir", Some("/home/d/app")),
            ("processes", Some("3")),
            ("pidfile", Some("$(NOPE)/x"))
        ]
    );
    assert!(
        ini.warnings.iter().any(|w| w.contains("$(NOPE)")),
        "{:?}",
        ini.warnings
    );
}

#[test]
fn inline_comments_stay_in_the_value_with_a_warning() {
    let ini = read("[uwsgi]\nprocesses = 4 ; four workers\n");
    assert_eq!(pairs(&ini), [("processes", Some("4 ; four workers"))]);
    assert!(
        ini.warnings[0].contains("no inline comments"),
        "{:?}",
        ini.warnings
    );
    assert!(matches!(
        verdict("processes", Some("4 ; four workers")),
        Verdict::Invalid(_)
    ));
}

#[test]
fn typos_are_unknown_with_the_nearest_name() {
    let ini = read("[uwsgi]\nprocesess = 4\nmy_custom_thing = 1\n");
    assert_eq!(pairs(&ini), [("procesess", Some("4"))]);
    assert_eq!(
        verdict("procesess", Some("4")),
        Verdict::Unknown {
            nearest: Some("processes".into())
        }
    );
    // A key far from every option is a user placeholder to uWSGI: dropped, with a warning.
    assert!(
        ini.warnings.iter().any(|w| w.contains("my_custom_thing")),
        "{:?}",
        ini.warnings
    );
}

#[test]
fn crlf_and_bom() {
    let ini = read("\u{feff}[uwsgi]\r\nmaster = true\r\nprocesses = 2\r\nchdir = /srv \r\n");
    assert_eq!(
        pairs(&ini),
        [
            ("master", Some("true")),
            ("processes", Some("2")),
            ("chdir", Some("/srv"))
        ]
    );
}

#[test]
fn segue_section_comes_after_uwsgi() {
    let ini = read("[segue]\nworkers = 8\nreload-strategy = respawn\n[uwsgi]\nprocesses = 2\n");
    assert_eq!(
        pairs(&ini),
        [
            ("processes", Some("2")),
            ("workers", Some("8")),
            ("reload-strategy", Some("respawn"))
        ]
    );
    let ini = read_in(
        &dir(),
        "a.ini",
        "[segue]\nworkers = 8\n[uwsgi]\nprocesses = 2\n",
        &no_env,
    )
    .unwrap();
    assert_eq!(ini.entries.last().unwrap().key, "workers");
}

#[test]
fn hostile_inputs_fail_cleanly() {
    let d = dir();
    let big = format!("[uwsgi]\n{}", "x = 1\n".repeat(200_000));
    let err = read_in(&d, "big.ini", &big, &no_env).unwrap_err();
    assert!(matches!(err, IniError::TooLarge { .. }), "{err}");
    let err = read_in(
        &d,
        "a.ini",
        "[uwsgi]\na = %(a)%(a)\nchdir = %(a)\n",
        &no_env,
    )
    .unwrap_err();
    assert!(matches!(err, IniError::Runaway { .. }), "{err}");
    let ini = read_in(&d, "a.ini", "[uwsgi]\nchdir = %(unclosed\n", &no_env).unwrap();
    assert_eq!(pairs(&ini), [("chdir", Some("%(unclosed"))]);
    assert!(ini.warnings[0].contains("no closing"), "{:?}", ini.warnings);
    let err = read_in(&d, "a.ini", "[other]\nmaster\n", &no_env).unwrap_err();
    assert!(
        matches!(err, IniError::MissingSection { .. })
            && err.to_string().contains("[uwsgi] or [segue]"),
        "{err}"
    );
    let err = read_ini_with("missing.ini", &ctx(&no_env, &d)).unwrap_err();
    assert!(matches!(err, IniError::Read { .. }), "{err}");
    std::fs::write(d.join("bin.ini"), [0xff, 0xfe, 0x00]).unwrap();
    assert!(matches!(
        read_ini_with("bin.ini", &ctx(&no_env, &d)),
        Err(IniError::NotText { .. })
    ));
    let many = "[uwsgi]\nfor-times = 60000\nenv = A%(_)=1\nenv = B%(_)=1\nendfor\n";
    let err = read_in(&d, "a.ini", many, &no_env).unwrap_err();
    assert!(matches!(err, IniError::TooManyEntries { .. }), "{err}");
}

/// The real-world files: every key gets a verdict other than Unknown, except a real typo.
fn fixture(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Ini {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/uwsgi/fixtures");
    read_ini_with(&dir.join(name).to_string_lossy(), &ctx(env, &dir)).unwrap()
}

#[test]
fn healthchecks_ini() {
    let env = |k: &str| (k == "SMTPD_PORT").then(|| "2525".to_owned());
    let ini = fixture("healthchecks.ini", &env);
    for e in &ini.entries {
        let v = verdict(&e.key, e.value.as_deref());
        assert!(!matches!(v, Verdict::Unknown { .. }), "{} {v:?}", e.key);
    }
    assert!(
        ini.entries
            .iter()
            .any(|e| e.value.as_deref() == Some("./manage.py smtpd --port 2525 --skip-checks"))
    );
    assert_eq!(
        verdict("http-socket", Some(":8000")),
        applied("http", ":8000")
    );
}

#[test]
fn addons_server_ini_finds_its_typo() {
    let ini = fixture("addons-server.ini", &no_env);
    let mut unknown = Vec::new();
    for e in &ini.entries {
        if let Verdict::Unknown { nearest } = verdict(&e.key, e.value.as_deref()) {
            unknown.push((e.key.clone(), nearest));
        }
    }
    assert_eq!(unknown, [("vaccum".to_owned(), Some("vacuum".to_owned()))]);
    let chdir = ini.entries.iter().find(|e| e.key == "chdir").unwrap();
    assert_eq!(chdir.value.as_deref(), Some("/code"));
    // The if-not-opt block ran: running-circleci is none, a placeholder, not an option.
    assert!(ini.entries.iter().any(|e| e.key == "attach-daemon"));
    assert!(!ini.entries.iter().any(|e| e.key == "running-circleci"));
}

#[test]
fn twenty_tab_ini() {
    let env = |k: &str| (k == "HOME").then(|| "/home/app".to_owned());
    let ini = fixture("20tab-global.ini", &env);
    for e in &ini.entries {
        let v = verdict(&e.key, e.value.as_deref());
        assert!(!matches!(v, Verdict::Unknown { .. }), "{} {v:?}", e.key);
    }
    let venv = ini.entries.iter().find(|e| e.key == "virtualenv").unwrap();
    assert_eq!(
        venv.value.as_deref(),
        Some("/home/app/venvs/%(project_name)")
    );
    assert_eq!(
        ini.entries
            .iter()
            .filter(|e| e.key == "static-expires-type-mtime")
            .count(),
        3
    );
}
