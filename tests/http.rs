//! HTTP/1.1 behaviour on the wire: framing, keep-alive, pipelining, strict parsing (RFC 9112),
//! limits and slow clients. Every test talks raw bytes to the real binary.

mod support;

use std::time::{Duration, Instant};

use support::{Conn, exchange, get, server, status_of};

fn cases() -> support::Server {
    server("cases:application")
        .args(&["--workers", "1", "--threads", "2"])
        .start()
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let s = cases();
    let mut c = Conn::open(s.addr());
    for _ in 0..3 {
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.read_response(false);
        assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
        assert_eq!(r.header("connection"), None);
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = cases();
    let mut c = Conn::open(s.addr());
    c.send(b"GET /stream?n=2 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET /lazy HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).text(), "chunk0\nchunk1\n");
    assert_eq!(c.read_response(false).text(), "hello\n");
    let third = c.read_response(false);
    assert_eq!((third.status, third.text().as_str()), (201, "lazy-body"));
}

#[test]
fn http10_gets_close_delimited_stream_and_no_keep_alive() {
    let s = cases();
    let raw = exchange(s.addr(), b"GET /stream?n=2 HTTP/1.0\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("transfer-encoding"),
        "{text}"
    );
    assert!(text.ends_with("chunk0\nchunk1\n"), "{text}");
}

#[test]
fn unknown_length_body_is_chunked_on_http11() {
    let s = cases();
    let r = get(s.addr(), "/stream?n=3");
    assert!(r.chunked, "{r:?}");
    assert_eq!(r.text(), "chunk0\nchunk1\nchunk2\n");
}

#[test]
fn chunked_request_body_is_decoded_for_the_app() {
    let s = cases();
    let mut c = Conn::open(s.addr());
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    // The connection stays usable after a fully read chunked body.
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200);
}

#[test]
fn expect_100_continue_is_sent_when_the_app_reads_the_body() {
    let s = cases();
    let mut c = Conn::open(s.addr());
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read_response(false);
    assert_eq!(interim.status, 100);
    c.send(b"ping");
    let r = c.read_response(false);
    assert_eq!((r.status, r.text().as_str()), (200, "ping"));
}

#[test]
fn expect_100_continue_is_not_sent_when_the_app_ignores_the_body() {
    let s = cases();
    let mut c = Conn::open(s.addr());
    c.send(b"POST /ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!((r.status, r.text().as_str()), (200, "ignored\n"));
}

#[test]
fn absolute_form_target_overrides_host() {
    let s = cases();
    let mut c = Conn::open(s.addr());
    c.send(b"GET http://target.example:8080/environ?a=1 HTTP/1.1\r\nHost: header.example\r\nConnection: close\r\n\r\n");
    let env = c.read_response(false).json();
    assert_eq!(env["HTTP_HOST"], "target.example:8080");
    assert_eq!(env["SERVER_NAME"], "target.example");
    assert_eq!(env["SERVER_PORT"], "8080");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["QUERY_STRING"], "a=1");
}

fn assert_rejected(raw: &[u8], status: u16) {
    let s = cases();
    let reply = exchange(s.addr(), raw);
    assert_eq!(
        status_of(&reply),
        status,
        "request {:?} got {:?}",
        String::from_utf8_lossy(raw),
        String::from_utf8_lossy(&reply)
    );
    // The server keeps serving after a bad request.
    assert_eq!(get(s.addr(), "/").status, 200);
}

#[test]
fn http11_without_host_is_400() {
    assert_rejected(b"GET / HTTP/1.1\r\n\r\n", 400);
}

#[test]
fn two_host_headers_are_400() {
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    assert_rejected(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
}

#[test]
fn duplicate_content_length_is_400() {
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
        400,
    );
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        400,
    );
}

#[test]
fn smuggling_checks_follow_pipelined_and_keep_alive_requests() {
    // The raw-head check must stay in step with hyper across bodies of both framings.
    let s = cases();
    let mut c = Conn::open(s.addr());
    c.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n\
GET / HTTP/1.1\r\nHost: x\r\n\r\n\
POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(c.read_response(false).text(), "abc");
    assert_eq!(c.read_response(false).text(), "de");
    assert_eq!(c.read_response(false).text(), "hello\n");
    let smuggled = c.read_response(false);
    assert_eq!(smuggled.status, 400);
    assert_eq!(smuggled.header("connection"), Some("close"));
    assert!(c.closed_by_server());
}

