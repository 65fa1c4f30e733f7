//! The emperor's own settings (`--emperor DIR`): which directories hold vassal files, how often
//! they are looked at, and the emperor's control socket, pidfile and logs. Everything else
//! belongs in a vassal's file; set in the emperor's, it is named in a warning and ignored, as
//! uWSGI's emperor ignores `workers` in its emperor.ini.

use std::path::PathBuf;
use std::time::Duration;

use super::{Reader, Refusal, absolute};
use crate::config::LogConfig;
use crate::config::resolve::Resolved;

/// What a vassal gets between its SIGTERM and a SIGKILL beyond the graceful timeout: time for
/// its own master to kill its workers and exit.
pub const KILL_MARGIN: Duration = Duration::from_secs(10);

/// The options an emperor uses itself; the others are a vassal's.
const EMPEROR_OPTIONS: &[&str] = &[
    "emperor",
    "emperor-freq",
    "emperor-tyrant",
    "control",
    "pidfile",
    "log-level",
    "log-format",
    "graceful-timeout",
    "ignore-unsupported",
    "print-config",
    "check-config",
    "ini",
    "config",
];

/// A validated emperor configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EmperorConfig {
    /// Each `--emperor` value made absolute: a directory, or a directory and a file-name glob.
    pub dirs: Vec<PathBuf>,
    /// How often the directories are scanned (`emperor-freq`).
    pub freq: Duration,
    /// Vassals run as their file's owner (`emperor-tyrant`).
    pub tyrant: bool,
    /// The emperor's control socket.
    pub control: Option<PathBuf>,
    /// The emperor's pidfile.
    pub pidfile: Option<PathBuf>,
    /// The emperor's own log settings.
    pub log: LogConfig,
    /// How long a stopping vassal may take before its process group is killed.
    pub kill_after: Duration,
    /// Settings given to the emperor that only a vassal uses, for a warning.
    pub ignored: Vec<&'static str>,
}

impl Resolved {
    /// `None` unless `emperor` is set; then the emperor's settings, or every problem with
    /// them (the same checks as a server's, but having no app is right).
    pub fn emperor(&self) -> Option<Result<EmperorConfig, Refusal>> {
        let dirs = self.get("emperor")?;
        let app = ["app", "wsgi-file", "eval", "mount"]
            .into_iter()
            .find(|n| self.get(n).is_some());
        let mut problems = match self.validate(true) {
            Ok(_) => Vec::new(),
            Err(refusal) => refusal.problems,
        };
        let has_unsupported = !self.unsupported.is_empty() && !self.flag("ignore-unsupported");
        if let Some(app) = app {
            problems.push(format!(
                "emperor and {app} are both set: an emperor runs vassals, not an app; put the app in a vassal file in {}",
                dirs.values.join(", ")
            ));
        }
        let mut rd = Reader {
            r: self,
            problems: Vec::new(),
            emperor: true,
        };
        let freq = rd.secs("emperor-freq");
        if freq.is_zero() && rd.r.get("emperor-freq").is_some() {
            rd.bad("emperor-freq", "must be more than 0 seconds");
        }
        let tyrant = rd.boolean("emperor-tyrant");
        let dirs: Vec<PathBuf> = dirs
            .values
            .iter()
            .filter(|d| !d.trim().is_empty())
            .map(|d| absolute(&self.cwd, std::path::Path::new(d.trim())))
            .collect();
        for d in &dirs {
            // A glob's directory is the part before it; either must exist at start (later a
            // directory that goes away keeps its vassals, see docs/emperor.md).
            let glob = d
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(['*', '?']));
            let listed = if glob { d.parent().unwrap_or(d) } else { d };
            if !listed.is_dir() {
                rd.bad(
                    "emperor",
                    format!(
                        "'{}' is not a directory (create it, or fix the path)",
                        listed.display()
                    ),
                );
            }
        }
        if dirs.is_empty() {
            rd.bad(
                "emperor",
                "give a directory of vassal files (or a glob such as /etc/segue/*.ini)",
            );
        }
        let config = EmperorConfig {
            dirs,
            freq: freq.max(Duration::from_millis(100)),
            tyrant,
            control: rd.path("control"),
            pidfile: rd.path("pidfile"),
            log: super::log_config(&mut rd),
            kill_after: rd.secs("graceful-timeout") + KILL_MARGIN,
            ignored: self
                .set_options()
                .into_iter()
                .filter(|o| !EMPEROR_OPTIONS.contains(o))
                .collect(),
        };
        for p in rd.problems {
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
        Some(if problems.is_empty() {
            Ok(config)
        } else {
            Err(Refusal {
                problems,
                has_unsupported,
            })
        })
    }
}
