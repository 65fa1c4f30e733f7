//! Where a chunked request body ends, found by the same grammar as hyper's chunked decoder
//! (`hyper::proto::h1::decode`), so that the head scanner resumes at the byte where hyper
//! parses the next head. It follows only the framing: sizes, chunk ends, trailer lines. It is no
//! stricter than hyper (whatever hyper fails, the connection closes on), and it skips chunk data
//! without looking at it.

/// Where in a chunked body the scanner is: hyper's `ChunkedState`, less what only decoding needs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum At {
    /// The first hex digit of a chunk size.
    #[default]
    Start,
    /// More hex digits, or what may follow them.
    Size(u64),
    /// Spaces or tabs after the size.
    SizeLws(u64),
    /// A chunk extension, up to its CR.
    Extension(u64),
    /// The LF after a size line's CR.
    SizeLf(u64),
    /// Chunk data still to skip.
    Data(u64),
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// After the last chunk's size line, and after each trailer line: the CR of the final CRLF,
    /// or a trailer line.
    EndCr,
    /// A trailer line, up to its CR.
    Trailer,
    /// The LF ending a trailer line.
    TrailerLf,
    /// The final LF.
    EndLf,
    /// The body is over.
    Done,
}

/// A chunked body being skipped.
#[derive(Debug, Default)]
pub(super) struct Chunked {
    at: At,
}

impl Chunked {
    /// Skips body bytes: `Ok(Some(n))` when the body ends after the first `n` of `data`,
    /// `Ok(None)` when all of them belong to it, `Err` where hyper's decoder fails too.
    pub(super) fn skip(&mut self, data: &[u8]) -> Result<Option<usize>, ()> {
        let mut i = 0;
        while i < data.len() {
            if let At::Data(left) = self.at {
                let n = left.min((data.len() - i) as u64);
                i += n as usize;
                self.at = if n == left {
                    At::DataCr
                } else {
                    At::Data(left - n)
                };
                continue;
            }
            let b = data[i];
            i += 1;
            self.at = step(self.at, b)?;
            if self.at == At::Done {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }
}

/// One byte of framing, as hyper's `ChunkedState::step` takes it.
fn step(at: At, b: u8) -> Result<At, ()> {
    Ok(match (at, b) {
        (At::Start, _) => At::Size(hex(0, b)?),
        (At::Size(n), b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => At::Size(hex(n, b)?),
        (At::Size(n) | At::SizeLws(n), b'\t' | b' ') => At::SizeLws(n),
        (At::Size(n) | At::SizeLws(n), b';') => At::Extension(n),
        (At::Size(n) | At::SizeLws(n) | At::Extension(n), b'\r') => At::SizeLf(n),
        // hyper refuses a bare LF in an extension, so that no one reads it as the line end.
        (At::Extension(_), b'\n') => return Err(()),
        (At::Extension(n), _) => At::Extension(n),
        (At::SizeLf(0), b'\n') => At::EndCr,
        (At::SizeLf(n), b'\n') => At::Data(n),
        (At::DataCr, b'\r') => At::DataLf,
        (At::DataLf, b'\n') => At::Start,
        (At::EndCr, b'\r') => At::EndLf,
        (At::Trailer, b'\r') => At::TrailerLf,
        (At::EndCr | At::Trailer, _) => At::Trailer,
        (At::TrailerLf, b'\n') => At::EndCr,
        (At::EndLf, b'\n') => At::Done,
        _ => return Err(()),
    })
}

/// `n` with one more hex digit, refusing an overflow as hyper does.
fn hex(n: u64, b: u8) -> Result<u64, ()> {
    let digit = (b as char).to_digit(16).ok_or(())?;
    n.checked_mul(16)
        .and_then(|n| n.checked_add(u64::from(digit)))
        .ok_or(())
}
