//! segue's `--fastcgi-socket`: nginx's `fastcgi_pass` with `fastcgi_keep_conn on` (a real
//! nginx, started by each test on a loopback port, see tests/support/nginx.rs) over TCP and a
//! unix socket, with nginx's own `fastcgi_params`; reloads under load through nginx that lose
//! nothing; and, with a client written from the specification (tests/support/fastcgi.rs), what
//! nginx never sends: request after request by hand, FCGI_GET_VALUES, FCGI_ABORT_REQUEST, a
//! second request at once, other roles and malformed records.

#[allow(dead_code)]
#[path = "support/fastcgi.rs"]
mod fcgi;
#[allow(dead_code)]
#[path = "support/nginx.rs"]
mod nginx;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use fcgi::Client;
use nginx::Nginx;
use support::oneshot::scratch;
use support::{Conn, Load, Server, get, server};

fn fastcgi_addr(s: &Server) -> SocketAddr {
    s.listener_addr("fastcgi")
}

fn fastcgi_server(args: &[&str]) -> Server {
    server("cases:application")
        .no_default_listener()
        .args(args)
        .start()
}

fn environ(addr: SocketAddr, path: &str) -> serde_json::Value {
    let r = get(addr, path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// Established TCP connections whose local port is `port` (the server's side), from
/// /proc/net/tcp: how many connections nginx keeps open to segue.
fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let local_port = cols[1].rsplit(':').next().unwrap();
            u16::from_str_radix(local_port, 16).ok() == Some(port) && cols[3] == "01"
        })
        .count()
}

/// What every FastCGI listener must show behind nginx.
fn check_requests(front: &Nginx) {
    let addr = front.addr;
    nginx::check_upload_and_big_headers(addr);
    // nginx's fastcgi_params alone: SCRIPT_NAME is the whole path and there is no PATH_INFO;
    // segue reads that as an app at the root.
    let env = environ(addr, "/environ?a=1&b=%C3%A9");
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["QUERY_STRING"], "a=1&b=%C3%A9");
    assert_eq!(env["SCRIPT_NAME"], "", "{env}");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["REQUEST_URI"], "/environ?a=1&b=%C3%A9");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(env["SERVER_NAME"], "segue-test");
    assert_eq!(env["SERVER_PORT"], addr.port().to_string());
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert_eq!(env["GATEWAY_INTERFACE"], "CGI/1.1");
    assert!(env["DOCUMENT_ROOT"].is_string(), "{env}");

    // Percent-encoded UTF-8 in the path: PATH_INFO holds its bytes (latin-1, PEP 3333).
    let r = get(addr, "/path/caf%C3%A9");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!([99, 97, 102, 0xc3, 0xa9]));

    // `fastcgi_param HTTPS on` from a trusted peer.
    let env = environ(addr, "/secure/environ");
    assert_eq!(env["wsgi.url_scheme"], "https", "{env}");
    assert_eq!(env["HTTPS"], "on");

    // SCRIPT_NAME and PATH_INFO from `fastcgi_split_path_info`, as given.
    let env = environ(addr, "/app/environ");
    assert_eq!(env["SCRIPT_NAME"], "/app", "{env}");
    assert_eq!(env["PATH_INFO"], "/environ");
    // A SCRIPT_NAME prefix without PATH_INFO: the rest of the path is PATH_INFO.
    let env = environ(addr, "/plain/environ");
    assert_eq!(env["SCRIPT_NAME"], "/plain", "{env}");
    assert_eq!(env["PATH_INFO"], "/environ");
    // The same without keep-conn: segue closes after each response.
    let env = environ(addr, "/once/environ");
    assert_eq!(env["SCRIPT_NAME"], "/once", "{env}");
    assert_eq!(env["PATH_INFO"], "/environ");

    // Status, reason and headers pass through; HEAD has no body.
    let r = get(addr, "/nowhere-at-all");
    assert_eq!(r.status, 404);
    let mut c = Conn::open(addr);
    c.send(b"HEAD /environ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let r = c.read_response(true);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let log = front.error_log();
    assert!(
        !log.contains("upstream prematurely closed") && !log.contains("upstream sent"),
        "{log}"
    );
}

