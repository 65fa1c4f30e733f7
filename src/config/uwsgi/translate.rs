//! What each uWSGI option means to segue: set a segue option (applied), nothing because segue
//! always behaves so (implied), or refused with what to do instead (unsupported). Every
//! catalog name gets exactly one of these, and the migration guide's table is printed from
//! the same rules, so the guide cannot drift from the code.

use std::path::Path;

use super::catalog::{self, Kind};
use crate::config::entry::{self, Verdict};
use crate::config::option;

use super::rules::{Conv, Rule, rule};

/// What the uWSGI (or segue) option `key` with `value` means to segue. `base_dir` is the
/// directory relative paths are resolved against: pass the working directory segue starts
/// in, which is what uWSGI resolves them against.
pub fn translate(key: &str, value: Option<&str>, base_dir: &Path) -> Verdict {
    let long;
    let key = match key.strip_prefix("--").or_else(|| key.strip_prefix('-')) {
        Some(k) if k.chars().count() == 1 => {
            match catalog::by_short(k.chars().next().unwrap_or(' ')) {
                Some(o) => o.name,
                None => return Verdict::Unknown { nearest: None },
            }
        }
        Some(k) => {
            long = k.to_owned();
            long.as_str()
        }
        None => key,
    };
    let Some(opt) = catalog::option(key) else {
        if let Some(opt) = option::find(key) {
            return Verdict::Applied(vec![(opt.name, value.unwrap_or("true").to_owned())]);
        }
        let candidates = catalog::names().chain(option::names());
        return Verdict::Unknown {
            nearest: entry::nearest(key, candidates),
        };
    };
    // segue's own log-format (text|json) shares uWSGI's name.
    if key == "log-format" && matches!(value, Some("text" | "json")) {
        return Verdict::Applied(vec![("log-format", value.unwrap_or_default().to_owned())]);
    }
    match rule(key) {
        Rule::Unsupported(text) => Verdict::Unsupported(text),
        Rule::Implied { why, off } => {
            if opt.kind != Kind::Bool {
                return Verdict::Implied(why);
            }
            match boolean(value) {
                Some(true) => Verdict::Implied(why),
                Some(false) => Verdict::Unsupported(off),
                None => Verdict::Invalid(not_bool(key, value)),
            }
        }
        Rule::Apply(name, conv) => match convert(key, value, conv, base_dir) {
            // uWSGI loads a module spec that looks like a file as that file.
            Ok(v) if conv == Conv::Module && looks_like_file(&v) => {
                Verdict::Applied(vec![("wsgi-file", v)])
            }
            Ok(v) => Verdict::Applied(vec![(name, v)]),
            Err(e) => Verdict::Invalid(e),
        },
    }
}

fn looks_like_file(v: &str) -> bool {
    v.ends_with(".py") || v.ends_with(".wsgi") || (v.contains('/') && !v.contains(':'))
}

/// uWSGI's booleans: bare is true, and `true/false/1/0/yes/no/on/off` in any case.
pub(super) fn boolean(value: Option<&str>) -> Option<bool> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("true" | "1" | "yes" | "on") => Some(true),
        Some("false" | "0" | "no" | "off") => Some(false),
        Some(_) => None,
    }
}

fn not_bool(key: &str, value: Option<&str>) -> String {
    format!(
        "'{key} = {}' is not a boolean: write true or false (1/0, yes/no, on/off), or the key alone",
        value.unwrap_or_default()
    )
}

