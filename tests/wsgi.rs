//! PEP 3333 compliance, end to end: environ, wsgi.input, start_response, write(), exc_info,
//! close(), file_wrapper, wsgi.errors, and what an app error looks like to the client.

mod support;

use std::time::Duration;

use support::{Conn, eventually, exchange, get, server, status_of};

fn cases() -> support::Server {
    server("cases:application")
        .args(&["--workers", "1", "--threads", "2"])
        .start()
}

fn post(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> support::Response {
    let mut c = Conn::open(addr);
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    c.send(&raw);
    c.read_response(false)
}

#[test]
fn environ_has_every_required_key_with_the_right_types() {
    let s = server("cases:application")
        .args(&["--workers", "2", "--threads", "3"])
        .start();
    let mut c = Conn::open(s.addr());
    c.send(b"GET /environ?x=%41&y=1 HTTP/1.1\r\nHost: example.test:8080\r\nContent-Type: text/x\r\nX-Multi: a\r\nX-Multi: b\r\nX_Spoof: evil\r\nCookie: a=1\r\nCookie: b=2\r\nConnection: close\r\n\r\n");
    let env = c.read_response(false).json();
    let types = &env["_types"];
    for key in [
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "REMOTE_ADDR",
        "REMOTE_PORT",
        "wsgi.url_scheme",
    ] {
        assert_eq!(types[key], "str", "{key}: {env}");
    }
    assert_eq!(types["wsgi.version"], "tuple");
    assert_eq!(env["wsgi.version"], serde_json::json!([1, 0]));
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(
        env["QUERY_STRING"], "x=%41&y=1",
        "QUERY_STRING must stay raw"
    );
    assert_eq!(env["SERVER_NAME"], "example.test");
    assert_eq!(env["SERVER_PORT"], "8080");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["CONTENT_TYPE"], "text/x");
    assert!(
        env.get("CONTENT_LENGTH").is_none(),
        "no CONTENT_LENGTH without a body: {env}"
    );
    assert_eq!(env["HTTP_X_MULTI"], "a, b", "duplicate headers are joined");
    assert_eq!(
        env["HTTP_COOKIE"], "a=1; b=2",
        "cookies are joined with '; '"
    );
    assert!(
        env.get("HTTP_X_SPOOF").is_none(),
        "headers with '_' must be dropped: {env}"
    );
    assert!(env.get("HTTP_CONTENT_TYPE").is_none());
    assert_eq!(env["wsgi.multithread"], true);
    assert_eq!(env["wsgi.multiprocess"], true);
    assert_eq!(env["wsgi.run_once"], false);
    assert_eq!(env["wsgi.input_terminated"], true);
    assert_eq!(env["wsgi.url_scheme"], "http");
    for key in ["wsgi.input", "wsgi.errors", "wsgi.file_wrapper"] {
        assert!(env.get(key).is_some(), "{key} missing");
    }
}

#[test]
fn multithread_and_multiprocess_follow_the_configuration() {
    let s = server("cases:application")
        .args(&["--workers", "1", "--threads", "1"])
        .start();
    let env = get(s.addr(), "/environ").json();
    assert_eq!(env["wsgi.multithread"], false);
    assert_eq!(env["wsgi.multiprocess"], false);
}

#[test]
fn path_info_is_percent_decoded_as_latin1_and_query_stays_raw() {
    let s = cases();
    // "/%65nviron" decodes to "/environ", which the app routes on.
    let raw = exchange(
        s.addr(),
        b"GET /%65nviron?q=%C3%A9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&raw);
    let env: serde_json::Value =
        serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["RAW_URI"], "/%65nviron?q=%C3%A9");
    assert_eq!(env["QUERY_STRING"], "q=%C3%A9");
}

#[test]
fn non_ascii_bytes_become_latin1_code_points() {
    let s = cases();
    let mut c = Conn::open(s.addr());
    c.send(b"GET /environ HTTP/1.1\r\nHost: x\r\nX-Latin: caf\xe9\r\nConnection: close\r\n\r\n");
    let env = c.read_response(false).json();
    assert_eq!(
        env["HTTP_X_LATIN"], "caf\u{e9}",
        "header bytes decode as latin-1"
    );
    // PATH_INFO: the UTF-8 bytes of "é" (%C3%A9) become the two code points U+00C3 U+00A9,
    // and %2F decodes to a slash (as in every CGI-style server).
    assert_eq!(
        get(s.addr(), "/path/%C3%A9%2Fa").json(),
        serde_json::json!([0xC3, 0xA9, 0x2F, 0x61])
    );
}