#[test]
fn nginx_fastcgi_pass_with_keep_conn_over_tcp() {
    let dir = scratch("nginx-fastcgi-tcp");
    let s = fastcgi_server(&["--fastcgi-socket", "127.0.0.1:0"]);
    let up = fastcgi_addr(&s);
    let front = Nginx::fastcgi(&dir.join("nginx"), &up.to_string());
    check_requests(&front);
    // keep-conn: after twenty requests one after another, nginx still holds its connections
    // to segue (without keep-conn segue closes each after its response).
    // A connection may end now and then between two requests (a limit or a stall on either
    // side, as seen once on a loaded CI machine); keep-conn is broken only if none stays open
    // round after round, so up to three rounds are tried.
    let mut kept = 0;
    for _round in 0..3 {
        for _ in 0..20 {
            assert_eq!(get(front.addr, "/").status, 200);
        }
        kept = established_to(up.port());
        if (1..=8).contains(&kept) {
            break;
        }
    }
    assert!(
        (1..=8).contains(&kept),
        "{kept} connections open from nginx to segue after sequential requests"
    );
}

#[test]
fn nginx_fastcgi_pass_over_a_unix_socket_with_chmod_socket() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = scratch("nginx-fastcgi-unix");
    let sock = dir.join("app.fcgi");
    // uWSGI's spelling: a bare path is a unix socket.
    let path = sock.display().to_string();
    let s = fastcgi_server(&["--fastcgi-socket", &path, "--chmod-socket", "660"]);
    assert_eq!(
        s.status()["listeners"],
        serde_json::json!([format!("fastcgi://unix:{path}")])
    );
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let front = Nginx::fastcgi(&dir.join("nginx"), &format!("unix:{path}"));
    check_requests(&front);
}

#[test]
fn an_ini_fastcgi_socket_serves_beside_an_http_one() {
    let dir = scratch("fastcgi-ini");
    let ini = format!(
        "[uwsgi]\nfastcgi-socket = 127.0.0.1:0\nhttp-socket = 127.0.0.1:0\nchdir = {}\nmodule = cases:application\n",
        support::apps_dir().display()
    );
    std::fs::write(dir.join("app.ini"), ini).unwrap();
    let s = support::bare()
        .cwd(&dir)
        .no_default_listener()
        .args(&["--ini", "app.ini"])
        .start();
    let up = fastcgi_addr(&s);
    assert_eq!(get(s.addr(), "/").status, 200);
    let front = Nginx::fastcgi(&dir.join("nginx"), &up.to_string());
    assert_eq!(get(front.addr, "/").text(), "hello\n");
}

/// Sends `req` and reads request `id`'s response, split.
fn exchange(c: &mut Client, id: u16, req: &[u8]) -> (u16, Vec<String>, Vec<u8>) {
    c.send(req);
    let mut others = Vec::new();
    let (stdout, end) = c.response(id, &mut others);
    assert_eq!(
        end,
        Some((0, 0)),
        "END_REQUEST complete; others: {others:?}"
    );
    assert!(others.is_empty(), "{others:?}");
    fcgi::split(&stdout)
}

#[test]
fn a_kept_connection_serves_request_after_request() {
    let s = fastcgi_server(&["--fastcgi-socket", "127.0.0.1:0"]);
    let addr = fastcgi_addr(&s);
    let mut c = Client::connect(addr);
    let (code, headers, body) = exchange(
        &mut c,
        1,
        &fcgi::request(1, true, &fcgi::get_vars("/"), b"", 1),
    );
    assert_eq!(code, 200);
    assert!(
        headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("content-length: 6")),
        "{headers:?}"
    );
    assert_eq!(body, b"hello\n");

    // A body in many small STDIN records, on the same connection, with another request id.
    let upload: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let len = upload.len().to_string();
    let mut vars = fcgi::get_vars("/echo");
    vars[0] = ("REQUEST_METHOD", "POST");
    vars.push(("CONTENT_LENGTH", &len));
    vars.push(("CONTENT_TYPE", "application/octet-stream"));
    let (code, _, body) = exchange(&mut c, 7, &fcgi::request(7, true, &vars, &upload, 1000));
    assert_eq!(code, 200);
    assert!(
        body == upload,
        "echoed {} bytes of {}",
        body.len(),
        upload.len()
    );

    // The environ of a request by hand.
    let (code, _, body) = exchange(
        &mut c,
        2,
        &fcgi::request(2, true, &fcgi::get_vars("/environ?x=1"), b"", 1),
    );
    assert_eq!(code, 200);
    let env: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(env["REMOTE_ADDR"], "192.0.2.7");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["QUERY_STRING"], "x=1");

    // Without FCGI_KEEP_CONN the server closes after END_REQUEST.
    let (code, _, _) = exchange(
        &mut c,
        3,
        &fcgi::request(3, false, &fcgi::get_vars("/"), b"", 1),
    );
    assert_eq!(code, 200);
    assert!(
        c.closed(),
        "the connection stays open without FCGI_KEEP_CONN"
    );
}

