//! The uwsgi protocol (nginx's `uwsgi_pass`, uWSGI's `socket`), without I/O: the packet
//! ([`packet`]); the request its variables describe comes from [`crate::gateway::request`].
//! The worker's `uwsgi` module reads a connection with them and serves the request through the same service as HTTP; pure so that
//! they are unit-tested and fuzzed (`fuzz/fuzz_targets/uwsgi_packet.rs`) without Python.

pub mod packet;

pub use packet::{Header, PacketError};
