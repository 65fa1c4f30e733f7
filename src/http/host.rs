//! The grammar of a Host value, `uri-host [":" port]` (RFC 9110 section 7.2, RFC 3986 section
//! 3.2.2). RFC 9112 requires a 400 for an invalid Host; segue checks it because the value goes to
//! the app as `HTTP_HOST` and `SERVER_NAME`, which frameworks build absolute URLs and route
//! virtual hosts from, and a proxy in front may read a malformed one differently.

/// Whether `value` is `uri-host [":" port]`: an IP literal in brackets (IPv6 or IPvFuture), or a
/// reg-name (which covers IPv4 addresses and the empty host), then an optional port of digits.
/// No userinfo: `user@host` is refused.
pub fn is_host(value: &[u8]) -> bool {
    let port = match value.strip_prefix(b"[") {
        Some(literal) => {
            let Some(end) = literal.iter().position(|&b| b == b']') else {
                return false;
            };
            if !is_ip_literal(&literal[..end]) {
                return false;
            }
            &literal[end + 1..]
        }
        None => {
            let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
            if !is_reg_name(&value[..end]) {
                return false;
            }
            &value[end..]
        }
    };
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// `IPv6address / IPvFuture`, the inside of `[...]`.
fn is_ip_literal(inside: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = inside {
        // IPvFuture: "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, text) = (&rest[..dot], &rest[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !text.is_empty()
            && text
                .iter()
                .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':');
    }
    // std's parser takes exactly RFC 4291's text forms (no zone index), as RFC 3986 does.
    std::str::from_utf8(inside).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
}

/// `*( unreserved / pct-encoded / sub-delims )`.
fn is_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'%' => {
                let hex = name.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
            }
            b if is_unreserved(b) || is_sub_delim(b) => i += 1,
            _ => return false,
        }
    }
    true
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values_follow_the_uri_host_grammar() {
        for good in [
            "example.com",
            "example.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::7]:1",
            "[::ffff:127.0.0.1]",
            "[v1.fe80::a+en1]",
            "",
            "example.com:",
            "xn--bcher-kva.example",
            "a%41b",
            "a_b~c!$&'()*+,;=",
        ] {
            assert!(is_host(good.as_bytes()), "{good:?}");
        }
        for bad in [
            "a b c",
            "u@a",
            "a:b",
            "a:80:80",
            "[::1",
            "[zz]",
            "[::1]x",
            "[::1]:a",
            "[fe80::1%25eth0]",
            "::1",
            "a%4",
            "a%zz",
            "a/b",
            "caf\u{e9}",
            "[v.x]",
            "[v1.]",
        ] {
            assert!(!is_host(bad.as_bytes()), "{bad:?}");
        }
    }
}
