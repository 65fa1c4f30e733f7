//! Resolved settings into a validated [`Config`]. Every value is parsed by its option's kind
//! and checked; every problem (a typo, an unsupported option, a bad value, a missing
//! directory) is collected with the place it was written, so a refusal lists them all at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::app::{self, AppSource, AppSpec, Mount};
use super::entry::Origin;
use super::option;
use super::resolve::{Resolved, Setting};
use super::static_files::{self, ExpiresOn, StaticFiles, StaticMap};
use super::{
    Config, Endpoint, Limits, ListenAddr, LogConfig, LogFormat, LogTarget, Protocol, Recycle,
    ReloadStrategy, WorkerConfig,
};

pub mod emperor;
mod processes;

/// Why the configuration cannot serve: every problem, one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct Refusal {
    /// `source: option: problem` lines.
    pub problems: Vec<String>,
    /// Whether some are unsupported options (then `--ignore-unsupported` is worth naming).
    pub has_unsupported: bool,
}

impl Refusal {
    fn render(&self) -> String {
        let mut text = if self.problems.len() == 1 {
            "the configuration has a problem:".to_owned()
        } else {
            format!("the configuration has {} problems:", self.problems.len())
        };
        for p in &self.problems {
            text.push_str("\n  ");
            text.push_str(p);
        }
        if self.has_unsupported {
            text.push_str("\n--ignore-unsupported starts anyway without the unsupported options;");
        }
        text.push_str("\n--print-config shows every setting and where it came from.");
        text
    }
}

struct Reader<'a> {
    r: &'a Resolved,
    problems: Vec<String>,
    /// Checking an emperor's own settings: having no app is right, not a problem.
    emperor: bool,
}

/// `source: option`, without saying the flag twice (`--wokrers`, not `command line --wokrers:
/// --wokrers`).
fn at(source: &Origin, option: &str) -> String {
    match source {
        Origin::Flag(flag) if flag == option => flag.clone(),
        other => format!("{other}: {option}"),
    }
}

fn place(s: &Setting, name: &str) -> String {
    match &s.origin {
        Origin::Flag(flag) => flag.clone(),
        origin if s.written.trim_start_matches('-') == name => format!("{origin}: {name}"),
        origin => format!("{origin}: {} (as {name})", s.written),
    }
}

impl Reader<'_> {
    fn setting(&self, name: &str) -> Setting {
        self.r.get(name).unwrap_or_else(|| Setting {
            values: option::find(name)
                .and_then(|o| o.default)
                .map(|d| vec![d.to_owned()])
                .unwrap_or_default(),
            origin: Origin::Default,
            written: name.to_owned(),
        })
    }

    fn bad(&mut self, name: &str, why: impl std::fmt::Display) {
        let s = self.setting(name);
        self.problems.push(format!("{}: {why}", place(&s, name)));
    }

    fn text(&mut self, name: &str) -> Option<String> {
        self.setting(name)
            .values
            .last()
            .cloned()
            .filter(|v| !v.is_empty())
    }

    fn list(&mut self, name: &str) -> Vec<String> {
        self.setting(name).values
    }

    fn parsed<T: std::str::FromStr>(&mut self, name: &str, what: &str) -> Option<T> {
        let v = self.text(name)?;
        match v.trim().parse::<T>() {
            Ok(n) => Some(n),
            Err(_) => {
                // uWSGI writes booleans for numbers too (`processes = true` is 1).
                if let Some(b) = option::parse_bool(&v) {
                    if let Ok(n) = u8::from(b).to_string().parse::<T>() {
                        return Some(n);
                    }
                }
                self.bad(name, format!("invalid value '{v}': expected {what}"));
                None
            }
        }
    }

    fn count(&mut self, name: &str) -> u64 {
        self.parsed::<u64>(name, "a whole number").unwrap_or(0)
    }

    fn positive(&mut self, name: &str) -> usize {
        let n = self.parsed::<u64>(name, "a whole number");
        if n == Some(0) {
            self.bad(name, "must be at least 1");
        }
        usize::try_from(n.unwrap_or(1).max(1)).unwrap_or(usize::MAX)
    }

    fn secs(&mut self, name: &str) -> Duration {
        let Some(v) = self.parsed::<f64>(name, "a number of seconds") else {
            return Duration::ZERO;
        };
        match Duration::try_from_secs_f64(v) {
            Ok(d) => d,
            Err(_) => {
                self.bad(name, "must be a non-negative number of seconds");
                Duration::ZERO
            }
        }
    }

    fn optional_secs(&mut self, name: &str) -> Option<Duration> {
        self.text(name)?;
        Some(self.secs(name)).filter(|d| !d.is_zero())
    }

    fn boolean(&mut self, name: &str) -> bool {
        let Some(v) = self.text(name) else {
            return false;
        };
        option::parse_bool(&v).unwrap_or_else(|| {
            self.bad(name, format!("invalid value '{v}': expected true or false"));
            false
        })
    }

    fn path(&mut self, name: &str) -> Option<PathBuf> {
        self.text(name)
            .map(|p| absolute(&self.r.cwd, Path::new(&p)))
    }

    fn directory(&mut self, name: &str, value: &str) -> Option<PathBuf> {
        let path = absolute(&self.r.cwd, Path::new(value));
        if path.is_dir() {
            Some(path)
        } else {
            self.bad(
                name,
                format!("'{value}' is not a directory (check the path)"),
            );
            None
        }
    }
}

