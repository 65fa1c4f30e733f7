use super::*;
use crate::config::entry::Verdict::{Applied, Implied, Invalid, Unknown, Unsupported};

fn applied(setting: &str, value: &str) -> Vec<(&'static str, String)> {
    match translate(setting, Some(value)) {
        Applied(pairs) => pairs,
        other => panic!("{setting} = {value}: {other:?}"),
    }
}

fn single(setting: &str, value: &str) -> (&'static str, String) {
    let mut pairs = applied(setting, value);
    assert_eq!(pairs.len(), 1, "{setting}");
    pairs.remove(0)
}

fn pair(option: &'static str, value: &str) -> (&'static str, String) {
    (option, value.to_owned())
}

#[test]
fn every_catalog_setting_has_a_decision() {
    for s in catalog::SETTINGS {
        let value = match s.arity {
            crate::config::entry::Arity::Flag => None,
            _ => Some(sample(s.name)),
        };
        let verdict = translate(s.name, value);
        assert!(
            !matches!(verdict, Unknown { .. } | Invalid(_)),
            "{}: {verdict:?}",
            s.name
        );
    }
}

/// A typical value of each setting, as a config file would give it.
pub(crate) fn sample(name: &str) -> &'static str {
    match name {
        "bind" => "127.0.0.1:8000",
        "wsgi_app" => "app:application",
        "worker_class" => "sync",
        "loglevel" => "info",
        "accesslog" | "errorlog" => "-",
        "raw_env" => "A=1",
        "secure_scheme_headers" => {
            r#"{"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"}"#
        }
        "logconfig_dict" => "{}",
        "protocol" => "http",
        "header_map" => "drop",
        "http_protocols" => "h1",
        "http2_cleartext" | "proxy_protocol" => "off",
        "control_socket_mode" => "384",
        "forwarded_allow_ips" => "127.0.0.1,::1",
        "hook" => "<function f>",
        _ => "1",
    }
}

#[test]
fn bind_becomes_http_in_segues_forms() {
    assert_eq!(
        single("bind", "127.0.0.1:8000"),
        pair("http", "127.0.0.1:8000")
    );
    assert_eq!(single("-b", "0.0.0.0"), pair("http", "0.0.0.0:8000"));
    assert_eq!(single("bind", "localhost"), pair("http", "localhost:8000"));
    assert_eq!(single("bind", "[::1]"), pair("http", "[::1]:8000"));
    assert_eq!(single("bind", "[::]:9000"), pair("http", "[::]:9000"));
    assert_eq!(single("bind", ":9000"), pair("http", ":9000"));
    assert_eq!(
        single("bind", "tcp://127.0.0.1:1"),
        pair("http", "127.0.0.1:1")
    );
    assert_eq!(
        single("bind", "unix:/run/app.sock"),
        pair("http", "unix:/run/app.sock")
    );
    assert_eq!(
        single("bind", "unix:///run/app.sock"),
        pair("http", "unix:/run/app.sock")
    );
    assert_eq!(single("bind", "fd://3"), pair("http", "fd://3"));
    assert!(matches!(translate("bind", Some("fd://x")), Invalid(_)));
    assert!(matches!(
        translate("bind", Some("1.2.3.4:http")),
        Invalid(_)
    ));
}

#[test]
fn timeout_is_passed_whole_for_the_resolver_to_split() {
    assert_eq!(applied("timeout", "120"), vec![pair("timeout", "120")]);
    assert_eq!(applied("-t", "0"), vec![pair("timeout", "0")]);
    assert!(matches!(translate("timeout", Some("-1")), Invalid(_)));
}

