//! The options of the server itself: its sources, the app, listening, workers, logging, requests,
//! static files, reloads, recycling and limits.

use super::{Kind, OnReload, Opt};

/// These options, in `--help` order.
pub static CORE: &[Opt] = &[
    // Configuration sources and modes.
    opt!(
        "ini",
        None,
        Text,
        true,
        None,
        "FILE[:SECTION]",
        Control,
        "Read a uWSGI ini file ([uwsgi] section by default; repeatable; also SEGUE_INI)"
    ),
    opt!(
        "config",
        Some('c'),
        Text,
        false,
        None,
        "FILE",
        Control,
        "Read segue.toml, gunicorn.conf.py, python:MODULE or a .ini file [default: ./gunicorn.conf.py if present]"
    ),
    opt!(
        "print-config",
        None,
        Bool,
        false,
        None,
        "",
        Control,
        "Print the effective settings (and every option that is implied, unsupported or unknown) as JSON, then exit"
    ),
    opt!(
        "check-config",
        None,
        Bool,
        false,
        None,
        "",
        Control,
        "Import the app in its interpreter once, then exit 0 if it loads and 1 if not"
    ),
    opt!(
        "ignore-unsupported",
        None,
        Bool,
        false,
        Some("false"),
        "",
        Applies,
        "Start even if the configuration has options segue does not support (they are listed and ignored)"
    ),
    // The app.
    opt!(
        "app",
        None,
        Text,
        false,
        None,
        "APP",
        Applies,
        "The WSGI app: MODULE[:NAME], MODULE:FACTORY(ARGS) or a .py file (also the positional APP; uWSGI's module)"
    ),
    opt!(
        "callable",
        None,
        Text,
        false,
        Some("application"),
        "NAME",
        Applies,
        "The callable to serve when APP, --wsgi-file or --eval names none"
    ),
    opt!(
        "gunicorn-hooks",
        None,
        Text,
        false,
        None,
        "FILE",
        Applies,
        "Run the worker-side server hooks (post_fork, post_worker_init, pre_request, post_request, worker_int, worker_exit) of this gunicorn config file in every worker; set by -c gunicorn.conf.py when it defines them (see docs/python-api.md)"
    ),
    opt!(
        "gunicorn-master-hook",
        None,
        Text,
        true,
        None,
        "NAME",
        Applies,
        "A gunicorn arbiter hook of the --gunicorn-hooks file to run (on_starting, when_ready, on_reload, on_exit, child_exit), each in a short-lived process of the app's interpreter; set by -c gunicorn.conf.py when it defines them (repeatable)"
    ),
    opt!(
        "uwsgi-compat",
        None,
        Bool,
        false,
        None,
        "",
        Applies,
        "Give the app importable uwsgi and uwsgidecorators modules with uWSGI's post-fork API (post_fork_hook, @postfork, worker_id, numproc, masterpid, opt); see docs/python-api.md"
    ),
    opt!(
        "wsgi-file",
        None,
        Text,
        false,
        None,
        "PATH",
        Applies,
        "Load the app from this Python file"
    ),
    opt!(
        "eval",
        None,
        Text,
        false,
        None,
        "CODE",
        Applies,
        "Run this Python code as the app's module and serve its callable (uWSGI's eval)"
    ),
    opt!(
        "mount",
        None,
        Text,
        true,
        None,
        "PREFIX=APP",
        Applies,
        "Serve APP (a module spec or a .py/.wsgi file) under the URL prefix PREFIX (repeatable)"
    ),
    opt!(
        "chdir",
        None,
        Text,
        false,
        None,
        "DIR",
        Applies,
        "Change to this directory before loading the app (also put first on sys.path)"
    ),
    opt!(
        "pythonpath",
        None,
        Text,
        true,
        None,
        "DIR",
        Applies,
        "Add this directory to sys.path (repeatable; commas separate several on the command line)"
    ),
    opt!(
        "virtualenv",
        None,
        Text,
        false,
        None,
        "DIR",
        Applies,
        "Run the app in this virtualenv [default: $VIRTUAL_ENV if set]"
    ),
    opt!(
        "env",
        Some('e'),
        Text,
        true,
        None,
        "KEY=VALUE",
        Applies,
        "Set an environment variable in the workers (repeatable)"
    ),
    // Listening.
    opt!(
        "http",
        Some('b'),
        Text,
        true,
        Some("127.0.0.1:8000"),
        "ADDR",
        NeedsRestart,
        "Listen on HOST:PORT, :PORT, [::1]:PORT or unix:/path (repeatable; gunicorn's --bind, uWSGI's http-socket)"
    ),
    opt!(
        "socket",
        Some('s'),
        Text,
        true,
        None,
        "ADDR",
        NeedsRestart,
        "Listen for the uwsgi protocol (nginx's uwsgi_pass) on HOST:PORT, :PORT, unix:/path or /path (repeatable; uWSGI's socket)"
    ),
    opt!(
        "fastcgi-socket",
        None,
        Text,
        true,
        None,
        "ADDR",
        NeedsRestart,
        "Listen for FastCGI (nginx's fastcgi_pass, keep-conn included) on HOST:PORT, :PORT, unix:/path or /path (repeatable; uWSGI's fastcgi-socket)"
    ),
    opt!(
        "backlog",
        None,
        Count,
        false,
        Some("1024"),
        "N",
        NeedsRestart,
        "Length of the kernel accept queue of each listener (uWSGI's listen)"
    ),
    opt!(
        "chmod-socket",
        None,
        Text,
        false,
        None,
        "MODE",
        NeedsRestart,
        "Permissions of the unix sockets segue creates, in octal (e.g. 660) [default: from the umask]"
    ),
    opt!(
        "forwarded-allow-ips",
        None,
        Text,
        false,
        Some("127.0.0.1,::1"),
        "LIST",
        Applies,
        "Addresses or networks (comma-separated, or '*') whose X-Forwarded-Proto/-Protocol/-Ssl set wsgi.url_scheme"
    ),
    // Processes.
    opt!(
        "workers",
        Some('w'),
        Count,
        false,
        Some("1"),
        "N",
        Applies,
        "Number of worker processes (uWSGI's processes; also WEB_CONCURRENCY)"
    ),
    opt!(
        "threads",
        None,
        Count,
        false,
        Some("1"),
        "N",
        Applies,
        "Python threads per worker"
    ),
    opt!(
        "no-inline",
        None,
        Bool,
        false,
        Some("false"),
        "",
        Applies,
        "With one thread per worker, run the app on a Python thread of its own instead of on the connection's thread (inline is the default: a request never crosses threads; --harakiri turns it off, see docs/benchmarks.md)"
    ),
    opt!(
        "worker-class",
        Some('k'),
        Text,
        false,
        None,
        "CLASS",
        Applies,
        "gunicorn's worker class: sync or gthread (segue's workers are threaded either way; it decides what --timeout means)"
    ),
    opt!(
        "timeout",
        Some('t'),
        Seconds,
        false,
        None,
        "SECS",
        Applies,
        "gunicorn's timeout: --heartbeat-timeout, and also --harakiri for the sync worker class (0 disables)"
    ),
    opt!(
        "name",
        Some('n'),
        Text,
        false,
        None,
        "NAME",
        NeedsRestart,
        "Name the processes: the master's and workers' process names start with it"
    ),
    opt!(
        "graceful-timeout",
        None,
        Seconds,
        false,
        Some("30"),
        "SECS",
        Applies,
        "Seconds a stopping worker may finish its requests before it is killed"
    ),
    opt!(
        "pidfile",
        Some('p'),
        Text,
        false,
        None,
        "PATH",
        NeedsRestart,
        "Write the master's PID to this file (removed on exit; gunicorn's --pid)"
    ),
    // Logging.
    opt!(
        "log-level",
        None,
        Text,
        false,
        Some("info"),
        "LEVEL",
        Applies,
        "Log level: error, warn, info, debug or trace (or a tracing filter)"
    ),
    opt!(
        "log-format",
        None,
        Text,
        false,
        Some("text"),
        "FORMAT",
        Applies,
        "Log line format: text or json"
    ),
    opt!(
        "access-log",
        None,
        Bool,
        false,
        Some("false"),
        "",
        Applies,
        "Log one line per request (into the error log, unless --access-logfile names another place)"
    ),
    opt!(
        "access-logfile",
        None,
        Text,
        false,
        None,
        "PATH|-",
        Applies,
        "Write one line per request to this file (- is stdout), in --access-logformat; reopened on SIGUSR1 (gunicorn's name)"
    ),
    opt!(
        "access-logformat",
        None,
        Text,
        false,
        Some(crate::logging::access::COMBINED),
        "FORMAT",
        Applies,
        "The access line, with gunicorn's atoms: %(h)s %(t)s %(r)s %(s)s %(b)s %(D)s %({header}i)s ... plus %(g)s (generation) and %(w)s (worker id); see docs/observability.md"
    ),
    opt!(
        "error-logfile",
        None,
        Text,
        false,
        Some("-"),
        "PATH|-",
        NeedsRestart,
        "Write the master's and the workers' log to this file instead of stderr (-); reopened on SIGUSR1 (gunicorn's name; also --log-file)"
    ),
    opt!(
        "capture-output",
        None,
        Bool,
        false,
        Some("false"),
        "",
        Applies,
        "Send the app's stdout and stderr into --error-logfile (gunicorn's name)"
    ),
    // Requests.
    opt!(
        "limit-request-line",
        None,
        Count,
        false,
        Some("8190"),
        "BYTES",
        Applies,
        "Longest request line in bytes; longer gets 414"
    ),
    opt!(
        "limit-request-fields",
        None,
        Count,
        false,
        Some("100"),
        "N",
        Applies,
        "Most header fields in a request; more gets 431"
    ),
    opt!(
        "limit-request-field-size",
        None,
        Count,
        false,
        Some("8190"),
        "BYTES",
        Applies,
        "Longest header field (name and value) in bytes; longer gets 431"
    ),
    opt!(
        "buffer-size",
        None,
        Count,
        false,
        None,
        "BYTES",
        Applies,
        "uWSGI's buffer-size: the whole request head (line and headers) may be this long; raises the two limits above to fit"
    ),
    opt!(
        "limit-request-body",
        None,
        Count,
        false,
        Some("0"),
        "BYTES",
        Applies,
        "Largest request body in bytes, 0 for no limit; larger gets 413 (uWSGI's limit-post)"
    ),
    opt!(
        "header-timeout",
        None,
        Seconds,
        false,
        Some("15"),
        "SECS",
        Applies,
        "Seconds a client has to send a request's headers (also the keep-alive idle limit)"
    ),
    opt!(
        "worker-connections",
        None,
        Count,
        false,
        Some("1000"),
        "N",
        Applies,
        "Most client connections a worker holds open (0: no limit); at the limit it accepts none"
    ),
    opt!(
        "socket-timeout",
        None,
        Seconds,
        false,
        Some("30"),
        "SECS",
        Applies,
        "Seconds to wait for more of a request body, 0 for ever; then the app's read raises"
    ),
    // Static files.
    opt!(
        "static-map",
        None,
        Text,
        true,
        None,
        "PREFIX=DIR",
        Applies,
        "Serve files under DIR (or the file itself) for URL paths under PREFIX, before the app; a missing file falls through to the app (repeatable; longest prefix first)"
    ),
    opt!(
        "check-static",
        None,
        Text,
        true,
        None,
        "DIR",
        Applies,
        "Serve DIR/PATH for any request path whose file exists there, before the static maps and the app (repeatable)"
    ),
    opt!(
        "static-index",
        None,
        Text,
        true,
        None,
        "FILE",
        Applies,
        "File served when a static path is a directory (e.g. index.html; repeatable, tried in order); directories are never listed"
    ),
    opt!(
        "static-safe",
        None,
        Text,
        true,
        None,
        "DIR",
        Applies,
        "Also serve static files whose real path (after symlinks) is under DIR (repeatable)"
    ),
    opt!(
        "static-expires",
        None,
        Text,
        true,
        None,
        "REGEX SECS",
        Applies,
        "Static files whose real path matches REGEX get Expires and Cache-Control: max-age of SECS (repeatable; first match wins)"
    ),
    opt!(
        "static-expires-uri",
        None,
        Text,
        true,
        None,
        "REGEX SECS",
        Applies,
        "Static responses whose request target (path and query, as sent) matches REGEX get Expires and max-age of SECS (repeatable)"
    ),
    opt!(
        "static-gzip",
        None,
        Text,
        true,
        None,
        "REGEX",
        Applies,
        "For static files whose real path matches REGEX, send FILE.gz instead when it exists and the client accepts gzip (repeatable)"
    ),
    opt!(
        "static-gzip-all",
        None,
        Bool,
        false,
        Some("false"),
        "",
        Applies,
        "Look for a precompressed FILE.gz for every static file (as --static-gzip '.')"
    ),
    // Reloads.
    opt!(
        "reload-strategy",
        None,
        Text,
        false,
        Some("chain"),
        "STRATEGY",
        Applies,
        "How a reload swaps generations: chain (new first, then drain old) or respawn (canary)"
    ),
    opt!(
        "reload-surge",
        None,
        Count,
        false,
        None,
        "K",
        Applies,
        "Chain reloads: new workers booting at once beyond the steady count [default: all]"
    ),
    opt!(
        "ready-check",
        None,
        Text,
        false,
        None,
        "PATH",
        Applies,
        "A new worker is ready only once its app answers GET PATH with a 2xx, in-process"
    ),
    opt!(
        "boot-timeout",
        None,
        Seconds,
        false,
        Some("60"),
        "SECS",
        Applies,
        "Seconds a new worker has to import the app and pass its ready check"
    ),
    opt!(
        "control",
        None,
        Text,
        false,
        None,
        "PATH",
        NeedsRestart,
        "Unix socket for `segue reload|status|stop|workers --control PATH`"
    ),
    opt!(
        "stats",
        None,
        Text,
        false,
        None,
        "ADDR",
        NeedsRestart,
        "Serve uWSGI's stats JSON (what uwsgitop reads) on this TCP address or unix socket path, one document per connection (uWSGI's stats)"
    ),
    opt!(
        "metrics",
        None,
        Text,
        false,
        None,
        "ADDR",
        NeedsRestart,
        "Serve Prometheus metrics on /metrics, and /readyz and /livez health checks, on this TCP address or unix socket path of their own (see docs/observability.md)"
    ),
    opt!(
        "stats-http",
        None,
        Bool,
        false,
        Some("false"),
        "",
        NeedsRestart,
        "Answer on --stats with an HTTP response (uWSGI's stats-http): uwsgitop http://ADDR, curl"
    ),
    opt!(
        "touch-reload",
        None,
        Text,
        false,
        None,
        "FILE",
        NeedsRestart,
        "Reload when this file's modification time changes"
    ),
    opt!(
        "master-fifo",
        None,
        Text,
        false,
        None,
        "PATH",
        NeedsRestart,
        "uWSGI-style master FIFO: write r (respawn reload), c (chain reload), q, Q, + or -"
    ),
    // Recycling and limits.
    opt!(
        "max-requests",
        None,
        Count,
        false,
        Some("0"),
        "N",
        Applies,
        "Replace a worker after it served this many requests (0: never); replacement ready first"
    ),
    opt!(
        "max-requests-jitter",
        None,
        Count,
        false,
        Some("0"),
        "J",
        Applies,
        "Add up to this many requests at random to each worker's --max-requests"
    ),
    opt!(
        "max-worker-lifetime",
        None,
        Seconds,
        false,
        Some("0"),
        "SECS",
        Applies,
        "Replace a worker after this many seconds (0: never); replacement ready first"
    ),
    opt!(
        "max-worker-lifetime-jitter",
        None,
        Seconds,
        false,
        Some("0"),
        "SECS",
        Applies,
        "Add up to this many seconds at random to each worker's --max-worker-lifetime"
    ),
    opt!(
        "reload-on-rss",
        None,
        Count,
        false,
        Some("0"),
        "MB",
        Applies,
        "Replace a worker whose resident memory exceeds this many MiB (0: never)"
    ),
    opt!(
        "harakiri",
        None,
        Seconds,
        false,
        Some("0"),
        "SECS",
        Applies,
        "A request running longer gets a 504 (if not started), its stack logged, its worker replaced"
    ),
    opt!(
        "heartbeat-timeout",
        None,
        Seconds,
        false,
        Some("30"),
        "SECS",
        Applies,
        "Replace a worker silent this long (e.g. stuck holding the GIL)"
    ),
];
