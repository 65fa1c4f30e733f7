//! Real frameworks from PyPI, in a real virtualenv: Flask and Django, and the interpreter's
//! view of the venv (sys.prefix, sys.executable).

mod support;

use support::{Conn, get, server, test_venv};

fn in_venv(app: &str) -> support::Server {
    in_venv_with(app, "2")
}

/// With `threads` "1" (the default) the app runs inline, on the connection's thread.
fn in_venv_with(app: &str, threads: &str) -> support::Server {
    let venv = test_venv();
    server(app)
        .args(&[
            "--workers",
            "2",
            "--threads",
            threads,
            "--virtualenv",
            venv.to_str().unwrap(),
        ])
        .start()
}

#[test]
fn virtualenv_gives_the_venv_interpreter_view() {
    let venv = test_venv();
    let s = in_venv("cases:application");
    let sys = get(s.addr(), "/sys").json();
    let venv = std::fs::canonicalize(&venv).unwrap();
    assert_eq!(
        std::fs::canonicalize(sys["prefix"].as_str().unwrap()).unwrap(),
        venv,
        "{sys}"
    );
    assert_eq!(
        sys["executable"],
        venv.join("bin/python").display().to_string(),
        "{sys}"
    );
    let path: Vec<String> = serde_json::from_value(sys["path"].clone()).unwrap();
    assert!(
        path.iter()
            .any(|p| p.starts_with(venv.to_str().unwrap()) && p.ends_with("site-packages")),
        "{path:?}"
    );
}

#[test]
fn virtual_env_variable_is_the_default_virtualenv() {
    let venv = test_venv();
    let s = server("flask_app:application")
        .env("VIRTUAL_ENV", venv.to_str().unwrap())
        .start();
    assert_eq!(get(s.addr(), "/").text(), "flask says hi");
}

#[test]
fn without_a_virtualenv_workers_run_the_python_beside_segue() {
    let s = server("cases:application").start();
    let sys = get(s.addr(), "/sys").json();
    // pip installed segue into the test venv's bin/; that venv's python runs the workers.
    let bin = std::path::Path::new(support::segue_bin()).parent().unwrap();
    assert_eq!(
        sys["executable"],
        bin.join("python").display().to_string(),
        "{sys}"
    );
    let out = std::process::Command::new(bin.join("python"))
        .args(["-c", "import sys; print(sys.prefix); print(sys.version)"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let (prefix, version) = out.trim_end().split_once('\n').unwrap();
    assert_eq!(prefix, sys["prefix"].as_str().unwrap(), "{sys}");
    assert_eq!(version, sys["version"].as_str().unwrap());
}

#[test]
fn flask_routes_json_forms_uploads_streams_and_errors() {
    flask_checks(&in_venv("flask_app:application"));
}

#[test]
fn flask_inline_routes_json_forms_uploads_streams_and_errors() {
    flask_checks(&in_venv_with("flask_app:application", "1"));
}

fn flask_checks(s: &support::Server) {
    assert_eq!(get(s.addr(), "/").text(), "flask says hi");
    let j = get(s.addr(), "/json?name=segue").json();
    assert_eq!(
        (j["name"].as_str(), j["method"].as_str()),
        (Some("segue"), Some("GET"))
    );

    let mut c = Conn::open(s.addr());
    let form = b"a=1&b=two";
    c.send(format!("POST /form HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n", form.len()).as_bytes());
    c.send(form);
    let j = c.read_response(false).json();
    assert_eq!(j["fields"], serde_json::json!({"a": "1", "b": "two"}));
    assert_eq!(j["length"], 9);

    // Chunked upload through Flask's request.get_data().
    c.send(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n");
    assert_eq!(c.read_response(false).json()["size"], 7);

    let r = get(s.addr(), "/stream");
    assert_eq!(r.text(), "line 0\nline 1\nline 2\nline 3\nline 4\n");
    let r = get(s.addr(), "/fail");
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("flask-internal"));
    s.wait_log(&["KeyError: 'flask-internal'"]);
}

#[test]
fn django_project_serves_views_streams_and_errors() {
    django_checks(&in_venv("djangoproj.wsgi:application"));
}

#[test]
fn django_inline_serves_views_streams_and_errors() {
    django_checks(&in_venv_with("djangoproj.wsgi:application", "1"));
}

fn django_checks(s: &support::Server) {
    assert_eq!(get(s.addr(), "/").text(), "django says hi");
    let mut c = Conn::open(s.addr());
    c.send(b"POST /echo/?q=hi HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    let j = c.read_response(false).json();
    assert_eq!(j["method"], "POST");
    assert_eq!(j["body"], "hello");
    assert_eq!(j["path"], "/echo/");
    assert_eq!(j["q"], "hi");
    assert_eq!(j["host"], "127.0.0.1");
    // CommonMiddleware's APPEND_SLASH redirect.
    let r = get(s.addr(), "/echo");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/echo/"));
    assert_eq!(
        get(s.addr(), "/stream/").text(),
        "part 0\npart 1\npart 2\npart 3\n"
    );
    // Django's own host validation sees the Host header.
    let mut c = Conn::open(s.addr());
    c.send(b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n");
    assert_eq!(c.read_response(false).status, 400);
    assert_eq!(get(s.addr(), "/fail/").status, 500);
}
