//! What each gunicorn setting means to segue: a segue option and value, nothing to do because
//! segue already behaves so, or a refusal that says what to do instead. The decisions are
//! gunicorn's semantics (config.py, and the code that reads each setting) checked against
//! segue's docs; docs/migrating-from-gunicorn.md is the table of them.

use crate::config::ListenAddr;
use crate::config::app::{AppSource, DEFAULT_CALLABLE};
use crate::config::entry::{Verdict, nearest};

use super::catalog::{self, Setting};

const HOOKS: &str = "segue runs gunicorn's worker hooks (post_fork, post_worker_init, \
     pre_request, post_request, worker_int, worker_exit) and the arbiter's on_starting, \
     when_ready, on_reload, on_exit and child_exit, but not this one: segue's master never runs \
     Python and has no moment for it; code that must run once per worker can go in post_fork \
     or segue.postfork (docs/python-api.md)";
const ABORT: &str = "segue's harakiri ends a stuck worker with SIGKILL, so worker_abort never \
     runs; the master logs the stuck request's Python stack instead";
const TLS: &str = "segue serves plain HTTP: terminate TLS in nginx, a load balancer or \
     another proxy in front, and listen on a local address or unix socket";
const TLS_ONLY: &str = "only used with certfile and keyfile (TLS), which segue leaves to the \
     proxy in front";
const RELOAD: &str = "segue does not watch the code: use --touch-reload FILE and touch the \
     file, or run `segue reload` from a file watcher (watchexec, entr); the reload is \
     graceful and rolls back if the new code fails to import";
const PY_LOGGING: &str = "segue's own logging is set by --log-level and --log-format; \
     configure Python logging in the app (logging.config.dictConfig at import)";
const METRICS: &str = "metrics come with segue's observability work; `segue status --json` \
     reports workers, requests and listeners meanwhile";
const SYSLOG_ONLY: &str = "only used with syslog, which segue does not do";
const ASGI_ONLY: &str = "only used by gunicorn's ASGI worker; segue serves WSGI apps";
const HTTP2_ONLY: &str = "only used with HTTP/2, which segue leaves to the proxy in front";
const DIRTY: &str = "gunicorn's dirty arbiters have no counterpart in segue; run long blocking \
     work in a task queue (Celery, RQ) or a separate service";
const DIRTY_ONLY: &str = "only used with dirty_workers, which segue does not have";
const GREEN: &str = "segue's workers are threaded and serve WSGI: gevent, eventlet and \
     tornado workers have no counterpart; use worker_class = \"gthread\" with threads = N";
const ASGI: &str = "segue serves WSGI apps only; an ASGI worker (uvicorn's, gunicorn's asgi) \
     cannot be served: point segue at the WSGI entry point (Django's wsgi.py, Flask's app) or \
     keep an ASGI server for ASGI apps";
const CUSTOM_WORKER: &str = "a custom worker class cannot run in segue, whose workers are its \
     own; use sync or gthread, with threads = N";

/// Names older gunicorn releases read and gunicorn 26 silently ignores, still found in
/// configs copied from old tutorials; each points at today's setting.
const RETIRED: &[(&str, &str)] = &[
    ("logfile", "errorlog"),
    ("log_file", "errorlog"),
    ("after_fork", "post_fork"),
    ("before_fork", "pre_fork"),
    ("before_exec", "pre_exec"),
];

/// segue's value for gunicorn's `limit_request_line = 0` ("unlimited"): gunicorn then caps
/// the line at its 1 MiB read buffer; segue takes a large finite limit instead, eight times
/// its 8190 default, so that a head still has a bound.
pub const UNLIMITED_REQUEST_LINE: u64 = 65536;
/// gunicorn's largest `limit_request_fields` (message.py `MAX_HEADERS`), which it also uses
/// for 0 and for anything above.
pub const MAX_REQUEST_FIELDS: u64 = 32768;
/// What gunicorn uses for `limit_request_field_size = 0` (message.py
/// `DEFAULT_MAX_HEADERFIELD_SIZE`): despite its docs, 0 is not unlimited.
pub const DEFAULT_FIELD_SIZE: u64 = 8190;

