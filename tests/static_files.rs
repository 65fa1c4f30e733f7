//! Static files served by the worker before the app (`--static-map` and uWSGI's ini lines):
//! types, lengths and validators, 304s, ranges, HEAD, caching headers, index files, gzip
//! variants, falling through to the app, hostile paths and symlinks that must never serve
//! anything outside the root, a large file byte for byte, and serving across reloads.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::oneshot::{run, scratch};
use support::{Conn, Response, apps_dir, bare, get, server, try_get};

const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-ROOT";

/// `base/root` (the mapped directory) beside `base/secret.txt` and `base/outside/`.
fn tree(name: &str) -> (PathBuf, PathBuf) {
    let base = std::fs::canonicalize(scratch(name)).unwrap();
    let root = base.join("root");
    std::fs::create_dir_all(root.join("css")).unwrap();
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join("build")).unwrap();
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(root.join("css/site.css"), "body { color: red }\n").unwrap();
    std::fs::write(root.join("hello.txt"), "0123456789abcdef").unwrap();
    std::fs::write(root.join("docs/index.html"), "<h1>docs</h1>").unwrap();
    std::fs::write(root.join("build/app.js"), "console.log(1)").unwrap();
    std::fs::write(root.join("buildings.png"), "png").unwrap();
    std::fs::write(base.join("secret.txt"), SECRET).unwrap();
    std::fs::write(base.join("outside/secret.txt"), SECRET).unwrap();
    (base, root)
}

fn map(root: &Path) -> String {
    format!("/static={}", root.display())
}

