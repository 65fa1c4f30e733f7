//! segue: a WSGI application server whose reloads never drop a request.
//!
//! The tree follows the process boundary: [`master`] is the long-lived Rust process that holds
//! the listening sockets and supervises; `worker` is each process that runs the app's own
//! Python interpreter with segue's worker loaded as an extension module (`segue._worker`, the
//! `pyext/` crate) and serves. [`protocol`] is what they say to each other, [`config`] what both
//! are told. [`http`] and `wsgi` are the request path inside a worker; [`peer`] names the two
//! ends of a client connection for both, [`uwsgi`] and [`fastcgi`] parse the protocols nginx
//! speaks to an app server and [`gateway`] turns the CGI variables they deliver into a request. `worker` and `wsgi` exist with the `python` feature
//! only, so the master binary never links libpython.
#![deny(missing_docs)]

pub mod check;
pub mod config;
pub mod control;
pub mod emperor;
pub mod fastcgi;
pub mod gateway;
pub mod http;
pub mod logging;
pub mod master;
pub mod metrics;
pub mod peer;
pub mod protocol;
pub mod systemd;
pub mod uwsgi;
#[cfg(feature = "python")]
pub mod worker;
#[cfg(feature = "python")]
pub mod wsgi;