/// What segue makes of gunicorn setting `setting` (its config-file name such as `worker_class`,
/// or a flag as typed such as `-k`) with `value` as written (`None` for a bare flag).
///
/// Applied verdicts name segue's canonical options: `app`, `http`, `workers`, `threads`,
/// `worker-class`, `timeout` (gunicorn's, for the resolver to split into heartbeat-timeout
/// and, for sync workers, harakiri), `chdir`, `pythonpath`, `env`, `backlog`,
/// `forwarded-allow-ips`, `graceful-timeout`, `pidfile`, `log-level`, `access-log`,
/// `limit-request-*`, `header-timeout`, `worker-connections`, `max-requests`,
/// `max-requests-jitter`, `name`, `chmod-socket`, `control`, `check-config`, `print-config`.
/// `config` is Implied: the reader of `-c` consumes it, it sets nothing itself.
pub fn translate(setting: &str, value: Option<&str>) -> Verdict {
    let found = if setting.starts_with('-') {
        catalog::flag(setting)
    } else {
        catalog::setting(setting)
    };
    let Some(s) = found else {
        let retired = RETIRED.iter().find(|(old, _)| *old == setting);
        return Verdict::Unknown {
            nearest: match retired {
                Some((_, now)) => Some((*now).to_owned()),
                None => nearest(setting, catalog::names()),
            },
        };
    };
    let Some(v) = value.or(s.flag_value) else {
        return Verdict::Invalid(format!("{} needs a value", shown(s)));
    };
    match decide(s, v.trim()) {
        Ok(verdict) => verdict,
        Err(why) => Verdict::Invalid(format!("{} = {v:?}: {why}", s.name)),
    }
}

/// How a setting is named in messages: by its flag when it has one, as users type it.
fn shown(s: &Setting) -> &'static str {
    s.flags.last().copied().unwrap_or(s.name)
}

type Decided = Result<Verdict, String>;

fn one(option: &'static str, value: impl Into<String>) -> Decided {
    Ok(Verdict::Applied(vec![(option, value.into())]))
}

/// An off-by-default switch segue does not have: off is what segue does, on is refused.
fn off_or(v: &str, off: &'static str, on: &'static str) -> Decided {
    Ok(if boolean(v)? {
        Verdict::Unsupported(on)
    } else {
        Verdict::Implied(off)
    })
}

/// A setting segue does not have whose `default` (or an empty value) changes nothing.
fn default_or(v: &str, defaults: &[&str], off: &'static str, on: &'static str) -> Decided {
    let is_default = v.is_empty() || defaults.iter().any(|d| d.eq_ignore_ascii_case(v));
    Ok(if is_default {
        Verdict::Implied(off)
    } else {
        Verdict::Unsupported(on)
    })
}

