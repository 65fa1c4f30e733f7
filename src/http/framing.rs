//! Checks on the raw request head, made on the bytes before hyper parses them, for what hyper's
//! parser accepts leniently or normalises away before the service sees the request. Each is a
//! request-smuggling vector (a proxy in front could frame the stream differently) that RFC 9112
//! lets a server refuse:
//!
//! - a bare LF as a line end (httparse takes `X-A: a\nTransfer-Encoding: chunked` as two fields);
//! - Content-Length together with Transfer-Encoding (hyper silently drops the length), the same
//!   Content-Length twice (hyper merges them), and a length hyper cannot represent (it answers
//!   431, as if the head were too large);
//! - a transfer coding other than chunked (501: segue decodes only chunked), chunked twice;
//! - an HTTP version of another major number, such as HTTP/2's connection preface (hyper answers
//!   400, or closes without a word on the preface): 505.
//!
//! [`HeadScanner`] follows the byte stream the connection reads, before hyper parses it: it
//! finds each request head where httparse does (at the first empty line, CRLF or LF), judges it,
//! and skips the body by its framing, as hyper's decoder does (see [`chunked`]), to find the next
//! head. Verdicts queue up in order; the service takes one per request. The usual GET costs one
//! pass over its head looking for line ends, with a glance at each line's first bytes; only a
//! head with a framing field gets a full httparse parse.
//!
//! Most refusals travel as a verdict with the request hyper parses. A head hyper would answer
//! wrongly itself (another HTTP version, an overflowing length) must not reach it: the scanner
//! asks the reader to [`Pass::Cut`] the stream there and hand hyper a stand-in head instead,
//! whose request takes the refusal. The connection closes after any refusal.
//!
//! It fails closed: once it loses track of the stream (a head hyper rejects too), every later
//! request hyper might still hand over is refused rather than let through unjudged.

mod chunked;

use std::collections::VecDeque;

use http::StatusCode;

use self::chunked::Chunked;
use super::validate::Rejection;

/// The verdict on one request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadVerdict {
    /// Nothing wrong at the byte level: the request goes on to [`super::validate`].
    Clean,
    /// Refused with this status; the connection closes after the answer.
    Refused(Rejection),
}

/// What a connection's reader hands hyper of the bytes it has just fed the scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// All of them.
    All,
    /// Only the first `at`; then `then` in place of the rest, and nothing after it. `then` is
    /// [`STAND_IN`] when hyper holds nothing of the refused head yet, so that the stand-in's
    /// request takes the refusal; otherwise a NUL byte that makes hyper's parse of the head it
    /// holds fail (it answers 400 itself).
    Cut {
        /// How many of the bytes fed hyper may see.
        at: usize,
        /// What hyper gets instead of the rest.
        then: &'static [u8],
    },
}

/// The head hyper parses in place of one it must not see; its request takes the queued refusal
/// (the access log shows it as `- *`).
pub const STAND_IN: &[u8] = b"- * HTTP/1.1\r\n\r\n";

/// Makes hyper's parse of a partly delivered head fail, whatever part it holds: NUL is valid
/// nowhere in a request head.
const SPOIL: &[u8] = b"\0";

/// Largest Content-Length hyper accepts; beyond it hyper answers 431.
const MAX_LENGTH: u64 = u64::MAX - 2;

const fn refusal(status: StatusCode, reason: &'static str) -> HeadVerdict {
    HeadVerdict::Refused(Rejection { status, reason })
}

const BARE_LF: HeadVerdict = refusal(
    StatusCode::BAD_REQUEST,
    "bare LF as a line end in the request head (end lines with CRLF)",
);
const LENGTH_WITH_TRANSFER_ENCODING: HeadVerdict = refusal(
    StatusCode::BAD_REQUEST,
    "both Content-Length and Transfer-Encoding",
);
const REPEATED_LENGTH: HeadVerdict =
    refusal(StatusCode::BAD_REQUEST, "more than one Content-Length");