fn absolute_addr(cwd: &Path, addr: ListenAddr) -> ListenAddr {
    match addr {
        ListenAddr::Unix(p) => ListenAddr::Unix(absolute(cwd, &p)),
        other => other,
    }
}

fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    let joined = cwd.join(path);
    std::path::absolute(&joined).unwrap_or(joined)
}

impl Resolved {
    /// The problems that stop serving: typos, unsupported options (unless
    /// `--ignore-unsupported`), bad values.
    fn dialect_problems(&self, ignore_unsupported: bool) -> (Vec<String>, bool) {
        let mut problems = Vec::new();
        for u in self.unknown.iter().filter(|u| u.fatal) {
            let hint = match &u.nearest {
                Some(n) => format!(" (did you mean '{n}'?)"),
                None => String::new(),
            };
            problems.push(format!("{}: not an option{hint}", at(&u.source, &u.option)));
        }
        let has_unsupported = !self.unsupported.is_empty() && !ignore_unsupported;
        if has_unsupported {
            for n in &self.unsupported {
                problems.push(format!(
                    "{}: not supported: {}",
                    at(&n.source, &n.option),
                    n.note
                ));
            }
        }
        for n in &self.invalid {
            problems.push(format!("{}: {}", at(&n.source, &n.option), n.note));
        }
        (problems, has_unsupported)
    }

    /// Validates everything into a [`Config`], or lists every problem.
    pub fn config(&self) -> Result<Config, Refusal> {
        self.validate(false)
    }

    /// [`Resolved::config`], or with `emperor` only the problems (an emperor has no app; its
    /// `Config` is a stand-in that nothing runs).
    fn validate(&self, emperor: bool) -> Result<Config, Refusal> {
        let mut rd = Reader {
            r: self,
            problems: Vec::new(),
            emperor,
        };
        let ignore = rd.boolean("ignore-unsupported");
        let (mut dialect, has_unsupported) = self.dialect_problems(ignore);
        // Ignoring an unsupported listener must not quietly serve on the default address.
        if ignore && !LISTENERS.iter().any(|l| self.get(l).is_some()) {
            for n in self.unsupported.iter().filter(|n| is_listener(&n.option)) {
                dialect.push(format!(
                    "{}: segue cannot listen this way, and no other listener is configured: add http-socket, socket or fastcgi-socket (ini), or --http ADDR",
                    at(&n.source, &n.option)
                ));
            }
        }
        let config = build(&mut rd);
        let mut problems = dialect;
        problems.extend(rd.problems);
        match config {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(Refusal {
                problems,
                has_unsupported,
            }),
        }
    }
}

/// segue's listener options: `http`'s default address serves only when none is set.
const LISTENERS: [&str; 3] = ["http", "socket", "fastcgi-socket"];

/// uWSGI's and gunicorn's ways of listening that segue does not speak (yet).
fn is_listener(option: &str) -> bool {
    let name = option.trim_start_matches('-');
    name == "s" || name.ends_with("socket") || name == "https" || name == "shared-socket"
}