fn decide(s: &Setting, v: &str) -> Decided {
    use Verdict::{Implied, Unsupported};
    if s.hook {
        if catalog::WORKER_HOOKS.contains(&s.name) && v.starts_with('/') {
            // The config reader gives a worker hook the path of the file that defines it.
            return one("gunicorn-hooks", v);
        }
        if catalog::MASTER_HOOKS.contains(&s.name) && v.starts_with('/') {
            return Ok(Verdict::Applied(vec![
                ("gunicorn-hooks", v.to_owned()),
                ("gunicorn-master-hook", s.name.to_owned()),
            ]));
        }
        if s.name == "worker_abort" {
            return Ok(Implied(ABORT));
        }
        return Ok(Unsupported(HOOKS));
    }
    match s.name {
        "config" => Ok(Implied(
            "read before every other setting, where it is named (-c on the command line or \
             in GUNICORN_CMD_ARGS); inside a config file it has no effect, as in gunicorn",
        )),
        "wsgi_app" => {
            AppSource::module(v, DEFAULT_CALLABLE).map_err(|e| e.to_string())?;
            one("app", v)
        }
        "bind" => one("http", bind(v)?),
        "backlog" => {
            let n = count(v)?;
            u32::try_from(n).map_err(|_| "the backlog must fit 32 bits".to_owned())?;
            one("backlog", n.to_string())
        }
        "workers" => one("workers", at_least_one(v)?),
        "threads" => one("threads", at_least_one(v)?),
        "worker_class" => worker_class(v),
        "worker_connections" => one("worker-connections", count(v)?.to_string()),
        "max_requests" => one("max-requests", count(v)?.to_string()),
        "max_requests_jitter" => one("max-requests-jitter", count(v)?.to_string()),
        "timeout" => one("timeout", seconds(v)?),
        "graceful_timeout" => one("graceful-timeout", seconds(v)?),
        "keepalive" => {
            let secs = seconds(v)?;
            if secs == "0" {
                return Ok(Unsupported(
                    "keepalive = 0 turns keep-alive off, which segue cannot do; connections \
                     stay open while idle up to --header-timeout (set keepalive to that many \
                     seconds)",
                ));
            }
            one("header-timeout", secs)
        }
        "limit_request_line" => match count(v)? {
            0 => one("limit-request-line", UNLIMITED_REQUEST_LINE.to_string()),
            n => one("limit-request-line", n.to_string()),
        },
        "limit_request_fields" => match count(v)? {
            n if n == 0 || n > MAX_REQUEST_FIELDS => {
                one("limit-request-fields", MAX_REQUEST_FIELDS.to_string())
            }
            n => one("limit-request-fields", n.to_string()),
        },
        "limit_request_field_size" => match count(v)? {
            0 => one("limit-request-field-size", DEFAULT_FIELD_SIZE.to_string()),
            n => one("limit-request-field-size", n.to_string()),
        },
        "reload" => off_or(v, "off, as in segue (reloads are asked for)", RELOAD),
        "reload_engine" => Ok(Implied("only used with reload, which segue does not do")),
        "reload_extra_files" => default_or(v, &[], "nothing to watch", RELOAD),
        "spew" => off_or(
            v,
            "off, as in segue",
            "segue has no line tracer; use py-spy dump --pid PID (or `py-spy top`) on a worker",
        ),
        "check_config" => one("check-config", boolean(v)?.to_string()),
        "print_config" => one("print-config", boolean(v)?.to_string()),
        "preload_app" => one("preload", boolean(v)?.to_string()),
        "sendfile" => Ok(if boolean(v)? {
            Implied("segue sends a wsgi.file_wrapper around a regular file with sendfile(2)")
        } else {
            Unsupported(
                "segue always sends a wsgi.file_wrapper around a regular file with \
                 sendfile(2); to avoid it, return the file's bytes instead of a file_wrapper",
            )
        }),
        "reuse_port" => off_or(
            v,
            "off, as in segue",
            "segue's master keeps its listening sockets across reloads and upgrades (`segue \
             upgrade`), so no second server needs to share the port; SO_REUSEPORT is not set",
        ),
        "chdir" => one("chdir", v),
        "daemon" => off_or(
            v,
            "off, as in segue: it stays in the foreground",
            "segue stays in the foreground: run it under systemd (docs/systemd.md), a container \
             runtime or a process supervisor",
        ),
        "raw_env" => match v.split_once('=') {
            Some((key, _)) if !key.is_empty() => one("env", v),
            _ => Err("expected KEY=VALUE".to_owned()),
        },
        "pidfile" => one("pidfile", v),
        "worker_tmp_dir" => Ok(Implied(
            "segue's workers heartbeat over their channel to the master, not through a \
             temporary file",
        )),
        "user" | "group" => Ok(Unsupported(
            "segue does not switch users: start it as that user and group (systemd's User= and \
             Group=, or the container's USER); to listen on a port below 1024, use socket \
             activation (docs/systemd.md)",
        )),
        "umask" => umask(v),
        "initgroups" => off_or(
            v,
            "off, as in segue",
            "segue does not switch users; set supplementary groups with systemd's \
             SupplementaryGroups=",
        ),
        "tmp_upload_dir" => Ok(Implied(
            "segue streams request bodies to the app; nothing is written to disk",
        )),
        "secure_scheme_headers" => secure_scheme_headers(v),
        "forwarded_allow_ips" => one("forwarded-allow-ips", v),
        "accesslog" => match v {
            "" => one("access-log", "false"),
            // "-" is stdout, as in gunicorn.
            _ => one("access-logfile", v),
        },
        "disable_redirect_access_to_syslog" => Ok(Implied(SYSLOG_ONLY)),
        "access_log_format" => {
            crate::logging::access::Format::parse(v).map_err(|e| e.to_string())?;
            one("access-logformat", v)
        }
        "errorlog" => match v {
            "-" | "" => Ok(Implied("segue logs to stderr")),
            _ => one("error-logfile", v),
        },
        "loglevel" => one("log-level", log_level(v)?),
        "capture_output" => one("capture-output", boolean(v)?.to_string()),
        "logger_class" => default_or(
            v,
            &["gunicorn.glogging.Logger", "simple"],
            "gunicorn's default logger; segue logs in its own way",
            PY_LOGGING,
        ),
        "logconfig" | "logconfig_json" => Ok(Unsupported(PY_LOGGING)),
        "logconfig_dict" => default_or(v, &["{}"], "empty, nothing to configure", PY_LOGGING),
        "syslog" => off_or(
            v,
            "off, as in segue",
            "segue logs to stderr: systemd's journal forwards it to syslog, or pipe it through \
             logger(1)",
        ),
        "syslog_addr" | "syslog_prefix" | "syslog_facility" => Ok(Implied(SYSLOG_ONLY)),
        "enable_stdio_inheritance" => Ok(Implied(
            "only used with daemon; segue stays in the foreground and its workers inherit \
             stdio",
        )),
        "statsd_host" => Ok(Unsupported(METRICS)),
        "statsd_prefix" | "dogstatsd_tags" => default_or(v, &[], "empty, nothing is sent", METRICS),
        "enable_backlog_metric" => off_or(v, "off, as in segue", METRICS),
        "proc_name" => one("name", v),
        "default_proc_name" => Ok(Implied("internal to gunicorn; set proc_name instead")),
        "pythonpath" => pythonpath(v),
        "paste" => Ok(Unsupported(
            "segue does not read PasteDeploy files: write a module that calls \
             paste.deploy.loadapp('config:/path/app.ini') and serve it as MODULE:app",
        )),
        "raw_paste_global_conf" => Ok(Implied("only used with paste, which segue does not read")),
        "proxy_protocol" => default_or(
            v,
            &["off", "false"],
            "off, as in segue",
            "segue does not read the PROXY protocol: have the proxy send X-Forwarded-Proto \
             (see --forwarded-allow-ips); the client address is the app's to take from \
             X-Forwarded-For",
        ),
        "proxy_allow_ips" => Ok(Implied("only used with proxy_protocol")),
        "protocol" => match v.to_ascii_lowercase().as_str() {
            "http" => Ok(Implied("segue speaks HTTP/1.x")),
            "uwsgi" => Ok(Unsupported(
                "segue speaks HTTP only: in nginx use proxy_pass http://... instead of \
                 uwsgi_pass",
            )),
            _ => Err("gunicorn takes http or uwsgi".to_owned()),
        },
        "uwsgi_allow_ips" => Ok(Implied("only used with protocol = uwsgi")),
        "keyfile" | "certfile" => Ok(Unsupported(TLS)),
        "ssl_version"
        | "cert_reqs"
        | "ca_certs"
        | "ciphers"
        | "suppress_ragged_eofs"
        | "do_handshake_on_connect" => Ok(Implied(TLS_ONLY)),
        "http_protocols" => {
            let only_h1 = v.split(',').all(|p| p.trim().eq_ignore_ascii_case("h1"));
            Ok(if only_h1 {
                Implied("segue serves HTTP/1.1")
            } else {
                Unsupported(
                    "segue serves HTTP/1.1; let the proxy in front speak HTTP/2 or HTTP/3 to \
                     clients",
                )
            })
        }
        "http2_cleartext" => default_or(
            v,
            &["off"],
            "off, as in segue",
            "segue serves HTTP/1.1 only; HTTP/2 (and h2c) is the proxy's to speak",
        ),
        "http2_max_concurrent_streams"
        | "http2_initial_window_size"
        | "http2_max_frame_size"
        | "http2_max_header_list_size" => Ok(Implied(HTTP2_ONLY)),
        "permit_obsolete_folding" => off_or(
            v,
            "off, as in segue: folded header lines get a 400",
            "segue refuses obsolete line folding (400) so that it and a proxy never disagree \
             on where a header ends; fix the client",
        ),
        "strip_header_spaces" => off_or(
            v,
            "off, as in segue: whitespace before a header's colon gets a 400",
            "segue refuses whitespace before a header's colon (400), a request smuggling \
             vector; fix the client",
        ),
        "permit_unconventional_http_method" => Ok(if boolean(v)? {
            Implied("segue passes any method token (RFC 9110) to the app")
        } else {
            Implied(
                "segue passes any method token (RFC 9110) to the app; it does not refuse \
                 unconventional ones as gunicorn does",
            )
        }),
        "permit_unconventional_http_version" => off_or(
            v,
            "off, as in segue: versions other than HTTP/1.0 and 1.1 get a 505",
            "segue answers versions other than HTTP/1.0 and 1.1 with 505",
        ),
        "casefold_http_method" => off_or(
            v,
            "off, as in segue: methods reach the app as sent",
            "segue passes methods as sent (they are case-sensitive); fix the client",
        ),
        "forwarder_headers" => default_or(
            v,
            &[],
            "empty, as in segue",
            "segue takes no environ keys from proxy headers: it drops headers with an \
             underscore; set SCRIPT_NAME by mounting the app under its prefix",
        ),
        "header_map" => match v.to_ascii_lowercase().as_str() {
            "drop" => Ok(Implied(
                "segue drops header names containing '_', as drop does",
            )),
            "refuse" | "dangerous" => Ok(Unsupported(
                "segue drops header names containing '_' (gunicorn's drop) and has no other \
                 mode",
            )),
            _ => Err("gunicorn takes drop, refuse or dangerous".to_owned()),
        },
        "asgi_loop"
        | "asgi_lifespan"
        | "asgi_disconnect_grace_period"
        | "http_parser"
        | "root_path" => Ok(Implied(ASGI_ONLY)),
        "dirty_apps" => default_or(v, &[], "none, as in segue", DIRTY),
        "dirty_workers" => Ok(if count(v)? == 0 {
            Implied("none, as in segue")
        } else {
            Unsupported(DIRTY)
        }),
        "dirty_timeout" | "dirty_threads" | "dirty_graceful_timeout" => Ok(Implied(DIRTY_ONLY)),
        "control_socket" => one("control", v),
        "control_socket_mode" => Ok(if count(v)? == 0o600 {
            Implied("segue's control socket is 0600, as gunicorn's default")
        } else {
            Unsupported("segue's control socket is always 0600 (owner only)")
        }),
        "control_socket_disable" => Ok(Implied(
            "segue opens a control socket only when --control PATH is given (control_socket \
             in a config file); gunicorn's default one in $XDG_RUNTIME_DIR has no counterpart",
        )),
        other => unreachable_setting(other),
    }
}

