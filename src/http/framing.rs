//! Checks on the raw request head that hyper's parser normalises away before the service sees
//! the request: a head with both `Content-Length` and `Transfer-Encoding` (hyper silently drops
//! the length) and a head with the same `Content-Length` twice (hyper merges them). Both are
//! request-smuggling vectors and RFC 9112 lets a server reject them; segue answers 400.
//!
//! [`HeadScanner`] follows the byte stream the connection reads, before hyper parses it: it
//! finds each request head, judges it, and skips the body by its framing (Content-Length or
//! chunked) to find the next head. Verdicts queue up in order; the service takes one per request.
//! On anything it cannot follow (a head hyper will reject anyway, an upgrade) it stops and
//! judges nothing more, which leaves hyper's own checks in charge.

use std::collections::VecDeque;

/// The verdict on one request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadVerdict {
    /// Nothing wrong at the byte level.
    Clean,
    /// Content-Length together with Transfer-Encoding.
    LengthWithTransferEncoding,
    /// Content-Length given more than once.
    RepeatedLength,
}

/// Longest head the scanner buffers; beyond it hyper answers 431 itself.
const MAX_HEAD: usize = 1 << 20;

#[derive(Debug)]
enum State {
    /// Collecting a head (leading empty lines are skipped, as hyper does).
    Head(Vec<u8>),
    /// Skipping a fixed-length body.
    Fixed(u64),
    /// Reading a chunk-size line.
    ChunkSize(Vec<u8>),
    /// Skipping chunk data, then its CRLF.
    ChunkData(u64),
    /// Reading trailer lines until an empty one.
    Trailers(Vec<u8>),
    /// Lost track (bad head, upgrade): judge nothing more.
    Off,
}

/// Follows one connection's request stream.
#[derive(Debug)]
pub struct HeadScanner {
    state: State,
    verdicts: VecDeque<HeadVerdict>,
    max_headers: usize,
}

impl HeadScanner {
    /// A scanner for a new connection; `max_headers` bounds the parse like hyper's limit.
    pub fn new(max_headers: usize) -> Self {
        HeadScanner {
            state: State::Head(Vec::new()),
            verdicts: VecDeque::new(),
            max_headers,
        }
    }

    /// The verdict for the next request hyper hands over, in order. `None` once the scanner
    /// has stopped following the stream.
    pub fn next_verdict(&mut self) -> Option<HeadVerdict> {
        self.verdicts.pop_front()
    }

    /// Feeds bytes just read from the client.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            data = match &mut self.state {
                State::Off => return,
                State::Head(buf) => {
                    if buf.is_empty() {
                        let skip = data
                            .iter()
                            .take_while(|&&b| b == b'\r' || b == b'\n')
                            .count();
                        data = &data[skip..];
                        if data.is_empty() {
                            return;
                        }
                    }
                    if buf.is_empty() {
                        // The usual case: the whole head arrived in one read. Judge it in place,
                        // without copying it.
                        if let Some(i) = find(data, b"\r\n\r\n") {
                            let (head, rest) = data.split_at(i + 4);
                            self.judge(head);
                            data = rest;
                            continue;
                        }
                    }
                    let start = buf.len().saturating_sub(3);
                    buf.extend_from_slice(data);
                    match find(&buf[start..], b"\r\n\r\n") {
                        Some(i) => {
                            let end = start + i + 4;
                            let rest_from = data.len() - (buf.len() - end);
                            let head = std::mem::take(buf);
                            self.judge(&head[..end]);
                            &data[rest_from..]
                        }
                        None if buf.len() > MAX_HEAD => {
                            self.state = State::Off;
                            return;
                        }
                        None => return,
                    }
                }
                State::Fixed(left) => {
                    let n = (*left).min(data.len() as u64) as usize;
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                    &data[n..]
                }
                State::ChunkSize(line) => match data.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        line.extend_from_slice(&data[..i]);
                        let size = parse_chunk_size(line);
                        self.state = match size {
                            Some(0) => State::Trailers(Vec::new()),
                            Some(n) => State::ChunkData(n + 2),
                            None => State::Off,
                        };
                        &data[i + 1..]
                    }
                    None => {
                        line.extend_from_slice(data);
                        if line.len() > 1024 {
                            self.state = State::Off;
                        }
                        return;
                    }
                },
                State::ChunkData(left) => {
                    let n = (*left).min(data.len() as u64) as usize;
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::ChunkSize(Vec::new());
                    }
                    &data[n..]
                }
                State::Trailers(line) => match data.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        line.extend_from_slice(&data[..i]);
                        let empty = line.iter().all(|&b| b == b'\r');
                        line.clear();
                        if empty {
                            self.state = State::Head(Vec::new());
                        }
                        &data[i + 1..]
                    }
                    None => {
                        line.extend_from_slice(data);
                        return;
                    }
                },
            };
        }
    }

    fn judge(&mut self, head: &[u8]) {
        // Most heads (GETs) carry no framing field at all: nothing to judge, no body to skip,
        // and no second full parse on the request path.
        if !mentions_framing(head) {
            self.verdicts.push_back(HeadVerdict::Clean);
            self.state = State::Head(Vec::new());
            return;
        }
        let mut headers = vec![httparse::EMPTY_HEADER; self.max_headers];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(_)) = req.parse(head) else {
            // hyper rejects this head itself; nothing after it will be served.
            self.state = State::Off;
            return;
        };
        let (mut lengths, mut length, mut te, mut chunked, mut upgrade) =
            (0, None, false, false, false);
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                lengths += 1;
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                te = true;
                chunked = h
                    .value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        let verdict = if lengths > 0 && te {
            HeadVerdict::LengthWithTransferEncoding
        } else if lengths > 1 {
            HeadVerdict::RepeatedLength
        } else {
            HeadVerdict::Clean
        };
        self.verdicts.push_back(verdict);
        self.state = if verdict != HeadVerdict::Clean || upgrade || req.method == Some("CONNECT") {
            // A rejected head closes the connection; an upgrade leaves HTTP.
            State::Off
        } else if chunked {
            State::ChunkSize(Vec::new())
        } else if te {
            State::Off // hyper rejects a request whose last coding is not chunked
        } else {
            match length {
                Some(0) | None if lengths == 0 => State::Head(Vec::new()),
                Some(0) => State::Head(Vec::new()),
                Some(n) => State::Fixed(n),
                None => State::Off, // invalid length: hyper answers 400
            }
        };
    }
}

