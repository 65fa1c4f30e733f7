//! The access line: gunicorn's `access_log_format` atoms (`%(h)s %(t)s "%(r)s" ...`), parsed
//! once per worker into a [`Format`], filled per request from what the worker knows when the
//! request arrives ([`Request`]) and when the response has been sent ([`Line::finish`]), and
//! rendered as text or, with `--log-format json`, as one JSON object with a field per atom.
//!
//! Only what the format names is captured: a format without `%({referer}i)s` copies no
//! header. Unknown atoms render as `-`, as gunicorn's do.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// gunicorn's default, the Apache combined format.
pub const COMBINED: &str = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// One atom of the format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    /// `h`: the client's address.
    Remote,
    /// `l`: always `-`.
    Ident,
    /// `u`: the user of HTTP Basic authentication, or `-`.
    User,
    /// `t`: the time, `[03/Dec/2026:15:20:01 +0000]`.
    Time,
    /// `r`: the request line, `GET /p?q=1 HTTP/1.1`.
    Request,
    /// `s`: the status code.
    Status,
    /// `m`: the method.
    Method,
    /// `U`: the path without the query.
    Path,
    /// `q`: the query string.
    Query,
    /// `H`: the protocol, `HTTP/1.1`.
    Protocol,
    /// `b` and `B`: the body bytes sent.
    Bytes,
    /// `f`: the Referer header.
    Referer,
    /// `a`: the User-Agent header.
    Agent,
    /// `T`: whole seconds taken.
    Secs,
    /// `D`: microseconds taken.
    Micros,
    /// `M`: milliseconds taken.
    Millis,
    /// `L`: seconds taken, with six decimals.
    Decimal,
    /// `p`: `<pid>`.
    Pid,
    /// `g`: segue's generation.
    Generation,
    /// `w`: segue's worker id.
    Worker,
    /// `{name}i`: a request header.
    RequestHeader(String),
    /// `{name}o`: a response header.
    ResponseHeader(String),
    /// Anything else (gunicorn's `{name}e` included): `-`.
    Unknown(String),
}

impl Atom {
    fn parse(name: &str) -> Atom {
        if let Some(inner) = name.strip_prefix('{') {
            if let Some(header) = inner.strip_suffix("}i") {
                return Atom::RequestHeader(header.to_ascii_lowercase());
            }
            if let Some(header) = inner.strip_suffix("}o") {
                return Atom::ResponseHeader(header.to_ascii_lowercase());
            }
        }
        match name {
            "h" => Atom::Remote,
            "l" => Atom::Ident,
            "u" => Atom::User,
            "t" => Atom::Time,
            "r" => Atom::Request,
            "s" => Atom::Status,
            "m" => Atom::Method,
            "U" => Atom::Path,
            "q" => Atom::Query,
            "H" => Atom::Protocol,
            "b" | "B" => Atom::Bytes,
            "f" => Atom::Referer,
            "a" => Atom::Agent,
            "T" => Atom::Secs,
            "D" => Atom::Micros,
            "M" => Atom::Millis,
            "L" => Atom::Decimal,
            "p" => Atom::Pid,
            "g" => Atom::Generation,
            "w" => Atom::Worker,
            other => Atom::Unknown(other.to_owned()),
        }
    }

    /// Its field in a JSON line.
    fn json_name(&self) -> String {
        let fixed = match self {
            Atom::Remote => "remote_addr",
            Atom::Ident => "ident",
            Atom::User => "user",
            Atom::Time => "time",
            Atom::Request => "request",
            Atom::Status => "status",
            Atom::Method => "method",
            Atom::Path => "path",
            Atom::Query => "query",
            Atom::Protocol => "protocol",
            Atom::Bytes => "bytes",
            Atom::Referer => "referer",
            Atom::Agent => "user_agent",
            Atom::Secs => "duration_s",
            Atom::Micros => "duration_us",
            Atom::Millis => "duration_ms",
            Atom::Decimal => "duration",
            Atom::Pid => "pid",
            Atom::Generation => "generation",
            Atom::Worker => "worker",
            Atom::RequestHeader(h) => return format!("request_{}", h.replace('-', "_")),
            Atom::ResponseHeader(h) => return format!("response_{}", h.replace('-', "_")),
            Atom::Unknown(name) => return name.clone(),
        };
        fixed.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Atom(Atom),
}

/// Why an access format cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// `%(` without its `)`.
    #[error("'%(' at byte {0} has no closing ')': write atoms as %(h)s")]
    Unclosed(usize),
    /// `%(name)` not followed by a conversion letter.
    #[error("'%({0})' must be followed by s (or d): write %({0})s")]
    NoConversion(String),
    /// A `%` that is neither `%(` nor `%%`.
    #[error("a lone '%' at byte {0}: write %% for a percent sign")]
    Lone(usize),
}