fn app_spec(rd: &mut Reader<'_>, chdir: Option<&Path>) -> Option<AppSpec> {
    let callable = rd
        .text("callable")
        .unwrap_or_else(|| app::DEFAULT_CALLABLE.to_owned());
    if !callable
        .split('.')
        .all(|p| !p.is_empty() && !p.contains(|c: char| !(c.is_alphanumeric() || c == '_')))
    {
        rd.bad("callable", app::AppError::BadCallable(callable.clone()));
    }
    let named: Vec<&str> = ["app", "wsgi-file", "eval"]
        .into_iter()
        .filter(|n| rd.r.get(n).is_some())
        .collect();
    if named.len() > 1 {
        let last = named[named.len() - 1];
        rd.bad(
            last,
            format!(
                "give one root app: {} name one each (use --mount PREFIX=APP to serve several)",
                named.join(", ")
            ),
        );
    }
    // uWSGI resolves a relative file after `chdir`; so does segue, whatever the source.
    let base = chdir
        .map(Path::to_owned)
        .unwrap_or_else(|| rd.r.cwd.clone());
    let root = if let Some(file) = rd.text("wsgi-file") {
        let path = absolute(&base, Path::new(&file));
        if !path.is_file() {
            rd.bad("wsgi-file", format!("'{}' does not exist", path.display()));
        }
        Some(AppSource::File {
            path,
            callable: callable.clone(),
        })
    } else if let Some(code) = rd.text("eval") {
        Some(AppSource::Eval {
            code,
            callable: callable.clone(),
        })
    } else if let Some(spec) = rd.text("app") {
        if spec.ends_with(".py") && !spec.contains(':') {
            Some(AppSource::File {
                path: absolute(&base, Path::new(&spec)),
                callable: callable.clone(),
            })
        } else {
            match AppSource::module(&spec, &callable) {
                Ok(s) => Some(s),
                Err(e) => {
                    rd.bad("app", e);
                    None
                }
            }
        }
    } else {
        None
    };
    let mut mounts = Vec::new();
    for text in rd.list("mount") {
        match Mount::parse(&text, &callable, &base) {
            Ok(m) => mounts.push(m),
            Err(e) => rd.bad("mount", e),
        }
    }
    if let Some(source) = root {
        mounts.push(Mount {
            prefix: String::new(),
            source,
        });
    }
    if mounts.is_empty() && rd.emperor {
        // Every other setting is still read and checked; this stand-in is never imported.
        return AppSource::module("emperor", &callable)
            .ok()
            .and_then(|source| {
                AppSpec::mounted(vec![Mount {
                    prefix: String::new(),
                    source,
                }])
                .ok()
            });
    }
    if mounts.is_empty() {
        rd.problems.push(super::Error::NoApp.to_string());
        return None;
    }
    match AppSpec::mounted(mounts) {
        Ok(spec) => Some(spec),
        Err(e) => {
            rd.bad("mount", e);
            None
        }
    }
}

fn log_config(rd: &mut Reader<'_>) -> LogConfig {
    LogConfig {
        level: match rd.text("log-level").as_deref() {
            Some("warning") => "warn".to_owned(),
            Some("critical") => "error".to_owned(),
            Some(l) => l.to_owned(),
            None => "info".to_owned(),
        },
        format: log_format(rd),
        access_log: rd.boolean("access-log"),
        access_logfile: match rd.text("access-logfile").as_deref() {
            None => None,
            Some("-") => Some(LogTarget::Stdout),
            Some(_) => rd.path("access-logfile").map(LogTarget::File),
        },
        access_format: access_format(rd),
        error_logfile: match rd.text("error-logfile").as_deref() {
            None | Some("-") => LogTarget::Stderr,
            Some(_) => rd
                .path("error-logfile")
                .map_or(LogTarget::Stderr, LogTarget::File),
        },
        capture_output: rd.boolean("capture-output"),
    }
}

/// `--stats ADDR`, `--metrics ADDR`: `host:port`, `:port`, or a unix socket path (relative to
/// where segue runs).
fn listen_addr(rd: &mut Reader<'_>, name: &str) -> Option<ListenAddr> {
    let v = rd.text(name)?;
    match ListenAddr::parse_uwsgi(&v) {
        Ok(ListenAddr::Unix(_)) => rd.path(name).map(ListenAddr::Unix),
        Ok(addr) => Some(addr),
        Err(e) => {
            rd.bad(
                name,
                format!("{e} (e.g. --{name} 127.0.0.1:9191 or --{name} /run/app/{name}.sock)"),
            );
            None
        }
    }
}

fn access_format(rd: &mut Reader<'_>) -> String {
    let format = rd
        .text("access-logformat")
        .unwrap_or_else(|| crate::logging::access::COMBINED.to_owned());
    if let Err(e) = crate::logging::access::Format::parse(&format) {
        rd.bad("access-logformat", e.to_string());
    }
    format
}