fn convert(key: &str, value: Option<&str>, conv: Conv, base: &Path) -> Result<String, String> {
    let v = value.map(str::trim).unwrap_or_default();
    let need = |example: &str| format!("'{key}' needs a value, e.g. {key} = {example}");
    let absolute = |p: &str| {
        let path = Path::new(p);
        if path.is_absolute() {
            p.to_owned()
        } else {
            base.join(path).to_string_lossy().into_owned()
        }
    };
    match conv {
        Conv::Mode => {
            if v.is_empty() {
                return Ok("666".into());
            }
            if (3..=4).contains(&v.len()) && v.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                Ok(v.to_owned())
            } else {
                Err(format!(
                    "'{key} = {v}' is not an octal mode: write e.g. {key} = 660"
                ))
            }
        }
        Conv::Flag => match boolean(value) {
            Some(on) => Ok(on.to_string()),
            None => Err(not_bool(key, value)),
        },
        Conv::NoAccessLog => match boolean(value) {
            Some(off) => Ok((!off).to_string()),
            None => Err(not_bool(key, value)),
        },
        _ if v.is_empty() => Err(need(match conv {
            Conv::Count => "4",
            Conv::Secs => "30",
            Conv::Listen => ":8000",
            Conv::Pair => "KEY=VALUE",
            Conv::Mount => "/admin=admin.wsgi:application",
            Conv::Module => "mysite.wsgi:application",
            Conv::Optimize => "1",
            _ => "/path",
        })),
        Conv::Count | Conv::Optimize => match v.parse::<u64>() {
            Ok(n) if conv == Conv::Optimize => Ok(format!("PYTHONOPTIMIZE={n}")),
            Ok(_) => Ok(v.to_owned()),
            Err(_) => Err(format!(
                "'{key} = {v}' is not a whole number: write e.g. {key} = 4"
            )),
        },
        Conv::Secs => match v.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => Ok(v.to_owned()),
            _ => Err(format!(
                "'{key} = {v}' is not a number of seconds: write e.g. {key} = 30"
            )),
        },
        Conv::Text | Conv::StaticPath => Ok(v.to_owned()),
        Conv::Path => Ok(absolute(v)),
        Conv::PyPath => {
            if v.contains(['*', '?', '[']) {
                Err(format!(
                    "'{key} = {v}': segue does not expand globs in pythonpath: list each directory on its own line"
                ))
            } else {
                Ok(v.to_owned())
            }
        }
        Conv::Pair | Conv::Mount => {
            if v.contains('=') {
                Ok(v.to_owned())
            } else if conv == Conv::Pair {
                Err(format!(
                    "'{key} = {v}' needs KEY=VALUE (segue does not unset variables with env)"
                ))
            } else {
                Err(format!(
                    "'{key} = {v}' needs PREFIX=APP, e.g. {key} = /admin=admin.wsgi:application"
                ))
            }
        }
        Conv::Module => Ok(v.to_owned()),
        Conv::Listen => listen(key, v, &absolute),
        Conv::LogFile => {
            if !v.contains('/') && v.contains(':') {
                Err(format!(
                    "'{key} = {v}' logs over UDP, which segue does not do: give a file path"
                ))
            } else {
                Ok(absolute(v))
            }
        }
        Conv::Logger => match v.split_once(':') {
            Some(("file", path)) if !path.is_empty() => Ok(absolute(path)),
            _ => Err(format!(
                "'{key} = {v}': segue writes logs to files only: write {key} = file:/var/log/app.log"
            )),
        },
    }
}