/// Whether the head is a CONNECT or has a line starting with a field name that frames a body
/// or leaves HTTP. Conservative: any prefix match leads to the full parse.
fn mentions_framing(head: &[u8]) -> bool {
    if head.starts_with(b"CONNECT ") {
        return true;
    }
    head.split(|&b| b == b'\n').skip(1).any(|line| {
        let starts =
            |name: &[u8]| line.len() > name.len() && line[..name.len()].eq_ignore_ascii_case(name);
        starts(b"content-length") || starts(b"transfer-encoding") || starts(b"upgrade")
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = std::str::from_utf8(line).ok()?;
    let size = line.trim_end_matches('\r').split(';').next()?.trim();
    u64::from_str_radix(size, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(stream: &[u8], split: usize) -> Vec<HeadVerdict> {
        let mut s = HeadScanner::new(100);
        for part in stream.chunks(split) {
            s.feed(part);
        }
        std::iter::from_fn(|| s.next_verdict()).collect()
    }

    #[test]
    fn follows_pipelined_requests_with_bodies_in_any_split() {
        let stream = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n\
            POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\n\r\nGET / HTTP/1.\
            POST /y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\n\r\n\r\nx\r\n0\r\nX-Trailer: 1\r\n\r\n\
            GET /z HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
        for split in [1, 2, 3, 7, 64, stream.len()] {
            assert_eq!(
                verdicts(stream, split),
                vec![
                    HeadVerdict::Clean,
                    HeadVerdict::Clean,
                    HeadVerdict::Clean,
                    HeadVerdict::RepeatedLength
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
            assert_eq!(verdicts(head, 5), vec![HeadVerdict::LengthWithTransferEncoding]);
        }
    }

    #[test]
    fn heads_without_framing_fields_skip_the_parse_but_keep_the_order() {
        assert!(!mentions_framing(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Content-Length-ish: 1\r\n\r\n"
        ));
        assert!(mentions_framing(
            b"POST / HTTP/1.1\r\nhost: a\r\nCONTENT-LENGTH: 1\r\n\r\n"
        ));
        assert!(mentions_framing(
            b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"
        ));
        let stream = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
        assert_eq!(
            verdicts(stream, 4),
            vec![HeadVerdict::Clean, HeadVerdict::RepeatedLength]
        );
    }

    #[test]
    fn stops_on_heads_hyper_rejects() {
        // A malformed head whose body framing cannot be known: stop following the stream (hyper
        // answers 400 and closes the connection, so no later verdict is needed).
        let mut s = HeadScanner::new(100);
        s.feed(b"POST / HTTP/1.1\r\nBad Header: x\r\nContent-Length: 5\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(s.next_verdict(), None);
    }
}