const LENGTH_OVERFLOW: HeadVerdict = refusal(
    StatusCode::BAD_REQUEST,
    "Content-Length too large to be a body length",
);
const CHUNKED_TWICE: HeadVerdict = refusal(
    StatusCode::BAD_REQUEST,
    "Transfer-Encoding applies chunked more than once",
);
const UNSUPPORTED_CODING: HeadVerdict = refusal(
    StatusCode::NOT_IMPLEMENTED,
    "Transfer-Encoding other than chunked (send the body chunked, without other codings)",
);
const OTHER_VERSION: HeadVerdict = refusal(
    StatusCode::HTTP_VERSION_NOT_SUPPORTED,
    "this server speaks HTTP/1.1 (HTTP/2 only through a proxy in front)",
);
/// For a request the scanner has no verdict for: it lost track of the stream, so the request
/// cannot be judged.
const UNJUDGED: HeadVerdict = refusal(
    StatusCode::BAD_REQUEST,
    "request stream not followed past an earlier malformed request",
);

#[derive(Debug)]
enum State {
    /// Collecting a head (leading empty lines are skipped, as hyper does).
    Head(Head),
    /// Skipping a fixed-length body.
    Fixed(u64),
    /// Skipping a chunked body.
    Chunked(Chunked),
    /// Judging nothing more: after a refusal (the connection is closing) or a head hyper rejects
    /// too.
    Off,
}

/// A head being collected.
#[derive(Debug, Default)]
struct Head {
    /// The head's bytes so far, when it spans reads; empty when it is judged in place.
    buf: Vec<u8>,
    /// How far the scan got.
    marks: Marks,
}

/// What one pass over a head has found so far; resumes where the last read ended.
#[derive(Debug, Default, Clone, Copy)]
struct Marks {
    /// Where the search for the next LF resumes.
    pos: usize,
    /// Where the current line starts.
    line: usize,
    /// Whether the request line is done.
    past_request_line: bool,
    /// A line ended in LF without CR.
    bare_lf: bool,
    /// A line starts with a field name that frames a body.
    framing: bool,
}

/// How far a scan got.
enum Scan {
    /// The head goes on past these bytes.
    More,
    /// The head is complete, this long.
    Done(usize),
    /// The request line already decides: refuse, and keep hyper from parsing it.
    Cut(HeadVerdict),
}

/// Follows one connection's request stream.
#[derive(Debug)]
pub struct HeadScanner {
    state: State,
    verdicts: VecDeque<HeadVerdict>,
    /// hyper's limit on fields per head, for the framing parse.
    max_headers: usize,
    /// hyper's read buffer size: it answers 431 to a longer head, so the scanner stops buffering
    /// there.
    max_head: usize,
}

impl Default for HeadScanner {
    /// hyper's default limits (100 fields, a 400 KiB buffer).
    fn default() -> Self {
        HeadScanner::new(100, 400 * 1024)
    }
}

impl HeadScanner {
    /// A scanner for a new connection; `max_headers` and `max_head` are hyper's limits on fields
    /// per head and on its read buffer, so that the scanner follows every head hyper accepts.
    pub fn new(max_headers: usize, max_head: usize) -> Self {
        HeadScanner {
            state: State::Head(Head::default()),
            verdicts: VecDeque::new(),
            max_headers,
            max_head,
        }
    }

    /// The verdict for the next request hyper hands over, in order. A request the scanner has
    /// no verdict for (it lost track of the stream) is refused.
    pub fn next_verdict(&mut self) -> HeadVerdict {
        self.verdicts.pop_front().unwrap_or(UNJUDGED)
    }

    /// How many verdicts wait for their requests (hyper has not handed those over yet); for
    /// tests and the fuzz targets, which compare them with what hyper would parse.
    pub fn queued(&self) -> usize {
        self.verdicts.len()
    }

