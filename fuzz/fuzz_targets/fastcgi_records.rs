//! FastCGI records, a connection's protocol state and the request its params describe
//! (`segue::fastcgi`, `segue::gateway`): what a `--fastcgi-socket` listener reads from nginx,
//! or from anyone who can connect to it.
//!
//! Input: a flags byte (bit 0: the peer is trusted; bits 1-2 pick the params limit; bits 3-7
//! the size of the pieces the bytes arrive in), then the bytes of the connection. Invariants:
//! - records come out the same whatever pieces the bytes arrive in, and the buffer never holds
//!   more than one record's worth beyond a piece;
//! - no params stream passes the limit; body bytes and the end of the body come only for the
//!   request being served, between its start and its end;
//! - params that parse re-encode to pairs that parse to the same pairs;
//! - a request built from them never claims HTTPS for an untrusted peer, has at most one Host
//!   field, and a Content-Length field exactly when it has a body.
#![cfg_attr(feature = "libfuzzer", no_main)]

use bytes::BytesMut;
use segue::fastcgi::record::{self, HEADER_LEN, MAX_CONTENT};
use segue::fastcgi::{Session, Step, Values, params};
use segue::gateway::request::{self, Proxy, Reading};

segue_fuzz::fuzz_target!(|data| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let trusted = flags & 1 == 1;
    let limit = [65535, 4096, 100, 0][usize::from(flags >> 1 & 3)];
    let piece = usize::from(flags >> 3) + 1;
    let values = Values {
        max_conns: 10,
        max_reqs: 10,
    };
    let mut session = Session::new(limit, values);
    let mut buf = BytesMut::new();
    let mut serving = false;
    let mut body_open = false;
    'feed: for chunk in rest.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            assert!(buf.len() <= HEADER_LEN + MAX_CONTENT + 255 + piece);
            let rec = match record::take(&mut buf) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(_) => break 'feed,
            };
            let step = match session.on_record(rec) {
                Ok(s) => s,
                Err(_) => break 'feed,
            };
            match step {
                Step::Start(start) => {
                    assert!(!serving, "a second request started while one is served");
                    assert!(start.params.len() <= limit);
                    serving = true;
                    body_open = true;
                    check_params(&start.params, trusted);
                }
                Step::Stdin(d) => {
                    assert!(serving && body_open && !d.is_empty());
                }
                Step::StdinEnd => {
                    assert!(serving && body_open);
                    body_open = false;
                    // The response is written: the connection takes the next request.
                    session.finished();
                    serving = false;
                }
                Step::Abort => {
                    assert!(serving);
                    session.finished();
                    serving = false;
                    body_open = false;
                }
                Step::Ended { .. } => assert!(!serving),
                Step::Reply(r) => assert!(r.len() >= HEADER_LEN && r[0] == 1),
                Step::Nothing => {}
            }
            if serving {
                assert!(!session.is_idle());
            }
        }
    }
});

fn check_params(raw: &[u8], trusted: bool) {
    let Ok(pairs) = params::parse(raw) else {
        return;
    };
    let mut again = Vec::new();
    for (k, v) in &pairs {
        params::encode(k, v, &mut again);
    }
    assert_eq!(params::parse(&again).unwrap(), pairs);
    let how = Reading {
        proxy: Proxy::FastCgi,
        strip_script_name: false,
        trusted,
    };
    let Ok(req) = request::head(&pairs, how) else {
        return;
    };
    segue_fuzz::gateway::check_head(&req, trusted);
}
