//! Every setting gunicorn 26 knows (`gunicorn/config.py`), as facts: its name, the command-line
//! flags that set it, whether a flag takes a value, and whether it is a server hook. The CLI
//! parser asks [`flag`] which setting `-b` is, the config reader asks [`setting`] whether a
//! module-level name is one, and typo hints search [`names`].

use crate::config::entry::Arity::{self, Flag, Optional, Value};

/// One gunicorn setting as gunicorn declares it, so that segue can parse gunicorn's command
/// line and recognise its config-file names without importing gunicorn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The setting's name in `gunicorn.conf.py` (`worker_class`).
    pub name: &'static str,
    /// Its command-line flags as gunicorn spells them (`-k`, `--worker-class`); empty for
    /// settings only a config file can set (`wsgi_app`, hooks).
    pub flags: &'static [&'static str],
    /// Whether a flag takes the next word: `Flag` for gunicorn's store_true and store_const
    /// actions, `Optional` for `nargs="?"`, `Value` otherwise.
    pub arity: Arity,
    /// For a bare flag, the value it sets (`"true"`; `"false"` for `--no-sendfile`).
    pub flag_value: Option<&'static str>,
    /// The flag may be given several times and each adds a value (gunicorn's `append`
    /// action: `-b`, `-e`); in a config file the setting is a list.
    pub repeatable: bool,
    /// A callable run by gunicorn's arbiter or worker (`post_fork`); only a config file can
    /// set one, and its value is a function.
    pub hook: bool,
    /// The section of gunicorn's settings documentation, to group the migration table.
    pub section: &'static str,
}

#[allow(clippy::too_many_arguments)] // reason: one row of a table, read column by column
const fn s(
    name: &'static str,
    flags: &'static [&'static str],
    arity: Arity,
    flag_value: Option<&'static str>,
    repeatable: bool,
    hook: bool,
    section: &'static str,
) -> Setting {
    Setting {
        name,
        flags,
        arity,
        flag_value,
        repeatable,
        hook,
        section,
    }
}

