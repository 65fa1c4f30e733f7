//! The option tables of uWSGI's plugins (plugins/*/*.c): names, arities and short letters as
//! uWSGI 2.x declares them, generated once from unbit/uwsgi at 6cbb2177 by a throwaway script
//! (regenerate rather than hand-edit). Codes: `F`
//! bare flag (boolean), `X` bare flag (an action), `B` boolean that takes a value, `V` value,
//! `L` repeatable value, `O` optional value, `P` optional boolean, `Q` optional repeatable.

use super::{UwsgiOption, options};

/// uWSGI's `python` options.
pub(super) const PYTHON: &[UwsgiOption] = options![
    "python";
    V "callable", V "early-pyimport", X "early-python", V "early-python-import",
    L "early-python-path", L "early-pythonpath", V "eval", V "file", V "home" 'H', L "import",
    V "ini-paste", V "ini-paste-logged", V "module" 'w', F "no-site", V "optimize" 'O', V "paste",
    F "paste-logger", V "paste-name", V "pecan", L "post-pymodule-alias", L "pp", V "pump", V "py",
    V "py-auto-reload", L "py-auto-reload-ignore", V "py-autoreload", F "py-call-osafterfork",
    F "py-call-uwsgi-fork-hooks", V "py-executable", L "py-import", F "py-master-check-signals",
    V "py-program-name", V "py-programname", L "py-sharedarea", V "py-sys-executable",
    V "py-tracebacker", V "pyargv", V "pyhome" 'H', L "pyimport", L "pymodule-alias", V "pyrun",
    O "pyshell", O "pyshell-oneshot", V "python", V "python-auto-reload", V "python-autoreload",
    L "python-import", L "python-path", V "python-raw", X "python-version",
    V "python-worker-override", L "pythonpath", F "reload-os-env", L "shared-import",
    L "shared-py-import", L "shared-pyimport", L "shared-python-import", L "spooler-import",
    L "spooler-py-import", L "spooler-pyimport", L "spooler-python-import",
    F "start_response-nodelay", V "test" 'J', V "venv" 'H', V "virtualenv" 'H', V "web3",
    V "wsgi" 'w', F "wsgi-accept-buffer", F "wsgi-accept-buffers", F "wsgi-disable-file-wrapper",
    V "wsgi-env-behavior", V "wsgi-env-behaviour", V "wsgi-file", V "wsgi-lite",
    F "wsgi-manage-chunked-input", F "wsgi-strict",
];

/// uWSGI's `asyncio` options.
pub(super) const ASYNCIO: &[UwsgiOption] = options![
    "asyncio";
    V "asyncio",
];

/// uWSGI's `carbon` options.
pub(super) const CARBON: &[UwsgiOption] = options![
    "carbon";
    L "carbon", V "carbon-freq", V "carbon-hostname-dots", V "carbon-id", V "carbon-idle-avg",
    V "carbon-max-retry", F "carbon-name-resolve", F "carbon-no-workers", F "carbon-resolve-names",
    V "carbon-retry-delay", V "carbon-root", V "carbon-timeout", F "carbon-use-metrics",
];

/// uWSGI's `cgi` options.
pub(super) const CGI: &[UwsgiOption] = options![
    "cgi";
    L "cgi", L "cgi-allowed-ext", X "cgi-async-max-attempts", V "cgi-buffer-size",
    F "cgi-close-stdin-on-eof", F "cgi-do-not-kill-on-error", F "cgi-dontresolve",
    F "cgi-from-docroot", L "cgi-helper", L "cgi-index", L "cgi-loadlib", L "cgi-map-helper",
    F "cgi-optimize", F "cgi-optimized", F "cgi-path-info", L "cgi-safe", V "cgi-timeout",
    L "cgi-unset",
];

/// uWSGI's `cheaper_busyness` options.
pub(super) const CHEAPER_BUSYNESS: &[UwsgiOption] = options![
    "cheaper_busyness";
    V "cheaper-busyness-backlog-alert", V "cheaper-busyness-backlog-multiplier",
    V "cheaper-busyness-backlog-nonzero", V "cheaper-busyness-backlog-step",
    V "cheaper-busyness-max", V "cheaper-busyness-min", V "cheaper-busyness-multiplier",
    V "cheaper-busyness-penalty", F "cheaper-busyness-verbose",
];