    /// Feeds bytes just read from the client; says how many of them hyper may see.
    pub fn feed(&mut self, data: &[u8]) -> Pass {
        let mut rest = data;
        while !rest.is_empty() {
            let offset = data.len() - rest.len();
            rest = match &mut self.state {
                State::Off => return Pass::All,
                State::Fixed(left) => {
                    let n = (*left).min(rest.len() as u64) as usize;
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::Head(Head::default());
                    }
                    &rest[n..]
                }
                State::Chunked(body) => match body.skip(rest) {
                    Ok(Some(used)) => {
                        self.state = State::Head(Head::default());
                        &rest[used..]
                    }
                    Ok(None) => return Pass::All,
                    // hyper fails the body too and closes the connection.
                    Err(()) => {
                        self.state = State::Off;
                        return Pass::All;
                    }
                },
                State::Head(head) if head.buf.is_empty() => {
                    let skip = rest.iter().take_while(|&&b| b == b'\r' || b == b'\n');
                    let rest = &rest[skip.count()..];
                    if rest.is_empty() {
                        return Pass::All;
                    }
                    // The usual case: the whole head arrived in one read. Judge it in place,
                    // without copying it.
                    let start = data.len() - rest.len();
                    match scan(rest, &mut head.marks) {
                        Scan::Done(end) => {
                            let marks = head.marks;
                            if let Some(pass) = self.judge(&rest[..end], &marks, start) {
                                return pass;
                            }
                            &rest[end..]
                        }
                        Scan::Cut(verdict) => return self.cut(verdict, start),
                        Scan::More => {
                            head.buf.extend_from_slice(rest);
                            if head.buf.len() > self.max_head {
                                self.state = State::Off;
                            }
                            return Pass::All;
                        }
                    }
                }
                State::Head(head) => {
                    let before = head.buf.len();
                    head.buf.extend_from_slice(rest);
                    match scan(&head.buf, &mut head.marks) {
                        Scan::Done(end) => {
                            let (buf, marks) = (std::mem::take(&mut head.buf), head.marks);
                            // hyper holds the head's start already: a cut cannot hide it.
                            if let Some(pass) = self.judge(&buf[..end], &marks, offset) {
                                return spoiled(pass, offset);
                            }
                            &rest[end - before..]
                        }
                        Scan::Cut(verdict) => return spoiled(self.cut(verdict, offset), offset),
                        Scan::More => {
                            if head.buf.len() > self.max_head {
                                self.state = State::Off;
                            }
                            return Pass::All;
                        }
                    }
                }
            };
        }
        Pass::All
    }

    /// Judges a complete head that starts `start` bytes into the read; `Some` when the stream
    /// must be cut there.
    fn judge(&mut self, head: &[u8], marks: &Marks, start: usize) -> Option<Pass> {
        // Most heads (GETs) carry no framing field at all: nothing to judge, no body to skip,
        // and no second parse on the request path.
        if !marks.framing {
            if marks.bare_lf {
                self.refuse(BARE_LF);
            } else {
                self.verdicts.push_back(HeadVerdict::Clean);
                self.state = State::Head(Head::default());
            }
            return None;
        }
        match framing(head, self.max_headers) {
            // Before the bare LF: hyper must not see a head it would answer wrongly.
            Framing::Cut(verdict) => Some(self.cut(verdict, start)),
            _ if marks.bare_lf => {
                self.refuse(BARE_LF);
                None
            }
            Framing::Body(body) => {
                self.verdicts.push_back(HeadVerdict::Clean);
                self.state = match body {
                    Body::Empty => State::Head(Head::default()),
                    Body::Length(n) => State::Fixed(n),
                    Body::Chunked => State::Chunked(Chunked::default()),
                };
                None
            }
            Framing::Refused(verdict) => {
                self.refuse(verdict);
                None
            }
            // hyper rejects this head itself and closes the connection.
            Framing::Rejected => {
                self.state = State::Off;
                None
            }
        }
    }

    fn refuse(&mut self, verdict: HeadVerdict) {
        self.verdicts.push_back(verdict);
        self.state = State::Off;
    }

    fn cut(&mut self, verdict: HeadVerdict, at: usize) -> Pass {
        self.refuse(verdict);
        Pass::Cut { at, then: STAND_IN }
    }
}

/// The cut of a head hyper has partly seen: it cannot be hidden, so spoil it from `at`, where
/// this read's part of it starts.
fn spoiled(pass: Pass, at: usize) -> Pass {
    match pass {
        Pass::Cut { .. } => Pass::Cut { at, then: SPOIL },
        Pass::All => Pass::All,
    }
}