/// A parsed `--access-logformat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pieces: Vec<Piece>,
    /// Request headers any atom reads, lower-case.
    request_headers: Vec<String>,
    /// Response headers any atom reads, lower-case.
    response_headers: Vec<String>,
}

impl Format {
    /// Parses Python's `%(name)s` syntax as gunicorn applies it to its atoms.
    pub fn parse(format: &str) -> Result<Format, FormatError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        let mut at = 0;
        while let Some(i) = rest.find('%') {
            text.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(tail) = after.strip_prefix('%') {
                text.push('%');
                at += i + 2;
                rest = tail;
                continue;
            }
            let Some(inner) = after.strip_prefix('(') else {
                return Err(FormatError::Lone(at + i));
            };
            let close = inner.find(')').ok_or(FormatError::Unclosed(at + i))?;
            let name = &inner[..close];
            let tail = &inner[close + 1..];
            let conv = tail.chars().next();
            if !matches!(conv, Some('s' | 'd' | 'r')) {
                return Err(FormatError::NoConversion(name.to_owned()));
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Atom(Atom::parse(name)));
            let used = i + 1 + 1 + close + 1 + 1;
            at += used;
            rest = &rest[used..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        let mut request_headers = Vec::new();
        let mut response_headers = Vec::new();
        for piece in &pieces {
            match piece {
                Piece::Atom(Atom::RequestHeader(h)) => request_headers.push(h.clone()),
                Piece::Atom(Atom::Referer) => request_headers.push("referer".into()),
                Piece::Atom(Atom::Agent) => request_headers.push("user-agent".into()),
                Piece::Atom(Atom::User) => request_headers.push("authorization".into()),
                Piece::Atom(Atom::ResponseHeader(h)) => response_headers.push(h.clone()),
                _ => {}
            }
        }
        request_headers.sort();
        request_headers.dedup();
        response_headers.sort();
        response_headers.dedup();
        Ok(Format {
            pieces,
            request_headers,
            response_headers,
        })
    }

    /// What of a request the format needs, taken when it arrives.
    pub fn request(
        &self,
        remote: String,
        method: &http::Method,
        uri: &http::Uri,
        version: http::Version,
        headers: &HeaderMap,
    ) -> Request {
        Request {
            remote,
            method: method.to_string(),
            uri: uri.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or("").to_owned(),
            protocol: format!("{version:?}"),
            headers: pick(headers, &self.request_headers),
        }
    }
}

fn pick(headers: &HeaderMap, names: &[String]) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|name| {
            let values: Vec<&str> = headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| (name.clone(), values.join(", ")))
        })
        .collect()
}

/// The request's part of an access line.
#[derive(Debug, Clone)]
pub struct Request {
    remote: String,
    method: String,
    uri: String,
    path: String,
    query: String,
    protocol: String,
    headers: Vec<(String, String)>,
}

impl Request {
    /// Adds the response's part, once its head is known.
    pub fn respond(self, format: &Format, status: u16, headers: &HeaderMap) -> Line {
        Line {
            request: self,
            status,
            response_headers: pick(headers, &format.response_headers),
        }
    }
}

/// An access line waiting for its body to be sent.
#[derive(Debug, Clone)]
pub struct Line {
    request: Request,
    status: u16,
    response_headers: Vec<(String, String)>,
}

/// Who writes the line: the worker's identity, for `%(g)s`, `%(w)s` and `%(p)s`.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// The generation.
    pub generation: u64,
    /// The worker id.
    pub worker: u64,
    /// The process id.
    pub pid: u32,
}

