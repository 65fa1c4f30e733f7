//! The Python hook API (`import segue` inside the app): `segue.worker_id()`, `generation()`
//! and `preloaded()` answer in the worker; `postfork` hooks run once in each worker's own
//! process before it is ready, and one that raises is a boot failure with its traceback;
//! `on_drain` and `worker_exit` hooks run in the old workers when a reload replaces them.
//! The app (`tests/apps/hooks.py`) leaves a marker file per hook run, named by the hook, the
//! worker id, the generation and the pid that ran it.

mod support;

use std::path::Path;

use support::*;

#[test]
fn hooks_run_in_each_worker_and_the_worker_knows_who_it_is() {
    let s = server("hooks:application")
        .args(&["--workers", "2"])
        .start();
    let st = s.status();
    let first = worker_pids(&st, 1);
    assert_eq!(first.len(), 2, "{st}");

    let r = get(s.addr(), "/").json();
    let id = r["worker_id"].as_u64().unwrap();
    assert!(
        first.contains(&(id, r["pid"].as_i64().unwrap() as i32)),
        "{r} {st}"
    );
    assert_eq!(r["generation"], 1);
    assert_eq!(r["preloaded"], false);
    assert_eq!(
        r["imported_in"], r["pid"],
        "without --preload each worker imports"
    );

    // One postfork run per worker, in that worker's process, before it was ready.
    let post: Vec<_> = marks(&s.marks, "postfork");
    let want: Vec<_> = first.iter().map(|&(id, pid)| (id, 1, pid, 1)).collect();
    assert_eq!(post, want, "{}", s.log.all());
    assert!(marks(&s.marks, "drain").is_empty());

    // A reload: the new generation's workers run postfork; the old ones drain, then exit,
    // running on_drain and worker_exit once each in their own process.
    s.signal(libc::SIGHUP);
    let st = s.wait_promoted(1);
    let second = worker_pids(&s.status(), st["generation"].as_u64().unwrap());
    assert_eq!(second.len(), 2);
    let old: Vec<_> = first.iter().map(|&(id, pid)| (id, 1, pid, 1)).collect();
    assert!(
        eventually(EVENT_TIMEOUT, || marks(&s.marks, "exit") == old),
        "exit hooks: {:?}, want {old:?}\n{}",
        marks(&s.marks, "exit"),
        s.log.all()
    );
    assert_eq!(marks(&s.marks, "drain"), old);
    let post = marks(&s.marks, "postfork");
    for (id, pid) in second {
        assert!(post.contains(&(id, 2, pid, 1)), "{post:?}");
    }
    assert_eq!(get(s.addr(), "/").json()["generation"], 2);
}

#[test]
fn a_postfork_hook_that_raises_is_a_boot_failure_with_its_traceback() {
    let mut s = server("hooks:application")
        .env("HOOK_FAIL", "postfork")
        .exits()
        .start();
    let status = s
        .wait_exit(EVENT_TIMEOUT)
        .expect("segue should exit when the app cannot boot");
    assert_eq!(status.code(), Some(3), "{}", s.log.all());
    s.wait_log(&["a segue.postfork hook raised RuntimeError: the postfork hook fails on purpose"]);
    s.wait_log(&["hooks.py"]);

    // On a reload the failing hook rolls the reload back; the old generation serves on.
    let s = server("hooks:application").start();
    std::fs::write(s.marks.join("fail-postfork"), "").unwrap();
    s.signal(libc::SIGHUP);
    s.wait_rolled_back(1, "postfork hook raised RuntimeError");
    assert_eq!(get(s.addr(), "/").json()["generation"], 1);
}

#[test]
fn outside_segue_the_api_answers_without_a_worker() {
    let python = test_venv().join("bin/python");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import segue\n\
             @segue.postfork\n\
             def f(): raise SystemExit('never runs outside segue')\n\
             print(segue.worker_id(), segue.generation(), segue.preloaded())\n\
             try:\n    segue.on_drain(42)\nexcept TypeError as e:\n    print('refused:', e)",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("None None False\n"), "{text}");
    assert!(
        text.contains("refused: segue hooks take a callable"),
        "{text}"
    );
}

/// The recipe's markers `kind-w{id}-{pid}` in `dir`, as (id, pid, runs).
fn recipe_marks(dir: &Path, kind: &str) -> Vec<(u64, i32, usize)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((id, pid)) = name
            .strip_prefix(&format!("{kind}-w"))
            .and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        let runs = std::fs::read_to_string(entry.path()).unwrap().len();
        out.push((id.parse().unwrap(), pid.parse().unwrap(), runs));
    }
    out.sort();
    out
}

