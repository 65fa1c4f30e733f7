//! nginx's `uwsgi_pass` to segue's `--socket`, with a real nginx (started by each test on a
//! loopback port, see tests/support/nginx.rs): queries, non-ASCII paths, a 1 MB upload, large
//! headers, `HTTPS on`, `SCRIPT_NAME` from a location, over TCP and a unix socket; the seed's
//! `[uwsgi]` block as written; strict refusal of malformed packets; and reloads under load
//! through nginx that lose nothing (a 502 at nginx would be a lost request).

#[allow(dead_code)]
#[path = "support/nginx.rs"]
mod nginx;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use nginx::Nginx;
use support::oneshot::scratch;
use support::{Server, bare, get, server};

fn uwsgi_addr(s: &Server) -> SocketAddr {
    s.listener_addr("uwsgi")
}

fn uwsgi_server(args: &[&str]) -> Server {
    server("cases:application")
        .no_default_listener()
        .args(args)
        .start()
}

/// What a request through nginx and segue looks like to the app.
fn environ(addr: SocketAddr, path: &str) -> serde_json::Value {
    let r = get(addr, path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// The behaviours every uwsgi listener must show behind nginx.
fn check_requests(front: &Nginx) {
    let addr = front.addr;
    nginx::check_upload_and_big_headers(addr);
    let env = environ(addr, "/environ?a=1&b=%C3%A9");
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["QUERY_STRING"], "a=1&b=%C3%A9");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(env["REQUEST_URI"], "/environ?a=1&b=%C3%A9");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(env["SERVER_NAME"], "segue-test");
    assert_eq!(env["SERVER_PORT"], addr.port().to_string());
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert!(
        env["REMOTE_PORT"]
            .as_str()
            .is_some_and(|p| p.parse::<u16>().is_ok()),
        "{env}"
    );
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert!(env["DOCUMENT_ROOT"].is_string(), "{env}");

    // PATH_INFO is nginx's decoded path, latin-1 per PEP 3333: the UTF-8 bytes of "café".
    let r = get(addr, "/path/caf%C3%A9");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!([99, 97, 102, 0xc3, 0xa9]));

    // `uwsgi_param HTTPS on` from a trusted peer (loopback and unix sockets are, by default).
    let env = environ(addr, "/secure/environ");
    assert_eq!(env["wsgi.url_scheme"], "https", "{env}");
    assert_eq!(env["HTTPS"], "on");

    // `uwsgi_param SCRIPT_NAME /app; uwsgi_modifier1 30;`: the prefix leaves PATH_INFO.
    let env = environ(addr, "/app/environ");
    assert_eq!(env["SCRIPT_NAME"], "/app", "{env}");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["REQUEST_URI"], "/app/environ");

    // Status and headers pass through nginx.
    let r = get(addr, "/nowhere-at-all");
    assert_eq!(r.status, 404);
    assert!(
        !front.error_log().contains("upstream prematurely closed"),
        "{}",
        front.error_log()
    );
}

#[test]
fn nginx_uwsgi_pass_over_tcp() {
    let dir = scratch("nginx-uwsgi-tcp");
    let s = uwsgi_server(&["--socket", "127.0.0.1:0"]);
    let up = uwsgi_addr(&s);
    let front = Nginx::start(&dir.join("nginx"), &up.to_string());
    check_requests(&front);
}

#[test]
fn nginx_uwsgi_pass_over_a_unix_socket_with_chmod_socket() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = scratch("nginx-uwsgi-unix");
    let sock = dir.join("app.sock");
    let arg = format!("unix:{}", sock.display());
    let s = uwsgi_server(&["--socket", &arg, "--chmod-socket", "660"]);
    let st = s.status();
    assert_eq!(
        st["listeners"],
        serde_json::json!([format!("uwsgi://unix:{}", sock.display())])
    );
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let front = Nginx::start(&dir.join("nginx"), &arg);
    check_requests(&front);
}