/// An atom's value: text, or a number (unquoted in JSON).
enum Value {
    Text(String),
    Number(u64),
    Dash,
}

impl Line {
    /// The finished line as text (without the newline), `bytes` being the body bytes sent.
    pub fn text(&self, format: &Format, origin: Origin, bytes: u64, took: Duration) -> String {
        let mut out = String::new();
        for piece in &format.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Atom(atom) => match self.value(atom, origin, bytes, took, SystemTime::now())
                {
                    Value::Text(t) => out.push_str(&t),
                    Value::Number(n) => {
                        let _ = write!(out, "{n}");
                    }
                    Value::Dash => out.push('-'),
                },
            }
        }
        out
    }

    /// The finished line as one JSON object: `timestamp`, `level`, `target`, then one field
    /// per atom of the format (numbers for numeric atoms, `null` where text would be `-`).
    pub fn json(&self, format: &Format, origin: Origin, bytes: u64, took: Duration) -> String {
        let now = SystemTime::now();
        let mut map = serde_json::Map::new();
        map.insert("timestamp".into(), rfc3339(now).into());
        map.insert("level".into(), "INFO".into());
        map.insert("target".into(), "segue::access".into());
        for piece in &format.pieces {
            if let Piece::Atom(atom) = piece {
                let value = match self.value(atom, origin, bytes, took, now) {
                    Value::Text(t) => serde_json::Value::String(t),
                    Value::Number(n) => n.into(),
                    Value::Dash => serde_json::Value::Null,
                };
                map.insert(atom.json_name(), value);
            }
        }
        serde_json::Value::Object(map).to_string()
    }

    fn header<'a>(list: &'a [(String, String)], name: &str) -> Option<&'a str> {
        list.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn value(
        &self,
        atom: &Atom,
        origin: Origin,
        bytes: u64,
        took: Duration,
        now: SystemTime,
    ) -> Value {
        let r = &self.request;
        let text_or_dash = |v: Option<&str>| match v {
            Some(v) => Value::Text(v.to_owned()),
            None => Value::Dash,
        };
        match atom {
            Atom::Remote => Value::Text(r.remote.clone()),
            Atom::Ident | Atom::Unknown(_) => Value::Dash,
            Atom::User => text_or_dash(
                Self::header(&r.headers, "authorization")
                    .and_then(basic_user)
                    .as_deref(),
            ),
            Atom::Time => Value::Text(clf_time(now)),
            Atom::Request => Value::Text(format!("{} {} {}", r.method, r.uri, r.protocol)),
            Atom::Status => Value::Number(u64::from(self.status)),
            Atom::Method => Value::Text(r.method.clone()),
            Atom::Path => Value::Text(r.path.clone()),
            Atom::Query => Value::Text(r.query.clone()),
            Atom::Protocol => Value::Text(r.protocol.clone()),
            Atom::Bytes => Value::Number(bytes),
            Atom::Referer => text_or_dash(Self::header(&r.headers, "referer")),
            Atom::Agent => text_or_dash(Self::header(&r.headers, "user-agent")),
            Atom::Secs => Value::Number(took.as_secs()),
            Atom::Micros => Value::Number(took.as_micros() as u64),
            Atom::Millis => Value::Number(took.as_millis() as u64),
            Atom::Decimal => Value::Text(format!("{}.{:06}", took.as_secs(), took.subsec_micros())),
            Atom::Pid => Value::Text(format!("<{}>", origin.pid)),
            Atom::Generation => Value::Number(origin.generation),
            Atom::Worker => Value::Number(origin.worker),
            Atom::RequestHeader(h) => text_or_dash(Self::header(&r.headers, h)),
            Atom::ResponseHeader(h) => text_or_dash(Self::header(&self.response_headers, h)),
        }
    }
}