#[test]
fn uwsgi_compat_runs_the_seeds_post_fork_recipes() {
    // Off by default: `import uwsgi` fails, as it does for the app outside uWSGI.
    let mut s = server("uwsgi_recipe:application").exits().start();
    let status = s.wait_exit(EVENT_TIMEOUT).expect("segue should exit");
    assert_eq!(status.code(), Some(3), "{}", s.log.all());
    s.wait_log(&["No module named 'uwsgi'"]);

    // With --preload the hook runs after the fork from the zygote, as after uWSGI's own fork.
    for (style, preload) in [
        ("decorator", false),
        ("attribute", false),
        ("decorator", true),
        ("attribute", true),
    ] {
        let mut args = vec!["--workers", "2", "--uwsgi-compat"];
        if preload {
            args.push("--preload");
        }
        let s = server("uwsgi_recipe:application")
            .args(&args)
            .env("HOOK_STYLE", style)
            .start();
        let workers = worker_pids(&s.status(), 1);
        let r = get(s.addr(), "/").json();
        assert_eq!(r["numproc"], 2, "{r}");
        assert_eq!(r["processes"], "2", "{r}");
        assert_eq!(r["masterpid"], s.pid(), "{r}");
        let id = r["worker_id"].as_u64().unwrap();
        assert!(workers.iter().any(|w| w.0 == id), "{r} {workers:?}");
        // Once in each worker, in its own process.
        let want: Vec<_> = workers.iter().map(|&(id, pid)| (id, pid, 1)).collect();
        assert_eq!(
            recipe_marks(&s.marks, style),
            want,
            "{style}\n{}",
            s.log.all()
        );
        if style == "decorator" {
            // `@postfork(1)`: only in worker 1.
            let one: Vec<_> = want.iter().filter(|m| m.0 == 1).cloned().collect();
            assert_eq!(one.len(), 1, "{want:?}");
            assert_eq!(recipe_marks(&s.marks, "worker1"), one);
        }
    }
}

/// gunicorn's worker-side server hooks from `-c gunicorn.conf.py`: `post_fork` and
/// `post_worker_init` once in each worker, `pre_request` and `post_request` around each
/// request with the request's method and path and the response's status, `worker_exit` when a
/// reload replaces the worker. Each hook appends a line to a file in $SEGUE_TEST_DIR.
#[test]
fn gunicorn_worker_hooks_from_a_conf_file_run_in_the_workers() {
    gunicorn_hooks(false);
}

/// With `preload_app = True` the app is imported once, by the zygote, and `post_fork` still
/// runs in each worker after its fork, with that worker's pid, as under gunicorn's --preload.
#[test]
fn gunicorn_hooks_with_preload_app_run_post_fork_after_the_fork() {
    gunicorn_hooks(true);
}