/// gunicorn's settings in the order of its documentation (gunicorn 26.1, config.py). Columns:
/// name, flags, arity, value of the bare flag, repeatable, hook, section.
#[rustfmt::skip]
pub static SETTINGS: &[Setting] = &[
    s("config", &["-c", "--config"], Value, None, false, false, "Config File"),
    s("wsgi_app", &[], Value, None, false, false, "Config File"),
    s("bind", &["-b", "--bind"], Value, None, true, false, "Server Socket"),
    s("backlog", &["--backlog"], Value, None, false, false, "Server Socket"),
    s("workers", &["-w", "--workers"], Value, None, false, false, "Worker Processes"),
    s("worker_class", &["-k", "--worker-class"], Value, None, false, false, "Worker Processes"),
    s("threads", &["--threads"], Value, None, false, false, "Worker Processes"),
    s("worker_connections", &["--worker-connections"], Value, None, false, false, "Worker Processes"),
    s("max_requests", &["--max-requests"], Value, None, false, false, "Worker Processes"),
    s("max_requests_jitter", &["--max-requests-jitter"], Value, None, false, false, "Worker Processes"),
    s("timeout", &["-t", "--timeout"], Value, None, false, false, "Worker Processes"),
    s("graceful_timeout", &["--graceful-timeout"], Value, None, false, false, "Worker Processes"),
    s("keepalive", &["--keep-alive"], Value, None, false, false, "Worker Processes"),
    s("limit_request_line", &["--limit-request-line"], Value, None, false, false, "Security"),
    s("limit_request_fields", &["--limit-request-fields"], Value, None, false, false, "Security"),
    s("limit_request_field_size", &["--limit-request-field_size"], Value, None, false, false, "Security"),
    s("reload", &["--reload"], Flag, Some("true"), false, false, "Debugging"),
    s("reload_engine", &["--reload-engine"], Value, None, false, false, "Debugging"),
    s("reload_extra_files", &["--reload-extra-file"], Value, None, true, false, "Debugging"),
    s("spew", &["--spew"], Flag, Some("true"), false, false, "Debugging"),
    s("check_config", &["--check-config"], Flag, Some("true"), false, false, "Debugging"),
    s("print_config", &["--print-config"], Flag, Some("true"), false, false, "Debugging"),
    s("preload_app", &["--preload"], Flag, Some("true"), false, false, "Server Mechanics"),
    s("sendfile", &["--no-sendfile"], Flag, Some("false"), false, false, "Server Mechanics"),
    s("reuse_port", &["--reuse-port"], Flag, Some("true"), false, false, "Server Mechanics"),
    s("chdir", &["--chdir"], Value, None, false, false, "Server Mechanics"),
    s("daemon", &["-D", "--daemon"], Flag, Some("true"), false, false, "Server Mechanics"),
    s("raw_env", &["-e", "--env"], Value, None, true, false, "Server Mechanics"),
    s("pidfile", &["-p", "--pid"], Value, None, false, false, "Server Mechanics"),
    s("worker_tmp_dir", &["--worker-tmp-dir"], Value, None, false, false, "Server Mechanics"),
    s("user", &["-u", "--user"], Value, None, false, false, "Server Mechanics"),
    s("group", &["-g", "--group"], Value, None, false, false, "Server Mechanics"),
    s("umask", &["-m", "--umask"], Value, None, false, false, "Server Mechanics"),
    s("initgroups", &["--initgroups"], Flag, Some("true"), false, false, "Server Mechanics"),
    s("tmp_upload_dir", &[], Value, None, false, false, "Server Mechanics"),
    s("secure_scheme_headers", &[], Value, None, false, false, "Server Mechanics"),
    s("forwarded_allow_ips", &["--forwarded-allow-ips"], Value, None, false, false, "Server Mechanics"),
    s("accesslog", &["--access-logfile"], Value, None, false, false, "Logging"),
    s("disable_redirect_access_to_syslog", &["--disable-redirect-access-to-syslog"], Flag, Some("true"), false, false, "Logging"),
    s("access_log_format", &["--access-logformat"], Value, None, false, false, "Logging"),
    s("errorlog", &["--error-logfile", "--log-file"], Value, None, false, false, "Logging"),
    s("loglevel", &["--log-level"], Value, None, false, false, "Logging"),
    s("capture_output", &["--capture-output"], Flag, Some("true"), false, false, "Logging"),
    s("logger_class", &["--logger-class"], Value, None, false, false, "Logging"),
    s("logconfig", &["--log-config"], Value, None, false, false, "Logging"),
    s("logconfig_dict", &[], Value, None, false, false, "Logging"),
    s("logconfig_json", &["--log-config-json"], Value, None, false, false, "Logging"),
    s("syslog_addr", &["--log-syslog-to"], Value, None, false, false, "Logging"),
    s("syslog", &["--log-syslog"], Flag, Some("true"), false, false, "Logging"),
    s("syslog_prefix", &["--log-syslog-prefix"], Value, None, false, false, "Logging"),
    s("syslog_facility", &["--log-syslog-facility"], Value, None, false, false, "Logging"),
    s("enable_stdio_inheritance", &["-R", "--enable-stdio-inheritance"], Flag, Some("true"), false, false, "Logging"),
    s("statsd_host", &["--statsd-host"], Value, None, false, false, "Logging"),
    s("dogstatsd_tags", &["--dogstatsd-tags"], Value, None, false, false, "Logging"),
    s("statsd_prefix", &["--statsd-prefix"], Value, None, false, false, "Logging"),
    s("enable_backlog_metric", &["--enable-backlog-metric"], Flag, Some("true"), false, false, "Logging"),
    s("proc_name", &["-n", "--name"], Value, None, false, false, "Process Naming"),
    s("default_proc_name", &[], Value, None, false, false, "Process Naming"),
    s("pythonpath", &["--pythonpath"], Value, None, false, false, "Server Mechanics"),
    s("paste", &["--paste", "--paster"], Value, None, false, false, "Server Mechanics"),
    s("on_starting", &[], Value, None, false, true, "Server Hooks"),
    s("on_reload", &[], Value, None, false, true, "Server Hooks"),
    s("when_ready", &[], Value, None, false, true, "Server Hooks"),
    s("pre_fork", &[], Value, None, false, true, "Server Hooks"),
    s("post_fork", &[], Value, None, false, true, "Server Hooks"),
    s("post_worker_init", &[], Value, None, false, true, "Server Hooks"),
    s("worker_int", &[], Value, None, false, true, "Server Hooks"),
    s("worker_abort", &[], Value, None, false, true, "Server Hooks"),
    s("pre_exec", &[], Value, None, false, true, "Server Hooks"),
    s("pre_request", &[], Value, None, false, true, "Server Hooks"),
    s("post_request", &[], Value, None, false, true, "Server Hooks"),
    s("child_exit", &[], Value, None, false, true, "Server Hooks"),
    s("worker_exit", &[], Value, None, false, true, "Server Hooks"),
    s("nworkers_changed", &[], Value, None, false, true, "Server Hooks"),
    s("on_exit", &[], Value, None, false, true, "Server Hooks"),
    s("ssl_context", &[], Value, None, false, true, "Server Hooks"),
    s("proxy_protocol", &["--proxy-protocol"], Optional, None, false, false, "Server Mechanics"),
    s("proxy_allow_ips", &["--proxy-allow-from"], Value, None, false, false, "Server Mechanics"),
    s("protocol", &["--protocol"], Value, None, false, false, "Server Mechanics"),
    s("uwsgi_allow_ips", &["--uwsgi-allow-from"], Value, None, false, false, "Server Mechanics"),
    s("keyfile", &["--keyfile"], Value, None, false, false, "SSL"),
    s("certfile", &["--certfile"], Value, None, false, false, "SSL"),
    s("ssl_version", &["--ssl-version"], Value, None, false, false, "SSL"),
    s("cert_reqs", &["--cert-reqs"], Value, None, false, false, "SSL"),
    s("ca_certs", &["--ca-certs"], Value, None, false, false, "SSL"),
    s("suppress_ragged_eofs", &["--suppress-ragged-eofs"], Flag, Some("true"), false, false, "SSL"),
    s("do_handshake_on_connect", &["--do-handshake-on-connect"], Flag, Some("true"), false, false, "SSL"),
    s("ciphers", &["--ciphers"], Value, None, false, false, "SSL"),
    s("http_protocols", &["--http-protocols"], Value, None, false, false, "HTTP/2"),
    s("http2_cleartext", &["--http2-cleartext"], Value, None, false, false, "HTTP/2"),
    s("http2_max_concurrent_streams", &["--http2-max-concurrent-streams"], Value, None, false, false, "HTTP/2"),
    s("http2_initial_window_size", &["--http2-initial-window-size"], Value, None, false, false, "HTTP/2"),
    s("http2_max_frame_size", &["--http2-max-frame-size"], Value, None, false, false, "HTTP/2"),
    s("http2_max_header_list_size", &["--http2-max-header-list-size"], Value, None, false, false, "HTTP/2"),
    s("raw_paste_global_conf", &["--paste-global"], Value, None, true, false, "Server Mechanics"),
    s("permit_obsolete_folding", &["--permit-obsolete-folding"], Flag, Some("true"), false, false, "Server Mechanics"),
    s("strip_header_spaces", &["--strip-header-spaces"], Flag, Some("true"), false, false, "Server Mechanics"),
    s("permit_unconventional_http_method", &["--permit-unconventional-http-method"], Flag, Some("true"), false, false, "Server Mechanics"),
    s("permit_unconventional_http_version", &["--permit-unconventional-http-version"], Flag, Some("true"), false, false, "Server Mechanics"),
    s("casefold_http_method", &["--casefold-http-method"], Flag, Some("true"), false, false, "Server Mechanics"),
    s("forwarder_headers", &["--forwarder-headers"], Value, None, false, false, "Server Mechanics"),
    s("header_map", &["--header-map"], Value, None, false, false, "Server Mechanics"),
    s("asgi_loop", &["--asgi-loop"], Value, None, false, false, "Worker Processes"),
    s("asgi_lifespan", &["--asgi-lifespan"], Value, None, false, false, "Worker Processes"),
    s("asgi_disconnect_grace_period", &["--asgi-disconnect-grace-period"], Value, None, false, false, "Worker Processes"),
    s("http_parser", &["--http-parser"], Value, None, false, false, "Worker Processes"),
    s("root_path", &["--root-path"], Value, None, false, false, "Server Mechanics"),
    s("dirty_apps", &["--dirty-app"], Value, None, true, false, "Dirty Arbiters"),
    s("dirty_workers", &["--dirty-workers"], Value, None, false, false, "Dirty Arbiters"),
    s("dirty_timeout", &["--dirty-timeout"], Value, None, false, false, "Dirty Arbiters"),
    s("dirty_threads", &["--dirty-threads"], Value, None, false, false, "Dirty Arbiters"),
    s("dirty_graceful_timeout", &["--dirty-graceful-timeout"], Value, None, false, false, "Dirty Arbiters"),
    s("on_dirty_starting", &[], Value, None, false, true, "Dirty Arbiter Hooks"),
    s("dirty_post_fork", &[], Value, None, false, true, "Dirty Arbiter Hooks"),
    s("dirty_worker_init", &[], Value, None, false, true, "Dirty Arbiter Hooks"),
    s("dirty_worker_exit", &[], Value, None, false, true, "Dirty Arbiter Hooks"),
    s("control_socket", &["--control-socket"], Value, None, false, false, "Control"),
    s("control_socket_mode", &["--control-socket-mode"], Value, None, false, false, "Control"),
    s("control_socket_disable", &["--no-control-socket"], Flag, Some("true"), false, false, "Control"),
];

