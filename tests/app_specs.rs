//! The ways to name the app, as gunicorn and uWSGI users write them: factories with literal
//! arguments (`app:create_app('prod', debug=False)`), dotted attribute paths, uWSGI's
//! `module = django.core.handlers.wsgi:WSGIHandler()`, `--eval`, `--wsgi-file` with
//! `--callable`, and `--mount` (several apps in one worker under SCRIPT_NAME prefixes). A spec
//! that cannot work is a boot failure whose message names the spec and the fix.

mod support;

use std::time::Duration;

use support::{Server, get, server, server_without_app, test_venv};

/// Why the worker could not boot: the slot's last error from `status` once it crash-loops,
/// or, should the master give up and exit instead, everything it logged.
fn boot_failure(s: &mut Server) -> String {
    let deadline = std::time::Instant::now() + support::EVENT_TIMEOUT;
    loop {
        if let Ok(st) = s.try_status() {
            if let Some(err) = st["crash_loops"][0]["last_error"].as_str() {
                if !err.is_empty() {
                    return err.to_owned();
                }
            }
            assert_ne!(
                st["ready"],
                true,
                "the app booted, but it should not have:\n{}",
                s.log.all()
            );
        }
        if s.wait_exit(Duration::ZERO).is_some() {
            return s.log.all();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no boot failure within {:?}:\n{}",
            support::EVENT_TIMEOUT,
            s.log.all()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn failing(app: &str) -> String {
    let mut s = server(app).exits().start();
    boot_failure(&mut s)
}

fn assert_contains(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "{n:?} not in:\n{text}");
    }
}

#[test]
fn factory_without_arguments_is_called_at_boot() {
    let s = server("factories:create_app()").start();
    let j = get(s.addr(), "/x").json();
    assert_eq!(j["tag"], "create_app");
    assert_eq!(j["payload"]["args"], serde_json::json!([]));
    assert_eq!(j["path_info"], "/x");
    assert_eq!(j["script_name"], "");
}

#[test]
fn factory_arguments_arrive_as_python_literals() {
    let s = server(
        "factories:create_app('prod', 3, -1.5, None, (1, 'a'), debug=False, n=3, tags=['x'], opts={'k': b'v'})",
    )
    .start();
    let j = get(s.addr(), "/").json();
    assert_eq!(
        j["payload"]["args"],
        serde_json::json!([
            ["str", "'prod'"],
            ["int", "3"],
            ["float", "-1.5"],
            ["NoneType", "None"],
            ["tuple", "(1, 'a')"]
        ]),
        "{j}"
    );
    let kwargs = &j["payload"]["kwargs"];
    assert_eq!(kwargs["debug"], serde_json::json!(["bool", "False"]), "{j}");
    assert_eq!(kwargs["n"], serde_json::json!(["int", "3"]), "{j}");
    assert_eq!(kwargs["tags"], serde_json::json!(["list", "['x']"]), "{j}");
    assert_eq!(
        kwargs["opts"],
        serde_json::json!(["dict", "{'k': b'v'}"]),
        "{j}"
    );
}

#[test]
fn non_literal_factory_arguments_are_refused_by_name() {
    let err = failing("factories:create_app(os.environ)");
    assert_contains(
        &err,
        &[
            "factories:create_app(os.environ)",
            "argument 'os.environ' is not a literal",
        ],
    );
    let err = failing("factories:create_app('a', debug=get_debug())");
    assert_contains(&err, &["argument 'debug=get_debug()' is not a literal"]);
    let err = failing("factories:create_app(f'{x}')");
    assert_contains(&err, &["argument 'f'{x}'' is not a literal"]);
    let err = failing("factories:create_app(*args)");
    assert_contains(&err, &["argument '*args' is not a literal"]);
    let err = failing("factories:create_app(1, = 2)");
    assert_contains(&err, &["is not a list of call arguments"]);
}

#[test]
fn arguments_that_do_not_fit_the_factory_say_so_without_a_traceback() {
    let err = failing("factories:strict(1, 2)");
    assert_contains(
        &err,
        &[
            "strict(1, 2) does not fit the factory",
            "TypeError",
            "takes 1 positional argument",
        ],
    );
}

#[test]
fn dotted_attribute_paths_reach_nested_factories() {
    let s = server("factories:ns.sub.make()").start();
    assert_eq!(get(s.addr(), "/").json()["tag"], "dotted");
    let err = failing("factories:ns.nope.make()");
    assert_contains(&err, &["'ns' (a SimpleNamespace) has no attribute 'nope'"]);
}

#[test]
fn a_missing_factory_is_named_without_its_parentheses() {
    let err = failing("factories:create_ap()");
    assert_contains(
        &err,
        &[
            "cannot import 'factories:create_ap()': module 'factories' has no attribute 'create_ap'",
            "create_app",
            "name the WSGI callable as factories:NAME",
        ],
    );
}

#[test]
fn a_raising_factory_is_a_boot_failure_with_its_traceback() {
    let mut s = server("factories:raising()").exits().start();
    let err = boot_failure(&mut s);
    assert_contains(&err, &["the factory raised RuntimeError: factory-boom"]);
    s.wait_log(&["factories.py"]); // the traceback points into the factory
}

#[test]
fn a_factory_returning_none_or_a_number_is_refused() {
    let err = failing("factories:returns_none()");
    assert_contains(&err, &["returns_none() returned None, not a WSGI callable"]);
    let err = failing("factories:returns_number()");
    assert_contains(
        &err,
        &["returns_number() returned a value of type int, not a WSGI callable"],
    );
}

#[test]
fn django_through_uwsgi_style_wsgi_handler_class() {
    let apps = support::apps_dir();
    let venv = test_venv();
    let s = server("django.core.handlers.wsgi:WSGIHandler()")
        .args(&[
            "--pythonpath",
            apps.to_str().unwrap(),
            "--env",
            "DJANGO_SETTINGS_MODULE=djangoproj.settings",
            "--virtualenv",
            venv.to_str().unwrap(),
        ])
        .start();
    let r = get(s.addr(), "/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "django says hi");
    let j = get(s.addr(), "/echo/?q=1").json();
    assert_eq!(j["path"], "/echo/");
}

#[test]
fn eval_code_runs_as_a_module_and_its_callable_is_served() {
    let code = "import factories\n\
                def wrapped(app):\n    \
                    def middleware(environ, start_response):\n        \
                        environ['wrapped.by'] = __name__\n        \
                        return app(environ, start_response)\n    \
                    return middleware\n\
                application = wrapped(factories.echo)\n";
    let s = server_without_app().args(&["--eval", code]).start();
    let j = get(s.addr(), "/p").json();
    assert_eq!(j["tag"], "echo");
    assert_eq!(j["wrapped"], "segue_eval");
    assert_eq!(j["path_info"], "/p");

    let s = server_without_app()
        .args(&[
            "--eval",
            "import factories; app = factories.app_a",
            "--callable",
            "app",
        ])
        .start();
    assert_eq!(get(s.addr(), "/").json()["tag"], "a");
}

#[test]
fn eval_failures_are_boot_failures() {
    let mut s = server_without_app()
        .args(&["--eval", "application = ("])
        .exits()
        .start();
    assert_contains(
        &boot_failure(&mut s),
        &["cannot run the --eval code: SyntaxError"],
    );
    let mut s = server_without_app()
        .args(&["--eval", "import factories; app = factories.echo"])
        .exits()
        .start();
    assert_contains(
        &boot_failure(&mut s),
        &["the --eval code: it defines no 'application'", "app"],
    );
}

#[test]
fn wsgi_file_serves_the_named_callable() {
    let file = support::apps_dir().join("named_callable.py");
    let file = file.to_str().unwrap();
    let s = server_without_app()
        .args(&["--wsgi-file", file, "--callable", "app"])
        .start();
    assert_eq!(get(s.addr(), "/").json()["tag"], "named");

    let mut s = server_without_app()
        .args(&["--wsgi-file", file])
        .exits()
        .start();
    assert_contains(
        &boot_failure(&mut s),
        &[
            "the file defines no 'application'",
            "it defines these callables: app, make_app",
            "--callable NAME",
        ],
    );
}

#[test]
fn mounts_route_by_longest_prefix_at_segment_boundaries() {
    let s = server("factories:root")
        .args(&[
            "--mount",
            "/a=factories:app_a",
            "--mount",
            "/a/b=factories:app_ab",
            "--mount",
            "/b=mount_b.py",
        ])
        .start();
    let cases = [
        ("/a", "a", "/a", ""),
        ("/a/", "a", "/a", "/"),
        ("/a/x", "a", "/a", "/x"),
        ("/a/b/c", "a/b", "/a/b", "/c"),
        ("/a/bc", "a", "/a", "/bc"),
        ("/ab", "root", "", "/ab"),
        ("/", "root", "", "/"),
        ("/b/y?q=1", "b", "/b", "/y"),
        ("/a/%78", "a", "/a", "/x"),
    ];
    for (path, tag, script_name, path_info) in cases {
        let j = get(s.addr(), path).json();
        assert_eq!(
            (
                j["tag"].as_str(),
                j["script_name"].as_str(),
                j["path_info"].as_str()
            ),
            (Some(tag), Some(script_name), Some(path_info)),
            "{path}: {j}"
        );
    }
}

#[test]
fn without_a_root_mount_unmatched_paths_get_404_from_segue() {
    let s = server_without_app()
        .args(&["--mount", "/a=factories:app_a"])
        .start();
    assert_eq!(get(s.addr(), "/a/x").json()["tag"], "a");
    let r = get(s.addr(), "/elsewhere");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "no app mounted at /elsewhere\n");
    assert_eq!(get(s.addr(), "/ab").status, 404);
}

#[test]
fn a_mount_that_cannot_import_fails_the_boot_naming_the_mount() {
    let mut s = server("factories:root")
        .args(&["--mount", "/x=broken_import:application"])
        .exits()
        .start();
    assert_contains(
        &boot_failure(&mut s),
        &[
            "mount '/x': cannot import 'broken_import:application'",
            "No module named",
        ],
    );
}
