//! `--forwarded-allow-ips` and the scheme headers a proxy sets (`segue::http::forwarded`).
//!
//! Input (through `arbitrary`): a list of proxies as text, a client address, and values for the
//! three scheme headers. Invariants:
//! - a parsed list written back out (`ip/bits,...`) parses to the same list, with prefix lengths
//!   in range; `*` anywhere means every client;
//! - `trusts` agrees with a prefix match done bit by bit, after mapping IPv4-mapped IPv6;
//! - `is_https` is `false` for an untrusted client or no header; for a trusted one it is what
//!   the present headers agree on, an error when they disagree; and the headers' order in the
//!   request does not change it.
#![cfg_attr(feature = "libfuzzer", no_main)]

use std::net::{IpAddr, SocketAddr};

use arbitrary::{Arbitrary, Unstructured};
use http::{HeaderMap, HeaderValue};
use segue::http::forwarded::{TrustedProxies, is_https};
use segue::peer::Peer;

#[derive(Debug, Arbitrary)]
struct Input {
    proxies: String,
    /// `None`: a unix-socket client.
    client: Option<IpAddr>,
    proto: Option<Vec<u8>>,
    protocol: Option<Vec<u8>>,
    ssl: Option<Vec<u8>>,
}

const HEADERS: [(&str, &str); 3] = [
    ("x-forwarded-proto", "https"),
    ("x-forwarded-protocol", "ssl"),
    ("x-forwarded-ssl", "on"),
];

segue_fuzz::fuzz_target!(|data| {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let Ok(trusted) = input.proxies.parse::<TrustedProxies>() else {
        return;
    };
    let star = input.proxies.split(',').any(|e| e.trim() == "*");
    match &trusted {
        TrustedProxies::Any => assert!(star, "Any without *: {:?}", input.proxies),
        TrustedProxies::Networks(networks) => {
            assert!(!star);
            for &(ip, bits) in networks {
                assert!(bits <= if ip.is_ipv4() { 32 } else { 128 }, "{ip}/{bits}");
            }
            let text: Vec<String> = networks
                .iter()
                .map(|(ip, bits)| format!("{ip}/{bits}"))
                .collect();
            let again: TrustedProxies = text.join(",").parse().expect("a written-out list parses");
            assert_eq!(again, trusted, "round trip of {text:?}");
        }
    }

    let peer = match input.client {
        Some(ip) => Peer::Tcp(SocketAddr::new(ip, 40000)),
        None => Peer::Unix,
    };
    let expect_trust = match (&trusted, input.client) {
        (TrustedProxies::Any, _) | (_, None) => true,
        (TrustedProxies::Networks(networks), Some(ip)) => networks
            .iter()
            .any(|&(net, bits)| prefix_match(net, bits, ip.to_canonical())),
    };
    assert_eq!(
        trusted.trusts(&peer),
        expect_trust,
        "trusts({peer:?}) for {trusted:?}"
    );

    let values = [&input.proto, &input.protocol, &input.ssl];
    let present: Vec<(&str, &str, HeaderValue)> = HEADERS
        .iter()
        .zip(values)
        .filter_map(|(&(name, secure), v)| {
            Some((name, secure, HeaderValue::from_bytes(v.as_deref()?).ok()?))
        })
        .collect();
    let forward: HeaderMap = present
        .iter()
        .map(|(n, _, v)| (n.parse().unwrap(), v.clone()))
        .collect();
    let backward: HeaderMap = present
        .iter()
        .rev()
        .map(|(n, _, v)| (n.parse().unwrap(), v.clone()))
        .collect();
    let got = is_https(&forward, &peer, &trusted);
    assert_eq!(
        got.as_ref().ok(),
        is_https(&backward, &peer, &trusted).as_ref().ok(),
        "header order changed the answer"
    );
    let says: Vec<bool> = present
        .iter()
        .map(|(_, secure, v)| {
            v.as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(secure.as_bytes())
        })
        .collect();
    if present.is_empty() || !expect_trust {
        assert_eq!(got.ok(), Some(false));
    } else if says.iter().all(|&s| s == says[0]) {
        assert_eq!(got.ok(), Some(says[0]), "{present:?}");
    } else {
        assert!(got.is_err(), "disagreeing headers {present:?} gave {got:?}");
    }
});

/// Whether the first `bits` bits of `net` and `ip` are equal, compared one bit at a time.
fn prefix_match(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    let (a, b): (Vec<u8>, Vec<u8>) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (n.octets().to_vec(), i.octets().to_vec()),
        (IpAddr::V6(n), IpAddr::V6(i)) => (n.octets().to_vec(), i.octets().to_vec()),
        _ => return false,
    };
    (0..usize::from(bits)).all(|k| (a[k / 8] >> (7 - k % 8)) & 1 == (b[k / 8] >> (7 - k % 8)) & 1)
}