/// uWSGI's `coroae` options.
pub(super) const COROAE: &[UwsgiOption] = options![
    "coroae";
    V "coroae",
];

/// uWSGI's `curl_cron` options.
pub(super) const CURL_CRON: &[UwsgiOption] = options![
    "curl_cron";
    L "cron-curl", L "cron-curl-legion", L "curl-cron", L "curl-cron-legion", L "legion-cron-curl",
    L "legion-curl-cron",
];

/// uWSGI's `dumbloop` options.
pub(super) const DUMBLOOP: &[UwsgiOption] = options![
    "dumbloop";
    V "dumbloop-code", V "dumbloop-function", V "dumbloop-modifier1",
];

/// uWSGI's `fastrouter` options.
pub(super) const FASTROUTER: &[UwsgiOption] = options![
    "fastrouter";
    V "fastrouter", V "fastrouter-buffer-size", F "fastrouter-cheap",
    V "fastrouter-defer-connect-timeout", V "fastrouter-emperor-socket", V "fastrouter-events",
    L "fastrouter-fallback", F "fastrouter-fallback-on-no-key", V "fastrouter-force-key",
    V "fastrouter-gid", V "fastrouter-gracetime", V "fastrouter-harakiri",
    V "fastrouter-max-retries", V "fastrouter-post-buffering", V "fastrouter-post-buffering-dir",
    V "fastrouter-processes", B "fastrouter-quiet", L "fastrouter-resubscribe",
    V "fastrouter-resubscribe-bind", V "fastrouter-ss", V "fastrouter-stats",
    V "fastrouter-stats-server", V "fastrouter-subscription-fallback-key",
    V "fastrouter-subscription-server", V "fastrouter-subscription-slot", V "fastrouter-timeout",
    L "fastrouter-to", V "fastrouter-uid", V "fastrouter-use-base", O "fastrouter-use-cache",
    V "fastrouter-use-code-string", V "fastrouter-use-pattern", O "fastrouter-use-socket",
    V "fastrouter-workers", V "fastrouter-zerg",
];

/// uWSGI's `fiber` options.
pub(super) const FIBER: &[UwsgiOption] = options![
    "fiber";
    F "fiber",
];

/// uWSGI's `forkptyrouter` options.
pub(super) const FORKPTYROUTER: &[UwsgiOption] = options![
    "forkptyrouter";
    V "forkpty-router", V "forkpty-router-cmd", V "forkpty-router-command", V "forkpty-urouter",
    V "forkptyrouter", F "forkptyrouter-cheap", V "forkptyrouter-cmd", V "forkptyrouter-cols",
    V "forkptyrouter-command", V "forkptyrouter-events", L "forkptyrouter-fallback",
    V "forkptyrouter-harakiri", V "forkptyrouter-processes", V "forkptyrouter-rows",
    V "forkptyrouter-ss", V "forkptyrouter-stats", V "forkptyrouter-stats-server",
    V "forkptyrouter-timeout", V "forkptyrouter-workers", V "forkptyrouter-zerg",
    V "forkptyurouter",
];

/// uWSGI's `gccgo` options.
pub(super) const GCCGO: &[UwsgiOption] = options![
    "gccgo";
    V "gccgo-args", L "gccgo-load", V "go-args", L "go-load", V "goroutines",
];

/// uWSGI's `geoip` options.
pub(super) const GEOIP: &[UwsgiOption] = options![
    "geoip";
    V "geoip-city", V "geoip-country", F "geoip-use-disk",
];

/// uWSGI's `gevent` options.
pub(super) const GEVENT: &[UwsgiOption] = options![
    "gevent";
    V "gevent", F "gevent-early-monkey-patch", F "gevent-monkey-patch", F "gevent-wait-for-hub",
];

/// uWSGI's `glusterfs` options.
pub(super) const GLUSTERFS: &[UwsgiOption] = options![
    "glusterfs";
    L "glusterfs-mount", V "glusterfs-timeout",
];