#[test]
fn content_length_body_reads_fully_then_empty() {
    let s = cases();
    let r = post(s.addr(), "/echo", b"some body");
    assert_eq!((r.status, r.text().as_str()), (200, "some body"));
    let env_body = post(s.addr(), "/echo-sized?n=4", b"abcdefghij");
    assert_eq!(env_body.text(), "abcd|efgh|ij");
}

#[test]
fn readline_readlines_and_iteration() {
    let s = cases();
    let r = post(s.addr(), "/lines", b"first\nabcdef\nthird\nlast");
    let v = r.json();
    assert_eq!(v["first"], "first\n");
    assert_eq!(v["limited"], "abc");
    assert_eq!(v["rest"], serde_json::json!(["def\n", "third\n", "last"]));
    let r = post(s.addr(), "/iterate", b"a\nb\nc");
    assert_eq!(r.json(), serde_json::json!(["a\n", "b\n", "c"]));
}

#[test]
fn validator_wrapped_app_passes_for_every_shape_of_request() {
    // wsgiref.validate asserts PEP 3333 on the environ, start_response, input and the
    // iterable; any violation raises inside the app and would show as a 500.
    let s = server("validated:application")
        .args(&["--workers", "1", "--threads", "2"])
        .start();
    for path in [
        "/",
        "/environ",
        "/stream?n=4",
        "/lazy",
        "/write",
        "/file?tens=1000",
    ] {
        let r = get(s.addr(), path);
        assert!(
            r.status < 300,
            "{path}: {} {}\n{}",
            r.status,
            r.text(),
            s.log.all()
        );
    }
    for (path, body) in [
        ("/echo-sized?n=2", &b"x=1"[..]),
        ("/lines", b"a\nbcdef\nc"),
        ("/iterate", b"q\nr"),
    ] {
        let r = post(s.addr(), path, body);
        assert_eq!(r.status, 200, "{path}: {}\n{}", r.text(), s.log.all());
    }
    let r = exchange(s.addr(), b"POST /echo-sized HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(
        status_of(&r),
        200,
        "{}\n{}",
        String::from_utf8_lossy(&r),
        s.log.all()
    );
    assert_eq!(s.log.count(&["AssertionError"]), 0, "{}", s.log.all());
}

#[test]
fn write_callable_sends_before_the_returned_body() {
    let s = cases();
    assert_eq!(get(s.addr(), "/write").text(), "written-returned");
}

#[test]
fn lazy_start_response_inside_a_generator() {
    let s = cases();
    let r = get(s.addr(), "/lazy");
    assert_eq!((r.status, r.text().as_str()), (201, "lazy-body"));
}

#[test]
fn str_body_is_a_500_before_any_byte() {
    let s = cases();
    let r = get(s.addr(), "/str-body");
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("not bytes"));
    s.wait_log(&["must be bytes, not str"]);
}

#[test]
fn str_after_headers_aborts_the_response() {
    let s = cases();
    let mut c = Conn::open(s.addr());
    c.send(b"GET /str-late HTTP/1.1\r\nHost: x\r\n\r\n");
    // The head and "first" went out chunked; the stream is then cut without the last chunk.
    let r = c.try_read_response(false);
    assert!(
        r.is_err(),
        "an aborted response must not look complete: {r:?}"
    );
}

