//! Attached daemons (uWSGI's `attach-daemon`, `smart-attach-daemon`, `smart-attach-daemon2`):
//! commands the master runs beside the workers, so that one configuration describes the whole
//! service (a Celery worker next to the web app, say).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One attached daemon as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonSpec {
    /// The command line, run by `/bin/sh -c` in the master's working directory.
    pub command: String,
    /// For the smart kinds: the pidfile the daemon keeps, which says whether it already runs.
    pub smart: Option<Smart>,
}

/// How a smart daemon is run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Smart {
    /// Where the daemon writes its pid.
    pub pidfile: PathBuf,
    /// `smart-attach-daemon`: the command puts itself in the background (its own process exits
    /// once the daemon runs), so only the pidfile tells whether it lives.
    /// `smart-attach-daemon2`: it stays in the foreground as the master's child.
    pub daemonizes: bool,
}

/// Why a daemon option's value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaemonError {
    /// No command.
    #[error("invalid value '{0}': expected a command line")]
    NoCommand(String),
    /// A smart daemon without its pidfile or command.
    #[error(
        "invalid value '{0}': expected PIDFILE COMMAND (the pidfile the daemon writes, then its command line)"
    )]
    NoPidfile(String),
}

impl DaemonSpec {
    /// `attach-daemon CMD`.
    pub fn plain(value: &str) -> Result<DaemonSpec, DaemonError> {
        let command = value.trim();
        if command.is_empty() {
            return Err(DaemonError::NoCommand(value.to_owned()));
        }
        Ok(DaemonSpec {
            command: command.to_owned(),
            smart: None,
        })
    }

    /// `smart-attach-daemon PIDFILE CMD` (`daemonizes`) or `smart-attach-daemon2 PIDFILE CMD`.
    pub fn smart(value: &str, daemonizes: bool) -> Result<DaemonSpec, DaemonError> {
        let bad = || DaemonError::NoPidfile(value.to_owned());
        let (pidfile, command) = value
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(bad)?;
        let command = command.trim();
        if command.is_empty() {
            return Err(bad());
        }
        Ok(DaemonSpec {
            command: command.to_owned(),
            smart: Some(Smart {
                pidfile: PathBuf::from(pidfile),
                daemonizes,
            }),
        })
    }

    /// The option that configures it, for logs and status.
    pub fn option(&self) -> &'static str {
        match &self.smart {
            None => "attach-daemon",
            Some(s) if s.daemonizes => "smart-attach-daemon",
            Some(_) => "smart-attach-daemon2",
        }
    }
}

/// The command line, as logs and status name the daemon.
impl fmt::Display for DaemonSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_as_uwsgi_writes_them() {
        let d = DaemonSpec::plain("  celery -A proj worker ").unwrap();
        assert_eq!(d.command, "celery -A proj worker");
        assert_eq!(d.option(), "attach-daemon");
        assert!(DaemonSpec::plain(" ").is_err());
        let s = DaemonSpec::smart(
            "/tmp/memcached.pid memcached -d -P /tmp/memcached.pid",
            true,
        )
        .unwrap();
        assert_eq!(s.command, "memcached -d -P /tmp/memcached.pid");
        assert_eq!(
            s.smart,
            Some(Smart {
                pidfile: "/tmp/memcached.pid".into(),
                daemonizes: true
            })
        );
        assert_eq!(
            DaemonSpec::smart("/p.pid cmd", false).unwrap().option(),
            "smart-attach-daemon2"
        );
        assert!(DaemonSpec::smart("/only/a/pidfile", true).is_err());
    }
}