/// uWSGI's socket address forms in segue's syntax.
fn listen(key: &str, v: &str, absolute: &dyn Fn(&str) -> String) -> Result<String, String> {
    if v.starts_with('=') {
        return Err(format!(
            "'{key} = {v}': shared sockets (=N) are not supported: give the address itself"
        ));
    }
    if v.starts_with('@') {
        return Err(format!(
            "'{key} = {v}': abstract unix sockets are not supported: use a socket path"
        ));
    }
    if v.contains(',') {
        return Err(format!(
            "'{key} = {v}': one address per line (segue takes no socket options after a comma)"
        ));
    }
    if let Some(path) = v.strip_prefix("unix:") {
        return Ok(format!("unix:{}", absolute(path)));
    }
    if !v.contains(':') {
        if v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "'{key} = {v}': uWSGI takes this as a unix socket file named {v}; write :{v} for a port, or ./{v} for that socket"
            ));
        }
        return Ok(format!("unix:{}", absolute(v)));
    }
    if v.starts_with('/') || v.starts_with('.') {
        return Ok(format!("unix:{}", absolute(v)));
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::uwsgi::names;
    use crate::config::uwsgi::tests::{applied, is_implied, is_unsupported, verdict};

    #[test]
    fn booleans_and_values() {
        for word in [
            None,
            Some("true"),
            Some("1"),
            Some("yes"),
            Some("ON"),
            Some(""),
        ] {
            assert!(is_implied(&verdict("master", word)), "{word:?}");
        }
        for word in ["false", "0", "no", "off"] {
            assert!(is_unsupported(
                &verdict("master", Some(word)),
                "always runs a master"
            ));
            assert!(matches!(
                verdict("vacuum", Some(word)),
                Verdict::Unsupported(_)
            ));
        }
        assert!(matches!(
            verdict("master", Some("maybe")),
            Verdict::Invalid(_)
        ));
        assert!(matches!(
            verdict("processes", Some("lots")),
            Verdict::Invalid(_)
        ));
        assert!(matches!(verdict("processes", None), Verdict::Invalid(_)));
        assert_eq!(
            verdict("disable-logging", None),
            applied("access-log", "false")
        );
        assert_eq!(verdict("workers", Some("4")), applied("workers", "4"));
        assert_eq!(verdict("-p", Some("4")), applied("workers", "4"));
        assert_eq!(verdict("--processes", Some("4")), applied("workers", "4"));
    }

    #[test]
    fn listen_addresses_in_segues_syntax() {
        assert_eq!(
            verdict("http-socket", Some("/tmp/x.sock")),
            applied("http", "unix:/tmp/x.sock")
        );
        assert_eq!(
            verdict("http-socket", Some("run/x.sock")),
            applied("http", "unix:/srv/run/x.sock")
        );
        assert_eq!(verdict("http", Some(":8000")), applied("http", ":8000"));
        assert_eq!(
            verdict("socket", Some("/tmp/uwsgi.sock")),
            applied("socket", "unix:/tmp/uwsgi.sock")
        );
        assert_eq!(
            verdict("uwsgi-socket", Some("127.0.0.1:3031")),
            applied("socket", "127.0.0.1:3031")
        );
        assert_eq!(verdict("-s", Some(":3031")), applied("socket", ":3031"));
        assert_eq!(
            verdict("fastcgi-socket", Some("/run/app.fcgi")),
            applied("fastcgi-socket", "unix:/run/app.fcgi")
        );
        assert_eq!(
            verdict("http", Some("[::1]:8000")),
            applied("http", "[::1]:8000")
        );
        assert_eq!(
            verdict("http-socket", Some("0.0.0.0:80")),
            applied("http", "0.0.0.0:80")
        );
        assert!(
            matches!(verdict("http", Some("8080")), Verdict::Invalid(m) if m.contains(":8080"))
        );
        assert!(matches!(
            verdict("http-socket", Some("@abstract")),
            Verdict::Invalid(_)
        ));
        assert_eq!(
            verdict("chmod-socket", None),
            applied("chmod-socket", "666")
        );
        assert_eq!(
            verdict("chmod-socket", Some("660")),
            applied("chmod-socket", "660")
        );
        assert!(matches!(
            verdict("chmod-socket", Some("rw")),
            Verdict::Invalid(_)
        ));
    }

    #[test]
    fn other_applied_options() {
        let cases = [
            ("listen", "128", "backlog", "128"),
            ("limit-post", "1048576", "limit-request-body", "1048576"),
            ("buffer-size", "32768", "buffer-size", "32768"),
            ("socket-timeout", "60", "socket-timeout", "60"),
            ("harakiri", "30", "harakiri", "30"),
            ("max-requests", "5000", "max-requests", "5000"),
            ("max-requests-delta", "50", "max-requests-jitter", "50"),
            ("max-worker-lifetime", "3600", "max-worker-lifetime", "3600"),
            ("reload-on-rss", "512", "reload-on-rss", "512"),
            ("touch-reload", "/srv/reload", "touch-reload", "/srv/reload"),
            ("master-fifo", "fifo", "master-fifo", "/srv/fifo"),
            ("pidfile", "/run/app.pid", "pidfile", "/run/app.pid"),
            ("home", "venv", "virtualenv", "/srv/venv"),
            ("pyhome", "/v", "virtualenv", "/v"),
            ("wsgi", "app:create()", "app", "app:create()"),
            ("module", "project/wsgi.py", "wsgi-file", "project/wsgi.py"),
            ("callable", "app", "callable", "app"),
            ("mount", "/admin=admin.py", "mount", "/admin=admin.py"),
            ("worker-reload-mercy", "15", "graceful-timeout", "15"),
            ("procname", "shop", "name", "shop"),
            ("optimize", "2", "env", "PYTHONOPTIMIZE=2"),
            ("log-format", "json", "log-format", "json"),
            ("reload-strategy", "respawn", "reload-strategy", "respawn"),
            ("graceful-timeout", "10", "graceful-timeout", "10"),
        ];
        for (key, value, name, want) in cases {
            assert_eq!(verdict(key, Some(value)), applied(name, want), "{key}");
        }
        assert!(is_unsupported(
            &verdict("log-format", Some("%(addr) %(uri)")),
            "stderr"
        ));
        assert!(matches!(
            verdict("pythonpath", Some("/srv/*/lib")),
            Verdict::Invalid(_)
        ));
        assert!(matches!(
            verdict("env", Some("NOEQUALS")),
            Verdict::Invalid(_)
        ));
    }

    #[test]
    fn log_files_map_and_udp_or_plugins_are_refused() {
        let base = Path::new("/srv/app");
        assert!(matches!(
            translate("logto", Some("logs/uwsgi.log"), base),
            Verdict::Applied(v) if v == vec![("error-logfile", "/srv/app/logs/uwsgi.log".to_owned())]
        ));
        assert!(matches!(
            translate("req-logger", Some("file:/var/log/req.log"), base),
            Verdict::Applied(v) if v == vec![("access-logfile", "/var/log/req.log".to_owned())]
        ));
        assert!(
            matches!(translate("logto", Some("127.0.0.1:1717"), base), Verdict::Invalid(e) if e.contains("UDP"))
        );
        assert!(
            matches!(translate("logger", Some("syslog:app"), base), Verdict::Invalid(e) if e.contains("file:"))
        );
    }

    #[test]
    fn unsupported_options_say_what_to_do() {
        for (key, text) in [
            ("uid", "User="),
            ("gid", "User="),
            ("daemonize", "foreground"),
            ("log-route", "docs/observability.md"),
            ("log-req-route", "docs/observability.md"),
            ("py-autoreload", "touch-reload"),
            ("offload-threads", "sendfile"),
            ("route", "router"),
            ("route-if", "router"),
            ("stats-push", "segue status"),
            ("fastcgi-nph-socket", "fastcgi-socket"),
            ("scgi-socket", "SCGI"),
            ("suwsgi-socket", "plain uwsgi protocol"),
            ("cron2", "cron MIN HOUR DAY MONTH WEEKDAY CMD"),
            ("legion-cron", "side processes"),
            ("cheaper-busyness-max", "spare and backlog"),
            ("emperor-on-demand-directory", "docs/emperor.md"),
            ("vassals-inherit", "docs/emperor.md"),
            ("gevent", "threads"),
            ("https", "TLS"),
            ("memory-report", "migrating-from-uwsgi"),
        ] {
            assert!(
                is_unsupported(&verdict(key, Some("x")), text),
                "{key}: {:?}",
                verdict(key, Some("x"))
            );
        }
    }

    #[test]
    fn every_catalog_option_has_a_verdict() {
        for name in names() {
            let v = verdict(name, Some("1"));
            assert!(!matches!(v, Verdict::Unknown { .. }), "{name}");
        }
        assert!(is_implied(&verdict("if-env", Some("X"))));
        assert!(is_implied(&verdict("set-placeholder", Some("a=b"))));
        assert!(is_unsupported(
            &verdict("for-glob", Some("*")),
            "ini reader"
        ));
    }
}
