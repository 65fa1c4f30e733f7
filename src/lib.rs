//! segue: a WSGI application server whose reloads never drop a request.
//!
//! The tree follows the process boundary: [`master`] is the long-lived Rust process that holds
//! the listening sockets and supervises; [`worker`] is each process that embeds CPython and
//! serves. [`protocol`] is what they say to each other, [`config`] what both are told.
//! [`http`] and [`wsgi`] are the request path inside a worker; [`peer`] names the two ends of a
//! client connection for both.
#![deny(missing_docs)]

pub mod check;
pub mod config;
pub mod control;
pub mod http;
pub mod logging;
pub mod master;
pub mod peer;
pub mod protocol;
pub mod systemd;
pub mod worker;
pub mod wsgi;