#[test]
fn the_seeds_uwsgi_block_runs_as_written() {
    let dir = scratch("nginx-uwsgi-seed");
    std::fs::write(
        dir.join("wsgi.py"),
        "def application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'seed\\n']\n",
    )
    .unwrap();
    let sock = dir.join("uwsgi.sock");
    // The New Relic article's block, verbatim but for the socket's directory.
    let ini = format!(
        "[uwsgi]\nsocket = {}\nenable-threads = true\nsingle-interpreter = true\nmaster = true\nlazy-apps = true\nfile = wsgi.py\n",
        sock.display()
    );
    std::fs::write(dir.join("uwsgi.ini"), ini).unwrap();
    let _s = bare()
        .cwd(&dir)
        .no_default_listener()
        .args(&["--ini", "uwsgi.ini"])
        .start();
    let front = Nginx::start(&dir.join("nginx"), &format!("unix:{}", sock.display()));
    let r = get(front.addr, "/");
    assert_eq!(r.status, 200, "{}", front.error_log());
    assert_eq!(r.text(), "seed\n");
}

/// Sends `packet` to the uwsgi listener and returns what came back before the close.
fn raw(addr: SocketAddr, packet: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(packet).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    out
}

fn packet(modifier1: u8, vars: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        for s in [k, v] {
            block.extend_from_slice(&(s.len() as u16).to_le_bytes());
            block.extend_from_slice(s.as_bytes());
        }
    }
    let mut p = vec![modifier1];
    p.extend_from_slice(&(block.len() as u16).to_le_bytes());
    p.push(0);
    p.extend_from_slice(&block);
    p
}

#[test]
fn malformed_packets_are_logged_and_the_connection_closed() {
    let s = uwsgi_server(&["--socket", "127.0.0.1:0", "--buffer-size", "4096"]);
    let addr = uwsgi_addr(&s);
    let ok = packet(
        0,
        &[
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", "/"),
            ("HTTP_HOST", "x"),
        ],
    );
    let answer = raw(addr, &ok);
    assert!(
        answer.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(answer.ends_with(b"hello\n"));

    assert_eq!(raw(addr, &[5, 0, 0, 0]), b"");
    s.wait_log(&["modifier1 5"]);
    // A key length running past the block.
    assert_eq!(raw(addr, &[0, 3, 0, 0, 9, 0, b'a']), b"");
    s.wait_log(&["truncated at byte 0"]);
    // Over --buffer-size: refused from the header, before reading the block.
    assert_eq!(raw(addr, &[0, 0x01, 0x20, 0]), b"");
    s.wait_log(&["over the 4096 byte limit"]);
    assert_eq!(raw(addr, &packet(0, &[("REQUEST_URI", "/")])), b"");
    s.wait_log(&["without a valid REQUEST_METHOD"]);
    // The worker serves on after all of them.
    assert!(raw(addr, &ok).starts_with(b"HTTP/1.1 200 OK\r\n"));
}

/// Five reloads while clients send requests through nginx: every one gets a 200.
fn reloads_through_nginx_lose_nothing(strategy: &str, name: &str) {
    let dir = scratch(name);
    let s = uwsgi_server(&[
        "--socket",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--reload-strategy",
        strategy,
    ]);
    let front = Nginx::start(&dir.join("nginx"), &uwsgi_addr(&s).to_string());
    nginx::reloads_lose_nothing(&s, &front);
}

#[test]
fn chain_reloads_through_nginx_lose_nothing() {
    reloads_through_nginx_lose_nothing("chain", "nginx-uwsgi-chain");
}

#[test]
fn respawn_reloads_through_nginx_lose_nothing() {
    reloads_through_nginx_lose_nothing("respawn", "nginx-uwsgi-respawn");
}

/// What a uwsgi listener serves besides the app: `--static-map` files (answered by the worker
/// without Python) and `wsgi.file_wrapper` bodies, both whole through nginx.
#[test]
fn static_files_and_file_wrapper_bodies_pass_through_nginx() {
    let dir = scratch("nginx-static");
    let map = nginx::static_dir(&dir);
    let s = uwsgi_server(&["--socket", "127.0.0.1:0", "--static-map", &map]);
    let front = Nginx::start(&dir.join("nginx"), &uwsgi_addr(&s).to_string());
    nginx::check_static_and_file_wrapper(&front);
}