#[test]
fn counts_take_pythons_int_literals_and_refuse_words() {
    assert_eq!(single("workers", "4"), pair("workers", "4"));
    assert_eq!(single("-w", "0x10"), pair("workers", "16"));
    assert_eq!(single("threads", "1_000"), pair("threads", "1000"));
    match translate("workers", Some("many")) {
        Invalid(why) => assert!(
            why.contains("workers") && why.contains("whole number"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(translate("workers", Some("0")), Invalid(_)));
    assert!(matches!(translate("--workers", None), Invalid(_)));
}

#[test]
fn limits_follow_what_gunicorn_does_with_zero() {
    assert_eq!(
        single("limit_request_line", "0"),
        pair("limit-request-line", "65536")
    );
    assert_eq!(
        single("limit_request_line", "4094"),
        pair("limit-request-line", "4094")
    );
    assert_eq!(
        single("limit_request_fields", "0"),
        pair("limit-request-fields", "32768")
    );
    assert_eq!(
        single("limit_request_fields", "99999"),
        pair("limit-request-fields", "32768")
    );
    assert_eq!(
        single("limit_request_field_size", "0"),
        pair("limit-request-field-size", "8190")
    );
}

#[test]
fn keepalive_is_segues_header_timeout() {
    assert_eq!(single("--keep-alive", "5"), pair("header-timeout", "5"));
    assert!(matches!(translate("keepalive", Some("0")), Unsupported(_)));
}

#[test]
fn worker_classes_segue_runs_and_those_it_cannot() {
    assert_eq!(single("-k", "sync"), pair("worker-class", "sync"));
    assert_eq!(
        single("worker_class", "gunicorn.workers.gthread.ThreadWorker"),
        pair("worker-class", "gthread")
    );
    for green in [
        "gevent",
        "eventlet",
        "tornado",
        "gunicorn.workers.ggevent.GeventWorker",
    ] {
        match translate("worker_class", Some(green)) {
            Unsupported(why) => assert!(why.contains("threaded"), "{green}: {why}"),
            other => panic!("{green}: {other:?}"),
        }
    }
    for asgi in [
        "uvicorn.workers.UvicornWorker",
        "uvicorn_worker.UvicornWorker",
        "asgi",
    ] {
        match translate("worker_class", Some(asgi)) {
            Unsupported(why) => assert!(why.contains("WSGI"), "{asgi}: {why}"),
            other => panic!("{asgi}: {other:?}"),
        }
    }
}

#[test]
fn log_files_and_formats_are_applied() {
    assert_eq!(single("accesslog", "-"), pair("access-logfile", "-"));
    assert_eq!(
        single("--access-logfile", "/var/log/a.log"),
        pair("access-logfile", "/var/log/a.log")
    );
    assert!(matches!(translate("errorlog", Some("-")), Implied(_)));
    assert_eq!(
        single("--log-file", "/tmp/e.log"),
        pair("error-logfile", "/tmp/e.log")
    );
    assert_eq!(
        single("access_log_format", "%(h)s %(s)s"),
        pair("access-logformat", "%(h)s %(s)s")
    );
    assert!(matches!(
        translate("access_log_format", Some("%(h)s 50% %(s)s")),
        Invalid(_)
    ));
    assert_eq!(
        single("--capture-output", "true"),
        pair("capture-output", "true")
    );
    assert_eq!(single("loglevel", "WARNING"), pair("log-level", "warn"));
    assert_eq!(single("loglevel", "critical"), pair("log-level", "error"));
    assert!(matches!(translate("loglevel", Some("loud")), Invalid(_)));
}

#[test]
fn lists_and_env() {
    assert_eq!(
        applied("pythonpath", "/a, /b,"),
        vec![pair("pythonpath", "/a"), pair("pythonpath", "/b")]
    );
    assert_eq!(single("-e", "A=b=c"), pair("env", "A=b=c"));
    assert!(matches!(translate("raw_env", Some("NOEQUALS")), Invalid(_)));
    assert_eq!(single("proc_name", "web"), pair("name", "web"));
    assert_eq!(
        single("-p", "/run/app.pid"),
        pair("pidfile", "/run/app.pid")
    );
    assert_eq!(
        single("wsgi_app", "app:create_app()"),
        pair("app", "app:create_app()")
    );
    assert!(matches!(
        translate("wsgi_app", Some("not a module")),
        Invalid(_)
    ));
}

#[test]
fn bare_flags_take_their_gunicorn_value() {
    assert_eq!(
        single("--check-config", "true"),
        pair("check-config", "true")
    );
    assert_eq!(
        translate("--print-config", None),
        Applied(vec![pair("print-config", "true")])
    );
    assert_eq!(
        translate("--preload", None),
        Applied(vec![pair("preload", "true")])
    );
    assert_eq!(single("preload_app", "False"), pair("preload", "false"));
    assert!(matches!(translate("-D", None), Unsupported(_)));
    assert!(matches!(translate("daemon", Some("false")), Implied(_)));
    assert!(matches!(translate("--no-sendfile", None), Unsupported(_)));
    assert!(matches!(translate("sendfile", Some("true")), Implied(_)));
    assert!(matches!(translate("--reload", None), Unsupported(r) if r.contains("--touch-reload")));
    assert!(matches!(translate("daemon", Some("yes")), Invalid(_)));
}

#[test]
fn hooks_users_and_tls_are_refused_with_the_way_out() {
    // The master's hooks are refused; a worker hook from a file names the file (below).
    assert!(
        matches!(translate("pre_fork", Some("/srv/gunicorn.conf.py")), Unsupported(r) if r.contains("hook"))
    );
    assert!(
        matches!(translate("when_ready", Some("/srv/g.py")), Applied(a) if a == [("gunicorn-hooks", "/srv/g.py".to_owned()), ("gunicorn-master-hook", "when_ready".to_owned())])
    );
    assert!(
        matches!(translate("post_fork", Some("/srv/gunicorn.conf.py")), Applied(a) if a == [("gunicorn-hooks", "/srv/gunicorn.conf.py".to_owned())])
    );
    assert!(matches!(
        translate("worker_abort", Some("/srv/g.py")),
        Implied(_)
    ));
    assert!(matches!(translate("user", Some("www-data")), Unsupported(r) if r.contains("User=")));
    assert!(matches!(translate("certfile", Some("/c.pem")), Unsupported(r) if r.contains("TLS")));
    assert!(matches!(
        translate("statsd_host", Some("localhost:8125")),
        Unsupported(_)
    ));
    assert!(matches!(
        translate("worker_tmp_dir", Some("/dev/shm")),
        Implied(_)
    ));
}

#[test]
fn umask_becomes_the_socket_mode_gunicorn_would_create() {
    assert_eq!(single("umask", "18"), pair("chmod-socket", "755"));
    assert_eq!(single("-m", "0o007"), pair("chmod-socket", "770"));
    assert_eq!(single("-m", "007"), pair("chmod-socket", "770"));
    assert_eq!(single("umask", "0"), pair("chmod-socket", "777"));
}

#[test]
fn secure_scheme_headers_must_be_the_set_segue_trusts() {
    assert!(matches!(
        translate(
            "secure_scheme_headers",
            Some(sample("secure_scheme_headers"))
        ),
        Implied(_)
    ));
    assert!(matches!(
        translate("secure_scheme_headers", Some(r#"{"X-Scheme": "https"}"#)),
        Unsupported(_)
    ));
}

#[test]
fn typos_are_unknown_with_the_name_meant() {
    assert_eq!(
        translate("grateful_timeout", Some("30")),
        Unknown {
            nearest: Some("graceful_timeout".into())
        }
    );
    assert_eq!(
        translate("keep_alive", Some("5")),
        Unknown {
            nearest: Some("keepalive".into())
        }
    );
    assert_eq!(
        translate("my_helper_value", Some("1")),
        Unknown { nearest: None }
    );
}

#[test]
fn retired_names_point_at_todays_setting() {
    assert_eq!(
        translate("logfile", Some("/var/log/g.log")),
        Unknown {
            nearest: Some("errorlog".into())
        }
    );
    assert_eq!(
        translate("after_fork", Some("<function <lambda>>")),
        Unknown {
            nearest: Some("post_fork".into())
        }
    );
}