fn log_format(rd: &mut Reader<'_>) -> LogFormat {
    match rd.text("log-format").as_deref() {
        Some("json") => LogFormat::Json,
        Some("text") | None => LogFormat::Text,
        Some(other) => {
            rd.bad(
                "log-format",
                format!("invalid value '{other}': expected text or json"),
            );
            LogFormat::Text
        }
    }
}

fn reload_strategy(rd: &mut Reader<'_>) -> ReloadStrategy {
    match rd.text("reload-strategy").as_deref() {
        Some("respawn") => ReloadStrategy::Respawn,
        Some("chain") | None => ReloadStrategy::Chain,
        Some(other) => {
            rd.bad(
                "reload-strategy",
                format!("invalid value '{other}': expected chain or respawn"),
            );
            ReloadStrategy::Chain
        }
    }
}

/// gunicorn's `--timeout`: with the `sync` worker class (gunicorn's default, and what a
/// single-threaded worker is) a request running longer kills the worker, so it sets both
/// `--harakiri` and `--heartbeat-timeout`; with `gthread` only the liveness check. An
/// explicit `--harakiri` or `--heartbeat-timeout` wins over it.
fn timeouts(rd: &mut Reader<'_>, threads: usize) -> (Option<Duration>, Duration) {
    let class = rd.text("worker-class");
    // gunicorn itself runs `sync` with --threads above 1 as gthread.
    let sync = match class.as_deref() {
        None => threads == 1,
        Some("sync") | Some("gunicorn.workers.sync.SyncWorker") => threads == 1,
        Some("gthread") | Some("gunicorn.workers.gthread.ThreadWorker") => false,
        Some(other) => {
            // gunicorn's catalog knows why each other class cannot be (ASGI, greenlets, ...).
            let why = match super::gunicorn::translate("worker_class", Some(other)) {
                super::entry::Verdict::Unsupported(text) => format!("not supported: {text}"),
                _ => format!(
                    "'{other}' is not a worker class segue has: use sync or gthread (segue's workers are threaded; see docs/migrating-from-gunicorn.md)"
                ),
            };
            rd.bad("worker-class", why);
            false
        }
    };
    let timeout = rd.text("timeout").map(|_| rd.secs("timeout"));
    let set = |name: &str| rd.r.get(name).is_some();
    let harakiri = if set("harakiri") || !sync {
        rd.optional_secs("harakiri")
    } else {
        timeout.filter(|d| !d.is_zero())
    };
    let heartbeat = if set("heartbeat-timeout") {
        rd.secs("heartbeat-timeout")
    } else {
        match timeout {
            // 0 disables gunicorn's timeout; a liveness check can only be made very long.
            Some(d) if d.is_zero() => Duration::from_secs(365 * 24 * 3600),
            Some(d) => d,
            None => rd.secs("heartbeat-timeout"),
        }
    };
    if heartbeat.is_zero() {
        rd.bad("heartbeat-timeout", "must be more than 0 seconds");
    }
    (harakiri, heartbeat)
}