/// A catalog name without a decision above is a bug the catalog test catches; in release it
/// degrades to a refusal rather than a panic on user input.
fn unreachable_setting(name: &str) -> Decided {
    debug_assert!(false, "gunicorn setting {name} has no translation");
    Ok(Verdict::Unsupported(
        "this gunicorn setting is not handled by segue",
    ))
}

/// gunicorn's `validate_pos_int`: `int(value, 0)`, so decimal, `0x`, `0o` and `0b`.
fn count(v: &str) -> Result<u64, String> {
    let bad = || "expected a whole number of 0 or more".to_owned();
    let digits = v.replace('_', "");
    let (radix, digits) = match digits.get(..2).map(str::to_ascii_lowercase).as_deref() {
        Some("0x") => (16, &digits[2..]),
        Some("0o") => (8, &digits[2..]),
        Some("0b") => (2, &digits[2..]),
        _ => (10, digits.as_str()),
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err(bad());
    }
    u64::from_str_radix(digits, radix).map_err(|_| bad())
}

fn at_least_one(v: &str) -> Result<String, String> {
    match count(v)? {
        0 => Err("segue needs at least 1".to_owned()),
        n => Ok(n.to_string()),
    }
}

/// Seconds: gunicorn takes whole numbers; segue takes fractions too, so those pass as well.
fn seconds(v: &str) -> Result<String, String> {
    if let Ok(n) = count(v) {
        return Ok(n.to_string());
    }
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(v.to_owned()),
        _ => Err("expected a number of seconds, 0 or more".to_owned()),
    }
}