/// uWSGI's `greenlet` options.
pub(super) const GREENLET: &[UwsgiOption] = options![
    "greenlet";
    F "greenlet",
];

/// uWSGI's `http` options.
pub(super) const HTTP: &[UwsgiOption] = options![
    "http";
    V "http", F "http-auto-chunked", F "http-auto-gzip", F "http-backend-http",
    V "http-buffer-size", F "http-cheap", F "http-chunked-input", V "http-connect-timeout",
    P "http-enable-proxy-protocol", V "http-events", L "http-fallback", V "http-gid",
    V "http-gracetime", V "http-harakiri", V "http-headers-timeout", O "http-keepalive",
    O "http-manage-expect", F "http-manage-rtsp", F "http-manage-source", V "http-modifier1",
    V "http-modifier2", V "http-post-buffering", V "http-post-buffering-dir", V "http-processes",
    B "http-quiet", F "http-raw-body", L "http-resubscribe", B "http-server-name-as-http-host",
    V "http-ss", V "http-stats", V "http-stats-server", L "http-stud-prefix",
    V "http-subscription-fallback-key", V "http-subscription-server", V "http-timeout",
    L "http-to", V "http-to-https", V "http-uid", V "http-use-base", O "http-use-cache",
    V "http-use-code-string", V "http-use-pattern", O "http-use-socket", L "http-var",
    F "http-websockets", V "http-workers", V "http-zerg", V "httprouter", V "https",
    F "https-export-cert", V "https-session-context", V "https2",
];

/// uWSGI's `jvm` options.
pub(super) const JVM: &[UwsgiOption] = options![
    "jvm";
    L "jvm-class", L "jvm-classpath", L "jvm-main-class", L "jvm-opt",
];

/// uWSGI's `jwsgi` options.
pub(super) const JWSGI: &[UwsgiOption] = options![
    "jwsgi";
    V "jwsgi",
];

/// uWSGI's `ldap` options.
pub(super) const LDAP: &[UwsgiOption] = options![
    "ldap";
    V "ldap", X "ldap-schema", X "ldap-schema-ldif",
];

/// uWSGI's `logzmq` options.
pub(super) const LOGZMQ: &[UwsgiOption] = options![
    "logzmq";
    V "log-zeromq",
];

/// uWSGI's `lua` options.
pub(super) const LUA: &[UwsgiOption] = options![
    "lua";
    V "lua", V "lua-gc-freq", X "lua-gc-full", L "lua-load", L "lua-postfork-mule",
    L "lua-postfork-spooler", L "lua-postfork-worker", L "lua-postload", X "lua-shell",
    X "lua-shell-oneshot", X "luashell", X "luashell-oneshot",
];

/// uWSGI's `mongrel2` options.
pub(super) const MONGREL2: &[UwsgiOption] = options![
    "mongrel2";
    L "mongrel2", L "zeromq", L "zeromq-socket", L "zmq", L "zmq-socket",
];

/// uWSGI's `mono` options.
pub(super) const MONO: &[UwsgiOption] = options![
    "mono";
    L "mono-app", V "mono-assembly", V "mono-config", L "mono-exec", V "mono-gc-freq",
    L "mono-index", L "mono-key", V "mono-version",
];

/// uWSGI's `nagios` options.
pub(super) const NAGIOS: &[UwsgiOption] = options![
    "nagios";
    F "nagios",
];

/// uWSGI's `notfound` options.
pub(super) const NOTFOUND: &[UwsgiOption] = options![
    "notfound";
    F "notfound-log",
];

/// uWSGI's `pam` options.
pub(super) const PAM: &[UwsgiOption] = options![
    "pam";
    V "pam", V "pam-user",
];

/// uWSGI's `php` options.
pub(super) const PHP: &[UwsgiOption] = options![
    "php";
    X "early-php", V "early-php-sapi-name", L "php-allowed-docroot", L "php-allowed-ext",
    L "php-allowed-script", V "php-app", L "php-app-bypass", V "php-app-qs", V "php-config",
    L "php-config-append", L "php-constant", V "php-docroot", F "php-dump-config",
    L "php-exec-after", L "php-exec-before", L "php-exec-begin", L "php-exec-end",
    V "php-fallback", V "php-fallback-qs", V "php-fallback2", L "php-index", V "php-ini",
    L "php-ini-append", L "php-mount", V "php-sapi-name", V "php-server-software", L "php-set",
    L "php-var",
];

