//! HTTP/1.1 pieces that sit between hyper and the WSGI layer: what hyper's parser leaves to us
//! to reject, on the raw bytes ([`framing`]) and on the parsed head ([`validate`], [`host`]), the
//! bodies that cross between tokio tasks and Python threads ([`request_body`] in, [`body`] out),
//! file bodies the kernel sends ([`sendfile`]), and the scheme a proxy in front reports
//! ([`forwarded`]).

pub mod body;
pub mod forwarded;
pub mod framing;
pub mod host;
pub mod request_body;
pub mod sendfile;
pub mod static_files;
pub mod validate;