#[test]
fn management_records_roles_and_multiplexing_are_answered() {
    // --no-inline: the refusal of a second request needs the connection read while the first
    // runs; with the app inline the second is read, and served, once the first is answered.
    let s = fastcgi_server(&[
        "--fastcgi-socket",
        "127.0.0.1:0",
        "--worker-connections",
        "50",
        "--no-inline",
    ]);
    let addr = fastcgi_addr(&s);
    let mut c = Client::connect(addr);
    c.send(&fcgi::record(
        fcgi::GET_VALUES,
        0,
        &fcgi::pairs(&[
            ("FCGI_MPXS_CONNS", ""),
            ("FCGI_MAX_CONNS", ""),
            ("FCGI_NOT_A_VALUE", ""),
        ]),
    ));
    let (kind, id, content) = c.record().unwrap();
    assert_eq!((kind, id), (fcgi::GET_VALUES_RESULT, 0));
    assert_eq!(
        content,
        fcgi::pairs(&[("FCGI_MPXS_CONNS", "0"), ("FCGI_MAX_CONNS", "50")])
    );
    c.send(&fcgi::record(77, 0, b""));
    let (kind, _, content) = c.record().unwrap();
    assert_eq!(kind, fcgi::UNKNOWN_TYPE);
    assert_eq!(content[0], 77);

    // The Authorizer role: FCGI_UNKNOWN_ROLE (3), and the connection goes on.
    c.send(&fcgi::begin(4, 2, true));
    let mut others = Vec::new();
    let (out, end) = c.response(4, &mut others);
    assert!(out.is_empty());
    assert_eq!(end, Some((0, 3)));

    // A second request while one is being served: FCGI_CANT_MPX_CONN (1) for it, and the
    // first one is answered as usual.
    let mut slow = fcgi::request(1, true, &fcgi::get_vars("/sleep?s=0.5&id=mpx"), b"", 1);
    c.send(&std::mem::take(&mut slow));
    s.wait_sleeping("mpx");
    c.send(&fcgi::request(2, true, &fcgi::get_vars("/"), b"", 1));
    let (out, end) = c.response(2, &mut others);
    assert!(out.is_empty());
    assert_eq!(end, Some((0, 1)), "FCGI_CANT_MPX_CONN");
    let (out, end) = c.response(1, &mut others);
    assert_eq!(end, Some((0, 0)));
    assert_eq!(fcgi::split(&out).2, b"slept");
    // Records of the refused request that came after its BEGIN were ignored.
    assert!(others.is_empty(), "{others:?}");
    let (code, _, _) = exchange(
        &mut c,
        5,
        &fcgi::request(5, true, &fcgi::get_vars("/"), b"", 1),
    );
    assert_eq!(code, 200);
}

#[test]
fn an_aborted_request_is_ended_and_the_connection_goes_on() {
    let s = fastcgi_server(&["--fastcgi-socket", "127.0.0.1:0", "--threads", "2"]);
    let addr = fastcgi_addr(&s);
    let mut c = Client::connect(addr);
    c.send(&fcgi::request(
        1,
        true,
        &fcgi::get_vars("/sleep?s=30&id=abort"),
        b"",
        1,
    ));
    s.wait_sleeping("abort");
    c.send(&fcgi::record(fcgi::ABORT_REQUEST, 1, b""));
    let mut others = Vec::new();
    let (out, end) = c.response(1, &mut others);
    assert_eq!(end, Some((0, 0)), "END_REQUEST after the abort");
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    // The connection serves the next request (the other Python thread answers it).
    let (code, _, body) = exchange(
        &mut c,
        2,
        &fcgi::request(2, true, &fcgi::get_vars("/"), b"", 1),
    );
    assert_eq!((code, body.as_slice()), (200, &b"hello\n"[..]));
}

