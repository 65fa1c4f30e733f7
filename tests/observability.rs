//! What operators read: access lines in gunicorn's formats (`--access-logfile`,
//! `--access-logformat`), JSON access lines, the error log in a file (`--error-logfile`),
//! SIGUSR1 reopening every file after logrotate moved it, and `--capture-output`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// The lines of `path` once it has at least `n` (log files are written by a thread).
fn lines_of(path: &Path, n: usize) -> Vec<String> {
    let read = || {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(EVENT_TIMEOUT, || read().len() >= n),
        "{} never had {n} lines: {:?}",
        path.display(),
        read()
    );
    read()
}

fn scratch_file(test: &str, name: &str) -> PathBuf {
    support::oneshot::scratch(test).join(name)
}

/// Local time as the Common Log Format writes it, for the seconds around a request.
fn clf_times(from: i64, to: i64) -> Vec<String> {
    (from..=to)
        .map(|t| {
            let out = Command::new("date")
                .arg("-d")
                .arg(format!("@{t}"))
                .arg("+[%d/%b/%Y:%H:%M:%S %z]")
                .env("LC_ALL", "C")
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn combined_lines_match_byte_for_byte() {
    let log = scratch_file("access-combined", "access.log");
    let s = server("cases:application")
        .args(&["--access-logfile", log.to_str().unwrap()])
        .start();
    let before = now();
    let mut c = Conn::open(s.addr());
    // alice:secret
    c.send(
        b"GET /stream?n=3 HTTP/1.1\r\nHost: 127.0.0.1\r\nReferer: http://example.test/from\r\n\
          User-Agent: probe/1.0\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n",
    );
    let r = c.read_response(false);
    assert_eq!(r.text(), "chunk0\nchunk1\nchunk2\n");
    c.send(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello");
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    let echoed = r.body.len();
    let after = now();
    let lines = lines_of(&log, 2);
    let times = clf_times(before, after);
    let expect = |time: &str| {
        [
            format!(
                "127.0.0.1 - alice {time} \"GET /stream?n=3 HTTP/1.1\" 200 21 \
                 \"http://example.test/from\" \"probe/1.0\""
            ),
            format!("127.0.0.1 - - {time} \"POST /echo HTTP/1.1\" 200 {echoed} \"-\" \"-\""),
        ]
    };
    for (i, line) in lines.iter().enumerate() {
        assert!(
            times.iter().any(|t| expect(t)[i] == *line),
            "line {i} is not the combined format:\n  got  {line}\n  want {}",
            expect(&times[0])[i]
        );
    }
    // Nothing of it went to the error log (stderr).
    assert!(!s.log.all().contains("/stream?n=3"), "{}", s.log.all());
}

#[test]
fn custom_formats_and_json_fields() {
    let log = scratch_file("access-custom", "access.log");
    let format = "%(m)s %(U)s %(q)s %(s)s %(b)s %({x-trace}i)s %({content-type}o)s g=%(g)s w=%(w)s %(p)s %(D)s";
    let s = server("cases:application")
        .args(&[
            "--access-logfile",
            log.to_str().unwrap(),
            "--access-logformat",
            format,
        ])
        .start();
    let mut c = Conn::open(s.addr());
    c.send(b"GET /stream?n=1 HTTP/1.1\r\nHost: x\r\nX-Trace: t-1\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200);
    let line = lines_of(&log, 1).remove(0);
    let st = s.status();
    let w = &st["workers"][0];
    let want = format!(
        "GET /stream n=1 200 7 t-1 text/plain g=1 w={} <{}> ",
        w["id"], w["pid"]
    );
    assert!(line.starts_with(&want), "got  {line}\nwant {want}...");
    let micros: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(micros > 0 && micros < 10_000_000, "{line}");

    // JSON: one object per line, a field per atom, numbers as numbers.
    let json_log = scratch_file("access-json", "access.log");
    let s = server("cases:application")
        .args(&[
            "--log-format",
            "json",
            "--access-logfile",
            json_log.to_str().unwrap(),
        ])
        .start();
    get(s.addr(), "/stream?n=2");
    let line = lines_of(&json_log, 1).remove(0);
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["target"], "segue::access", "{v}");
    assert_eq!(v["request"], "GET /stream?n=2 HTTP/1.1", "{v}");
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["bytes"], 14, "{v}");
    assert_eq!(v["remote_addr"], "127.0.0.1", "{v}");
    assert_eq!(v["referer"], serde_json::Value::Null, "{v}");
    assert!(v["time"].as_str().unwrap().starts_with('['), "{v}");
}

#[test]
fn a_bad_format_is_refused_at_start() {
    let mut s = server("cases:application")
        .args(&["--access-logformat", "%(h)s 50% off"])
        .exits()
        .start();
    let status = s.wait_exit(EVENT_TIMEOUT).expect("segue should refuse");
    assert_eq!(status.code(), Some(2), "{}", s.log.all());
    s.wait_log(&["--access-logformat", "write %% for a percent sign"]);
}

#[test]
fn sigusr1_reopens_the_access_and_error_logs_after_a_move() {
    let dir = support::oneshot::scratch("reopen");
    let (access, error) = (dir.join("access.log"), dir.join("error.log"));
    let mut s = server("cases:application")
        .args(&[
            "--workers",
            "2",
            "--access-logfile",
            access.to_str().unwrap(),
            "--error-logfile",
            error.to_str().unwrap(),
        ])
        .start();
    get(s.addr(), "/stream?n=1");
    assert!(lines_of(&access, 1)[0].contains("/stream?n=1"));
    // The master's and the workers' lines are in the error log, not on stderr.
    let errors = lines_of(&error, 1).join("\n");
    assert!(errors.contains("worker ready"), "{errors}");
    assert!(!s.log.all().contains("worker ready"), "{}", s.log.all());

    // logrotate: move both, then SIGUSR1.
    std::fs::rename(&access, dir.join("access.log.1")).unwrap();
    std::fs::rename(&error, dir.join("error.log.1")).unwrap();
    s.signal(libc::SIGUSR1);
    // Every process takes it in its own time: poll with requests until both workers write
    // to the new file (bounded).
    let mut pids = std::collections::BTreeSet::new();
    let workers: Vec<String> = s.worker_pids().iter().map(|p| p.to_string()).collect();
    assert!(
        eventually(EVENT_TIMEOUT, || {
            let r = get(s.addr(), "/pid");
            let pid = r.text();
            if std::fs::read_to_string(&access)
                .unwrap_or_default()
                .contains("/pid")
            {
                pids.insert(pid);
            }
            workers.iter().all(|w| pids.contains(w))
        }),
        "not every worker reopened the access log: {pids:?} of {workers:?}"
    );
    // A reload makes the master and the new workers log: into the new error log.
    s.signal(libc::SIGHUP);
    s.wait_promoted(1);
    let errors = lines_of(&error, 1).join("\n");
    assert!(
        errors.contains("promoted") || errors.contains("worker ready"),
        "{errors}"
    );
    let old = std::fs::read_to_string(dir.join("error.log.1")).unwrap();
    assert!(old.contains("reopening the log files"), "{old}");
    s.signal(libc::SIGTERM);
    s.wait_exit(EVENT_TIMEOUT).expect("segue should stop");
    assert!(s.zombies().is_empty());
}

#[test]
fn capture_output_puts_the_apps_prints_into_the_error_log() {
    let error = scratch_file("capture", "error.log");
    let s = server("cases:application")
        .args(&[
            "--error-logfile",
            error.to_str().unwrap(),
            "--capture-output",
        ])
        .start();
    assert_eq!(get(s.addr(), "/print").text(), "printed");
    assert!(
        eventually(EVENT_TIMEOUT, || {
            let text = std::fs::read_to_string(&error).unwrap_or_default();
            text.contains("marker-from-print") && text.contains("marker-from-stderr")
        }),
        "{}",
        std::fs::read_to_string(&error).unwrap_or_default()
    );
    // Without it the app's output stays on the server's own stderr (and stdout).
    let error = scratch_file("no-capture", "error.log");
    let s = server("cases:application")
        .args(&["--error-logfile", error.to_str().unwrap()])
        .start();
    get(s.addr(), "/print");
    s.wait_log(&["marker-from-stderr"]);
    assert!(
        !std::fs::read_to_string(&error)
            .unwrap_or_default()
            .contains("marker-from-")
    );
}

/// A log file that cannot be written (here a full device) never stalls serving: the lines are
/// dropped and counted, and `segue status` reports the count per worker.
#[test]
fn a_full_disk_drops_access_lines_and_counts_them() {
    let s = server("cases:application")
        .args(&["--access-logfile", "/dev/full"])
        .start();
    for _ in 0..50 {
        assert_eq!(get(s.addr(), "/").status, 200);
    }
    let st = s.wait_status("dropped log lines counted", |st| {
        st["workers"][0]["log_dropped"].as_u64().unwrap_or(0) >= 50
    });
    assert_eq!(st["workers"][0]["requests"], 50, "{st}");
}

/// One stats document from a `--stats` unix socket, as uwsgitop reads it (connect, read to EOF).
fn stats_doc(path: &Path) -> serde_json::Value {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn uwsgitop_shows_the_workers_from_the_stats_server() {
    let dir = support::oneshot::scratch("stats");
    let sock = dir.join("stats.sock");
    let s = server("cases:application")
        .args(&[
            "--workers",
            "2",
            "--threads",
            "2",
            "--stats",
            sock.to_str().unwrap(),
        ])
        .start();
    for _ in 0..20 {
        assert_eq!(get(s.addr(), "/stream?n=1").status, 200);
    }
    // The document, in uWSGI's shape.
    let st = s.wait_status("heartbeats with the requests", |st| {
        st["workers"].as_array().is_some_and(|w| {
            w.iter()
                .map(|w| w["requests"].as_u64().unwrap_or(0))
                .sum::<u64>()
                == 20
        })
    });
    let doc = stats_doc(&sock);
    assert_eq!(doc["pid"], s.pid(), "{doc}");
    let workers = doc["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{doc}");
    let total: u64 = workers
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 20, "{doc}");
    for w in workers {
        assert_eq!(w["status"], "idle", "{w}");
        assert_eq!(w["cores"].as_array().unwrap().len(), 2, "{w}");
        assert!(w["rss"].as_u64().unwrap() > 1 << 20, "{w}");
        assert!(
            w["vsz"].as_u64().unwrap() > w["rss"].as_u64().unwrap(),
            "{w}"
        );
    }
    let tx: u64 = workers.iter().map(|w| w["tx"].as_u64().unwrap()).sum();
    assert_eq!(tx, 20 * 7, "{doc}");
    assert_eq!(doc["segue"]["serving_generation"], st["serving"]);

    // uwsgitop itself, in a terminal (tmux): its table lists both workers' pids.
    let uwsgitop = test_venv().join("bin/uwsgitop");
    let session = format!("segue-uwsgitop-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &session])
            .args(args)
            .output()
            .unwrap()
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-x",
        "200",
        "-y",
        "40",
        &format!("{} {}", uwsgitop.display(), sock.display()),
    ]);
    assert!(started.status.success(), "{:?}", started);
    let mut screen = String::new();
    let pids: Vec<String> = workers.iter().map(|w| w["pid"].to_string()).collect();
    let shown = eventually(EVENT_TIMEOUT, || {
        screen = String::from_utf8_lossy(&tmux(&["capture-pane", "-p"]).stdout).into_owned();
        screen.contains("req: 20") && pids.iter().all(|p| screen.contains(p.as_str()))
    });
    let _ = tmux(&["kill-server"]);
    assert!(
        shown,
        "uwsgitop did not show the workers {pids:?}:\n{screen}"
    );
}

#[test]
fn stats_http_answers_with_an_http_response() {
    use std::io::{Read, Write};
    let dir = support::oneshot::scratch("stats-http");
    let sock = dir.join("stats.sock");
    let _s = server("cases:application")
        .args(&["--stats", sock.to_str().unwrap(), "--stats-http"])
        .start();
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: stats\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    let doc: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(doc["workers"].as_array().unwrap().len(), 1, "{doc}");
    // A client that connects and sends nothing gets no answer, and holds nothing for long.
    let idle = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    idle.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!((&idle).read(&mut buf).unwrap_or(0), 0);
}

/// One HTTP exchange over a unix socket: the status code and the body.
fn unix_get(path: &Path, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::os::unix::net::UnixStream::connect(path).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap();
    (code, body.to_owned())
}

/// The exposition parsed by prometheus_client's own parser: `name{labels}` -> value.
fn scrape(path: &Path) -> std::collections::BTreeMap<String, f64> {
    let (code, text) = unix_get(path, "GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n");
    assert_eq!(code, 200, "{text}");
    let python = test_venv().join("bin/python");
    let mut child = Command::new(python)
        .args([
            "-c",
            "import sys, json\n\
             from prometheus_client.parser import text_string_to_metric_families\n\
             out = {}\n\
             for family in text_string_to_metric_families(sys.stdin.read()):\n\
             \x20   for s in family.samples:\n\
             \x20       labels = ','.join('%s=%s' % kv for kv in sorted(s.labels.items()))\n\
             \x20       out['%s{%s}' % (s.name, labels)] = s.value\n\
             print(json.dumps(out))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn prometheus_metrics_parse_and_move_with_traffic_and_reloads() {
    let dir = support::oneshot::scratch("metrics");
    let sock = dir.join("metrics.sock");
    let s = server("cases:application")
        .args(&["--workers", "2", "--metrics", sock.to_str().unwrap()])
        .start();
    for _ in 0..10 {
        assert_eq!(get(s.addr(), "/stream?n=1").status, 200);
    }
    assert_eq!(get(s.addr(), "/no-start").status, 500);
    s.wait_status("the requests in the heartbeats", |st| {
        st["workers"].as_array().is_some_and(|w| {
            w.iter()
                .map(|w| w["requests"].as_u64().unwrap_or(0))
                .sum::<u64>()
                == 11
        })
    });
    let m = scrape(&sock);
    assert_eq!(m["segue_requests_total{code=2xx}"], 10.0, "{m:?}");
    assert_eq!(m["segue_requests_total{code=5xx}"], 1.0, "{m:?}");
    let listener = s.status()["listeners"][0].as_str().unwrap().to_owned();
    assert_eq!(
        m[&format!("segue_listener_requests_total{{listener={listener}}}")],
        11.0,
        "{m:?}"
    );
    assert_eq!(m["segue_request_duration_seconds_count{}"], 11.0, "{m:?}");
    assert_eq!(
        m["segue_request_duration_seconds_bucket{le=+Inf}"], 11.0,
        "{m:?}"
    );
    assert!(m["segue_response_bytes_total{}"] >= 70.0, "{m:?}");
    assert_eq!(m["segue_workers{generation=1,state=ready}"], 2.0, "{m:?}");
    assert_eq!(m["segue_worker_boot_seconds_count{}"], 2.0, "{m:?}");
    assert_eq!(m["segue_reloads_total{outcome=promoted}"], 0.0, "{m:?}");

    // A reload: the old workers' counts stay in the totals, the reload is counted.
    s.signal(libc::SIGHUP);
    s.wait_promoted(1);
    s.wait_status("only generation 2", |st| {
        st["workers"]
            .as_array()
            .is_some_and(|w| w.iter().all(|w| w["generation"] == 2))
    });
    get(s.addr(), "/stream?n=1");
    let m = scrape(&sock);
    assert_eq!(m["segue_reloads_total{outcome=promoted}"], 1.0, "{m:?}");
    assert_eq!(m["segue_reload_duration_seconds_count{}"], 1.0, "{m:?}");
    assert!(m["segue_requests_total{code=2xx}"] >= 10.0, "{m:?}");
    assert_eq!(m["segue_serving_generation{}"], 2.0, "{m:?}");
    assert_eq!(m["segue_worker_boot_seconds_count{}"], 4.0, "{m:?}");
    assert!(
        !m.contains_key("segue_workers{generation=1,state=ready}"),
        "{m:?}"
    );

    // Health checks on the same listener; anything else is refused.
    assert_eq!(unix_get(&sock, "GET /readyz HTTP/1.1\r\n\r\n").0, 200);
    assert_eq!(unix_get(&sock, "GET /livez HTTP/1.1\r\n\r\n").0, 200);
    assert_eq!(unix_get(&sock, "GET /admin HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(unix_get(&sock, "POST /metrics HTTP/1.1\r\n\r\n").0, 405);
}

#[test]
fn a_log_file_that_cannot_be_opened_stops_the_start() {
    let mut s = server("cases:application")
        .args(&["--access-logfile", "/nonexistent-dir/access.log"])
        .exits()
        .start();
    let status = s.wait_exit(EVENT_TIMEOUT).expect("segue should refuse");
    assert_eq!(status.code(), Some(2), "{}", s.log.all());
    s.wait_log(&[
        "cannot open --access-logfile /nonexistent-dir/access.log: No such file or directory",
    ]);
}
