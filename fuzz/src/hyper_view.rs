//! What hyper makes of a request stream, rebuilt independently of segue's head scanner: heads
//! parsed by httparse (as hyper does), framing by hyper's rules (`hyper::proto::h1::role`,
//! `decode`), and segue's refusals (RFC 9112) stated plainly, one rule a line. The head scanner
//! must agree with it on every head hyper would hand to segue's service.

use std::ops::Range;

/// Largest Content-Length hyper accepts (`DecodedLength::MAX_LEN`).
pub const MAX_LENGTH: u64 = u64::MAX - 2;

/// How the walk over a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every byte belongs to a request served in full.
    Complete,
    /// The stream stops inside a head or a body.
    Incomplete,
    /// hyper refuses the head starting here itself (and closes the connection).
    Rejected(usize),
    /// segue refuses the last head, after hyper parsed it; the connection closes.
    Refused,
    /// segue must keep the head starting here from hyper, and refuse it.
    Cut(usize),
}

/// The expected verdicts: the status for each head hyper hands over (200 when segue lets it
/// through), and how the walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// One per request, in order; the last is the cut or refused head's status.
    pub statuses: Vec<u16>,
    /// Where each of those heads starts and ends in the stream.
    pub heads: Vec<Range<usize>>,
    /// Why the walk stopped.
    pub end: End,
}