#[test]
fn malformed_records_close_the_connection_and_the_worker_serves_on() {
    let s = fastcgi_server(&["--fastcgi-socket", "127.0.0.1:0", "--buffer-size", "4096"]);
    let addr = fastcgi_addr(&s);
    let check = |bytes: &[u8], what: &str| {
        let mut c = Client::connect(addr);
        c.send(bytes);
        assert_eq!(
            c.record(),
            None,
            "{what}: the connection is closed without an answer"
        );
    };
    // HTTP to a FastCGI socket: not version 1.
    check(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP");
    // STDIN before the params ended.
    let mut early = fcgi::begin(1, 1, false);
    early.extend(fcgi::record(fcgi::STDIN, 1, b"x"));
    check(&early, "STDIN before PARAMS ended");
    // A BEGIN_REQUEST with a short body.
    check(
        &fcgi::record(fcgi::BEGIN_REQUEST, 1, &[0, 1]),
        "short BEGIN_REQUEST",
    );
    // Params over --buffer-size.
    let cookie = "c".repeat(5000);
    let mut vars = fcgi::get_vars("/");
    vars.push(("HTTP_COOKIE", &cookie));
    check(
        &fcgi::request(1, false, &vars, b"", 1),
        "params over buffer-size",
    );
    // A record type only an application sends.
    let mut stdout = fcgi::begin(1, 1, false);
    stdout.extend(fcgi::record(fcgi::STDOUT, 1, b"x"));
    check(&stdout, "STDOUT from the client");
    // Name-value pairs running past the stream.
    let mut bad_pairs = fcgi::begin(1, 1, false);
    bad_pairs.extend(fcgi::record(fcgi::PARAMS, 1, &[10, 1, b'A']));
    bad_pairs.extend(fcgi::record(fcgi::PARAMS, 1, b""));
    let mut c = Client::connect(addr);
    c.send(&bad_pairs);
    let mut others = Vec::new();
    let (out, end) = c.response(1, &mut others);
    assert_eq!(end, Some((0, 0)));
    assert_eq!(
        fcgi::split(&out).0,
        400,
        "{}",
        String::from_utf8_lossy(&out)
    );

    // Params that describe no request (no REQUEST_METHOD: fastcgi_params not included): a
    // 400 that says so, and the kept connection goes on.
    let mut c = Client::connect(addr);
    let (code, _, body) = exchange(
        &mut c,
        1,
        &fcgi::request(1, true, &[("REQUEST_URI", "/")], b"", 1),
    );
    assert_eq!(code, 400);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("include fastcgi_params"), "{text}");
    let (code, _, _) = exchange(
        &mut c,
        2,
        &fcgi::request(2, true, &fcgi::get_vars("/"), b"", 1),
    );
    assert_eq!(code, 200);
    let (code, _, _) = exchange(
        &mut Client::connect(addr),
        9,
        &fcgi::request(9, false, &fcgi::get_vars("/"), b"", 1),
    );
    assert_eq!(
        code, 200,
        "the worker serves on after every malformed connection"
    );
}

/// Five reloads while clients send requests through nginx over kept FastCGI connections:
/// every one gets a 200.
fn reloads_through_nginx_lose_nothing(strategy: &str, name: &str) {
    let dir = scratch(name);
    let s = fastcgi_server(&[
        "--fastcgi-socket",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--reload-strategy",
        strategy,
    ]);
    let front = Nginx::fastcgi(&dir.join("nginx"), &fastcgi_addr(&s).to_string());
    nginx::reloads_lose_nothing(&s, &front);
}

#[test]
fn chain_reloads_through_nginx_fastcgi_lose_nothing() {
    reloads_through_nginx_lose_nothing("chain", "nginx-fastcgi-chain");
}

#[test]
fn respawn_reloads_through_nginx_fastcgi_lose_nothing() {
    reloads_through_nginx_lose_nothing("respawn", "nginx-fastcgi-respawn");
}