#[test]
fn invalid_content_length_is_400() {
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2x\r\n\r\nab",
        400,
    );
}

#[test]
fn bad_chunk_size_is_400() {
    assert_rejected(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400);
}

#[test]
fn obs_fold_is_400() {
    assert_rejected(
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  continued\r\n\r\n",
        400,
    );
}

#[test]
fn whitespace_before_colon_is_400() {
    assert_rejected(b"GET / HTTP/1.1\r\nHost: x\r\nX-Space : a\r\n\r\n", 400);
}

#[test]
fn invalid_header_name_is_400() {
    assert_rejected(b"GET / HTTP/1.1\r\nHost: x\r\nX(Bad): a\r\n\r\n", 400);
}

#[test]
fn malformed_request_line_is_400() {
    assert_rejected(b"GET /\r\nHost: x\r\n\r\n", 400);
    assert_rejected(b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400);
    assert_rejected(b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

#[test]
fn limits_answer_414_431_and_413() {
    let s = server("cases:application")
        .args(&[
            "--limit-request-line",
            "200",
            "--limit-request-fields",
            "5",
            "--limit-request-field-size",
            "100",
            "--limit-request-body",
            "10",
        ])
        .start();
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(300));
    assert_eq!(status_of(&exchange(s.addr(), long_target.as_bytes())), 414);
    let many = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..6).map(|i| format!("X-{i}: v\r\n")).collect::<String>()
    );
    assert_eq!(status_of(&exchange(s.addr(), many.as_bytes())), 431);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "v".repeat(200)
    );
    assert_eq!(status_of(&exchange(s.addr(), big.as_bytes())), 431);
    assert_eq!(
        status_of(&exchange(
            s.addr(),
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n01234567890"
        )),
        413
    );
    // A chunked body is only counted as it arrives: the app's read raises, the client gets 413.
    let chunked = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n";
    assert_eq!(status_of(&exchange(s.addr(), chunked)), 413);
    assert_eq!(get(s.addr(), "/").status, 200);
}

#[test]
fn slow_client_does_not_starve_others_and_is_timed_out() {
    let s = server("cases:application")
        .args(&["--workers", "1", "--threads", "1", "--header-timeout", "1"])
        .start();
    let mut slow = Conn::open(s.addr());
    slow.send(b"GET / HTTP/1.1\r\nHost: x\r\n"); // never finishes its head
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(get(s.addr(), "/").status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "other clients waited for the slow one"
    );
    // The server drops the slow client after the header timeout.
    slow.set_read_timeout(Duration::from_secs(5));
    assert!(slow.closed_by_server(), "slow client still connected");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "slow client was not timed out"
    );
}

#[test]
fn head_response_has_headers_but_no_body() {
    let s = cases();
    let mut c = Conn::open(s.addr());
    c.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = c.read_response(true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("6"));
    // If a body had been sent, it would be misread as the next response.
    let next = c.read_response(false);
    assert_eq!((next.status, next.text().as_str()), (200, "hello\n"));
}

#[test]
fn no_body_for_204_and_304() {
    let s = cases();
    for code in ["204", "304"] {
        let mut c = Conn::open(s.addr());
        c.send(format!("GET /status?code={code} HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let r = c.read_response(false);
        assert_eq!(r.status.to_string(), code);
        assert!(r.header("transfer-encoding").is_none(), "{r:?}");
        let next = c.read_response(false);
        assert_eq!(next.text(), "hello\n", "body leaked after {code}");
    }
}

#[test]
fn app_connection_close_header_closes_the_connection() {
    let s = cases();
    let mut c = Conn::open(s.addr());
    c.send(b"GET /connection-close HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).text(), "bye");
    assert!(c.closed_by_server());
}

#[test]
fn custom_reason_phrase_is_kept() {
    let s = cases();
    let r = get(s.addr(), "/status?code=299");
    assert_eq!((r.status, r.reason.as_str()), (299, "Custom Reason"));
}