/// The setting named `name` in a config file (exact, as gunicorn matches it: `Workers` is not
/// `workers`).
pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// The setting a command-line flag sets, typed as `-b` or `--bind` (without `=value`). A long
/// flag's `_` and `-` count as the same, so `--limit-request-field-size` finds gunicorn's
/// `--limit-request-field_size`. gunicorn's argparse also takes unambiguous prefixes
/// (`--work`); segue does not, so that a new flag never changes what an old one meant.
pub fn flag(flag: &str) -> Option<&'static Setting> {
    let long = flag.starts_with("--");
    SETTINGS.iter().find(|s| {
        s.flags.iter().any(|f| {
            if long {
                same_long_flag(f, flag)
            } else {
                *f == flag
            }
        })
    })
}

fn same_long_flag(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (x == b'_' && y == b'-') || (x == b'-' && y == b'_'))
}

/// Every setting name and every long flag, the candidates when a typed name is unknown
/// ([`nearest`](crate::config::entry::nearest)).
pub fn names() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().flat_map(|s| {
        std::iter::once(s.name).chain(s.flags.iter().copied().filter(|f| f.starts_with("--")))
    })
}

/// The server hooks gunicorn runs in a worker, which segue's workers run too (the config file
/// is run again in each worker; see docs/python-api.md).
pub const WORKER_HOOKS: [&str; 6] = [
    "post_fork",
    "post_worker_init",
    "worker_int",
    "pre_request",
    "post_request",
    "worker_exit",
];