/// Static files (answered without Python) and `wsgi.file_wrapper` bodies (sent with
/// `sendfile` inside STDOUT records) arrive whole through nginx.
#[test]
fn static_files_and_file_wrapper_bodies_pass_through_nginx_fastcgi() {
    let dir = scratch("nginx-fastcgi-static");
    let map = nginx::static_dir(&dir);
    let s = fastcgi_server(&["--fastcgi-socket", "127.0.0.1:0", "--static-map", &map]);
    let front = Nginx::fastcgi(&dir.join("nginx"), &fastcgi_addr(&s).to_string());
    nginx::check_static_and_file_wrapper(&front);
}

/// `segue upgrade` (the master re-executes itself and hands its sockets over) under load
/// through two nginx fronts, one on the uwsgi listener and one on the FastCGI listener: both
/// protocols survive the handover and no request is lost.
#[test]
fn an_upgrade_carries_uwsgi_and_fastcgi_listeners_and_loses_nothing() {
    let dir = scratch("nginx-upgrade");
    let s = fastcgi_server(&[
        "--fastcgi-socket",
        "127.0.0.1:0",
        "--socket",
        "127.0.0.1:0",
        "--workers",
        "2",
    ]);
    let before = s.status()["listeners"].clone();
    let uwsgi = s.listener_addr("uwsgi");
    let fcgi_front = Nginx::fastcgi(&dir.join("nginx-fcgi"), &fastcgi_addr(&s).to_string());
    let uwsgi_front = Nginx::start(&dir.join("nginx-uwsgi"), &uwsgi.to_string());
    let loads = [
        Load::start(fcgi_front.addr, "/", 2, 2, Duration::from_secs(120)),
        Load::start(uwsgi_front.addr, "/", 2, 2, Duration::from_secs(120)),
    ];
    s.upgrade_and_wait();
    assert_eq!(
        s.status()["listeners"],
        before,
        "the same listeners after the upgrade"
    );
    for (load, front) in loads.into_iter().zip([&fcgi_front, &uwsgi_front]) {
        let report = load.stop();
        let bad = report.bad_statuses();
        assert!(
            report.failures.is_empty() && bad.is_empty(),
            "{} failed, {} non-200 at nginx, e.g. {:?} {:?}\n{}\n{}",
            report.failures.len(),
            bad.len(),
            &report.failures[..report.failures.len().min(3)],
            &bad[..bad.len().min(3)],
            front.error_log(),
            s.log.all()
        );
        assert!(report.ok() > 50, "too little load: {}", report.ok());
    }
    assert_eq!(get(fcgi_front.addr, "/").status, 200);
    assert_eq!(get(uwsgi_front.addr, "/").status, 200);
}

/// `--mount` prefixes apply to FastCGI requests as to HTTP ones: the mount's prefix goes to
/// SCRIPT_NAME, after the one nginx set.
#[test]
fn mounts_split_fastcgi_paths() {
    let s = support::server_without_app()
        .no_default_listener()
        .args(&[
            "--fastcgi-socket",
            "127.0.0.1:0",
            "--mount",
            "/sub=cases:application",
        ])
        .start();
    let mut c = Client::connect(fastcgi_addr(&s));
    // nginx's fastcgi_params alone: the app at the root, the mount under it.
    let (code, _, body) = exchange(
        &mut c,
        1,
        &fcgi::request(1, true, &fcgi::get_vars("/sub/environ"), b"", 1),
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let env: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (env["SCRIPT_NAME"].as_str(), env["PATH_INFO"].as_str()),
        (Some("/sub"), Some("/environ"))
    );
    // A prefix nginx split off comes first.
    let mut vars = fcgi::get_vars("/site/sub/environ");
    vars.retain(|(k, _)| *k != "SCRIPT_NAME");
    vars.push(("SCRIPT_NAME", "/site"));
    vars.push(("PATH_INFO", "/sub/environ"));
    let (code, _, body) = exchange(&mut c, 2, &fcgi::request(2, true, &vars, b"", 1));
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let env: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (env["SCRIPT_NAME"].as_str(), env["PATH_INFO"].as_str()),
        (Some("/site/sub"), Some("/environ"))
    );
}
