//! The scheme a TLS-terminating proxy in front of segue says the client used.
//!
//! Behind nginx or a load balancer that terminates TLS, segue sees plain HTTP, and an app that
//! builds absolute URLs or sets secure cookies from `wsgi.url_scheme` needs to know the client
//! spoke HTTPS. Proxies say so in `X-Forwarded-Proto: https`, `X-Forwarded-Protocol: ssl` or
//! `X-Forwarded-Ssl: on`. segue believes these only from the addresses in
//! `--forwarded-allow-ips` (by default the loopback addresses) and from unix-socket clients,
//! which can only be local; a client elsewhere could otherwise claim HTTPS. The rules are
//! gunicorn's, so a deployment moving over keeps its behaviour; `REMOTE_ADDR` stays the
//! proxy's address, as in gunicorn (use the framework's proxy support for `X-Forwarded-For`).

use std::net::IpAddr;

use http::{HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};

use crate::peer::Peer;

/// The headers a trusted proxy may set, and the value that means HTTPS.
// Names, not strings: a lookup by `&str` parses the name again on every request.
const SCHEME_HEADERS: [(HeaderName, &str); 3] = [
    (HeaderName::from_static("x-forwarded-proto"), "https"),
    (HeaderName::from_static("x-forwarded-protocol"), "ssl"),
    (HeaderName::from_static("x-forwarded-ssl"), "on"),
];

/// Who may tell segue the client's scheme (`--forwarded-allow-ips`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrustedProxies {
    /// `*`: every client (only for a segue no client can reach but through the proxy).
    Any,
    /// These networks (a single address is a network of one).
    Networks(Vec<(IpAddr, u8)>),
}

impl Default for TrustedProxies {
    fn default() -> Self {
        "127.0.0.1,::1".parse().expect("valid default")
    }
}

/// A `--forwarded-allow-ips` entry that is not an address, a network or `*`.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid --forwarded-allow-ips entry '{0}': expected addresses or networks separated by commas, e.g. '127.0.0.1,10.0.0.0/8', or '*'"
)]
pub struct BadProxies(String);

impl std::str::FromStr for TrustedProxies {
    type Err = BadProxies;

    fn from_str(s: &str) -> Result<Self, BadProxies> {
        let entries: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.contains(&"*") {
            return Ok(TrustedProxies::Any);
        }
        entries
            .into_iter()
            .map(|entry| {
                let bad = || BadProxies(entry.to_owned());
                let (ip, bits) = match entry.split_once('/') {
                    Some((ip, bits)) => (ip, Some(bits.parse::<u8>().map_err(|_| bad())?)),
                    None => (entry, None),
                };
                let ip: IpAddr = ip.parse().map_err(|_| bad())?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let bits = bits.unwrap_or(max);
                if bits > max {
                    return Err(bad());
                }
                Ok((ip, bits))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies::Networks)
    }
}

impl TrustedProxies {
    /// Whether `peer` may set the scheme.
    pub fn trusts(&self, peer: &Peer) -> bool {
        match (self, peer) {
            (TrustedProxies::Any, _) | (_, Peer::Unix) => true,
            (TrustedProxies::Networks(networks), Peer::Tcp(addr)) => {
                let ip = addr.ip().to_canonical();
                networks.iter().any(|&(net, bits)| contains(net, bits, ip))
            }
        }
    }
}

fn contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// The scheme headers of one request disagree (one says HTTPS, another says not).
#[derive(Debug, thiserror::Error)]
#[error("contradictory scheme headers (X-Forwarded-Proto, X-Forwarded-Protocol, X-Forwarded-Ssl)")]
pub struct Contradictory;

/// Whether the client used HTTPS, by the proxy's word; `false` when `peer` is not trusted or
/// sent no scheme header.
pub fn is_https(
    headers: &HeaderMap,
    peer: &Peer,
    trusted: &TrustedProxies,
) -> Result<bool, Contradictory> {
    let mut said = None;
    for (name, secure) in SCHEME_HEADERS {
        let Some(value) = headers.get(&name) else {
            continue;
        };
        if !trusted.trusts(peer) {
            return Ok(false);
        }
        let https = value
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(secure.as_bytes());
        if said.replace(https).is_some_and(|before| before != https) {
            return Err(Contradictory);
        }
    }
    Ok(said.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(ip: &str) -> Peer {
        Peer::Tcp((ip.parse::<IpAddr>().unwrap(), 40000).into())
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn only_trusted_peers_set_the_scheme() {
        let trusted = TrustedProxies::default();
        let h = headers(&[("x-forwarded-proto", "https")]);
        assert!(is_https(&h, &tcp("127.0.0.1"), &trusted).unwrap());
        assert!(is_https(&h, &tcp("::1"), &trusted).unwrap());
        assert!(is_https(&h, &tcp("::ffff:127.0.0.1"), &trusted).unwrap());
        assert!(is_https(&h, &Peer::Unix, &trusted).unwrap());
        assert!(!is_https(&h, &tcp("192.0.2.7"), &trusted).unwrap());
        assert!(is_https(&h, &tcp("192.0.2.7"), &"*".parse().unwrap()).unwrap());
        let nets: TrustedProxies = "10.0.0.0/8, 2001:db8::/32".parse().unwrap();
        assert!(is_https(&h, &tcp("10.1.2.3"), &nets).unwrap());
        assert!(is_https(&h, &tcp("2001:db8::5"), &nets).unwrap());
        assert!(!is_https(&h, &tcp("11.0.0.1"), &nets).unwrap());
        assert!(!is_https(&h, &tcp("127.0.0.1"), &nets).unwrap());
    }

    #[test]
    fn each_header_has_its_secure_value_and_they_must_agree() {
        let local = tcp("127.0.0.1");
        let t = TrustedProxies::default();
        let check = |pairs| is_https(&headers(pairs), &local, &t);
        assert!(check(&[("x-forwarded-protocol", "ssl")]).unwrap());
        assert!(check(&[("x-forwarded-ssl", "on")]).unwrap());
        assert!(check(&[("x-forwarded-proto", "HTTPS")]).unwrap());
        assert!(!check(&[("x-forwarded-proto", "http")]).unwrap());
        assert!(!check(&[]).unwrap());
        assert!(check(&[("x-forwarded-proto", "https"), ("x-forwarded-ssl", "on")]).unwrap());
        assert!(check(&[("x-forwarded-proto", "https"), ("x-forwarded-ssl", "off")]).is_err());
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in ["localhost", "10.0.0.0/33", "::1/129", "1.2.3.4/x"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
        assert_eq!(
            "".parse::<TrustedProxies>().unwrap(),
            TrustedProxies::Networks(vec![])
        );
    }
}