/// The arbiter's hooks segue's master runs, each in a short-lived process of the app's
/// interpreter (the master never runs Python): before the first worker starts (waited for),
/// when the first generation is ready, when a reload starts, when a stop starts, when a worker
/// has exited.
pub const MASTER_HOOKS: [&str; 5] = [
    "on_starting",
    "when_ready",
    "on_reload",
    "on_exit",
    "child_exit",
];

/// Whether `name` is a server hook, or one letter or two from one (`post_forks`): a config
/// reader reports such a callable so that a misspelt hook is not silently dropped.
pub fn is_hook_or_near(name: &str) -> bool {
    let hooks = || SETTINGS.iter().filter(|s| s.hook).map(|s| s.name);
    hooks().any(|h| h == name) || crate::config::entry::nearest(name, hooks()).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_listed_once() {
        assert_eq!(SETTINGS.len(), 119);
        let mut names: Vec<_> = SETTINGS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SETTINGS.len());
    }

    #[test]
    fn flags_find_their_setting_as_typed() {
        assert_eq!(flag("-b").map(|s| s.name), Some("bind"));
        assert_eq!(flag("--bind").map(|s| s.name), Some("bind"));
        assert_eq!(flag("-w").map(|s| s.name), Some("workers"));
        assert_eq!(flag("-p").map(|s| s.name), Some("pidfile"));
        assert_eq!(flag("--pid").map(|s| s.name), Some("pidfile"));
        assert_eq!(flag("--log-file").map(|s| s.name), Some("errorlog"));
        assert_eq!(flag("--paster").map(|s| s.name), Some("paste"));
        assert_eq!(flag("--keep-alive").map(|s| s.name), Some("keepalive"));
        assert_eq!(
            flag("--limit-request-field-size").map(|s| s.name),
            Some("limit_request_field_size")
        );
        assert_eq!(flag("--work"), None);
        assert_eq!(flag("-B"), None);
    }

    #[test]
    fn arity_follows_gunicorns_actions() {
        assert_eq!(flag("--preload").map(|s| s.arity), Some(Flag));
        assert_eq!(
            flag("--no-sendfile").and_then(|s| s.flag_value),
            Some("false")
        );
        assert_eq!(flag("--daemon").and_then(|s| s.flag_value), Some("true"));
        assert_eq!(flag("--proxy-protocol").map(|s| s.arity), Some(Optional));
        assert_eq!(flag("-t").map(|s| s.arity), Some(Value));
        assert!(flag("-b").is_some_and(|s| s.repeatable));
        assert!(flag("-e").is_some_and(|s| s.repeatable));
    }

    #[test]
    fn hooks_are_callables_only_a_file_can_set() {
        for name in [
            "on_starting",
            "post_fork",
            "when_ready",
            "pre_request",
            "worker_int",
            "on_exit",
        ] {
            let s = setting(name).expect(name);
            assert!(s.hook && s.flags.is_empty(), "{name}");
        }
        assert!(!setting("workers").is_some_and(|s| s.hook));
        assert!(is_hook_or_near("post_forks"));
        assert!(!is_hook_or_near("helper"));
    }

    #[test]
    fn names_offer_settings_and_long_flags() {
        let all: Vec<_> = names().collect();
        assert!(all.contains(&"graceful_timeout") && all.contains(&"--keep-alive"));
        assert!(!all.contains(&"-b"));
        let near = |t| crate::config::entry::nearest(t, names());
        assert_eq!(
            near("grateful_timeout").as_deref(),
            Some("graceful_timeout")
        );
        assert_eq!(near("keep_alive").as_deref(), Some("keepalive"));
    }
}
