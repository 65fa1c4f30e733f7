//! The uwsgi packet as nginx's `uwsgi_pass` sends it: a 4-byte header (`modifier1: u8`,
//! `datasize: u16` little-endian, `modifier2: u8`), then `datasize` bytes of variables, each a
//! `u16le` key length, the key, a `u16le` value length and the value. The request body follows
//! the variables and is not part of the packet.
//!
//! Parsing is strict: anything that does not fit exactly (a length running past the block,
//! trailing bytes, an empty key) is refused, since the peer is a proxy that never sends such
//! packets and guessing would only hide a desynchronised stream.

/// Bytes of the packet header.
pub const HEADER_LEN: usize = 4;

/// The largest variables block the header can describe (`datasize` is 16 bits).
pub const MAX_VARS: usize = u16::MAX as usize;

/// `modifier1` of a WSGI request: what nginx sends by default.
pub const MODIFIER_WSGI: u8 = 0;

/// `modifier1` 30 (`uwsgi_modifier1 30`): a WSGI request whose `PATH_INFO` still starts with
/// `SCRIPT_NAME`, which the server is to strip (uWSGI's "manage path info").
pub const MODIFIER_STRIP_SCRIPT_NAME: u8 = 30;

/// Why a packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// `modifier1` names a request kind other than WSGI.
    #[error(
        "uwsgi packet with modifier1 {0}: segue serves WSGI requests only (modifier1 0, or 30 to strip SCRIPT_NAME from PATH_INFO; check uwsgi_modifier1 in nginx)"
    )]
    Modifier1(u8),
    /// `modifier2` is not 0.
    #[error("uwsgi packet with modifier2 {0}: segue knows only modifier2 0")]
    Modifier2(u8),
    /// The variables block is larger than the configured limit.
    #[error(
        "uwsgi variables block of {size} bytes is over the {limit} byte limit (raise --buffer-size, or send fewer or smaller headers)"
    )]
    TooLarge {
        /// `datasize` from the header.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A length field or a value runs past the end of the block.
    #[error("uwsgi variables block truncated at byte {0}: a length runs past its end")]
    Truncated(usize),
    /// A variable has an empty name.
    #[error("uwsgi variable with an empty name at byte {0}")]
    EmptyKey(usize),
}

/// The packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The request kind (0: WSGI).
    pub modifier1: u8,
    /// Bytes of variables that follow.
    pub datasize: usize,
    /// A sub-kind; 0 for requests.
    pub modifier2: u8,
}

impl Header {
    /// Reads and checks a header: a WSGI request whose variables fit in `limit` bytes.
    pub fn parse(bytes: [u8; HEADER_LEN], limit: usize) -> Result<Header, PacketError> {
        let header = Header {
            modifier1: bytes[0],
            datasize: usize::from(u16::from_le_bytes([bytes[1], bytes[2]])),
            modifier2: bytes[3],
        };
        if header.modifier1 != MODIFIER_WSGI && header.modifier1 != MODIFIER_STRIP_SCRIPT_NAME {
            return Err(PacketError::Modifier1(header.modifier1));
        }
        if header.modifier2 != 0 {
            return Err(PacketError::Modifier2(header.modifier2));
        }
        if header.datasize > limit {
            return Err(PacketError::TooLarge {
                size: header.datasize,
                limit,
            });
        }
        Ok(header)
    }
}

/// One variable: its name and value, borrowed from the block.
pub type Var<'a> = (&'a [u8], &'a [u8]);

/// The variables of a block, in order (a name may repeat: nginx sends one `HTTP_*` per header
/// line).
pub fn parse_vars(block: &[u8]) -> Result<Vec<Var<'_>>, PacketError> {
    let mut vars = Vec::new();
    let mut at = 0;
    while at < block.len() {
        let key_at = at;
        let key = take(block, &mut at)?;
        if key.is_empty() {
            return Err(PacketError::EmptyKey(key_at));
        }
        let value = take(block, &mut at)?;
        vars.push((key, value));
    }
    Ok(vars)
}

/// One length-prefixed string at `*at`, moving `*at` past it.
fn take<'a>(block: &'a [u8], at: &mut usize) -> Result<&'a [u8], PacketError> {
    let start = *at;
    let len = block
        .get(start..start + 2)
        .ok_or(PacketError::Truncated(start))?;
    let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
    let bytes = block
        .get(start + 2..start + 2 + len)
        .ok_or(PacketError::Truncated(start))?;
    *at = start + 2 + len;
    Ok(bytes)
}

/// Encodes `vars` as a packet (header and block): what a client of a uwsgi socket sends. For
/// tests and fuzzing; `None` if the block would not fit in a packet.
pub fn encode(modifier1: u8, vars: &[(&[u8], &[u8])]) -> Option<Vec<u8>> {
    let mut block = Vec::new();
    for (k, v) in vars {
        for s in [k, v] {
            block.extend_from_slice(&u16::try_from(s.len()).ok()?.to_le_bytes());
            block.extend_from_slice(s);
        }
    }
    let size = u16::try_from(block.len()).ok()?;
    let mut packet = vec![modifier1];
    packet.extend_from_slice(&size.to_le_bytes());
    packet.push(0);
    packet.extend_from_slice(&block);
    Some(packet)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(bytes: &[u8]) -> [u8; 4] {
        bytes[..4].try_into().unwrap()
    }

    #[test]
    fn a_packet_round_trips() {
        let vars: &[(&[u8], &[u8])] = &[
            (b"REQUEST_METHOD", b"GET"),
            (b"HTTP_X", b""),
            (b"HTTP_X", b"2"),
        ];
        let packet = encode(0, vars).unwrap();
        let h = Header::parse(header(&packet), MAX_VARS).unwrap();
        assert_eq!(h.datasize, packet.len() - 4);
        assert_eq!(parse_vars(&packet[4..]).unwrap(), vars);
    }

    #[test]
    fn the_header_is_checked() {
        assert_eq!(
            Header::parse([5, 0, 0, 0], MAX_VARS),
            Err(PacketError::Modifier1(5))
        );
        assert_eq!(
            Header::parse([0, 0, 0, 1], MAX_VARS),
            Err(PacketError::Modifier2(1))
        );
        assert_eq!(
            Header::parse([0, 0x01, 0x10, 0], 4096),
            Err(PacketError::TooLarge {
                size: 4097,
                limit: 4096
            })
        );
        let h = Header::parse([30, 0xff, 0xff, 0], MAX_VARS).unwrap();
        assert_eq!((h.modifier1, h.datasize), (30, 65535));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        assert_eq!(parse_vars(b"\x01"), Err(PacketError::Truncated(0)));
        assert_eq!(parse_vars(b"\x05\x00abc"), Err(PacketError::Truncated(0)));
        assert_eq!(parse_vars(b"\x01\x00a"), Err(PacketError::Truncated(3)));
        assert_eq!(
            parse_vars(b"\x01\x00a\x02\x00b"),
            Err(PacketError::Truncated(3))
        );
        assert_eq!(
            parse_vars(b"\x00\x00\x01\x00b"),
            Err(PacketError::EmptyKey(0))
        );
        assert_eq!(parse_vars(b"").unwrap(), vec![]);
    }
}