/// Looks for the end of a head where httparse finds it (the first empty line, ended by CRLF or
/// LF), resuming at `m.pos`, and notes on the way what the judge needs.
fn scan(head: &[u8], m: &mut Marks) -> Scan {
    for lf in memchr::memchr_iter(b'\n', &head[m.pos..]) {
        let lf = m.pos + lf;
        let mut line = &head[m.line..lf];
        match line.split_last() {
            Some((b'\r', text)) => line = text,
            _ => m.bare_lf = true,
        }
        if !m.past_request_line {
            m.past_request_line = true;
            if other_major_version(line) {
                return Scan::Cut(OTHER_VERSION);
            }
        } else if line.is_empty() {
            return Scan::Done(lf + 1);
        } else if frames_body(line) {
            m.framing = true;
        }
        m.line = lf + 1;
    }
    m.pos = head.len();
    Scan::More
}

/// Whether a request line ends in an HTTP version of another major number than 1 (`HTTP/2.0`,
/// HTTP/2's preface `PRI * HTTP/2.0`, `HTTP/3`): hyper would answer 400, or nothing.
fn other_major_version(line: &[u8]) -> bool {
    if line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0") {
        return false; // the usual case, decided by one comparison
    }
    let Some(space) = line.iter().rposition(|&b| b == b' ') else {
        return false;
    };
    match &line[space + 1..] {
        [b'H', b'T', b'T', b'P', b'/', major, rest @ ..] => {
            let minor = matches!(rest, [] | [b'.', b'0'..=b'9']);
            major.is_ascii_digit() && *major != b'1' && minor
        }
        _ => false,
    }
}

/// Whether a header line may be Content-Length or Transfer-Encoding. Conservative: a prefix
/// match leads to the full parse.
fn frames_body(line: &[u8]) -> bool {
    let starts =
        |name: &[u8]| line.len() > name.len() && line[..name.len()].eq_ignore_ascii_case(name);
    match line[0] | 0x20 {
        b'c' => starts(b"content-length"),
        b't' => starts(b"transfer-encoding"),
        _ => false,
    }
}

/// How a head frames its body, or why it is refused.
enum Framing {
    Body(Body),
    /// Refused in the service, with hyper's parse of the head.
    Refused(HeadVerdict),
    /// Refused before hyper sees the head, which it would answer wrongly.
    Cut(HeadVerdict),
    /// hyper refuses the head itself.
    Rejected,
}

/// A request body's framing.
enum Body {
    Empty,
    Length(u64),
    Chunked,
}

/// Parses a head with a framing field as hyper does and derives its body framing by hyper's
/// rules (RFC 9112 section 6.3), refusing what segue refuses.
fn framing(head: &[u8], max_headers: usize) -> Framing {
    let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = req.parse(head) else {
        return Framing::Rejected;
    };
    let (mut lengths, mut length, mut overflow) = (0, None, false);
    let (mut te, mut chunked_last, mut chunked, mut other_coding) = (false, false, 0, false);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            match digits(h.value) {
                Some(n) if n > MAX_LENGTH => overflow = true,
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                // Differing lengths, or not a number: hyper answers 400.
                _ => length = None,
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
            // hyper frames by the last coding of the last field line, when it is readable.
            chunked_last = h
                .value
                .iter()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
                && h.value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            for coding in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked += 1;
                } else if !coding.is_empty() {
                    other_coding = true; // empty list elements are allowed (RFC 9110 5.6.1)
                }
            }
        }
    }
    if overflow {
        return Framing::Cut(LENGTH_OVERFLOW);
    }
    if te && req.version == Some(0) {
        return Framing::Rejected; // hyper refuses Transfer-Encoding in HTTP/1.0
    }
    if te && lengths > 0 {
        return Framing::Refused(LENGTH_WITH_TRANSFER_ENCODING);
    }
    if te && !chunked_last {
        return Framing::Rejected; // hyper: "transfer-encoding, but not chunked"
    }
    if other_coding {
        return Framing::Refused(UNSUPPORTED_CODING);
    }
    if chunked > 1 {
        return Framing::Refused(CHUNKED_TWICE);
    }
    if te {
        return Framing::Body(Body::Chunked);
    }
    match (lengths, length) {
        (0, _) | (1, Some(0)) => Framing::Body(Body::Empty),
        (1, Some(n)) => Framing::Body(Body::Length(n)),
        (_, Some(_)) => Framing::Refused(REPEATED_LENGTH),
        (_, None) => Framing::Rejected,
    }
}

/// A Content-Length value as hyper reads it: decimal digits only (no sign, no spaces; httparse
/// has trimmed the value), `None` when it is not one or overflows 64 bits.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

#[cfg(test)]
mod tests;
