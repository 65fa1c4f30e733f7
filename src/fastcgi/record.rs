//! FastCGI records (the FastCGI 1.0 specification, section 3): the 8-byte header, reading
//! whole records out of a connection's buffer, and writing the records a responder sends.
//!
//! A record is `version, type, requestId (2), contentLength (2), paddingLength, reserved`, then
//! the content and the padding. Only version 1 exists; anything else is not FastCGI and closes
//! the connection.

use bytes::{Buf, Bytes, BytesMut};

/// Bytes of a record header.
pub const HEADER_LEN: usize = 8;
/// The only FastCGI version.
pub const VERSION: u8 = 1;
/// The most content one record carries.
pub const MAX_CONTENT: usize = 65535;
/// Content per STDOUT record segue writes: the largest multiple of 8 under [`MAX_CONTENT`], so
/// full records need no padding.
pub const STDOUT_CHUNK: usize = 65528;

/// `FCGI_BEGIN_REQUEST`.
pub const BEGIN_REQUEST: u8 = 1;
/// `FCGI_ABORT_REQUEST`.
pub const ABORT_REQUEST: u8 = 2;
/// `FCGI_END_REQUEST`.
pub const END_REQUEST: u8 = 3;
/// `FCGI_PARAMS`.
pub const PARAMS: u8 = 4;
/// `FCGI_STDIN`.
pub const STDIN: u8 = 5;
/// `FCGI_STDOUT`.
pub const STDOUT: u8 = 6;
/// `FCGI_STDERR`.
pub const STDERR: u8 = 7;
/// `FCGI_DATA` (the Filter role's second stream).
pub const DATA: u8 = 8;
/// `FCGI_GET_VALUES`.
pub const GET_VALUES: u8 = 9;
/// `FCGI_GET_VALUES_RESULT`.
pub const GET_VALUES_RESULT: u8 = 10;
/// `FCGI_UNKNOWN_TYPE`.
pub const UNKNOWN_TYPE: u8 = 11;

/// `FCGI_RESPONDER`: the one role segue plays.
pub const ROLE_RESPONDER: u16 = 1;
/// `FCGI_KEEP_CONN`: the web server keeps the connection for further requests.
pub const FLAG_KEEP_CONN: u8 = 1;

/// `FCGI_END_REQUEST` protocol statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE`.
    Complete = 0,
    /// `FCGI_CANT_MPX_CONN`: segue serves one request per connection at a time.
    CantMpxConn = 1,
    /// `FCGI_OVERLOADED`.
    Overloaded = 2,
    /// `FCGI_UNKNOWN_ROLE`: an Authorizer or Filter request.
    UnknownRole = 3,
}

/// Why the bytes are not FastCGI records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The version byte is not 1.
    #[error(
        "not a FastCGI record (version byte {0}): is a non-FastCGI client talking to a --fastcgi-socket?"
    )]
    Version(u8),
}

/// One record as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record type.
    pub kind: u8,
    /// 0 for management records.
    pub request_id: u16,
    /// The content, without padding.
    pub content: Bytes,
}

/// The next whole record at the front of `buf`, removed from it with its padding; `None` if
/// `buf` does not hold one yet. A record is at most 8 + 65535 + 255 bytes, so a reader never
/// buffers more than that beyond what it has consumed.
pub fn take(buf: &mut BytesMut) -> Result<Option<Record>, RecordError> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    if head[0] != VERSION {
        return Err(RecordError::Version(head[0]));
    }
    let kind = head[1];
    let request_id = u16::from_be_bytes([head[2], head[3]]);
    let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
    let padding = usize::from(head[6]);
    if buf.len() < HEADER_LEN + len + padding {
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let content = buf.split_to(len).freeze();
    buf.advance(padding);
    Ok(Some(Record {
        kind,
        request_id,
        content,
    }))
}

/// A record header for `len` content bytes and `padding` padding bytes.
pub fn header(kind: u8, request_id: u16, len: usize, padding: usize) -> [u8; HEADER_LEN] {
    debug_assert!(len <= MAX_CONTENT && padding <= 255);
    let id = request_id.to_be_bytes();
    let n = (len as u16).to_be_bytes();
    [VERSION, kind, id[0], id[1], n[0], n[1], padding as u8, 0]
}

/// Padding that brings `len` content bytes to a multiple of 8, as the specification
/// recommends.
fn padding_for(len: usize) -> usize {
    (8 - len % 8) % 8
}

static ZEROS: [u8; 8] = [0; 8];