/// The static-file options. Relative paths resolve against `chdir` when set (uWSGI resolves
/// them in the worker, after its chdir), else against the working directory; every root is
/// made canonical here, once per generation, so a deploy that swaps a `current` symlink takes
/// effect at the next reload.
fn static_settings(rd: &mut Reader<'_>, chdir: Option<&Path>) -> StaticFiles {
    let base = chdir
        .map(Path::to_owned)
        .unwrap_or_else(|| rd.r.cwd.clone());
    let canonical = |rd: &mut Reader<'_>, name: &str, value: &str, file_ok: bool| {
        let path = absolute(&base, Path::new(value));
        match std::fs::canonicalize(&path) {
            Ok(real) if real.is_dir() || (file_ok && real.is_file()) => Some(real),
            Ok(_) => {
                let what = if file_ok {
                    "a directory or a file"
                } else {
                    "a directory"
                };
                rd.bad(name, format!("'{value}' is not {what} (check the path)"));
                None
            }
            Err(e) => {
                rd.bad(
                    name,
                    format!("'{value}' ({}): {e} (check the path)", path.display()),
                );
                None
            }
        }
    };
    let mut maps = Vec::new();
    for dir in rd.list("check-static") {
        if let Some(root) = canonical(rd, "check-static", &dir, false) {
            maps.push(StaticMap {
                prefix: String::new(),
                root,
                is_file: false,
            });
        }
    }
    let mut mapped = Vec::new();
    for text in rd.list("static-map") {
        match static_files::parse_map(&text) {
            Ok((prefix, dir)) => {
                if let Some(root) = canonical(rd, "static-map", &dir, true) {
                    let is_file = root.is_file();
                    mapped.push(StaticMap {
                        prefix,
                        root,
                        is_file,
                    });
                }
            }
            Err(e) => rd.bad("static-map", e),
        }
    }
    // Longest prefix first; equal prefixes keep their order (each falls through to the next).
    mapped.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
    maps.extend(mapped);
    let mut expires = Vec::new();
    for (name, on) in [
        ("static-expires", ExpiresOn::File),
        ("static-expires-uri", ExpiresOn::Uri),
    ] {
        for text in rd.list(name) {
            match static_files::parse_expires(&text, on) {
                Ok(rule) => expires.push(rule),
                Err(e) => rd.bad(name, e),
            }
        }
    }
    let mut index = Vec::new();
    for file in rd.list("static-index") {
        let relative = Path::new(&file);
        if file.is_empty()
            || relative.is_absolute()
            || relative
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            rd.bad(
                "static-index",
                format!("invalid value '{file}': expected a file name such as index.html"),
            );
        } else {
            index.push(file);
        }
    }
    let safe = rd
        .list("static-safe")
        .into_iter()
        .filter_map(|d| canonical(rd, "static-safe", &d, false))
        .collect();
    let mut gzip = Vec::new();
    for pattern in rd.list("static-gzip") {
        match static_files::check_regex(&pattern) {
            Ok(()) => gzip.push(pattern),
            Err(e) => rd.bad("static-gzip", e),
        }
    }
    StaticFiles {
        maps,
        expires,
        index,
        safe,
        gzip,
        gzip_all: rd.boolean("static-gzip-all"),
    }
}