/// gunicorn's `validate_bool`: `true` or `false` in any case (Python's `True` arrives so).
fn boolean(v: &str) -> Result<bool, String> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err("expected true or false".to_owned())
    }
}

/// gunicorn's `parse_address` turned into segue's `--http` forms: `unix:` (with or without
/// `//`), `fd://N` (passed on), `tcp://` dropped, and a host without a port gets 8000.
fn bind(v: &str) -> Result<String, String> {
    if let Some(rest) = v.strip_prefix("unix:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        return Ok(format!("unix:{path}"));
    }
    if let Some(fd) = v.strip_prefix("fd://") {
        fd.parse::<u32>()
            .map_err(|_| format!("{fd:?} is not a file descriptor number"))?;
        return Ok(v.to_owned());
    }
    let netloc = v.strip_prefix("tcp://").unwrap_or(v);
    let addr = if netloc.is_empty() {
        "0.0.0.0:8000".to_owned()
    } else if let Some(rest) = netloc.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, "")) => format!("[{host}]:8000"),
            Some((_, port)) if port.starts_with(':') => netloc.to_owned(),
            _ => return Err("expected [IPV6]:PORT".to_owned()),
        }
    } else if netloc.contains(':') {
        netloc.to_owned()
    } else {
        format!("{netloc}:8000")
    };
    let addr = addr.to_ascii_lowercase();
    addr.parse::<ListenAddr>().map_err(|e| e.to_string())?;
    Ok(addr)
}

