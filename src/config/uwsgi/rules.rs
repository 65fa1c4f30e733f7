//! The rules behind [`translate`](super::translate): for each uWSGI option, the segue option it
//! sets, or why segue needs nothing, or what to do instead. One table serves the translation
//! and the migration guide.

/// How a value is turned into segue's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Conv {
    /// A whole number, as written.
    Count,
    /// Seconds, whole or not.
    Secs,
    /// Any non-empty text.
    Text,
    /// A path; relative ones are made absolute against the base directory.
    Path,
    /// A `sys.path` entry, as written (uWSGI takes it relative to the app's directory).
    PyPath,
    /// A listen address (uWSGI's bare `/path` is a unix socket).
    Listen,
    /// `KEY=VALUE`.
    Pair,
    /// `PREFIX=APP`.
    Mount,
    /// uWSGI's `module`: a module spec, or a file when it looks like one.
    Module,
    /// An octal mode; bare means 666, as in uWSGI.
    Mode,
    /// A boolean whose true means `access-log = false`.
    NoAccessLog,
    /// A number that becomes `env = PYTHONOPTIMIZE=N`.
    Optimize,
    /// A boolean; bare means true.
    Flag,
    /// A static-file path: relative ones are taken from `chdir` (where uWSGI's workers
    /// resolve them), so it is passed on as written.
    StaticPath,
    /// `logto`: a file path (made absolute); a UDP `host:port` is refused.
    LogFile,
    /// `logger` and `req-logger`: `file:PATH` (another plugin is refused).
    Logger,
}

