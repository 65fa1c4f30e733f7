//! Requests that a lenient HTTP/1.1 parser takes and a proxy in front of segue could frame or
//! route differently (the request-smuggling surface): each is refused with the status RFC 9112
//! gives it, before the app sees it, and the connection is closed. And what the rules must still
//! let through (IPv6 literals, OPTIONS *). Every test talks raw bytes to the real binary.

mod support;

use support::{Conn, Server, exchange, get, server, status_of};

fn cases() -> Server {
    server("cases:application")
        .args(&["--workers", "1", "--threads", "2"])
        .start()
}

/// Sends `raw` on a fresh connection and checks that segue answers `status` itself (the body
/// names the reason, the app never ran) and then closes the connection.
fn assert_refused(s: &Server, raw: &[u8], status: u16) {
    let reply = exchange(s.addr(), raw);
    let text = String::from_utf8_lossy(&reply);
    assert_eq!(
        status_of(&reply),
        status,
        "request {:?} got {text:?}",
        String::from_utf8_lossy(raw),
    );
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text:?}"
    );
    assert!(
        !text.contains("hello\n") && !text.contains("not found"),
        "{text:?}"
    );
}

/// The app's answer to `raw` (sent with `Connection: close` appended by the caller).
fn served(s: &Server, raw: &[u8]) -> support::Response {
    let mut c = Conn::open(s.addr());
    c.send(raw);
    c.read_response(false)
}

#[test]
fn bare_lf_line_ends_in_the_head_are_400() {
    let s = cases();
    // httparse takes the LF as a line end: X-Injected would reach the app as a header.
    assert_refused(
        &s,
        b"GET /environ HTTP/1.1\r\nHost: x\r\nX-A: a\nX-Injected: yes\r\n\r\n",
        400,
    );
    // ... and here the body's framing would come from a line a proxy sees as part of X-A.
    assert_refused(
        &s,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nX-A: a\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
    assert_refused(&s, b"GET / HTTP/1.1\nHost: x\r\n\r\n", 400);
    assert_refused(&s, b"GET / HTTP/1.1\nHost: x\n\n", 400);
    assert_eq!(get(s.addr(), "/").status, 200);
}

#[test]
fn transfer_codings_other_than_chunked_are_501() {
    let s = cases();
    for te in ["gzip, chunked", "identity, chunked", "GZIP ,chunked"] {
        let raw = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        );
        assert_refused(&s, raw.as_bytes(), 501);
    }
    assert_refused(
        &s,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        501,
    );
    // Plain chunked, in any case, is served.
    let r = served(
        &s,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "abc"));
}

#[test]
fn chunked_applied_twice_is_400() {
    let s = cases();
    assert_refused(
        &s,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        400,
    );
    assert_refused(
        &s,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn invalid_host_is_400() {
    let s = cases();
    for host in [
        "a b c",
        "user@example.com",
        "example.com:http",
        "[::1",
        "[::1]x",
    ] {
        let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_refused(&s, raw.as_bytes(), 400);
    }
    // The absolute-form's authority obeys the same grammar.
    assert_refused(
        &s,
        b"GET http://user@example.com/ HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    );
    for host in ["example.com", "example.com:8080", "127.0.0.1:80", ""] {
        let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        assert_eq!(served(&s, raw.as_bytes()).status, 200, "Host: {host}");
    }
}

#[test]
fn overflowing_content_length_is_400() {
    let s = cases();
    // hyper answered these 431 (as if the head were too large).
    for n in [
        "18446744073709551615",
        "18446744073709551614",
        "99999999999999999999",
    ] {
        let raw = format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n\r\nabc");
        assert_refused(&s, raw.as_bytes(), 400);
    }
    // Pipelined behind a request that is served first, in order.
    let mut c = Conn::open(s.addr());
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n");
    assert_eq!(c.read_response(false).text(), "hello\n");
    let refused = c.read_response(false);
    assert_eq!(refused.status, 400);
    assert!(refused.text().contains("Content-Length"), "{refused:?}");
    assert!(c.closed_by_server());
}

#[test]
fn asterisk_target_is_only_for_options() {
    let s = cases();
    assert_refused(&s, b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    assert_refused(
        &s,
        b"POST * HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        400,
    );
    // OPTIONS * reaches the app (which has no route for it).
    let r = served(
        &s,
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (404, "not found\n"));
}

#[test]
fn non_ascii_bytes_in_the_request_target_are_400() {
    let s = cases();
    assert_refused(&s, b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    assert_refused(&s, b"GET /?q=\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    assert_refused(&s, b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    // Percent-encoded, the same path is served.
    let r = served(
        &s,
        b"GET /path/caf%C3%A9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn authority_form_target_is_only_for_connect() {
    let s = cases();
    assert_refused(
        &s,
        b"GET example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n\r\n",
        400,
    );
    assert_refused(
        &s,
        b"OPTIONS example.com:80 HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    );
}

#[test]
fn connect_is_answered_501_and_closed() {
    let s = cases();
    assert_refused(
        &s,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        501,
    );
    assert_refused(&s, b"CONNECT example.com:443 HTTP/1.0\r\n\r\n", 501);
    assert_refused(&s, b"CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n", 501);
}

#[test]
fn http2_preface_and_other_versions_get_505() {
    let s = cases();
    // The connection preface of HTTP/2 with prior knowledge: hyper closed without a word.
    let reply = exchange(s.addr(), b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert_eq!(
        status_of(&reply),
        505,
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    assert!(
        String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 505 HTTP Version Not Supported\r\n")
    );
    assert_refused(&s, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505);
    assert_refused(&s, b"GET / HTTP/3\r\nHost: x\r\n\r\n", 505);
    // Pipelined behind a request that is served first, in order.
    let mut c = Conn::open(s.addr());
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert_eq!(c.read_response(false).text(), "hello\n");
    assert_eq!(c.read_response(false).status, 505);
    assert!(c.closed_by_server());
    assert_eq!(get(s.addr(), "/").status, 200);
}

#[test]
fn ipv6_literals_in_host_and_absolute_form_are_accepted() {
    let s = cases();
    let env = served(
        &s,
        b"GET /environ HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n",
    )
    .json();
    assert_eq!(
        (env["SERVER_NAME"].as_str(), env["SERVER_PORT"].as_str()),
        (Some("[::1]"), Some("8080"))
    );
    let env = served(
        &s,
        b"GET http://[2001:db8::1]:81/environ HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n",
    )
    .json();
    assert_eq!(env["HTTP_HOST"], "[2001:db8::1]:81");
    assert_eq!(
        (env["SERVER_NAME"].as_str(), env["SERVER_PORT"].as_str()),
        (Some("[2001:db8::1]"), Some("81"))
    );
}

#[test]
fn an_upgrade_header_does_not_switch_off_the_smuggling_checks() {
    // The raw-head checks used to stop following the stream at an Upgrade header, although
    // segue never switches protocols and hyper goes on serving the connection: the next
    // request's Content-Length + Transfer-Encoding then went through unjudged.
    let s = cases();
    let mut c = Conn::open(s.addr());
    c.send(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\
POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!(c.read_response(false).text(), "hello\n");
    let smuggled = c.read_response(false);
    assert_eq!(smuggled.status, 400, "{smuggled:?}");
    assert!(c.closed_by_server());
}