/// The user of `Authorization: Basic base64(user:password)`, as gunicorn reports it.
fn basic_user(value: &str) -> Option<String> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(token.trim())?;
    let text = String::from_utf8_lossy(&decoded);
    let user = text.split_once(':').map_or(&*text, |(u, _)| u);
    Some(user.to_owned())
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Local time in the Common Log Format, `[03/Dec/2026:15:20:01 +0000]`.
fn clf_time(now: SystemTime) -> String {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: localtime_r writes into `tm`, which is plain data; strftime writes at most
    // `buf.len()` bytes into `buf` and returns how many.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return "[-]".into();
        }
        let mut buf = [0u8; 64];
        let n = libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"[%d/%b/%Y:%H:%M:%S %z]".as_ptr(),
            &tm,
        );
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// UTC, as the JSON log lines' `timestamp`: `2026-12-03T15:20:01.123456Z`.
pub fn rfc3339(now: SystemTime) -> String {
    let d = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn line(format: &Format) -> Line {
        let mut headers = HeaderMap::new();
        headers.insert("referer", HeaderValue::from_static("http://example.test/"));
        headers.insert("user-agent", HeaderValue::from_static("curl/8.0"));
        headers.insert("x-request-id", HeaderValue::from_static("abc"));
        // alice:secret
        headers.insert(
            "authorization",
            HeaderValue::from_static("Basic YWxpY2U6c2VjcmV0"),
        );
        let uri: http::Uri = "/p/q?x=1".parse().unwrap();
        let req = format.request(
            "127.0.0.1".into(),
            &http::Method::GET,
            &uri,
            http::Version::HTTP_11,
            &headers,
        );
        let mut resp = HeaderMap::new();
        resp.insert("content-type", HeaderValue::from_static("text/plain"));
        req.respond(format, 201, &resp)
    }

    const ORIGIN: Origin = Origin {
        generation: 2,
        worker: 5,
        pid: 4242,
    };

    #[test]
    fn the_combined_format_as_gunicorn_writes_it() {
        let f = Format::parse(COMBINED).unwrap();
        let text = line(&f).text(&f, ORIGIN, 12, Duration::from_micros(1500));
        let (head, tail) = text.split_once(" [").unwrap();
        assert_eq!(head, "127.0.0.1 - alice");
        let (_time, rest) = tail.split_once("] ").unwrap();
        assert_eq!(
            rest,
            r#""GET /p/q?x=1 HTTP/1.1" 201 12 "http://example.test/" "curl/8.0""#
        );
    }

    #[test]
    fn every_atom_and_the_json_fields() {
        let f = Format::parse(
            "%(m)s %(U)s %(q)s %(H)s %(T)s %(D)s %(M)s %(L)s %(p)s %(g)s %(w)s \
             %({X-Request-Id}i)s %({content-type}o)s %({missing}i)s %(zz)s 100%%",
        )
        .unwrap();
        let l = line(&f);
        assert_eq!(
            l.text(&f, ORIGIN, 0, Duration::from_micros(2_003_004)),
            "GET /p/q x=1 HTTP/1.1 2 2003004 2003 2.003004 <4242> 2 5 abc text/plain - - 100%"
        );
        let json: serde_json::Value =
            serde_json::from_str(&l.json(&f, ORIGIN, 0, Duration::from_micros(7))).unwrap();
        assert_eq!(json["target"], "segue::access");
        assert_eq!(json["duration_us"], 7);
        assert_eq!(json["request_x_request_id"], "abc");
        assert_eq!(json["response_content_type"], "text/plain");
        assert_eq!(json["request_missing"], serde_json::Value::Null);
        assert_eq!(
            (json["generation"].as_u64(), json["worker"].as_u64()),
            (Some(2), Some(5))
        );
    }

    #[test]
    fn bad_formats_are_refused_with_the_fix() {
        assert_eq!(Format::parse("%(h"), Err(FormatError::Unclosed(0)));
        assert_eq!(
            Format::parse("x %(h)"),
            Err(FormatError::NoConversion("h".into()))
        );
        assert_eq!(Format::parse("50% off"), Err(FormatError::Lone(2)));
        assert!(Format::parse("").unwrap().pieces.is_empty());
    }

    #[test]
    fn only_the_headers_the_format_names_are_kept() {
        let f = Format::parse("%(h)s %(s)s").unwrap();
        assert!(line(&f).request.headers.is_empty());
    }

    #[test]
    fn timestamps() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_312_401);
        assert_eq!(rfc3339(t), "2026-12-03T15:40:01.000000Z");
        let clf = clf_time(t);
        assert!(
            clf.starts_with("[03/Dec/2026:") && clf.ends_with(']'),
            "{clf}"
        );
    }
}
