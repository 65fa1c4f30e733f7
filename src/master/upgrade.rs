//! In-place binary upgrade: the master re-executes itself (the same PID, so systemd keeps
//! tracking it) with the listening sockets, the control socket and every worker's control
//! channel handed over as inherited fds, described by a [`Handover`] in the environment. The new
//! image adopts the running workers and replaces them with a gated chain reload, so requests
//! never stop being served and a new binary whose workers cannot start rolls back to the old
//! workers.
//!
//! Before exec, the new binary is asked (`__upgrade-check`) whether it speaks this handover
//! format and control protocol; if it cannot even answer, the old master keeps running.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::reaper::ExitKind;
use crate::config::{ListenAddr, Protocol};
use crate::control::ReloadReport;
use crate::protocol::{PROTOCOL_VERSION, set_cloexec};

/// The environment variable carrying the [`Handover`] to the new image.
pub const HANDOVER_ENV: &str = "SEGUE_HANDOVER";
/// Bumped when [`Handover`] changes shape.
pub const HANDOVER_VERSION: u32 = 1;

/// A listener crossing the exec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandedListener {
    /// Its address.
    pub addr: ListenAddr,
    /// The fd number, valid in the new image.
    pub fd: RawFd,
    /// Its systemd name, if it came from systemd.
    pub systemd_name: Option<String>,
    /// What it speaks; a handover from before protocols existed carries HTTP listeners only.
    #[serde(default)]
    pub protocol: Protocol,
}

/// A running worker crossing the exec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandedWorker {
    /// Its id.
    pub id: u64,
    /// Its PID (still our child: exec keeps the PID).
    pub pid: i32,
    /// Its generation.
    pub generation: u64,
    /// Its slot.
    pub slot: usize,
    /// Ready (true) or already draining (false).
    pub ready: bool,
    /// The master's end of its control channel.
    pub control_fd: RawFd,
}

/// Everything the new image needs to carry on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handover {
    /// Must equal [`HANDOVER_VERSION`].
    pub version: u32,
    /// Listening sockets, in order.
    pub listeners: Vec<HandedListener>,
    /// The control socket's listening fd.
    pub control_fd: Option<RawFd>,
    /// Running workers.
    pub workers: Vec<HandedWorker>,
    /// The serving generation.
    pub serving: u64,
    /// Counters that must keep increasing across the exec.
    pub next_id: u64,
    /// Next generation id.
    pub next_generation: u64,
    /// Next reload number.
    pub next_reload: u64,
    /// Finished reloads.
    pub history: Vec<ReloadReport>,
    /// Upgrades so far, this one included.
    pub upgrades: u64,
    /// The live worker count (scaling since the start is kept across the upgrade; the new
    /// image's command line only says how many workers there were at first).
    #[serde(default)]
    pub workers_wanted: Option<usize>,
    /// Attached daemons and their processes, adopted by the new image.
    #[serde(default)]
    pub daemons: Vec<super::daemons::HandedDaemon>,
}

/// Why an upgrade did not happen (the old master keeps running).
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpgradeError {
    /// The new binary could not be run or answered wrongly.
    #[error("the new binary '{}' failed its check: {why} (is it a segue build for this machine?)", path.display())]
    Preflight {
        /// The binary.
        path: std::path::PathBuf,
        /// What went wrong.
        why: String,
    },
    /// exec failed.
    #[error("exec of '{}' failed: {source}", path.display())]
    Exec {
        /// The binary.
        path: std::path::PathBuf,
        /// The OS error.
        source: Arc<std::io::Error>,
    },
    /// A reload is running, workers are booting or another upgrade is under way.
    #[error(
        "a reload is running, workers are starting or an upgrade is under way; retry once the server is settled"
    )]
    Busy,
}

/// How long the new binary has to answer `__upgrade-check`.
pub const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);

/// What `segue __upgrade-check` prints: the formats this binary understands.
pub fn check_line() -> String {
    format!("segue-upgrade {PROTOCOL_VERSION} {HANDOVER_VERSION}")
}

/// Starts `binary __upgrade-check` with its stdout piped. It is not waited for here: the
/// master's one reaper collects its exit status and the executor pairs it with the output.
pub fn start_preflight(binary: &Path) -> Result<std::process::Child, UpgradeError> {
    Command::new(binary)
        .arg("__upgrade-check")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| preflight_failed(binary, e.to_string()))
}

/// The check's error for `binary`.
pub fn preflight_failed(binary: &Path, why: String) -> UpgradeError {
    UpgradeError::Preflight {
        path: binary.to_owned(),
        why,
    }
}

/// Judges the check's answer: it must exit 0 having printed exactly our [`check_line`].
pub fn judge_preflight(binary: &Path, exit: ExitKind, out: &str) -> Result<(), UpgradeError> {
    if exit != ExitKind::Code(0) || out.trim() != check_line() {
        return Err(preflight_failed(
            binary,
            format!(
                "it answered {:?} ({exit}), expected {:?}",
                out.trim(),
                check_line()
            ),
        ));
    }
    Ok(())
}

/// Re-executes `binary` in place with `handover`. Returns only if exec failed, with the fds'
/// close-on-exec flags restored.
pub fn exec(binary: &Path, handover: &Handover) -> UpgradeError {
    let fds: Vec<RawFd> = handover
        .listeners
        .iter()
        .map(|l| l.fd)
        .chain(handover.control_fd)
        .chain(handover.workers.iter().map(|w| w.control_fd))
        .collect();
    let json = match serde_json::to_string(handover) {
        Ok(j) => j,
        Err(e) => {
            return UpgradeError::Exec {
                path: binary.to_owned(),
                source: Arc::new(std::io::Error::other(e)),
            };
        }
    };
    for &fd in &fds {
        let _ = set_cloexec(fd, false);
    }
    let mut cmd = Command::new(binary);
    cmd.args(std::env::args_os().skip(1))
        .env(HANDOVER_ENV, json);
    for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        cmd.env_remove(var);
    }
    let source = cmd.exec();
    for &fd in &fds {
        let _ = set_cloexec(fd, true);
    }
    UpgradeError::Exec {
        path: binary.to_owned(),
        source: Arc::new(source),
    }
}

/// Takes the handover from the environment, if this process is the new image of an upgrade.
///
/// # Safety
/// Must run before any other thread exists (it edits the environment).
pub unsafe fn take_from_env() -> Option<Result<Handover, String>> {
    let json = std::env::var(HANDOVER_ENV).ok()?;
    // SAFETY: the caller guarantees the process is single-threaded.
    unsafe { std::env::remove_var(HANDOVER_ENV) };
    Some(match serde_json::from_str::<Handover>(&json) {
        Ok(h) if h.version == HANDOVER_VERSION => Ok(h),
        Ok(h) => Err(format!(
            "handover format {} from the old master, this binary reads {HANDOVER_VERSION}",
            h.version
        )),
        Err(e) => Err(format!("unreadable handover from the old master: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_handed_over_before_protocols_existed_speaks_http() {
        let old = r#"{"addr":{"Tcp":"127.0.0.1:8000"},"fd":5,"systemd_name":null}"#;
        let l: HandedListener = serde_json::from_str(old).unwrap();
        assert_eq!(l.protocol, Protocol::Http);
        let uwsgi = HandedListener {
            protocol: Protocol::Uwsgi,
            ..l
        };
        let back: HandedListener =
            serde_json::from_str(&serde_json::to_string(&uwsgi).unwrap()).unwrap();
        assert_eq!(back.protocol, Protocol::Uwsgi);
    }
}
