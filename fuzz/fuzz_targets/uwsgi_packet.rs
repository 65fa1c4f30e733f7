//! The uwsgi packet and the request it describes (`segue::uwsgi`, `segue::gateway`): what a `--socket` listener
//! reads from nginx, or from anyone who can connect to it.
//!
//! Input: a flags byte (bit 0: the peer is trusted; bits 1-2 pick the size limit), then the
//! bytes of a packet (4-byte header, then the variables block). Invariants:
//! - a header is accepted only with modifier1 0 or 30, modifier2 0 and a size within the limit;
//! - a block that parses re-encodes to exactly the same bytes, and one that does not is refused
//!   without a panic;
//! - a request built from the variables never claims HTTPS for an untrusted peer nor passes it
//!   its HTTPS variables, has at most one Host field, and a Content-Length field exactly when it
//!   has a body, equal to its length.
#![cfg_attr(feature = "libfuzzer", no_main)]

use segue::gateway::request::{self, Proxy, Reading};
use segue::uwsgi::packet::{self, Header, MAX_VARS, MODIFIER_STRIP_SCRIPT_NAME};

segue_fuzz::fuzz_target!(|data| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let trusted = flags & 1 == 1;
    let limit = [MAX_VARS, 4096, 100, 0][usize::from(flags >> 1 & 3)];
    let Some((head, block)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let Ok(header) = Header::parse(*head, limit) else {
        return;
    };
    assert!(header.datasize <= limit);
    assert!(header.modifier1 == 0 || header.modifier1 == 30);
    assert_eq!(header.modifier2, 0);
    let block = &block[..header.datasize.min(block.len())];
    let Ok(vars) = packet::parse_vars(block) else {
        return;
    };
    let again = packet::encode(header.modifier1, &vars).expect("a parsed block fits a packet");
    assert_eq!(&again[4..], block, "the block re-encodes to its own bytes");
    let Ok(req) = request::head(
        &vars,
        Reading {
            proxy: Proxy::Uwsgi,
            strip_script_name: header.modifier1 == MODIFIER_STRIP_SCRIPT_NAME,
            trusted,
        },
    ) else {
        return;
    };
    segue_fuzz::gateway::check_head(&req, trusted);
});
