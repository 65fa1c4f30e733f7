//! Listen addresses as a user writes them (`127.0.0.1:8000`, `:8000`, `[::1]:8000`,
//! `unix:/run/app.sock`), and the protocol each listener speaks, parsed once in the master and
//! carried to workers by value.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a listener accepts connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenAddr {
    /// A TCP address; port 0 asks the kernel for a free port (tests use it).
    Tcp(SocketAddr),
    /// A unix stream socket at this path.
    Unix(PathBuf),
}

/// Why a `--http` value could not be understood.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid listen address '{input}': {why} (expected HOST:PORT, :PORT, [::1]:PORT or unix:/path)"
)]
pub struct AddrError {
    input: String,
    why: &'static str,
}

impl FromStr for ListenAddr {
    type Err = AddrError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |why| AddrError {
            input: input.to_owned(),
            why,
        };
        if let Some(path) = input.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(err("the unix socket path is empty"));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        if let Some(port) = input.strip_prefix(':') {
            // `:PORT` means every IPv4 interface, as in gunicorn and uWSGI.
            let port: u16 = port
                .parse()
                .map_err(|_| err("the port is not a number from 0 to 65535"))?;
            return Ok(ListenAddr::Tcp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port,
            )));
        }
        if let Ok(addr) = input.parse::<SocketAddr>() {
            return Ok(ListenAddr::Tcp(addr));
        }
        if let Some((host, port)) = input.rsplit_once(':') {
            let port: u16 = port
                .parse()
                .map_err(|_| err("the port is not a number from 0 to 65535"))?;
            if host == "localhost" {
                return Ok(ListenAddr::Tcp(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    port,
                )));
            }
            return Err(err("the host must be an IP address or 'localhost'"));
        }
        Err(err("no port given"))
    }
}

impl ListenAddr {
    /// Parses a `--socket` value: uWSGI's forms, where a value without `:` is a unix socket
    /// path (`/tmp/uwsgi.sock`), besides every `--http` form.
    pub fn parse_uwsgi(input: &str) -> Result<ListenAddr, AddrError> {
        if input.starts_with('@') {
            return Err(AddrError {
                input: input.to_owned(),
                why: "abstract unix sockets are not supported (use a path)",
            });
        }
        if !input.is_empty() && !input.contains(':') {
            return Ok(ListenAddr::Unix(PathBuf::from(input)));
        }
        input.parse()
    }
}

/// The protocol a listener speaks. Every protocol gets the same reload guarantees: the master
/// holds the socket, workers drain, nothing in flight is lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 (`--http`); what listeners from before protocols existed speak.
    #[default]
    Http,
    /// The uwsgi binary protocol (`--socket`), as nginx's `uwsgi_pass` speaks it.
    Uwsgi,
    /// FastCGI's Responder role (`--fastcgi-socket`), as nginx's `fastcgi_pass` speaks it.
    #[serde(rename = "fastcgi")]
    FastCgi,
}

/// A listener as configured: where, and in which protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Where it accepts.
    pub addr: ListenAddr,
    /// What its clients speak.
    #[serde(default)]
    pub protocol: Protocol,
}

impl Endpoint {
    /// An HTTP listener at `addr`.
    pub fn http(addr: ListenAddr) -> Endpoint {
        Endpoint {
            addr,
            protocol: Protocol::Http,
        }
    }
}

/// HTTP listeners show as their address alone (`127.0.0.1:8000`, `unix:/path`), as they always
/// have in logs and `status`; others carry their protocol as a scheme (`uwsgi://127.0.0.1:3031`,
/// `uwsgi://unix:/run/app.sock`, `fastcgi://127.0.0.1:9000`).
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.protocol {
            Protocol::Http => write!(f, "{}", self.addr),
            Protocol::Uwsgi => write!(f, "uwsgi://{}", self.addr),
            Protocol::FastCgi => write!(f, "fastcgi://{}", self.addr),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(
            "127.0.0.1:8000".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("127.0.0.1:8000".parse().unwrap())
        );
        assert_eq!(
            ":8000".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("0.0.0.0:8000".parse().unwrap())
        );
        assert_eq!(
            "[::1]:8000".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("[::1]:8000".parse().unwrap())
        );
        assert_eq!(
            "localhost:80".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            "unix:/tmp/s.sock".parse::<ListenAddr>().unwrap(),
            ListenAddr::Unix("/tmp/s.sock".into())
        );
    }

    #[test]
    fn uwsgi_sockets_take_bare_paths_and_show_their_protocol() {
        assert_eq!(
            ListenAddr::parse_uwsgi("/tmp/uwsgi.sock").unwrap(),
            ListenAddr::Unix("/tmp/uwsgi.sock".into())
        );
        assert_eq!(
            ListenAddr::parse_uwsgi("unix:/tmp/u.sock").unwrap(),
            ListenAddr::Unix("/tmp/u.sock".into())
        );
        let tcp = ListenAddr::parse_uwsgi(":3031").unwrap();
        assert_eq!(tcp, ListenAddr::Tcp("0.0.0.0:3031".parse().unwrap()));
        assert!(ListenAddr::parse_uwsgi("@abstract").is_err());
        let e = Endpoint {
            addr: "127.0.0.1:3031".parse().unwrap(),
            protocol: Protocol::Uwsgi,
        };
        assert_eq!(e.to_string(), "uwsgi://127.0.0.1:3031");
        assert_eq!(
            Endpoint::http("127.0.0.1:80".parse().unwrap()).to_string(),
            "127.0.0.1:80"
        );
    }

    #[test]
    fn rejects_with_a_message_that_shows_the_forms() {
        for bad in ["8000", "example.com:80", ":http", "unix:", "1.2.3.4:99999"] {
            let msg = bad.parse::<ListenAddr>().unwrap_err().to_string();
            assert!(msg.contains("expected HOST:PORT"), "{bad}: {msg}");
        }
    }
}