#[test]
fn invalid_status_and_headers_raise_in_the_app_and_give_500() {
    let s = cases();
    for path in [
        "/bad-status?s=200",
        "/bad-status?s=abc",
        "/bad-status?s=20x%20OK",
        "/bad-header?kind=crlf",
        "/bad-header?kind=lf",
        "/bad-header?kind=latin",
        "/bad-header?kind=name",
        "/bad-header?kind=surrogate",
    ] {
        let raw = exchange(
            s.addr(),
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let text = String::from_utf8_lossy(&raw);
        assert_eq!(status_of(&raw), 500, "{path}: {text}");
        assert!(
            !text.contains("Injected"),
            "{path}: header injection reached the wire: {text}"
        );
    }
    s.wait_log(&["contains a control character"]);
    s.wait_log(&["is not latin-1"]);
    s.wait_log(&["surrogates not allowed"]);
}

#[test]
fn a_latin1_header_value_goes_out_one_byte_per_character() {
    let s = cases();
    let raw = exchange(
        s.addr(),
        b"GET /bad-header?kind=e-acute HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&raw), 200, "{}", String::from_utf8_lossy(&raw));
    assert!(
        raw.windows(12)
            .any(|w| w.eq_ignore_ascii_case(b"x-test: caf\xe9")),
        "U+00E9 is the byte E9 on the wire: {}",
        String::from_utf8_lossy(&raw)
    );
}

#[test]
fn app_exception_is_a_500_without_the_traceback_which_goes_to_the_log() {
    let s = cases();
    let r = get(s.addr(), "/raise");
    assert_eq!(r.status, 500);
    assert!(
        !r.text().contains("secret-internal-detail"),
        "traceback leaked: {}",
        r.text()
    );
    s.wait_log(&["error in the WSGI app"]);
    // The traceback's lines follow the first one; wait for its last line.
    s.wait_log(&["RuntimeError: secret-internal-detail"]);
    let tb = s.log.all();
    assert!(tb.contains("Traceback (most recent call last)"), "{tb}");
}

#[test]
fn exception_after_headers_cuts_the_connection() {
    let s = cases();
    let mut c = Conn::open(s.addr());
    c.send(b"GET /raise-after-headers HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(c.try_read_response(false).is_err());
    s.wait_log(&["boom after headers"]);
    assert_eq!(get(s.addr(), "/").status, 200);
}

#[test]
fn exc_info_before_headers_replaces_the_status() {
    let s = cases();
    let r = get(s.addr(), "/exc-info-before");
    assert_eq!((r.status, r.text().as_str()), (503, "replaced"));
}

#[test]
fn exc_info_after_headers_reraises() {
    let s = cases();
    let mut c = Conn::open(s.addr());
    c.send(b"GET /exc-info-after HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        c.try_read_response(false).is_err(),
        "response must be cut, not completed"
    );
    s.wait_log(&["ValueError: late"]);
}

#[test]
fn start_response_twice_without_exc_info_is_an_error() {
    let s = cases();
    assert_eq!(get(s.addr(), "/twice").status, 500);
    s.wait_log(&["called a second time without exc_info"]);
}

#[test]
fn returning_without_start_response_is_a_500() {
    let s = cases();
    assert_eq!(get(s.addr(), "/no-start").status, 500);
    s.wait_log(&["before calling start_response"]);
}

#[test]
fn content_length_is_honoured() {
    let s = cases();
    let r = get(s.addr(), "/cl-long");
    assert_eq!(
        (r.header("content-length"), r.text().as_str()),
        (Some("5"), "12345")
    );
    // Too short: the client must not see a complete response.
    let mut c = Conn::open(s.addr());
    c.send(b"GET /cl-short HTTP/1.1\r\nHost: x\r\n\r\n");
    let err = c.try_read_response(false).unwrap_err();
    // Cut at once after the 5 bytes (end of file), not left hanging until the read timeout.
    assert!(err.contains("failed to fill whole buffer"), "{err}");
}

#[test]
fn close_is_called_exactly_once() {
    let s = cases();
    let r = get(s.addr(), "/tracked?id=done");
    assert_eq!(r.text(), "abc");
    let mark = s.marks.join("close-done");
    assert!(eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(&mark).is_ok_and(|c| c == "1")
    }));
}

#[test]
fn close_is_called_once_when_the_client_goes_away_mid_stream() {
    let s = cases();
    {
        let mut c = Conn::open(s.addr());
        c.send(b"GET /tracked-slow?id=gone HTTP/1.1\r\nHost: x\r\n\r\n");
        let first = c.read_some(64);
        assert!(
            first.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&first)
        );
    } // dropped: the client is gone while the app still yields
    let mark = s.marks.join("close-gone");
    assert!(
        eventually(Duration::from_secs(15), || std::fs::read_to_string(&mark)
            .is_ok_and(|c| c == "1")),
        "close() was not called"
    );
    // The request is over (a new one is served by the only Python thread), and close() was
    // not called a second time.
    assert_eq!(get(s.addr(), "/").status, 200);
    assert_eq!(std::fs::read_to_string(&mark).unwrap(), "1");
    assert_eq!(get(s.addr(), "/").status, 200);
}