/// A whole record with `content` (at most [`MAX_CONTENT`] bytes), padded to a multiple of 8.
pub fn encode(kind: u8, request_id: u16, content: &[u8]) -> Vec<u8> {
    let padding = padding_for(content.len());
    let mut out = Vec::with_capacity(HEADER_LEN + content.len() + padding);
    out.extend_from_slice(&header(kind, request_id, content.len(), padding));
    out.extend_from_slice(content);
    out.extend_from_slice(&ZEROS[..padding]);
    out
}

/// Appends `data` to `out` as STDOUT records of request `request_id`, sharing `data`'s memory
/// (a slice of a file placeholder stays one, so [`crate::http::sendfile`] still applies).
/// Empty `data` appends nothing: the empty record that ends the stream is
/// [`end_of_stdout`].
pub fn stdout(request_id: u16, data: &Bytes, out: &mut Vec<Bytes>) {
    let mut at = 0;
    while at < data.len() {
        let n = (data.len() - at).min(STDOUT_CHUNK);
        let padding = padding_for(n);
        out.push(Bytes::copy_from_slice(&header(
            STDOUT, request_id, n, padding,
        )));
        out.push(data.slice(at..at + n));
        if padding > 0 {
            out.push(Bytes::from_static(&ZEROS[..padding]));
        }
        at += n;
    }
}

/// The empty STDOUT record that ends the response stream, then `FCGI_END_REQUEST`.
pub fn end_of_response(request_id: u16, app_status: u32) -> Vec<u8> {
    let mut out = end_of_stdout(request_id);
    out.extend(end_request(
        request_id,
        app_status,
        ProtocolStatus::Complete,
    ));
    out
}

/// The empty STDOUT record.
pub fn end_of_stdout(request_id: u16) -> Vec<u8> {
    encode(STDOUT, request_id, &[])
}

/// `FCGI_END_REQUEST` for `request_id`.
pub fn end_request(request_id: u16, app_status: u32, status: ProtocolStatus) -> Vec<u8> {
    let s = app_status.to_be_bytes();
    encode(
        END_REQUEST,
        request_id,
        &[s[0], s[1], s[2], s[3], status as u8, 0, 0, 0],
    )
}

/// `FCGI_UNKNOWN_TYPE` for a management record of type `kind`.
pub fn unknown_type(kind: u8) -> Vec<u8> {
    encode(UNKNOWN_TYPE, 0, &[kind, 0, 0, 0, 0, 0, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_taken_whole_with_their_padding() {
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&encode(PARAMS, 1, b"abc"));
        wire.extend_from_slice(&encode(STDIN, 1, b""));
        let whole = wire.clone();
        // Byte by byte: nothing until the whole record (and its padding) is there.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in whole.iter() {
            buf.extend_from_slice(&[b]);
            while let Some(r) = take(&mut buf).unwrap() {
                got.push(r);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].kind, PARAMS);
        assert_eq!(got[0].request_id, 1);
        assert_eq!(&got[0].content[..], b"abc");
        assert!(got[1].content.is_empty());
        assert!(buf.is_empty());
        assert_eq!(encode(PARAMS, 1, b"abc").len(), 16);
    }

    #[test]
    fn another_version_is_refused() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert_eq!(take(&mut buf), Err(RecordError::Version(b'G')));
    }

    #[test]
    fn stdout_is_split_into_records_that_share_the_data() {
        let data = Bytes::from(vec![7u8; STDOUT_CHUNK + 3]);
        let mut out = Vec::new();
        stdout(9, &data, &mut out);
        // header, chunk, header, 3 bytes, 5 bytes of padding
        assert_eq!(out.len(), 5);
        assert_eq!(&out[0][..], &header(STDOUT, 9, STDOUT_CHUNK, 0));
        assert_eq!(out[1].as_ptr(), data.as_ptr());
        assert_eq!(&out[2][..], &header(STDOUT, 9, 3, 5));
        assert_eq!(out[4].len(), 5);
        let mut none = Vec::new();
        stdout(9, &Bytes::new(), &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn end_request_carries_both_statuses() {
        let r = end_request(3, 0x0102_0304, ProtocolStatus::CantMpxConn);
        assert_eq!(
            r,
            [1, END_REQUEST, 0, 3, 0, 8, 0, 0, 1, 2, 3, 4, 1, 0, 0, 0]
        );
        let e = end_of_response(1, 0);
        assert_eq!(&e[..8], &[1, STDOUT, 0, 1, 0, 0, 0, 0]);
        assert_eq!(e.len(), 24);
    }
}
