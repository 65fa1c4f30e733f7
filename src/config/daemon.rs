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
    /// What `attach-daemon2`'s keys set beyond the command and the pidfile.
    #[serde(default)]
    pub keys: Keys,
}

/// `attach-daemon2`'s settings; the other options leave them at their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    /// Written with `attach-daemon2` (for logs and status).
    pub keyed: bool,
    /// `control`: the daemon is essential: when it ends on its own, the whole server stops
    /// gracefully instead of restarting it.
    pub control: bool,
    /// `stopsignal`: the signal that stops it (SIGTERM).
    pub stop_signal: i32,
    /// `reloadsignal`: on a promoted reload it gets this signal and keeps running, instead of
    /// being stopped and started again.
    pub reload_signal: Option<i32>,
    /// `touch`: files whose modification time changing restarts it.
    pub touch: Vec<PathBuf>,
    /// `stdin`: it keeps the master's stdin instead of `/dev/null`.
    pub stdin: bool,
    /// `chdir`: its working directory (else the master's `--chdir`, else the master's).
    pub chdir: Option<PathBuf>,
    /// `uid`: the user it runs as (segue must run as root to change it).
    pub uid: Option<u32>,
    /// `gid`: the group it runs as (likewise).
    pub gid: Option<u32>,
}

impl Default for Keys {
    fn default() -> Keys {
        Keys {
            keyed: false,
            control: false,
            stop_signal: libc::SIGTERM,
            reload_signal: None,
            touch: Vec::new(),
            stdin: false,
            chdir: None,
            uid: None,
            gid: None,
        }
    }
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
    /// `attach-daemon2`'s `daemonize`: segue writes the pidfile with the child's pid (as
    /// uWSGI does); the other kinds leave the file to the daemon.
    #[serde(default)]
    pub write_pidfile: bool,
}

/// Why a daemon option's value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaemonError {
    /// No command.
    #[error("invalid value '{0}': expected a command line")]
    NoCommand(String),
    /// A malformed `attach-daemon2` value.
    #[error("invalid value '{value}': {why}")]
    Keyed {
        /// The value.
        value: String,
        /// What is wrong, and how to write it.
        why: String,
    },
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
            keys: Keys::default(),
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
                write_pidfile: false,
            }),
            keys: Keys::default(),
        })
    }

    /// `attach-daemon2 key=value,...` with uWSGI's keys: `cmd` (or `command`, `exec`;
    /// required), `pidfile` (watched as a smart daemon's), `daemonize` (with `pidfile`: the
    /// command stays in the foreground and segue writes the pidfile, as uWSGI does; without,
    /// a command given a pidfile is expected to put itself in the background), `control`,
    /// `touch` (`;`-separated files), `stopsignal`, `reloadsignal`, `stdin`, `chdir`, `uid`,
    /// `gid`. A `\` before `,` or `=` keeps it in the value.
    pub fn keyed(value: &str) -> Result<DaemonSpec, DaemonError> {
        let bad = |why: String| DaemonError::Keyed {
            value: value.to_owned(),
            why,
        };
        let mut keys = Keys {
            keyed: true,
            ..Keys::default()
        };
        let (mut command, mut pidfile, mut daemonize) = (None, None, false);
        for (key, v) in split_keys(value).map_err(bad)? {
            let flag = || crate::config::option::parse_bool(&v).unwrap_or(!v.is_empty());
            let number = |what: &str| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| bad(format!("{key}={v}: expected {what}")))
            };
            match key.as_str() {
                "cmd" | "command" | "exec" => command = Some(v.trim().to_owned()),
                "pidfile" => pidfile = Some(PathBuf::from(v.trim())),
                "daemonize" | "daemon" => daemonize = flag(),
                "control" => keys.control = flag(),
                "stdin" => keys.stdin = flag(),
                "touch" => {
                    keys.touch = v
                        .split(';')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(PathBuf::from)
                        .collect();
                }
                "stopsignal" | "stop_signal" => keys.stop_signal = signal(&v).map_err(bad)?,
                "reloadsignal" | "reload_signal" => {
                    keys.reload_signal = Some(signal(&v).map_err(bad)?);
                }
                "chdir" => keys.chdir = Some(PathBuf::from(v.trim())),
                "uid" => keys.uid = Some(number("a numeric user id")?),
                "gid" => keys.gid = Some(number("a numeric group id")?),
                "freq" | "max_throttle" | "notifypid" | "ns_pid" | "legion" => {
                    return Err(bad(format!(
                        "{key} is not supported by segue (pidfiles are checked every second; see docs/daemons.md)"
                    )));
                }
                other => {
                    return Err(bad(format!(
                        "unknown key '{other}' (segue knows cmd, pidfile, daemonize, control, touch, stopsignal, reloadsignal, stdin, chdir, uid, gid)"
                    )));
                }
            }
        }
        let command = command
            .filter(|c| !c.is_empty())
            .ok_or_else(|| bad("it needs a cmd=COMMAND key".into()))?;
        if daemonize && pidfile.is_none() {
            return Err(bad(
                "daemonize needs a pidfile=PATH key (the file segue writes the pid to)".into(),
            ));
        }
        Ok(DaemonSpec {
            command,
            smart: pidfile.map(|pidfile| Smart {
                pidfile,
                daemonizes: !daemonize,
                write_pidfile: daemonize,
            }),
            keys,
        })
    }

    /// The option that configures it, for logs and status.
    pub fn option(&self) -> &'static str {
        if self.keys.keyed {
            return "attach-daemon2";
        }
        match &self.smart {
            None => "attach-daemon",
            Some(s) if s.daemonizes => "smart-attach-daemon",
            Some(_) => "smart-attach-daemon2",
        }
    }
}