/// uWSGI's `ping` options.
pub(super) const PING: &[UwsgiOption] = options![
    "ping";
    V "ping", V "ping-timeout",
];

/// uWSGI's `psgi` options.
pub(super) const PSGI: &[UwsgiOption] = options![
    "psgi";
    V "early-perl", V "early-perl-exec", V "early-psgi", L "perl-arg", V "perl-args",
    V "perl-auto-reload", L "perl-auto-reload-ignore", L "perl-exec", L "perl-exec-post-fork",
    V "perl-local-lib", F "perl-no-die-catch", F "perl-no-plack", X "perl-version", O "plshell",
    X "plshell-oneshot", V "psgi", F "psgi-enable-psgix-io",
];

/// uWSGI's `pty` options.
pub(super) const PTY: &[UwsgiOption] = options![
    "pty";
    V "pty-connect", V "pty-exec", F "pty-input", F "pty-log", F "pty-no-isig", V "pty-socket",
    V "pty-uconnect",
];

/// uWSGI's `pypy` options.
pub(super) const PYPY: &[UwsgiOption] = options![
    "pypy";
    L "pypy-eval", L "pypy-eval-post-fork", L "pypy-exec", L "pypy-exec-post-fork", V "pypy-home",
    V "pypy-ini-paste", V "pypy-lib", V "pypy-paste", L "pypy-pp", L "pypy-python-path",
    L "pypy-pythonpath", V "pypy-setup", V "pypy-wsgi", V "pypy-wsgi-file",
];

/// uWSGI's `rack` options.
pub(super) const RACK: &[UwsgiOption] = options![
    "rack";
    V "gemset", V "rack", V "rails", V "rb-gc-freq", L "rb-lib", L "rb-require", L "rbrequire",
    O "rbshell", X "rbshell-oneshot", L "require", V "ruby-gc-freq", L "ruby-lib",
    L "ruby-require", L "rubyrequire", V "rvm", L "rvm-path", L "shared-rb-require",
    L "shared-rbrequire", L "shared-require", L "shared-ruby-require", L "shared-rubyrequire",
];

/// uWSGI's `rados` options.
pub(super) const RADOS: &[UwsgiOption] = options![
    "rados";
    L "rados-mount", V "rados-timeout",
];

/// uWSGI's `rawrouter` options.
pub(super) const RAWROUTER: &[UwsgiOption] = options![
    "rawrouter";
    V "rawrouter", V "rawrouter-buffer-size", F "rawrouter-cheap", V "rawrouter-events",
    L "rawrouter-fallback", V "rawrouter-gracetime", V "rawrouter-harakiri",
    V "rawrouter-max-retries", V "rawrouter-processes", B "rawrouter-quiet", V "rawrouter-ss",
    V "rawrouter-stats", V "rawrouter-stats-server", V "rawrouter-subscription-server",
    V "rawrouter-subscription-slot", V "rawrouter-timeout", L "rawrouter-to",
    V "rawrouter-use-base", O "rawrouter-use-cache", V "rawrouter-use-code-string",
    V "rawrouter-use-pattern", O "rawrouter-use-socket", V "rawrouter-workers",
    F "rawrouter-xclient", V "rawrouter-zerg",
];

/// uWSGI's `rbthreads` options.
pub(super) const RBTHREADS: &[UwsgiOption] = options![
    "rbthreads";
    F "rb-thread", F "rb-threads", F "rbthread", F "rbthreads",
];

/// uWSGI's `ring` options.
pub(super) const RING: &[UwsgiOption] = options![
    "ring";
    L "clojure-load", V "ring-app", L "ring-load",
];

/// uWSGI's `rrdtool` options.
pub(super) const RRDTOOL: &[UwsgiOption] = options![
    "rrdtool";
    L "rrdtool", V "rrdtool-freq", V "rrdtool-lib",
];