fn build(rd: &mut Reader<'_>) -> Option<Config> {
    let chdir = rd.text("chdir").and_then(|d| rd.directory("chdir", &d));
    let app = app_spec(rd, chdir.as_deref());
    let workers = rd.positive("workers");
    let threads = rd.positive("threads");
    let pythonpath = rd
        .list("pythonpath")
        .into_iter()
        .filter_map(|d| rd.directory("pythonpath", &d))
        .collect();
    let virtualenv = match rd.path("virtualenv") {
        Some(venv) if venv.join("bin/python").exists() => Some(venv),
        Some(venv) => {
            rd.bad(
                "virtualenv",
                format!(
                    "'{}' has no bin/python (create it with 'python3 -m venv {}')",
                    venv.display(),
                    venv.display()
                ),
            );
            None
        }
        None => None,
    };
    let mut env = Vec::new();
    for kv in rd.list("env") {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => env.push((k.to_owned(), v.to_owned())),
            _ => rd.bad("env", format!("invalid value '{kv}': expected KEY=VALUE")),
        }
    }
    let listen_set = LISTENERS.iter().any(|l| rd.r.get(l).is_some());
    let mut listen = Vec::new();
    let mut listen_fds = Vec::new();
    // `--http`'s default address serves only when no listener at all is configured.
    let http = if rd.r.get("http").is_none() && listen_set {
        Vec::new()
    } else {
        rd.list("http")
    };
    for addr in http {
        if let Some(fd) = addr.strip_prefix("fd://") {
            match fd.parse::<i32>() {
                Ok(n) if n >= 0 => listen_fds.push(n),
                _ => rd.bad(
                    "http",
                    format!(
                        "invalid value '{addr}': expected fd://N with N a file descriptor number"
                    ),
                ),
            }
            continue;
        }
        match addr.parse::<ListenAddr>() {
            Ok(a) => listen.push(Endpoint::http(absolute_addr(&rd.r.cwd, a))),
            Err(e) => rd.bad("http", e),
        }
    }
    for (option, protocol) in [
        ("socket", Protocol::Uwsgi),
        ("fastcgi-socket", Protocol::FastCgi),
    ] {
        for addr in rd.list(option) {
            match ListenAddr::parse_uwsgi(&addr) {
                Ok(a) => listen.push(Endpoint {
                    addr: absolute_addr(&rd.r.cwd, a),
                    protocol,
                }),
                Err(e) => rd.bad(option, e),
            }
        }
    }
    let forwarded = rd.text("forwarded-allow-ips").unwrap_or_default();
    let forwarded_allow_ips = match forwarded.parse() {
        Ok(p) => p,
        Err(e) => {
            rd.bad("forwarded-allow-ips", e);
            Default::default()
        }
    };
    let socket_mode = rd.text("chmod-socket").and_then(|m| {
        let mode = u32::from_str_radix(m.trim(), 8)
            .ok()
            .filter(|m| *m <= 0o777);
        if mode.is_none() {
            rd.bad(
                "chmod-socket",
                format!("invalid value '{m}': expected octal permission bits such as 660 or 0666"),
            );
        }
        mode
    });
    let (harakiri, heartbeat_timeout) = timeouts(rd, threads);
    let mut limits = Limits {
        request_line: rd.count("limit-request-line") as usize,
        request_fields: rd.count("limit-request-fields") as usize,
        request_field_size: rd.count("limit-request-field-size") as usize,
        request_body: Some(rd.count("limit-request-body")).filter(|b| *b > 0),
        head: None,
    };
    if rd.text("buffer-size").is_some() {
        let size = rd.count("buffer-size") as usize;
        limits.request_line = limits.request_line.max(size);
        limits.request_field_size = limits.request_field_size.max(size);
        limits.head = Some(size);
    }
    let ready_check = rd.text("ready-check");
    if let Some(p) = ready_check.as_ref().filter(|p| !p.starts_with('/')) {
        rd.bad(
            "ready-check",
            format!("invalid value '{p}': expected a path starting with '/', e.g. /healthz"),
        );
    }
    let reload_surge = rd.text("reload-surge").map(|_| rd.positive("reload-surge"));
    let static_files = static_settings(rd, chdir.as_deref());
    let worker = WorkerConfig {
        app: app?,
        multiprocess: workers > 1,
        threads,
        no_inline: rd.boolean("no-inline"),
        chdir,
        pythonpath,
        virtualenv,
        forwarded_allow_ips,
        log: log_config(rd),
        limits,
        header_timeout: rd.secs("header-timeout"),
        worker_connections: Some(rd.count("worker-connections") as usize).filter(|n| *n > 0),
        socket_timeout: rd.optional_secs("socket-timeout"),
        ready_check,
        boot_timeout: rd.secs("boot-timeout"),
        harakiri,
        name: rd.text("name"),
        static_files,
        gunicorn_hooks: rd.path("gunicorn-hooks"),
        uwsgi_compat: rd.boolean("uwsgi-compat").then_some(super::UwsgiCompat {
            numproc: workers,
            threads,
        }),
        preload: rd.boolean("preload").then(|| super::Preload {
            gc_freeze: !rd.boolean("no-gc-freeze"),
            allow_threads: rd.boolean("preload-allow-threads"),
        }),
    };
    Some(Config {
        worker,
        listen: if listen.is_empty() && listen_fds.is_empty() {
            vec![Endpoint::http(ListenAddr::Tcp(
                ([127, 0, 0, 1], 8000).into(),
            ))]
        } else {
            listen
        },
        listen_fds,
        listen_explicit: listen_set,
        workers,
        env,
        backlog: u32::try_from(rd.count("backlog")).unwrap_or(u32::MAX),
        socket_mode,
        graceful_timeout: rd.secs("graceful-timeout"),
        pidfile: rd.path("pidfile"),
        reload_strategy: reload_strategy(rd),
        reload_surge,
        control: rd.path("control"),
        stats: listen_addr(rd, "stats"),
        metrics: listen_addr(rd, "metrics"),
        stats_http: rd.boolean("stats-http"),
        touch_reload: rd.path("touch-reload"),
        master_fifo: rd.path("master-fifo"),
        recycle: Recycle {
            max_requests: Some(rd.count("max-requests")).filter(|n| *n > 0),
            max_requests_jitter: rd.count("max-requests-jitter"),
            max_lifetime: rd.optional_secs("max-worker-lifetime"),
            max_lifetime_jitter: rd.secs("max-worker-lifetime-jitter"),
            max_rss_kib: Some(rd.count("reload-on-rss") * 1024).filter(|n| *n > 0),
        },
        heartbeat_timeout,
        python: None,
        invocation: None,
        exit_when_ready: false,
        daemons: processes::daemons(rd),
        master_hooks: rd.list("gunicorn-master-hook"),
        crons: processes::crons(rd),
        cron_harakiri: rd.optional_secs("cron-harakiri"),
        scaling: processes::scaling(rd, workers),
    })
}