/// `key=value,key=value`, with `\` escaping a `,`, `=` or `\` (uWSGI's key-value lists).
fn split_keys(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let (mut key, mut current, mut in_value) = (String::new(), String::new(), false);
    let mut chars = value.chars();
    let mut finish = |key: &mut String, current: &mut String, in_value: bool| {
        let k = key.trim().to_ascii_lowercase();
        if k.is_empty() && current.trim().is_empty() && !in_value {
            return Ok(());
        }
        if !in_value {
            return Err(format!(
                "'{}' has no '=': write key=value pairs separated by commas",
                current.trim()
            ));
        }
        pairs.push((k, std::mem::take(current)));
        key.clear();
        Ok(())
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            '=' if !in_value => {
                key = std::mem::take(&mut current);
                in_value = true;
            }
            ',' => {
                finish(&mut key, &mut current, in_value)?;
                in_value = false;
            }
            c => current.push(c),
        }
    }
    finish(&mut key, &mut current, in_value)?;
    Ok(pairs)
}

/// A signal by number (uWSGI's form) or name (`TERM`, `SIGQUIT`).
fn signal(text: &str) -> Result<i32, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .map(|s| s as i32)
            .map_err(|_| format!("{t} is not a signal number"));
    }
    let name = t.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| format!("'{t}' is not a signal (write a number or a name such as TERM)"))
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
                daemonizes: true,
                write_pidfile: false,
            })
        );
        assert_eq!(
            DaemonSpec::smart("/p.pid cmd", false).unwrap().option(),
            "smart-attach-daemon2"
        );
        assert!(DaemonSpec::smart("/only/a/pidfile", true).is_err());
    }

    #[test]
    fn attach_daemon2_reads_uwsgis_keys() {
        let d = DaemonSpec::keyed(
            "cmd=celery -A proj worker,control=1,stopsignal=3,reloadsignal=HUP,touch=/a;/b,stdin=true,chdir=/srv",
        )
        .unwrap();
        assert_eq!(d.command, "celery -A proj worker");
        assert_eq!(d.smart, None);
        assert_eq!(d.option(), "attach-daemon2");
        let k = &d.keys;
        assert!(k.control && k.stdin);
        assert_eq!(k.stop_signal, libc::SIGQUIT);
        assert_eq!(k.reload_signal, Some(libc::SIGHUP));
        assert_eq!(k.touch, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(k.chdir.as_deref(), Some(std::path::Path::new("/srv")));

        let s = DaemonSpec::keyed("pidfile=/run/x.pid,daemonize=1,exec=x --opt a\\,b").unwrap();
        assert_eq!(s.command, "x --opt a,b");
        let smart = s.smart.unwrap();
        assert!(!smart.daemonizes && smart.write_pidfile);
        let s = DaemonSpec::keyed("command=memcached -d -P /m.pid,pidfile=/m.pid").unwrap();
        assert!(
            s.smart.unwrap().daemonizes,
            "a pidfile alone: the command daemonizes"
        );
    }

    #[test]
    fn attach_daemon2_refuses_what_it_cannot_honour() {
        let why = |v: &str| DaemonSpec::keyed(v).unwrap_err().to_string();
        assert!(why("pidfile=/p").contains("cmd=COMMAND"));
        assert!(why("cmd=x,daemonize=1").contains("pidfile=PATH"));
        assert!(why("cmd=x,colour=blue").contains("unknown key 'colour'"));
        assert!(why("cmd=x,freq=5").contains("not supported"));
        assert!(why("cmd=x,stopsignal=BOGUS").contains("not a signal"));
        assert!(why("cmd=x,uid=bob").contains("numeric user id"));
        assert!(why("cmd=x,oops").contains("has no '='"));
    }
}
