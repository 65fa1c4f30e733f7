//! gunicorn's dialect: its settings, flags and `gunicorn.conf.py`, read without gunicorn so
//! that a deployment moves to segue with its configuration. The master never runs Python
//! itself: a config file is executed by the app's interpreter in a short-lived subprocess
//! ([`read_conf`]), and what it defines comes back as [`Entry`](super::entry::Entry)s, each
//! then judged by [`translate`].

mod catalog;
mod conf;
#[cfg(test)]
mod doc;
mod shell;
mod translate;

pub use catalog::{SETTINGS, Setting, flag, is_hook_or_near, names, setting};
pub use conf::{Conf, ConfError, ConfSource, default_conf, read_conf, read_conf_in};
pub use shell::split_cmd_args;
pub use translate::{DEFAULT_FIELD_SIZE, MAX_REQUEST_FIELDS, UNLIMITED_REQUEST_LINE, translate};