fn gunicorn_hooks(preload: bool) {
    let dir = support::oneshot::scratch(if preload {
        "gunicorn-hooks-preload"
    } else {
        "gunicorn-hooks"
    });
    let conf = dir.join("gunicorn.conf.py");
    std::fs::write(
        &conf,
        format!(
            "import os\n\
             chdir = {apps:?}\n\
             wsgi_app = 'cases:application'\n\
             workers = 2\n\
             preload_app = {preload}\n\
             def note(text):\n\
             \x20   with open(os.path.join(os.environ['SEGUE_TEST_DIR'], 'hooks.log'), 'a') as f:\n\
             \x20       f.write(text + '\\n')\n\
             def post_fork(server, worker):\n\
             \x20   note('post_fork %d %d %d' % (worker.age, worker.pid, server.pid))\n\
             def post_worker_init(worker):\n\
             \x20   note('post_worker_init %d %d' % (worker.age, worker.pid))\n\
             \x20   import segue\n\
             \x20   note('preloaded %s' % segue.preloaded())\n\
             def pre_request(worker, req):\n\
             \x20   note('pre_request %d %s %s' % (worker.pid, req.method, req.path))\n\
             def post_request(worker, req, environ, resp):\n\
             \x20   note('post_request %d %s %s' % (worker.pid, req.path, resp.status_code))\n\
             def worker_exit(server, worker):\n\
             \x20   note('worker_exit %d %d' % (worker.age, worker.pid))\n\
             def when_ready(server):\n\
             \x20   note('when_ready %d' % server.pid)\n\
             def on_reload(server):\n\
             \x20   note('on_reload %d' % server.pid)\n\
             def on_exit(server):\n\
             \x20   note('on_exit %d' % server.pid)\n\
             def on_starting(server):\n\
             \x20   note('on_starting %d' % server.pid)\n\
             def child_exit(server, worker):\n\
             \x20   note('child_exit %d %d %d' % (worker.age, worker.pid, server.pid))\n",
            apps = apps_dir().display().to_string(),
            preload = if preload { "True" } else { "False" },
        ),
    )
    .unwrap();
    let conf = conf.display().to_string();
    let mut s = bare().cwd(&dir).args(&["-c", &conf]).start();
    let log = s.marks.join("hooks.log");
    let lines = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let workers = worker_pids(&s.status(), 1);
    // on_starting ran, and finished, before any worker started.
    assert_eq!(
        lines().first().cloned(),
        Some(format!("on_starting {}", s.pid())),
        "{:?}",
        lines()
    );
    // Each worker knows whether the zygote imported the app for it.
    let flag = format!("preloaded {}", if preload { "True" } else { "False" });
    assert_eq!(
        lines().iter().filter(|l| **l == flag).count(),
        workers.len(),
        "{:?}",
        lines()
    );
    for (id, pid) in &workers {
        let l = lines();
        assert_eq!(
            l.iter()
                .filter(|x| **x == format!("post_fork {id} {pid} {}", s.pid()))
                .count(),
            1,
            "{l:?}"
        );
        assert_eq!(
            l.iter()
                .filter(|x| **x == format!("post_worker_init {id} {pid}"))
                .count(),
            1,
            "{l:?}"
        );
    }
    let r = get(s.addr(), "/status?code=201");
    assert_eq!(r.status, 201);
    let served: Vec<i32> = workers.iter().map(|w| w.1).collect();
    assert!(
        eventually(EVENT_TIMEOUT, || lines().iter().any(|l| {
            l.starts_with("post_request ") && l.ends_with(" /status 201")
        })),
        "{:?}",
        lines()
    );
    let l = lines();
    let pre = l
        .iter()
        .find(|x| x.starts_with("pre_request ") && x.ends_with(" GET /status"))
        .unwrap_or_else(|| panic!("{l:?}"));
    let pid: i32 = pre.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(served.contains(&pid), "{pre} {served:?}");

    // The arbiter's hooks run in processes of their own with the master's pid as server.pid:
    // when_ready once, on_reload at each reload, on_exit at the stop.
    let master = s.pid();
    let ready = format!("when_ready {master}");
    assert!(
        eventually(EVENT_TIMEOUT, || lines().contains(&ready)),
        "{:?}",
        lines()
    );

    s.signal(libc::SIGHUP);
    s.wait_promoted(1);
    for (id, pid) in &workers {
        // worker_exit in the worker, then child_exit in the master's hook process once the
        // master has reaped it.
        for want in [
            format!("worker_exit {id} {pid}"),
            format!("child_exit {id} {pid} {master}"),
        ] {
            assert!(
                eventually(EVENT_TIMEOUT, || lines().contains(&want)),
                "{want} missing: {:?}",
                lines()
            );
        }
    }
    let reload = format!("on_reload {master}");
    assert!(
        eventually(EVENT_TIMEOUT, || lines().contains(&reload)),
        "{:?}",
        lines()
    );
    s.signal(libc::SIGTERM);
    s.wait_exit(EVENT_TIMEOUT).expect("segue should stop");
    let exit = format!("on_exit {master}");
    assert!(
        eventually(EVENT_TIMEOUT, || lines().contains(&exit)),
        "{:?}",
        lines()
    );
    let l = lines();
    assert_eq!(l.iter().filter(|x| **x == ready).count(), 1, "{l:?}");
}

/// An `on_starting` that raises stops segue before any worker starts, as it stops gunicorn,
/// with the hook's traceback in the log.
#[test]
fn a_failing_on_starting_hook_stops_the_start() {
    let dir = support::oneshot::scratch("gunicorn-on-starting");
    let conf = dir.join("gunicorn.conf.py");
    std::fs::write(
        &conf,
        format!(
            "chdir = {apps:?}\n\
             wsgi_app = 'cases:application'\n\
             def on_starting(server):\n\
             \x20   raise RuntimeError('no metrics directory')\n",
            apps = apps_dir().display().to_string()
        ),
    )
    .unwrap();
    let conf = conf.display().to_string();
    let mut s = bare().cwd(&dir).args(&["-c", &conf]).exits().start();
    let status = s.wait_exit(EVENT_TIMEOUT).expect("segue should not start");
    assert_eq!(status.code(), Some(1), "{}", s.log.all());
    s.wait_log(&["RuntimeError: no metrics directory"]);
    s.wait_log(&["gunicorn's on_starting hook failed (exit code 1)"]);
    assert!(!s.log.all().contains("worker ready"), "{}", s.log.all());
}