/// Walks `stream` as hyper (with `max_headers`) and segue together would.
pub fn expect(stream: &[u8], max_headers: usize) -> Expected {
    let mut out = Expected {
        statuses: Vec::new(),
        heads: Vec::new(),
        end: End::Complete,
    };
    let mut pos = 0;
    loop {
        // segue places a cut after the empty lines before a head.
        let start = pos
            + stream[pos..]
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
        if start == stream.len() {
            out.end = End::Complete;
            return out;
        }
        // The request line alone decides the version.
        let Some(line_end) = stream[start..].iter().position(|&b| b == b'\n') else {
            out.end = End::Incomplete;
            return out;
        };
        let line = &stream[start..start + line_end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if is_other_major_version(line) {
            out.statuses.push(505);
            out.heads.push(start..start + line_end + 1);
            out.end = End::Cut(start);
            return out;
        }
        let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
        let mut req = httparse::Request::new(&mut headers);
        let len = match req.parse(&stream[pos..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                out.end = End::Incomplete;
                return out;
            }
            Err(_) => {
                out.end = End::Rejected(start);
                return out;
            }
        };
        let head = start..pos + len;
        let fields: Vec<(String, Vec<u8>)> = req
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect();
        // segue's cut: a length hyper would answer 431 to, wherever it stands.
        let overflow = fields
            .iter()
            .any(|(n, v)| n == "content-length" && from_digits(v).is_some_and(|l| l > MAX_LENGTH));
        if overflow {
            out.statuses.push(400);
            out.heads.push(head);
            out.end = End::Cut(start);
            return out;
        }
        let Some(body) = hyper_framing(&req, &fields) else {
            out.end = End::Rejected(start);
            return out;
        };
        let status = segue_status(&stream[head.clone()], &fields);
        out.statuses.push(status);
        out.heads.push(head.clone());
        if status != 200 {
            out.end = End::Refused;
            return out;
        }
        let body_start = head.end;
        pos = match body {
            HyperBody::Length(n) => match body_start.checked_add(n as usize) {
                Some(end) if end <= stream.len() && n <= usize::MAX as u64 => end,
                _ => {
                    out.end = End::Incomplete;
                    return out;
                }
            },
            HyperBody::Chunked => match chunked_end(&stream[body_start..]) {
                Some(n) => body_start + n,
                None => {
                    // Incomplete, or a body hyper fails: either way nothing more is served.
                    out.end = End::Incomplete;
                    return out;
                }
            },
        };
    }
}

/// `HTTP/` DIGIT [ "." DIGIT ] with a major number other than 1, after the request line's
/// last space.
fn is_other_major_version(line: &[u8]) -> bool {
    let mut parts = line.rsplitn(2, |&b| b == b' ');
    match (parts.next(), parts.next()) {
        (Some(version), Some(_)) => std::str::from_utf8(version).is_ok_and(version_is_other),
        _ => false,
    }
}

fn version_is_other(version: &str) -> bool {
    let Some(number) = version.strip_prefix("HTTP/") else {
        return false;
    };
    let mut chars = number.chars();
    let major = chars.next();
    let rest: String = chars.collect();
    let minor_ok = rest.is_empty()
        || (rest.len() == 2
            && rest.starts_with('.')
            && rest[1..].chars().all(|c| c.is_ascii_digit()));
    major.is_some_and(|m| m.is_ascii_digit() && m != '1') && minor_ok
}

enum HyperBody {
    Length(u64),
    Chunked,
}

/// hyper's `Server::parse` after httparse: `None` where it refuses the head.
fn hyper_framing(req: &httparse::Request, fields: &[(String, Vec<u8>)]) -> Option<HyperBody> {
    http::Method::from_bytes(req.method?.as_bytes()).ok()?;
    if req.headers.iter().any(|h| h.name.len() >= 1 << 16) {
        return None; // 431
    }
    let path = req.path?;
    if path.len() >= u16::MAX as usize {
        return None; // MAX_URI_LEN: 414
    }
    http::Uri::try_from(path.as_bytes()).ok()?;
    let http11 = req.version? == 1;
    let (mut is_te, mut is_cl, mut chunked) = (false, false, false);
    let mut length: Option<u64> = None;
    for (name, value) in fields {
        match name.as_str() {
            "transfer-encoding" => {
                if !http11 {
                    return None;
                }
                is_te = true;
                if is_cl {
                    length = None;
                }
                chunked = std::str::from_utf8(value)
                    .ok()
                    .filter(|s| s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
                    .and_then(|s| s.rsplit(',').next())
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            }
            "content-length" => {
                is_cl = true;
                if is_te {
                    continue;
                }
                let n = from_digits(value)?;
                match length {
                    Some(prev) if prev != n => return None,
                    Some(_) => continue,
                    None if n > MAX_LENGTH => return None,
                    None => length = Some(n),
                }
            }
            _ => {}
        }
    }
    if is_te && !chunked {
        return None;
    }
    Some(if is_te {
        HyperBody::Chunked
    } else {
        HyperBody::Length(length.unwrap_or(0))
    })
}

/// hyper's `from_digits`: decimal digits only, no overflow.
fn from_digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// segue's answer to a head hyper accepts: 200 to let it through, else the refusal's status.
fn segue_status(head: &[u8], fields: &[(String, Vec<u8>)]) -> u16 {
    let bare_lf = head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'));
    let count = |name: &str| fields.iter().filter(|(n, _)| n == name).count();
    let codings: Vec<String> = fields
        .iter()
        .filter(|(n, _)| n == "transfer-encoding")
        .flat_map(|(_, v)| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    let lengths = count("content-length");
    // segue's rules, first match wins.
    let rules = [
        (bare_lf, 400),
        (lengths > 0 && count("transfer-encoding") > 0, 400),
        (codings.iter().any(|c| c != "chunked"), 501),
        (codings.len() > 1, 400),
        (lengths > 1, 400),
    ];
    rules
        .iter()
        .find(|(applies, _)| *applies)
        .map_or(200, |&(_, status)| status)
}

/// Where a chunked body ends by hyper's decoder, written line by line: `None` if the body is
/// incomplete or hyper fails on it.
fn chunked_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let digits = b[i..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if digits == 0 {
            return None;
        }
        let mut size: u64 = 0;
        for &c in &b[i..i + digits] {
            let d = (c as char).to_digit(16)? as u64;
            size = size.checked_mul(16)?.checked_add(d)?;
        }
        i += digits;
        i += b[i..]
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        if b.get(i) == Some(&b';') {
            let ext = b[i..].iter().position(|&c| c == b'\r' || c == b'\n')?;
            if b[i + ext] == b'\n' {
                return None;
            }
            i += ext;
        }
        if b.get(i..i + 2)? != b"\r\n" {
            return None;
        }
        i += 2;
        if size == 0 {
            // Trailer lines (anything up to CRLF, LF included), then CRLF.
            loop {
                if b.get(i..i + 2)? == b"\r\n" {
                    return Some(i + 2);
                }
                let cr = b[i..].iter().position(|&c| c == b'\r')?;
                i += cr;
                if b.get(i..i + 2)? != b"\r\n" {
                    return None;
                }
                i += 2;
            }
        }
        let data_end = i.checked_add(usize::try_from(size).ok()?)?;
        if b.get(data_end..data_end + 2)? != b"\r\n" {
            return None;
        }
        i = data_end + 2;
    }
}
