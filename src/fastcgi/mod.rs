//! FastCGI (nginx's `fastcgi_pass`, uWSGI's `fastcgi-socket`), without I/O: records
//! ([`record`]), name-value pairs ([`params`]) and a connection's protocol state
//! ([`session`]). The worker's `fastcgi` module reads a connection with them and serves each
//! request through the same service as HTTP; the params become a request as a uwsgi packet's
//! variables do ([`crate::gateway::request`]). Pure so that they are unit-tested and fuzzed
//! (`fuzz/fuzz_targets/fastcgi_records.rs`) without Python.

pub mod params;
pub mod record;
pub mod session;

pub use record::{Record, RecordError};
pub use session::{Session, SessionError, Start, Step, Values};
