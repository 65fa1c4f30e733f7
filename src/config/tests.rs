//! Resolution across sources, without processes: precedence, the root-app group, gunicorn's
//! timeout, and problems listed together.

use std::collections::BTreeMap;

use super::resolve::{Invocation, resolve};

fn inv(args: &[&str], env: &[(&str, &str)]) -> Invocation {
    Invocation {
        args: args.iter().map(|s| s.to_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        // An empty directory: no ./gunicorn.conf.py to pick up.
        cwd: {
            let dir =
                std::env::temp_dir().join(format!("segue-config-unit-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            dir
        },
    }
}

fn value(args: &[&str], env: &[(&str, &str)], name: &str) -> Option<String> {
    resolve(&inv(args, env)).unwrap().value(name)
}

#[test]
fn the_command_line_beats_the_environment_which_beats_defaults_from_the_environment() {
    let env = [("SEGUE_WORKERS", "4"), ("WEB_CONCURRENCY", "6")];
    assert_eq!(value(&["app"], &env, "workers").as_deref(), Some("4"));
    assert_eq!(
        value(&["app", "-w", "2"], &env, "workers").as_deref(),
        Some("2")
    );
    assert_eq!(
        value(&["app"], &[("WEB_CONCURRENCY", "6")], "workers").as_deref(),
        Some("6")
    );
    let cmd_args = [("GUNICORN_CMD_ARGS", "--workers 5 'app:x'")];
    assert_eq!(value(&[], &cmd_args, "workers").as_deref(), Some("5"));
    assert_eq!(value(&[], &cmd_args, "app").as_deref(), Some("app:x"));
}

#[test]
fn repeatable_options_accumulate_within_a_level_and_a_level_replaces_the_lower() {
    let r = resolve(&inv(
        &["app", "--bind", "127.0.0.1:1", "-b", "127.0.0.1:2"],
        &[("SEGUE_HTTP", "127.0.0.1:3,127.0.0.1:4")],
    ))
    .unwrap();
    assert_eq!(
        r.get("http").unwrap().values,
        ["127.0.0.1:1", "127.0.0.1:2"]
    );
    let r = resolve(&inv(&["app", "--pythonpath", "/a,/b"], &[])).unwrap();
    assert_eq!(r.get("pythonpath").unwrap().values, ["/a", "/b"]);
}

#[test]
fn one_root_app_per_level() {
    let r = resolve(&inv(&["a:b", "--eval", "x = 1"], &[])).unwrap();
    let err = r.config().unwrap_err();
    assert!(
        err.problems.iter().any(|p| p.contains("give one root app")),
        "{err}"
    );
    // The command line's APP replaces an environment's --wsgi-file instead of clashing.
    let r = resolve(&inv(&["a:b"], &[("SEGUE_WSGI_FILE", "/nonexistent.py")])).unwrap();
    assert_eq!(r.value("app").as_deref(), Some("a:b"));
    assert_eq!(r.value("wsgi-file"), None);
}

#[test]
fn gunicorns_timeout_is_harakiri_only_for_the_single_threaded_sync_class() {
    let harakiri = |args: &[&str]| {
        resolve(&inv(args, &[]))
            .unwrap()
            .config()
            .unwrap()
            .worker
            .harakiri
    };
    let secs = |n| Some(std::time::Duration::from_secs(n));
    assert_eq!(harakiri(&["a", "-t", "40"]), secs(40));
    assert_eq!(harakiri(&["a", "-t", "40", "-k", "sync"]), secs(40));
    assert_eq!(
        harakiri(&["a", "-t", "40", "-k", "sync", "--threads", "2"]),
        None
    );
    assert_eq!(harakiri(&["a", "-t", "40", "-k", "gthread"]), None);
    assert_eq!(harakiri(&["a", "-t", "40", "--harakiri", "5"]), secs(5));
    assert_eq!(harakiri(&["a", "-t", "0"]), None);
    let c = resolve(&inv(&["a", "-t", "40"], &[]))
        .unwrap()
        .config()
        .unwrap();
    assert_eq!(c.heartbeat_timeout, std::time::Duration::from_secs(40));
}

#[test]
fn every_problem_is_listed_at_once_with_its_place() {
    let r = resolve(&inv(
        &["app", "--wokrers", "2", "--threads", "x", "--daemon"],
        &[],
    ))
    .unwrap();
    let err = r.config().unwrap_err();
    let text = err.to_string();
    assert_eq!(err.problems.len(), 3, "{text}");
    assert!(
        text.contains("--wokrers: not an option (did you mean '--workers'?)"),
        "{text}"
    );
    assert!(text.contains("--threads: invalid value 'x'"), "{text}");
    assert!(text.contains("\n  --daemon: not supported"), "{text}");
    assert!(
        !text.contains("command line"),
        "a flag is named once: {text}"
    );
    assert!(
        err.has_unsupported && text.contains("--ignore-unsupported"),
        "{text}"
    );
    let r = resolve(&inv(&["app", "--daemon", "--ignore-unsupported"], &[])).unwrap();
    assert!(r.config().is_ok());
}

#[test]
fn socket_listeners_speak_uwsgi_and_replace_the_default_http_listener() {
    use super::{Endpoint, ListenAddr, Protocol};
    let config = |args: &[&str]| resolve(&inv(args, &[])).unwrap().config().unwrap();
    let uwsgi = |addr: &str| Endpoint {
        addr: ListenAddr::parse_uwsgi(addr).unwrap(),
        protocol: Protocol::Uwsgi,
    };
    let c = config(&["app", "--socket", "/tmp/u.sock", "-s", ":3031"]);
    assert_eq!(c.listen, vec![uwsgi("/tmp/u.sock"), uwsgi(":3031")]);
    assert!(c.listen_explicit);
    let c = config(&["app", "--uwsgi-socket", "127.0.0.1:3031", "--http", ":8080"]);
    assert_eq!(
        c.listen,
        vec![
            Endpoint::http(":8080".parse().unwrap()),
            uwsgi("127.0.0.1:3031")
        ]
    );
    let c = config(&["app"]);
    assert_eq!(
        c.listen,
        vec![Endpoint::http("127.0.0.1:8000".parse().unwrap())]
    );
    let err = resolve(&inv(&["app", "--socket", "@abstract"], &[]))
        .unwrap()
        .config()
        .unwrap_err();
    assert!(err.to_string().contains("abstract unix sockets"), "{err}");
}
