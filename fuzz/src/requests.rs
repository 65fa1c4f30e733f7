//! Request streams built from a grammar (through `arbitrary`), mostly well formed and wrong in
//! the places smuggling lives: line ends, framing fields and their values, chunk size lines,
//! trailers, versions. Byte-level mutation rarely makes a coherent chunked body with one flaw
//! and a request after it; this does, so the head-scan target checks streams both ways.

use arbitrary::Arbitrary;

/// One connection's bytes: requests one after another (pipelined).
#[derive(Debug, Arbitrary)]
pub struct Stream {
    requests: Vec<Request>,
    /// Bytes after the last request (a partial one, say).
    tail: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
struct Request {
    /// Empty lines before the request line (each CRLF or LF).
    leading: Vec<bool>,
    method: Method,
    target: Target,
    version: Version,
    fields: Vec<Field>,
    body: Body,
    /// How each line of the head ends, in turn (cycled); empty means CRLF throughout.
    ends: Vec<End>,
}

#[derive(Debug, Arbitrary)]
enum Method {
    Get,
    Post,
    Options,
    Connect,
    Pri,
    Other(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Target {
    Origin,
    Star,
    Authority,
    Absolute,
    Other(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Version {
    Http11,
    Http10,
    Http20,
    Http2,
    Other(Vec<u8>),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum End {
    CrLf,
    Lf,
    Cr,
    CrCrLf,
    SpaceCrLf,
}

#[derive(Debug, Arbitrary)]
struct Field {
    name: Name,
    /// Bit i set: letter i of the name in upper case.
    case: u32,
    value: Value,
}

#[derive(Debug, Arbitrary)]
enum Name {
    Host,
    ContentLength,
    TransferEncoding,
    Upgrade,
    Connection,
    /// `Content-Length-X`, `Transfer-Encodings`: near misses for the scanner's prefix match.
    NearMiss(bool),
    Other(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Value {
    /// The body's real length plus this (a lie when not 0).
    Length(i8),
    /// A length as text: huge, signed, spaced.
    LengthText(LengthText),
    Codings(Vec<Coding>),
    Other(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum LengthText {
    Max,
    MaxMinus(u8),
    Overflow,
    Plus,
    Spaced,
    Comma,
}

#[derive(Debug, Arbitrary)]
enum Coding {
    Chunked,
    Gzip,
    Identity,
    Empty,
    Other(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Body {
    None,
    Bytes(Vec<u8>),
    Chunked {
        chunks: Vec<Chunk>,
        trailers: Vec<Vec<u8>>,
        /// Whether the last chunk (size 0) and the final CRLF are there.
        last: bool,
    },
}

#[derive(Debug, Arbitrary)]
struct Chunk {
    data: Vec<u8>,
    /// Added to the real size in the size line (a lie when not 0).
    size_lie: i8,
    /// Leading zeros, upper-case hex, spaces or a tab before the extension.
    zeros: u8,
    upper: bool,
    lws: Option<bool>,
    extension: Option<Vec<u8>>,
    /// Before the size (hyper refuses anything there).
    junk: Option<u8>,
    size_end: End,
    data_end: End,
}

impl Stream {
    /// The bytes a client would send.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for r in self.requests.iter().take(6) {
            r.write(&mut out);
        }
        out.extend_from_slice(&self.tail);
        out
    }
}

impl End {
    fn bytes(self) -> &'static [u8] {
        match self {
            End::CrLf => b"\r\n",
            End::Lf => b"\n",
            End::Cr => b"\r",
            End::CrCrLf => b"\r\r\n",
            End::SpaceCrLf => b" \r\n",
        }
    }
}

impl Request {
    fn write(&self, out: &mut Vec<u8>) {
        for &lf in self.leading.iter().take(3) {
            out.extend_from_slice(if lf { b"\n" } else { b"\r\n" });
        }
        let mut ends = self.ends.iter().copied().cycle();
        let mut end = |out: &mut Vec<u8>| {
            out.extend_from_slice(ends.next().unwrap_or(End::CrLf).bytes());
        };
        out.extend_from_slice(match &self.method {
            Method::Get => b"GET",
            Method::Post => b"POST",
            Method::Options => b"OPTIONS",
            Method::Connect => b"CONNECT",
            Method::Pri => b"PRI",
            Method::Other(m) => m,
        });
        out.push(b' ');
        out.extend_from_slice(match &self.target {
            Target::Origin => b"/a?b=c",
            Target::Star => b"*",
            Target::Authority => b"example.com:443",
            Target::Absolute => b"http://[::1]:8080/x",
            Target::Other(t) => t,
        });
        out.push(b' ');
        out.extend_from_slice(match &self.version {
            Version::Http11 => b"HTTP/1.1",
            Version::Http10 => b"HTTP/1.0",
            Version::Http20 => b"HTTP/2.0",
            Version::Http2 => b"HTTP/2",
            Version::Other(v) => v,
        });
        end(out);
        let body = self.body.bytes();
        for field in self.fields.iter().take(8) {
            field.write(out, body.len());
            end(out);
        }
        end(out);
        out.extend_from_slice(&body);
    }
}

impl Field {
    fn write(&self, out: &mut Vec<u8>, body_len: usize) {
        let name: &[u8] = match &self.name {
            Name::Host => b"host",
            Name::ContentLength => b"content-length",
            Name::TransferEncoding => b"transfer-encoding",
            Name::Upgrade => b"upgrade",
            Name::Connection => b"connection",
            Name::NearMiss(true) => b"content-length-x",
            Name::NearMiss(false) => b"transfer-encodings",
            Name::Other(n) => n,
        };
        out.extend(name.iter().enumerate().map(|(i, &b)| {
            if i < 32 && self.case >> i & 1 == 1 {
                b.to_ascii_uppercase()
            } else {
                b
            }
        }));
        out.extend_from_slice(b": ");
        match &self.value {
            Value::Length(lie) => {
                let n = (body_len as i64 + i64::from(*lie)).max(0);
                out.extend_from_slice(n.to_string().as_bytes());
            }
            Value::LengthText(t) => {
                let text = match t {
                    LengthText::Max => u64::MAX.to_string(),
                    LengthText::MaxMinus(k) => (u64::MAX - u64::from(*k % 4)).to_string(),
                    LengthText::Overflow => "99999999999999999999".to_owned(),
                    LengthText::Plus => "+1".to_owned(),
                    LengthText::Spaced => "1 1".to_owned(),
                    LengthText::Comma => "1, 1".to_owned(),
                };
                out.extend_from_slice(text.as_bytes());
            }
            Value::Codings(codings) => {
                for (i, c) in codings.iter().take(4).enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    out.extend_from_slice(match c {
                        Coding::Chunked => b"chunked",
                        Coding::Gzip => b"gzip",
                        Coding::Identity => b"identity",
                        Coding::Empty => b"",
                        Coding::Other(o) => o,
                    });
                }
            }
            Value::Other(v) => out.extend_from_slice(v),
        }
    }
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Body::None => {}
            Body::Bytes(b) => out.extend_from_slice(b),
            Body::Chunked {
                chunks,
                trailers,
                last,
            } => {
                for c in chunks.iter().take(4) {
                    c.write(&mut out);
                }
                if *last {
                    out.extend_from_slice(b"0\r\n");
                    for t in trailers.iter().take(3) {
                        out.extend_from_slice(t);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        out
    }
}

impl Chunk {
    fn write(&self, out: &mut Vec<u8>) {
        if let Some(j) = self.junk {
            out.push(j);
        }
        let size = (self.data.len() as i64 + i64::from(self.size_lie)).max(0);
        let hex = if self.upper {
            format!("{:0w$X}", size, w = usize::from(self.zeros % 4) + 1)
        } else {
            format!("{:0w$x}", size, w = usize::from(self.zeros % 4) + 1)
        };
        out.extend_from_slice(hex.as_bytes());
        match self.lws {
            Some(true) => out.push(b' '),
            Some(false) => out.push(b'\t'),
            None => {}
        }
        if let Some(ext) = &self.extension {
            out.push(b';');
            out.extend_from_slice(ext);
        }
        out.extend_from_slice(self.size_end.bytes());
        out.extend_from_slice(&self.data);
        out.extend_from_slice(self.data_end.bytes());
    }
}