/// One request on a fresh connection, raw: `extra` header lines end in `\r\n`.
fn request(addr: std::net::SocketAddr, method: &str, target: &str, extra: &str) -> Response {
    let mut c = Conn::open(addr);
    c.send(
        format!("{method} {target} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    c.read_response(method == "HEAD")
}

#[test]
fn a_mapped_file_is_served_with_type_length_and_validators() {
    let (_base, root) = tree("static-basic");
    let s = server("cases:application")
        .args(&["--static-map", &map(&root)])
        .start();
    let r = get(s.addr(), "/static/css/site.css");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "body { color: red }\n");
    assert_eq!(r.header("content-type"), Some("text/css"));
    assert_eq!(r.header("content-length"), Some("20"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(
        r.header("etag").is_some_and(|e| e.starts_with('"')),
        "{r:?}"
    );
    let lm = r.header("last-modified").unwrap();
    assert!(lm.ends_with(" GMT"), "{lm}");
    assert!(r.header("expires").is_none() && r.header("cache-control").is_none());
    // The app still answers everything else.
    assert_eq!(get(s.addr(), "/").text(), "hello\n");
}

#[test]
fn conditional_requests_get_304_by_etag_and_by_date() {
    let (_base, root) = tree("static-304");
    let s = server("cases:application")
        .args(&["--static-map", &map(&root)])
        .start();
    let first = get(s.addr(), "/static/hello.txt");
    let etag = first.header("etag").unwrap().to_owned();
    let lm = first.header("last-modified").unwrap().to_owned();
    let r = request(
        s.addr(),
        "GET",
        "/static/hello.txt",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!(r.status, 304, "{r:?}");
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = request(
        s.addr(),
        "GET",
        "/static/hello.txt",
        &format!("If-Modified-Since: {lm}\r\n"),
    );
    assert_eq!(r.status, 304, "{r:?}");
    let r = request(
        s.addr(),
        "GET",
        "/static/hello.txt",
        "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n",
    );
    assert_eq!(r.status, 200);
    let r = request(
        s.addr(),
        "GET",
        "/static/hello.txt",
        &format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {lm}\r\n"),
    );
    assert_eq!(r.status, 200, "If-None-Match decides when present");
}

#[test]
fn ranges_get_206_416_or_the_whole_file() {
    let (_base, root) = tree("static-range");
    let s = server("cases:application")
        .args(&["--static-map", &map(&root)])
        .start();
    let r = request(s.addr(), "GET", "/static/hello.txt", "Range: bytes=2-5\r\n");
    assert_eq!(r.status, 206, "{r:?}");
    assert_eq!(r.text(), "2345");
    assert_eq!(r.header("content-range"), Some("bytes 2-5/16"));
    assert_eq!(r.header("content-length"), Some("4"));
    let r = request(s.addr(), "GET", "/static/hello.txt", "Range: bytes=-3\r\n");
    assert_eq!((r.status, r.text().as_str()), (206, "def"));
    let r = request(s.addr(), "GET", "/static/hello.txt", "Range: bytes=16-\r\n");
    assert_eq!(r.status, 416, "{r:?}");
    assert_eq!(r.header("content-range"), Some("bytes */16"));
    let r = request(
        s.addr(),
        "GET",
        "/static/hello.txt",
        "Range: bytes=0-1,4-5\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789abcdef"));
    let r = request(
        s.addr(),
        "GET",
        "/static/hello.txt",
        "Range: bytes=0-1\r\nIf-Range: \"stale\"\r\n",
    );
    assert_eq!(r.status, 200, "a stale If-Range sends the whole file");
}

#[test]
fn head_sends_the_headers_only_and_keeps_the_connection() {
    let (_base, root) = tree("static-head");
    let s = server("cases:application")
        .args(&["--static-map", &map(&root)])
        .start();
    let mut c = Conn::open(s.addr());
    c.send(b"HEAD /static/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("16"));
    c.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.text(), "0123456789abcdef");
}

#[test]
fn expires_rules_set_expires_and_max_age() {
    let (_base, root) = tree("static-expires");
    let s = server("cases:application")
        .args(&[
            "--static-map",
            &map(&root),
            "--static-expires",
            "\\.css$ 86400",
            "--static-expires-uri",
            "^/static/build/ 600",
        ])
        .start();
    let r = get(s.addr(), "/static/css/site.css");
    assert_eq!(r.header("cache-control"), Some("max-age=86400"), "{r:?}");
    let expires = httpdate::parse_http_date(r.header("expires").unwrap()).unwrap();
    let ahead = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(ahead > Duration::from_secs(86000), "{ahead:?}");
    let r = get(s.addr(), "/static/build/app.js");
    assert_eq!(r.header("cache-control"), Some("max-age=600"));
    assert!(r.header("expires").is_some());
    assert!(
        get(s.addr(), "/static/hello.txt")
            .header("expires")
            .is_none()
    );
}

#[test]
fn directories_serve_their_index_file_or_go_to_the_app() {
    let (_base, root) = tree("static-index");
    let s = server("cases:application")
        .args(&["--static-map", &map(&root), "--static-index", "index.html"])
        .start();
    let r = get(s.addr(), "/static/docs/");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>docs</h1>"));
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(get(s.addr(), "/static/docs").text(), "<h1>docs</h1>");
    // No index file, no listing: the app answers (cases answers 404 "not found").
    let r = get(s.addr(), "/static/empty/");
    assert_eq!((r.status, r.text().as_str()), (404, "not found\n"));
}

#[test]
fn missing_files_and_other_methods_fall_through_to_the_app() {
    let (_base, root) = tree("static-fallthrough");
    let s = server("cases:application")
        .args(&["--static-map", &format!("/path={}", root.display())])
        .start();
    // cases answers /path/X with the code points of X.
    let r = get(s.addr(), "/path/ab");
    assert_eq!(r.json(), serde_json::json!([97, 98]));
    let r = request(s.addr(), "POST", "/path/hello.txt", "Content-Length: 0\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.json().as_array().unwrap().len(), "hello.txt".len());
    assert_eq!(get(s.addr(), "/path/hello.txt").text(), "0123456789abcdef");
}

#[test]
fn gzip_variants_are_sent_to_clients_that_take_them() {
    let (_base, root) = tree("static-gzip");
    std::fs::write(root.join("css/site.css.gz"), b"\x1f\x8bfake-gzip").unwrap();
    let s = server("cases:application")
        .args(&["--static-map", &map(&root), "--static-gzip", "\\.css$"])
        .start();
    let r = request(
        s.addr(),
        "GET",
        "/static/css/site.css",
        "Accept-Encoding: br, gzip\r\n",
    );
    assert_eq!(r.body, b"\x1f\x8bfake-gzip");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-type"), Some("text/css"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = get(s.addr(), "/static/css/site.css");
    assert_eq!(r.text(), "body { color: red }\n");
    assert!(r.header("content-encoding").is_none());
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = request(
        s.addr(),
        "GET",
        "/static/hello.txt",
        "Accept-Encoding: gzip\r\n",
    );
    assert!(r.header("vary").is_none() && r.header("content-encoding").is_none());
}

#[test]
fn hostile_paths_never_serve_anything_outside_the_root() {
    let (_base, root) = tree("static-hostile");
    let s = server("cases:application")
        .args(&["--static-map", &map(&root)])
        .start();
    for target in [
        "/static/../secret.txt",
        "/static/..//secret.txt",
        "/static/css/../../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/.%2e/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/..%2Fsecret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/%252e%252e/secret.txt",
        "/static/..%252fsecret.txt",
        "/static/hello.txt%00.css",
        "/static/a%00b",
        "/static/..%5csecret.txt",
        "/static/%5c..%5csecret.txt",
        "/static/..\\secret.txt",
        "/static/../outside/secret.txt",
        "/static/%2e%2e/outside/secret.txt",
        "/static/./../secret.txt",
        "/static/../../../../../../../../etc/passwd",
    ] {
        let mut c = Conn::open(s.addr());
        c.send(format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        let r = c.try_read_response(false);
        if let Ok(r) = r {
            assert!(!r.text().contains(SECRET), "{target} served {r:?}");
            assert!(!r.text().contains("root:"), "{target} served {r:?}");
            assert_ne!(r.status, 200, "{target}: {r:?}");
        }
    }
    // Inside the root, `..` that stays inside is fine.
    assert_eq!(get(s.addr(), "/static/css/../hello.txt").status, 200);
}

#[test]
fn symlinks_out_of_the_root_are_refused_unless_static_safe_allows_them() {
    let (base, root) = tree("static-symlink");
    std::os::unix::fs::symlink(base.join("outside/secret.txt"), root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(base.join("outside"), root.join("shared")).unwrap();
    let s = server("cases:application")
        .args(&["--static-map", &map(&root)])
        .start();
    for target in ["/static/link.txt", "/static/shared/secret.txt"] {
        let r = get(s.addr(), target);
        assert_eq!(r.status, 404, "{target}: {r:?}");
        assert!(!r.text().contains(SECRET));
    }
    s.wait_log(&["outside", "static-safe"]);
    drop(s);
    let s = server("cases:application")
        .args(&[
            "--static-map",
            &map(&root),
            "--static-safe",
            &base.join("outside").display().to_string(),
        ])
        .start();
    assert_eq!(get(s.addr(), "/static/link.txt").text(), SECRET);
    assert_eq!(get(s.addr(), "/static/shared/secret.txt").text(), SECRET);
    // static-safe widens symlink targets, not `..`.
    assert_eq!(get(s.addr(), "/static/../outside/secret.txt").status, 404);
}

#[test]
fn a_large_file_arrives_byte_for_byte_whole_and_in_part() {
    let (_base, root) = tree("static-large");
    // 5 MiB and a bit of a pattern that is not periodic in 1 MiB (the placeholder size).
    let data: Vec<u8> = (0..5 * 1024 * 1024 + 12345u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("big.bin"), &data).unwrap();
    let s = server("cases:application")
        .args(&["--static-map", &map(&root)])
        .start();
    let r = get(s.addr(), "/static/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.body.len(), data.len());
    assert_eq!(digest(&r.body), digest(&data));
    let r = request(
        s.addr(),
        "GET",
        "/static/big.bin",
        "Range: bytes=1000000-3100000\r\n",
    );
    assert_eq!(r.status, 206);
    assert_eq!(digest(&r.body), digest(&data[1_000_000..=3_100_000]));
}

/// FNV-1a, enough to tell two byte strings apart in a failure message.
fn digest(bytes: &[u8]) -> (usize, u64) {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
    }
    (bytes.len(), h)
}

#[test]
fn check_static_serves_any_path_whose_file_exists() {
    let (_base, root) = tree("static-check");
    let s = server("cases:application")
        .args(&["--check-static", &root.display().to_string()])
        .start();
    assert_eq!(get(s.addr(), "/hello.txt").text(), "0123456789abcdef");
    assert_eq!(get(s.addr(), "/").text(), "hello\n");
    assert_eq!(get(s.addr(), "/nope.txt").status, 404);
}

#[test]
fn static_responses_are_in_the_access_log() {
    let (_base, root) = tree("static-access");
    let s = server("cases:application")
        .args(&["--static-map", &map(&root), "--access-log"])
        .start();
    assert_eq!(get(s.addr(), "/static/hello.txt").status, 200);
    s.wait_log(&["127.0.0.1 - - [", "\"GET /static/hello.txt HTTP/1.1\" 200"]);
}

#[test]
fn static_files_keep_serving_across_reloads() {
    let (_base, root) = tree("static-reload");
    let s = server("cases:application")
        .args(&["--static-map", &map(&root), "--workers", "2"])
        .start();
    let addr = s.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok, mut bad) = (0, vec![]);
                while !stop.load(Ordering::Relaxed) {
                    match try_get(addr, "/static/hello.txt") {
                        Ok(r) if r.status == 200 && r.text() == "0123456789abcdef" => ok += 1,
                        other => bad.push(format!("{other:?}")),
                    }
                }
                (ok, bad)
            })
        })
        .collect();
    for n in 1..=2 {
        s.signal(libc::SIGHUP);
        s.wait_promoted(n);
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        let (ok, bad) = c.join().unwrap();
        assert!(bad.is_empty(), "failed during reloads: {bad:?}");
        total += ok;
    }
    assert!(total > 10, "only {total} requests ran across the reloads");
}

#[test]
fn the_seed_lines_work_as_written_in_an_ini() {
    let (_base, root) = tree("static-seed");
    let dir = scratch("static-seed-ini");
    let ini = dir.join("uwsgi.ini");
    // The seed's two lines verbatim, with a real directory.
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nchdir = {}\nmodule = cases:application\nstatic-map = /static={}\nstatic-expires-uri = /static/build/* 2592000\n",
            apps_dir().display(),
            root.display()
        ),
    )
    .unwrap();
    let s = bare().args(&["--ini", &ini.display().to_string()]).start();
    let r = get(s.addr(), "/static/build/app.js");
    assert_eq!((r.status, r.text().as_str()), (200, "console.log(1)"));
    assert_eq!(r.header("cache-control"), Some("max-age=2592000"));
    assert_eq!(r.header("content-type"), Some("text/javascript"));
    // As in uWSGI the pattern is a regex searched anywhere in the request target:
    // `/static/build` then any number of `/`, so it also matches /static/buildings.png.
    let r = get(s.addr(), "/static/buildings.png");
    assert_eq!(r.header("cache-control"), Some("max-age=2592000"));
    let r = get(s.addr(), "/static/hello.txt");
    assert_eq!(r.status, 200);
    assert!(r.header("cache-control").is_none());
}

#[test]
fn bad_static_settings_are_refused_naming_the_option() {
    let dir = scratch("static-refusals");
    let missing = dir.join("no-such-dir");
    let out = run(
        &dir,
        &[
            "cases:application",
            "--static-map",
            &format!("/static={}", missing.display()),
            "--static-expires",
            "(unclosed 60",
            "--static-expires-uri",
            "^/x soon",
            "--static-safe",
            "/definitely/not/here",
        ],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    for needle in [
        "--static-map: ",
        "no-such-dir",
        "--static-expires: ",
        "(unclosed",
        "--static-expires-uri: ",
        "'soon' is not a whole number",
        "--static-safe: ",
    ] {
        assert!(out.stderr.contains(needle), "{needle} in:\n{}", out.stderr);
    }
}
