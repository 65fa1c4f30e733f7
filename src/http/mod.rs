//! HTTP/1.1 pieces that sit between hyper and the WSGI layer: what hyper's parser leaves to us
//! to reject ([`validate`]), the body types that cross from tokio tasks to Python threads
//! ([`body`]), and file bodies the kernel sends ([`sendfile`]).

pub mod body;
pub mod framing;
pub mod sendfile;
pub mod validate;
