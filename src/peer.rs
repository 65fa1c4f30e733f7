//! The two ends of a client connection, whatever protocol it speaks (HTTP today; the uwsgi and
//! FastCGI listeners later): who connected and on which listener. The HTTP layer reads them to
//! decide whether a proxy is trusted; the WSGI layer reports them in the environ.

use std::net::SocketAddr;

/// Where a connection came from, as the environ reports it.
#[derive(Debug, Clone)]
pub enum Peer {
    /// A TCP client.
    Tcp(SocketAddr),
    /// A unix-socket client (no address).
    Unix,
}

/// The listener a request arrived on, for `SERVER_NAME`/`SERVER_PORT` when there is no Host.
#[derive(Debug, Clone)]
pub enum Local {
    /// A TCP listener's address.
    Tcp(SocketAddr),
    /// A unix-socket listener.
    Unix,
}
