use super::*;

/// The verdicts a stream gets when it arrives `split` bytes at a time, and where it was cut
/// (as an offset into the whole stream).
fn run(stream: &[u8], split: usize) -> (Vec<HeadVerdict>, Option<(usize, &'static [u8])>) {
    let mut s = HeadScanner::new(100, 64 * 1024);
    let mut cut = None;
    let mut offset = 0;
    for part in stream.chunks(split) {
        if let Pass::Cut { at, then } = s.feed(part) {
            cut = Some((offset + at, then));
            break;
        }
        offset += part.len();
    }
    (std::iter::from_fn(|| s.verdicts.pop_front()).collect(), cut)
}

fn verdicts(stream: &[u8], split: usize) -> Vec<HeadVerdict> {
    run(stream, split).0
}

fn status(v: HeadVerdict) -> u16 {
    match v {
        HeadVerdict::Clean => 200,
        HeadVerdict::Refused(r) => r.status.as_u16(),
    }
}

const SPLITS: [usize; 6] = [1, 2, 3, 7, 64, usize::MAX];

#[test]
fn follows_pipelined_requests_with_bodies_in_any_split() {
    let stream = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n\
        POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\n\r\nGET / HTTP/1.\
        POST /y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\n\r\n\r\nx\r\n0\r\nX-Trailer: 1\r\n\r\n\
        GET /z HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
    for split in SPLITS {
        assert_eq!(
            verdicts(stream, split),
            vec![
                HeadVerdict::Clean,
                HeadVerdict::Clean,
                HeadVerdict::Clean,
                REPEATED_LENGTH
            ],
            "split {split}"
        );
    }
}

#[test]
fn length_with_transfer_encoding_in_either_order() {
    for head in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    ] {
        assert_eq!(verdicts(head, 5), vec![LENGTH_WITH_TRANSFER_ENCODING]);
    }
}

#[test]
fn heads_without_framing_fields_skip_the_parse_but_keep_the_order() {
    assert!(!frames_body(b"X-Content-Length-ish: 1"));
    assert!(frames_body(b"CONTENT-LENGTH: 1"));
    assert!(frames_body(b"transfer-Encoding: chunked"));
    let stream = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
    assert_eq!(
        verdicts(stream, 4),
        vec![HeadVerdict::Clean, REPEATED_LENGTH]
    );
}

#[test]
fn bare_lf_line_ends_are_refused_wherever_they_are() {
    for head in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\nX-Injected: yes\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nX-A: a\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\n",
    ] {
        for split in SPLITS {
            assert_eq!(
                verdicts(head, split),
                vec![BARE_LF],
                "{head:?} split {split}"
            );
        }
    }
    // Empty lines before a request are not part of it (hyper skips them too).
    assert_eq!(
        verdicts(b"\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 3),
        vec![HeadVerdict::Clean]
    );
}