/// uWSGI's `rsyslog` options.
pub(super) const RSYSLOG: &[UwsgiOption] = options![
    "rsyslog";
    V "rsyslog-packet-size", F "rsyslog-split-messages",
];

/// uWSGI's `sqlite3` options.
pub(super) const SQLITE3: &[UwsgiOption] = options![
    "sqlite3";
    V "sqlite", V "sqlite3",
];

/// uWSGI's `sslrouter` options.
pub(super) const SSLROUTER: &[UwsgiOption] = options![
    "sslrouter";
    V "sslrouter", V "sslrouter-buffer-size", F "sslrouter-cheap", V "sslrouter-events",
    L "sslrouter-fallback", V "sslrouter-gracetime", V "sslrouter-harakiri",
    V "sslrouter-max-retries", V "sslrouter-processes", B "sslrouter-quiet",
    V "sslrouter-session-context", F "sslrouter-sni", V "sslrouter-ss", V "sslrouter-stats",
    V "sslrouter-stats-server", V "sslrouter-subscription-server", V "sslrouter-timeout",
    L "sslrouter-to", V "sslrouter-use-base", O "sslrouter-use-cache",
    V "sslrouter-use-code-string", V "sslrouter-use-pattern", O "sslrouter-use-socket",
    V "sslrouter-workers", V "sslrouter-zerg", V "sslrouter2",
];

/// uWSGI's `stackless` options.
pub(super) const STACKLESS: &[UwsgiOption] = options![
    "stackless";
    F "stackless",
];

/// uWSGI's `stats_pusher_statsd` options.
pub(super) const STATS_PUSHER_STATSD: &[UwsgiOption] = options![
    "stats_pusher_statsd";
    F "statsd-all-gauges", F "statsd-no-workers",
];

/// uWSGI's `symcall` options.
pub(super) const SYMCALL: &[UwsgiOption] = options![
    "symcall";
    L "symcall", L "symcall-post-fork", L "symcall-register-rpc", F "symcall-use-next",
];

/// uWSGI's `tornado` options.
pub(super) const TORNADO: &[UwsgiOption] = options![
    "tornado";
    V "tornado",
];

/// uWSGI's `tuntap` options.
pub(super) const TUNTAP: &[UwsgiOption] = options![
    "tuntap";
    L "tuntap-device", L "tuntap-device-rule", L "tuntap-router", V "tuntap-router-firewall-in",
    V "tuntap-router-firewall-out", V "tuntap-router-route", V "tuntap-router-stats",
    O "tuntap-use-credentials",
];

/// uWSGI's `ugreen` options.
pub(super) const UGREEN: &[UwsgiOption] = options![
    "ugreen";
    F "ugreen", V "ugreen-stacksize",
];

/// uWSGI's `webdav` options.
pub(super) const WEBDAV: &[UwsgiOption] = options![
    "webdav";
    L "webdav-add-collection-prop", L "webdav-add-collection-prop-comp",
    L "webdav-add-collection-prop-href", L "webdav-add-object-prop",
    L "webdav-add-object-prop-comp", L "webdav-add-object-prop-href", L "webdav-add-option",
    L "webdav-add-prop", L "webdav-add-prop-comp", L "webdav-add-prop-href",
    L "webdav-add-rtype-collection-prop", L "webdav-add-rtype-object-prop",
    L "webdav-add-rtype-prop", V "webdav-class-directory", L "webdav-css", V "webdav-div",
    L "webdav-javascript", L "webdav-js", V "webdav-lock-cache", L "webdav-mount",
    V "webdav-principal-base", L "webdav-skip-prop",
];

/// uWSGI's `xslt` options.
pub(super) const XSLT: &[UwsgiOption] = options![
    "xslt";
    V "xslt-content-type", L "xslt-docroot", L "xslt-ext", L "xslt-stylesheet", L "xslt-var",
];

/// uWSGI's `zabbix` options.
pub(super) const ZABBIX: &[UwsgiOption] = options![
    "zabbix";
    O "zabbix-template",
];

/// uWSGI's `zergpool` options.
pub(super) const ZERGPOOL: &[UwsgiOption] = options![
    "zergpool";
    L "zerg-pool", L "zergpool",
];