#[test]
fn file_wrapper_streams_the_file_with_its_length() {
    let s = cases();
    let r = get(s.addr(), "/file?tens=100000");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1_000_000);
    assert_eq!(r.header("content-length"), Some("1000000"));
    assert!(r.body.chunks(10).all(|c| c == b"0123456789"));
    // Starting from the file position the app left.
    let r = get(s.addr(), "/file?tens=10&skip=95");
    assert_eq!(r.text(), "56789");
}

#[test]
fn wsgi_errors_goes_to_the_log() {
    let s = cases();
    assert_eq!(get(s.addr(), "/errors").status, 200);
    s.wait_log(&["marker-from-wsgi-errors"]);
}

#[test]
fn threading_local_survives_between_requests_on_a_thread() {
    let s = server("cases:application")
        .args(&["--workers", "1", "--threads", "1"])
        .start();
    let a = get(s.addr(), "/thread-local").text();
    let b = get(s.addr(), "/thread-local").text();
    let (ta, ca) = a.split_once(':').unwrap();
    let (tb, cb) = b.split_once(':').unwrap();
    assert_eq!(ta, tb, "one Python thread serves both");
    assert_eq!(
        (ca, cb),
        ("1", "2"),
        "threading.local was reset between requests"
    );
}

#[test]
fn large_upload_streams_without_buffering() {
    let s = server("cases:application")
        .args(&["--workers", "1"])
        .start();
    let worker = s.worker_pids()[0];
    let total: usize = 512 << 20;
    let mut c = Conn::open(s.addr());
    c.send(b"POST /count-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    let block = vec![b'x'; 1 << 20];
    let header = format!("{:x}\r\n", block.len());
    for _ in 0..(total >> 20) {
        c.send(header.as_bytes());
        c.send(&block);
        c.send(b"\r\n");
    }
    c.send(b"0\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.text(), total.to_string());
    let status = std::fs::read_to_string(format!("/proc/{worker}/status")).unwrap();
    let hwm_kb: usize = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        hwm_kb < 128 * 1024,
        "worker peak RSS {hwm_kb} kB for a 512 MB upload: the body was buffered"
    );
}

fn environ_with(s: &support::Server, extra_headers: &str) -> support::Response {
    let mut c = Conn::open(s.addr());
    c.send(
        format!("GET /environ HTTP/1.1\r\nHost: example.test\r\n{extra_headers}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    c.read_response(false)
}

#[test]
fn a_trusted_proxy_sets_the_url_scheme() {
    let s = cases();
    // From 127.0.0.1, trusted by default (as in gunicorn).
    let env = environ_with(&s, "X-Forwarded-Proto: https\r\n").json();
    assert_eq!(env["wsgi.url_scheme"], "https");
    assert_eq!(
        env["SERVER_PORT"], "443",
        "no port in Host: the scheme's default"
    );
    assert_eq!(
        env["REMOTE_ADDR"], "127.0.0.1",
        "REMOTE_ADDR stays the proxy's"
    );
    let env = environ_with(&s, "X-Forwarded-Ssl: on\r\n").json();
    assert_eq!(env["wsgi.url_scheme"], "https");
    let env = environ_with(&s, "").json();
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert_eq!(env["SERVER_PORT"], "80");

    let r = environ_with(&s, "X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n");
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("contradictory scheme headers"),
        "{}",
        r.text()
    );
}

#[test]
fn an_untrusted_client_cannot_claim_https() {
    let s = server("cases:application")
        .args(&["--forwarded-allow-ips", "10.0.0.0/8"])
        .start();
    let env = environ_with(&s, "X-Forwarded-Proto: https\r\n").json();
    assert_eq!(env["wsgi.url_scheme"], "http");
    // Nor can it get a 400 out of headers it is not trusted to send.
    let r = environ_with(&s, "X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn threads_switching_inside_collections_never_deadlock_the_worker() {
    // A finalizer that releases the GIL while segue builds an environ once deadlocked two
    // threads: one waiting for a lock the other held, the other waiting for the GIL.
    let s = server("gc_switch:application")
        .args(&["--workers", "1", "--threads", "4"])
        .start();
    let addr = s.addr();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                c.set_read_timeout(std::time::Duration::from_secs(20));
                for _ in 0..300 {
                    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n");
                    assert_eq!(c.read_response(false).text(), "ok");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}
