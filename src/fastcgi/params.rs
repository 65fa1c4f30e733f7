//! FastCGI name-value pairs (specification section 3.4): what `FCGI_PARAMS` and
//! `FCGI_GET_VALUES` carry. Each length is one byte below 128, or four bytes with the top bit
//! set.

/// Why a params stream is not a list of name-value pairs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// The stream ends inside a length or a name or value.
    #[error("FastCGI params end inside a name-value pair (at byte {0})")]
    Truncated(usize),
    /// A pair with an empty name.
    #[error("FastCGI params hold a pair with an empty name (at byte {0})")]
    EmptyName(usize),
}

/// Reads a length at `at`: one byte, or four with the top bit set.
fn length(data: &[u8], at: &mut usize) -> Result<usize, ParamsError> {
    let start = *at;
    let first = *data.get(start).ok_or(ParamsError::Truncated(start))?;
    if first < 0x80 {
        *at += 1;
        return Ok(usize::from(first));
    }
    let four = data
        .get(start..start + 4)
        .ok_or(ParamsError::Truncated(start))?;
    *at += 4;
    Ok((usize::from(four[0] & 0x7f) << 24)
        | (usize::from(four[1]) << 16)
        | (usize::from(four[2]) << 8)
        | usize::from(four[3]))
}

/// One name-value pair, borrowed from the stream.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// The pairs of a whole params stream, in order (a name may repeat; the last one counts where
/// one value is wanted).
pub fn parse(data: &[u8]) -> Result<Vec<Pair<'_>>, ParamsError> {
    let mut pairs = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let start = at;
        let name_len = length(data, &mut at)?;
        let value_len = length(data, &mut at)?;
        let end = at
            .checked_add(name_len)
            .and_then(|n| n.checked_add(value_len))
            .filter(|&e| e <= data.len())
            .ok_or(ParamsError::Truncated(start))?;
        if name_len == 0 {
            return Err(ParamsError::EmptyName(start));
        }
        let name = &data[at..at + name_len];
        let value = &data[at + name_len..end];
        pairs.push((name, value));
        at = end;
    }
    Ok(pairs)
}

fn put_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&((len as u32) | 0x8000_0000).to_be_bytes());
    }
}

/// Appends one pair, encoded (for `FCGI_GET_VALUES_RESULT`, and for tests and fuzzing).
pub fn encode(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    put_length(name.len(), out);
    put_length(value.len(), out);
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_lengths_round_trip() {
        let long = vec![b'x'; 300];
        let mut data = Vec::new();
        encode(b"REQUEST_METHOD", b"GET", &mut data);
        encode(b"HTTP_COOKIE", &long, &mut data);
        encode(b"EMPTY", b"", &mut data);
        assert_eq!(data[0], 14);
        let pairs = parse(&data).unwrap();
        assert_eq!(
            pairs,
            vec![
                (&b"REQUEST_METHOD"[..], &b"GET"[..]),
                (&b"HTTP_COOKIE"[..], &long[..]),
                (&b"EMPTY"[..], &b""[..])
            ]
        );
        // A long length for a short name is allowed too.
        let wide = [0x80, 0, 0, 1, 1, b'A', b'b'];
        assert_eq!(parse(&wide).unwrap(), vec![(&b"A"[..], &b"b"[..])]);
    }

    #[test]
    fn malformed_streams_are_refused() {
        assert_eq!(parse(&[5, 1, b'a']), Err(ParamsError::Truncated(0)));
        assert_eq!(parse(&[0x80, 0]), Err(ParamsError::Truncated(0)));
        assert_eq!(parse(&[0, 1, b'v']), Err(ParamsError::EmptyName(0)));
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b'a'];
        assert_eq!(parse(&huge), Err(ParamsError::Truncated(0)));
        assert!(parse(&[]).unwrap().is_empty());
    }
}