fn worker_class(v: &str) -> Decided {
    let lower = v.to_ascii_lowercase();
    let kind = match lower.as_str() {
        "sync" | "gunicorn.workers.sync.syncworker" => "sync",
        "gthread" | "gunicorn.workers.gthread.threadworker" => "gthread",
        "gevent" | "gevent_wsgi" | "gevent_pywsgi" | "eventlet" | "tornado" => {
            return Ok(Verdict::Unsupported(GREEN));
        }
        "asgi" => return Ok(Verdict::Unsupported(ASGI)),
        _ if lower.contains("uvicorn") || lower.contains("asgi") => {
            return Ok(Verdict::Unsupported(ASGI));
        }
        _ if ["ggevent", "geventlet", "gtornado", "gevent", "eventlet"]
            .iter()
            .any(|g| lower.contains(g)) =>
        {
            return Ok(Verdict::Unsupported(GREEN));
        }
        _ => return Ok(Verdict::Unsupported(CUSTOM_WORKER)),
    };
    one("worker-class", kind)
}

/// gunicorn creates its unix sockets under `umask` (sock.py), so their mode is
/// `0o777 & !umask`: segue's `--chmod-socket` sets that mode directly.
fn umask(v: &str) -> Decided {
    // Python's int(value, 0) refuses "022", but anyone typing it on a command line means
    // octal, so a leading 0 reads as octal here; a config file's 0o22 arrives as 18.
    let legacy_octal = v.len() > 1 && v.starts_with('0') && v.bytes().all(|b| b.is_ascii_digit());
    let mask = if legacy_octal {
        u64::from_str_radix(&v[1..], 8)
            .map_err(|_| "expected an octal mask such as 0o007".to_owned())?
    } else {
        count(v)?
    };
    if mask > 0o777 {
        return Err("a umask is at most 0o777".to_owned());
    }
    one("chmod-socket", format!("{:o}", 0o777 & !mask))
}

/// gunicorn's default, which is also exactly the set segue trusts (docs/configuration.md).
fn secure_scheme_headers(v: &str) -> Decided {
    let expected = [
        ("x-forwarded-protocol", "ssl"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-ssl", "on"),
    ];
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(v)
        .map_err(|_| "expected a dict of header names to values".to_owned())?;
    let same = map.len() == expected.len()
        && expected.iter().all(|(name, value)| {
            map.iter().any(|(k, x)| {
                k.eq_ignore_ascii_case(name)
                    && x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(value))
            })
        });
    Ok(if same {
        Verdict::Implied("gunicorn's default headers, which segue trusts the same way")
    } else {
        Verdict::Unsupported(
            "segue trusts exactly X-Forwarded-Proto: https, X-Forwarded-Protocol: ssl and \
             X-Forwarded-Ssl: on (gunicorn's default); have the proxy send one of those",
        )
    })
}

/// gunicorn's log levels; `warning` and `critical` have no tracing level of their own.
fn log_level(v: &str) -> Result<&'static str, String> {
    match v.to_ascii_lowercase().as_str() {
        "debug" => Ok("debug"),
        "info" => Ok("info"),
        "warning" | "warn" => Ok("warn"),
        "error" | "critical" => Ok("error"),
        _ => Err("gunicorn takes debug, info, warning, error or critical".to_owned()),
    }
}

/// gunicorn's comma-separated list, one segue `--pythonpath` per directory.
fn pythonpath(v: &str) -> Decided {
    let dirs: Vec<_> = v
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| ("pythonpath", d.to_owned()))
        .collect();
    Ok(if dirs.is_empty() {
        Verdict::Implied("empty, nothing to add")
    } else {
        Verdict::Applied(dirs)
    })
}

#[cfg(test)]
mod tests;