#[test]
fn a_head_ends_where_httparse_ends_it() {
    // LF LF ends a head for httparse, so it must for the scanner: otherwise the next request's
    // verdict would go to this one.
    let mut s = HeadScanner::default();
    assert_eq!(
        s.feed(b"GET / HTTP/1.1\nHost: a\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Pass::All
    );
    assert_eq!(s.next_verdict(), BARE_LF);
    assert_eq!(
        s.next_verdict(),
        UNJUDGED,
        "the connection closes after a refusal"
    );
}

#[test]
fn transfer_codings_other_than_chunked_are_501_and_chunked_twice_is_400() {
    let te = |value: &str| {
        let head =
            format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {value}\r\n\r\n0\r\n\r\n");
        verdicts(head.as_bytes(), usize::MAX)
            .iter()
            .map(|&v| status(v))
            .collect::<Vec<_>>()
    };
    assert_eq!(te("chunked"), [200]);
    assert_eq!(te("CHUNKED"), [200]);
    assert_eq!(te(", chunked"), [200]);
    assert_eq!(te("gzip, chunked"), [501]);
    assert_eq!(te("identity, chunked"), [501]);
    assert_eq!(te("chunked, chunked"), [400]);
    // hyper refuses these itself (chunked not last): no verdict is needed, and none is given.
    assert_eq!(te("gzip"), Vec::<u16>::new());
    assert_eq!(te("chunked, gzip"), Vec::<u16>::new());
    let two_lines = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(verdicts(two_lines, 9), vec![CHUNKED_TWICE]);
    let gzip_line = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(verdicts(gzip_line, 9), vec![UNSUPPORTED_CODING]);
}

#[test]
fn other_http_versions_are_cut_before_hyper_sees_them() {
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    assert_eq!(
        run(preface, usize::MAX),
        (vec![OTHER_VERSION], Some((0, STAND_IN)))
    );
    // Pipelined after a request hyper must still answer: the cut comes where the head starts.
    let stream = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/2.0\r\nHost: a\r\n\r\n";
    assert_eq!(
        run(stream, usize::MAX),
        (
            vec![HeadVerdict::Clean, OTHER_VERSION],
            Some((27, STAND_IN))
        )
    );
    // The request line is enough to decide, before the rest of the head arrives.
    assert_eq!(
        run(b"GET / HTTP/3\r\nHo", usize::MAX).1,
        Some((0, STAND_IN))
    );
    // When hyper already holds part of the head, it is spoiled instead of replaced.
    assert_eq!(run(preface, 4), (vec![OTHER_VERSION], Some((12, SPOIL))));
    for fine in [
        &b"GET / HTTP/1.0"[..],
        b"GET / HTTP/1.1",
        b"GET / HTTP/1.2",
        b"GET /HTTP/2.0",
    ] {
        assert!(!other_major_version(fine), "{fine:?}");
    }
    for other in [
        &b"PRI * HTTP/2.0"[..],
        b"GET / HTTP/2",
        b"GET / HTTP/0.9",
        b"GET / HTTP/3.0",
    ] {
        assert!(other_major_version(other), "{other:?}");
    }
}

#[test]
fn lengths_hyper_cannot_hold_are_cut_and_refused_with_400() {
    for n in ["18446744073709551615", "18446744073709551614"] {
        let head = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {n}\r\n\r\n");
        assert_eq!(
            run(head.as_bytes(), usize::MAX),
            (vec![LENGTH_OVERFLOW], Some((0, STAND_IN))),
            "{n}"
        );
    }
    let largest = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551613\r\n\r\n";
    assert_eq!(run(largest, usize::MAX), (vec![HeadVerdict::Clean], None));
    assert_eq!(digits(b"+1"), None);
    assert_eq!(digits(b""), None);
    assert_eq!(digits(b"99999999999999999999"), None);
}

#[test]
fn an_upgrade_header_does_not_stop_the_checks() {
    // segue never switches protocols, so hyper goes on parsing after an Upgrade request: so
    // must the scanner (it used to stop there, letting the next request through unjudged).
    let stream = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n\
        POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        verdicts(stream, 10),
        vec![HeadVerdict::Clean, LENGTH_WITH_TRANSFER_ENCODING]
    );
}

#[test]
fn fails_closed_after_a_head_hyper_rejects() {
    // A malformed head whose body framing cannot be known: hyper answers 400 and closes; were
    // it to hand over another request anyway, that one is refused, not waved through.
    let mut s = HeadScanner::default();
    s.feed(b"POST / HTTP/1.1\r\nBad Header: x\r\nContent-Length: 5\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(s.next_verdict(), UNJUDGED);
    // Too long a head, likewise (hyper answers 431).
    let mut s = HeadScanner::new(100, 16);
    s.feed(b"GET / HTTP/1.1\r\nHost: a");
    s.feed(b"\r\n\r\n");
    assert_eq!(s.next_verdict(), UNJUDGED);
}

#[test]
fn chunked_bodies_end_where_hyper_ends_them() {
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let next = b"GET /next HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
    for body in [
        &b"0\r\n\r\n"[..],
        b"1 \t;a=b\r\nx\r\n0\r\n\r\n",
        b"A\r\n0123456789\r\n000\r\n\r\n",
        b"1\r\n\n\r\n0\r\nA: b\nc\r\nD: e\r\n\r\n",
    ] {
        let stream = [&head[..], body, next].concat();
        for split in SPLITS {
            assert_eq!(
                verdicts(&stream, split),
                vec![HeadVerdict::Clean, REPEATED_LENGTH],
                "{:?} split {split}",
                String::from_utf8_lossy(body)
            );
        }
    }
    // Where hyper's decoder fails, the scanner stops following (and fails closed).
    for body in [
        &b" 1\r\nx\r\n"[..],
        b"1;a\nx",
        b"1\nx",
        b"1\r\nxy",
        b"10000000000000000\r\n",
    ] {
        let stream = [&head[..], body, next].concat();
        assert_eq!(
            verdicts(&stream, usize::MAX),
            vec![HeadVerdict::Clean],
            "{body:?}"
        );
    }
}