/// What a uWSGI option is to segue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    /// Sets this segue option from the value.
    Apply(&'static str, Conv),
    /// segue always behaves so; `off` is the answer to turning it off.
    Implied {
        why: &'static str,
        off: &'static str,
    },
    /// Not available; the text says what to do.
    Unsupported(&'static str),
}

pub(super) const GENERIC: &str = "segue has no counterpart for it (docs/migrating-from-uwsgi.md lists what segue does for every uWSGI option)";
const OFF: &str = "segue always behaves as if this were on and cannot turn it off: remove the line";
const READER: &str = "read by segue's ini reader as uWSGI reads it; not an option of its own";

const UWSGI_VARIANTS: &str = "segue speaks the plain uwsgi protocol on its own sockets only: use socket = ADDR (one address per line) behind nginx's uwsgi_pass";
const LOGS: &str = "segue logs to stderr or to a file (logto, logger = file:PATH, req-logger = file:PATH; --log-level, --log-format text|json, --access-logformat with gunicorn's atoms; SIGUSR1 reopens the files): see docs/observability.md";
const SIDE: &str = "segue does not run side processes: run it as its own systemd service or timer";
const SCALE: &str = "segue's cheaper has the spare and backlog algorithms only (cheaper, cheaper-initial, cheaper-step, cheaper-overload, cheaper-idle, cheaper-algo): see docs/scaling.md";
const STATIC: &str = "segue serves static files with static-map, check-static, static-index, static-safe, static-expires, static-expires-uri, static-gzip and static-gzip-all only: use those, or serve the files from nginx";
const USER: &str = "segue does not switch user: start it as that user (systemd's User= and Group=)";
const AUTORELOAD: &str = "segue does not watch Python modules: use touch-reload, or a file watcher that runs `segue reload`";
const ROUTER: &str = "segue has no internal router: route in nginx, or in the app";
const TLS: &str = "segue does not terminate TLS: put nginx or another proxy in front for HTTPS";
const LOOPS: &str = "segue serves WSGI on threads, not on an async loop: use threads";
const BACKGROUND: &str = "segue has no spooler or mules: run background work in a task queue (Celery, RQ) or a separate service";
const FORMATS: &str = "segue reads ini files only (--ini): convert the file to ini";
const PROCNAME: &str = "use name to set segue's process title";

/// The rule of each uWSGI option segue has something specific to say about.
pub(super) const RULES: &[(&[&str], Rule)] = {
    use Conv::*;
    use Rule::*;
    &[
        (&["http-socket", "http"], Apply("http", Listen)),
        (&["socket", "uwsgi-socket"], Apply("socket", Listen)),
        (&["fastcgi-socket"], Apply("fastcgi-socket", Listen)),
        (&["processes", "workers"], Apply("workers", Count)),
        (&["threads"], Apply("threads", Count)),
        (&["chdir", "chdir2"], Apply("chdir", Path)),
        (
            &["pythonpath", "python-path", "pp"],
            Apply("pythonpath", PyPath),
        ),
        (
            &["virtualenv", "home", "venv", "pyhome"],
            Apply("virtualenv", Path),
        ),
        (&["env"], Apply("env", Pair)),
        (&["module", "wsgi"], Apply("app", Module)),
        (&["callable"], Apply("callable", Text)),
        (&["wsgi-file", "file"], Apply("wsgi-file", Text)),
        (&["eval"], Apply("eval", Text)),
        (&["mount"], Apply("mount", Mount)),
        (&["harakiri"], Apply("harakiri", Secs)),
        (&["max-requests"], Apply("max-requests", Count)),
        (&["max-requests-delta"], Apply("max-requests-jitter", Count)),
        (&["max-worker-lifetime"], Apply("max-worker-lifetime", Secs)),
        (
            &["max-worker-lifetime-delta"],
            Apply("max-worker-lifetime-jitter", Secs),
        ),
        (
            &["reload-on-rss", "evil-reload-on-rss"],
            Apply("reload-on-rss", Count),
        ),
        (
            &["touch-reload", "touch-workers-reload", "touch-chain-reload"],
            Apply("touch-reload", Path),
        ),
        (&["master-fifo"], Apply("master-fifo", Path)),
        (&["chmod-socket", "chmod"], Apply("chmod-socket", Mode)),
        (&["listen"], Apply("backlog", Count)),
        (
            &["pidfile", "pidfile2", "safe-pidfile", "safe-pidfile2"],
            Apply("pidfile", Path),
        ),
        (&["buffer-size"], Apply("buffer-size", Count)),
        (&["limit-post"], Apply("limit-request-body", Count)),
        (&["socket-timeout"], Apply("socket-timeout", Secs)),
        (
            &["worker-reload-mercy", "reload-mercy"],
            Apply("graceful-timeout", Secs),
        ),
        (&["procname", "procname-master"], Apply("name", Text)),
        (&["disable-logging"], Apply("access-log", NoAccessLog)),
        (&["logto", "logto2"], Apply("error-logfile", LogFile)),
        (&["logger"], Apply("error-logfile", Logger)),
        (
            &["req-logger", "logger-req"],
            Apply("access-logfile", Logger),
        ),
        (&["optimize"], Apply("env", Optimize)),
        (&["static-map"], Apply("static-map", StaticPath)),
        (
            &["check-static", "static-check"],
            Apply("check-static", StaticPath),
        ),
        (&["static-index"], Apply("static-index", Text)),
        (&["static-safe"], Apply("static-safe", StaticPath)),
        (&["static-expires"], Apply("static-expires", Text)),
        (&["static-expires-uri"], Apply("static-expires-uri", Text)),
        (&["static-gzip"], Apply("static-gzip", Text)),
        (&["static-gzip-all"], Apply("static-gzip-all", Flag)),
        (
            &["master"],
            Implied {
                why: "segue always runs a master",
                off: "segue always runs a master process and cannot serve without one: remove `master = false`",
            },
        ),
        (
            &["enable-threads"],
            Implied {
                why: "Python threads are always enabled in segue's workers",
                off: "segue's workers always have Python threads enabled: remove the line",
            },
        ),
        (
            &["single-interpreter"],
            Implied {
                why: "each segue worker runs exactly one Python interpreter",
                off: "segue runs one interpreter per worker and has no sub-interpreters: remove the line",
            },
        ),
        (
            &["lazy-apps", "lazy"],
            Implied {
                why: "segue imports the app in each worker unless --preload (then once per generation in a zygote, never in the master)",
                off: "uWSGI's non-lazy mode (the app loaded once, then forked) is segue's --preload, with a zygote per generation so that reloads still run new code: remove the line and pass --preload (SEGUE_PRELOAD=1)",
            },
        ),
        (
            &["die-on-term"],
            Implied {
                why: "SIGTERM always stops segue gracefully",
                off: "SIGTERM always stops segue gracefully; reload with `segue reload` instead: remove the line",
            },
        ),
        (
            &["need-app"],
            Implied {
                why: "a worker whose app fails to import never serves: segue logs the traceback and retries with backoff",
                off: OFF,
            },
        ),
        (
            &["vacuum"],
            Implied {
                why: "segue removes its unix sockets and pidfile at exit",
                off: OFF,
            },
        ),
        (
            &["strict"],
            Implied {
                why: "segue always refuses unknown option names",
                off: OFF,
            },
        ),
        (
            &["thunder-lock"],
            Implied {
                why: "segue's master spreads new connections over the workers: there is no thundering herd to serialize",
                off: OFF,
            },
        ),
        (
            &["manage-script-name"],
            Implied {
                why: "segue always splits a mount's prefix into SCRIPT_NAME and the rest of the path into PATH_INFO",
                off: OFF,
            },
        ),
        (
            &["py-call-osafterfork", "py-call-uwsgi-fork-hooks"],
            Implied {
                why: "segue's workers are fresh Python processes, or with --preload forked by os.fork(), which runs Python's own after-fork handling; signals and after-fork state are always Python's normal ones",
                off: OFF,
            },
        ),
        (
            &["post-buffering", "post-buffering-bufsize"],
            Implied {
                why: "segue reads up to 64 KiB of a request body before the app runs and streams the rest with backpressure (no setting)",
                off: OFF,
            },
        ),
        (
            &["no-orphans"],
            Implied {
                why: "segue's workers drain and exit when their master is gone",
                off: OFF,
            },
        ),
        (
            &[
                "plugins",
                "plugin",
                "need-plugin",
                "need-plugins",
                "plugins-dir",
                "plugin-dir",
                "autoload",
            ],
            Implied {
                why: "segue has Python (WSGI) and HTTP built in: there are no plugins to load",
                off: OFF,
            },
        ),
        (
            &["harakiri-verbose"],
            Implied {
                why: "segue always logs the Python stack of a request stopped by harakiri",
                off: OFF,
            },
        ),
        (
            &["http-keepalive"],
            Implied {
                why: "segue always keeps HTTP/1.1 connections alive; header-timeout bounds the idle time",
                off: OFF,
            },
        ),
        (
            &["http-auto-chunked"],
            Implied {
                why: "segue sends HTTP/1.1 responses without a Content-Length chunked",
                off: OFF,
            },
        ),
        (
            &["wsgi-env-behaviour", "wsgi-env-behavior"],
            Implied {
                why: "segue gives each request a fresh environ dict (uWSGI's `holy` behaviour)",
                off: OFF,
            },
        ),
        (
            &[
                "ini",
                "include",
                "inherit",
                "set",
                "set-placeholder",
                "set-ph",
                "for",
                "for-times",
                "for-readline",
                "endfor",
                "end-for",
                "endif",
                "end-if",
                "else",
            ],
            Implied {
                why: READER,
                off: OFF,
            },
        ),
        (
            &[
                "suwsgi-socket",
                "shared-socket",
                "undeferred-shared-socket",
                "zerg",
                "protocol",
                "socket-protocol",
                "abstract-socket",
            ],
            Unsupported(UWSGI_VARIANTS),
        ),
        (
            &[
                "fastcgi-nph-socket",
                "scgi-socket",
                "scgi-nph-socket",
                "raw-socket",
                "puwsgi-socket",
            ],
            Unsupported(
                "SCGI, raw and NPH FastCGI sockets are not supported: use fastcgi-socket or socket behind nginx, or listen with http-socket and proxy HTTP to it",
            ),
        ),
        (
            &["offload-threads"],
            Unsupported(
                "segue has no offload threads: wsgi.file_wrapper files are already sent with sendfile without holding a Python thread, and static-map files without taking one at all",
            ),
        ),
        (&["attach-daemon"], Apply("attach-daemon", Text)),
        (&["smart-attach-daemon"], Apply("smart-attach-daemon", Text)),
        (
            &["smart-attach-daemon2"],
            Apply("smart-attach-daemon2", Text),
        ),
        (&["cron"], Apply("cron", Text)),
        (&["unique-cron"], Apply("unique-cron", Text)),
        (&["cron-harakiri"], Apply("cron-harakiri", Secs)),
        (
            &["cron2"],
            Unsupported(
                "cron2's key=value form is not supported: use cron MIN HOUR DAY MONTH WEEKDAY CMD (uWSGI's -1/-N or crontab's syntax)",
            ),
        ),
        (&["attach-daemon2"], Apply("attach-daemon2", Text)),
        (
            &["attach-control-daemon", "legion-cron", "unique-legion-cron"],
            Unsupported(SIDE),
        ),
        (&["stats", "stats-server"], Apply("stats", Text)),
        (&["stats-http"], Apply("stats-http", Flag)),
        (&["emperor"], Apply("emperor", Text)),
        (&["emperor-freq"], Apply("emperor-freq", Secs)),
        (&["emperor-tyrant"], Apply("emperor-tyrant", Flag)),
        (&["cheap"], Apply("cheap", Flag)),
        (&["idle"], Apply("idle", Secs)),
        (&["die-on-idle"], Apply("die-on-idle", Flag)),
        (&["cheaper"], Apply("cheaper", Count)),
        (&["cheaper-initial"], Apply("cheaper-initial", Count)),
        (&["cheaper-step"], Apply("cheaper-step", Count)),
        (&["cheaper-overload"], Apply("cheaper-overload", Count)),
        (&["cheaper-idle"], Apply("cheaper-idle", Count)),
        (&["cheaper-algo"], Apply("cheaper-algo", Text)),
        (
            &[
                "stats-minified",
                "stats-min",
                "stats-push",
                "stats-pusher-default-freq",
                "stats-pushers-default-freq",
                "stats-no-cores",
                "stats-no-metrics",
            ],
            Unsupported(
                "segue serves uWSGI's stats document with stats = ADDR (and stats-http); for more, `segue status --json` on the --control socket",
            ),
        ),
        (
            &[
                "log-format",
                "logformat",
                "log-master",
                "log-reopen",
                "log-maxsize",
                "log-backupname",
                "log-date",
                "logdate",
                "log-4xx",
                "log-5xx",
                "log-slow",
                "log-big",
                "log-x-forwarded-for",
                "log-route",
                "log-req-route",
                "logfile-chown",
                "logfile-chmod",
            ],
            Unsupported(LOGS),
        ),
        (
            &["daemonize", "daemonize2"],
            Unsupported(
                "segue runs in the foreground: run it under systemd (Type=notify) or your supervisor instead of daemonizing",
            ),
        ),
        (
            &[
                "uid",
                "gid",
                "immediate-uid",
                "immediate-gid",
                "chown-socket",
                "master-as-root",
                "add-gid",
            ],
            Unsupported(USER),
        ),
        (
            &[
                "py-autoreload",
                "py-auto-reload",
                "python-autoreload",
                "python-auto-reload",
                "fs-reload",
                "fs-brutal-reload",
            ],
            Unsupported(AUTORELOAD),
        ),
        (
            &["spooler", "spooler-processes", "mule", "mules", "farm"],
            Unsupported(BACKGROUND),
        ),
        (
            &["cache", "cache2"],
            Unsupported("segue has no shared cache: use an external one (Redis, memcached)"),
        ),
        (
            &[
                "gevent",
                "async",
                "ugreen",
                "greenlet",
                "tornado",
                "asyncio",
                "stackless",
                "loop",
                "coroae",
                "fiber",
            ],
            Unsupported(LOOPS),
        ),
        (
            &[
                "import",
                "pyimport",
                "py-import",
                "python-import",
                "shared-import",
                "shared-pyimport",
                "shared-py-import",
                "shared-python-import",
            ],
            Unsupported("import it from your WSGI module instead"),
        ),
        (
            &[
                "paste",
                "paste-logger",
                "paste-name",
                "pecan",
                "ini-paste",
                "ini-paste-logged",
            ],
            Unsupported(
                "load it from a wsgi-file: `from paste.deploy import loadapp; application = loadapp('config:/path/app.ini')`",
            ),
        ),
        (
            &[
                "xml",
                "xmlconfig",
                "yaml",
                "json",
                "config",
                "sqlite3",
                "ldap",
            ],
            Unsupported(FORMATS),
        ),
        (
            &["declare-option", "declare-option2", "resolve"],
            Unsupported(
                "custom options and DNS placeholders are not supported: write out the options or the address",
            ),
        ),
        (
            &[
                "procname-prefix",
                "procname-prefix-spaced",
                "procname-append",
                "auto-procname",
            ],
            Unsupported(PROCNAME),
        ),
        (
            &["limit-as", "reload-on-as", "evil-reload-on-as"],
            Unsupported("segue bounds memory by resident size: use reload-on-rss (MB)"),
        ),
        (
            &["max-fd"],
            Unsupported("set the open-files limit in systemd (LimitNOFILE=) or with ulimit -n"),
        ),
        (
            &["umask"],
            Unsupported("set UMask= in the systemd unit, or run umask before segue"),
        ),
        (&["show-config"], Unsupported("use segue --print-config")),
        (
            &["add-header"],
            Unsupported("set the header in the app or in nginx"),
        ),
        (
            &["for-glob", "if-hostname-match", "if-not-hostname-match"],
            Unsupported(
                "refused by segue's ini reader: see docs/migrating-from-uwsgi.md for the supported config logic",
            ),
        ),
    ]
};

/// The emperor options segue lacks.
const EMPEROR: &str = "segue's emperor has emperor, emperor-freq and emperor-tyrant only (no on-demand vassals, stats, throttling or vassal templates): see docs/emperor.md";

/// Prefix families, for the options without a rule of their own.
const FAMILIES: &[(&str, &str)] = &[
    ("static-", STATIC),
    ("check-static", STATIC),
    ("cheaper", SCALE),
    ("emperor", EMPEROR),
    ("vassal", EMPEROR),
    ("route", ROUTER),
    ("response-route", ROUTER),
    ("final-route", ROUTER),
    ("error-route", ROUTER),
    ("https", TLS),
    ("http-to-https", TLS),
    ("ssl-", TLS),
    ("sni", TLS),
    ("spooler", BACKGROUND),
    ("mule", BACKGROUND),
    (
        "cache-",
        "segue has no shared cache: use an external one (Redis, memcached)",
    ),
    ("logger", LOGS),
    ("log-", LOGS),
    (
        "hook-",
        "run the command from the systemd unit (ExecStartPre=) or from the app",
    ),
    ("cron-", SIDE),
    (
        "legion",
        "segue has no legions: use your cluster manager's leader election",
    ),
    (
        "stats-",
        "use `segue status --json` on the --control socket",
    ),
    (
        "touch-",
        "segue watches only touch-reload files: run `segue reload` (or a signal) from your own watcher",
    ),
    (
        "fastrouter",
        "segue has no fastrouter: put nginx or another proxy in front",
    ),
    (
        "rawrouter",
        "segue has no rawrouter: put nginx or another proxy in front",
    ),
    ("sslrouter", TLS),
    ("gevent", LOOPS),
    ("ugreen", LOOPS),
    ("greenlet", LOOPS),
];

/// The rule of a catalog option.
pub(super) fn rule(name: &str) -> Rule {
    if let Some((_, r)) = RULES.iter().find(|(names, _)| names.contains(&name)) {
        return *r;
    }
    // Every other if-*/for-* is config logic the reader runs.
    if super::logic::opens(name) {
        return Rule::Implied {
            why: READER,
            off: OFF,
        };
    }
    match FAMILIES.iter().find(|(prefix, _)| name.starts_with(prefix)) {
        Some((_, text)) => Rule::Unsupported(text),
        None => Rule::Unsupported(GENERIC),
    }
}
