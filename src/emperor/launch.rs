//! The OS side of a vassal: its segue master started from this binary on its file, in a
//! process group of its own, with an sd_notify socket of its own so that the emperor hears its
//! `READY=1` (the same readiness systemd would hear), and its output copied to the emperor's
//! stderr behind its file name.

use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::scan::Format;
use crate::master::daemon_process::{self, Launch, Side};

/// The longest sd_notify datagram read; longer ones are cut (systemd allows 4 KiB of text).
const MAX_NOTIFY: usize = 4096;

/// What a vassal's notify socket heard.
#[derive(Debug)]
pub struct Notified {
    /// The vassal master's pid.
    pub pid: i32,
    /// The datagram's `KEY=VALUE` lines.
    pub text: String,
}

/// A started vassal: its pid and the task that reads its notify socket (aborted when it ends).
#[derive(Debug)]
pub struct Started {
    /// Its master's pid (and process group).
    pub pid: i32,
    /// Reads its sd_notify datagrams.
    pub listener: tokio::task::JoinHandle<()>,
}

/// Who a vassal runs as in tyrant mode: its file's owner; a root-owned file is refused, since
/// tyrant mode exists so that users cannot run anything as root by dropping in a file.
pub fn tyrant_owner(path: &Path) -> Result<(u32, u32), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot stat it: {e}"))?;
    if meta.uid() == 0 || meta.gid() == 0 {
        return Err(
            "emperor-tyrant runs vassals as their file's owner and group and refuses root-owned files: chown it to the user and group it should run as"
                .to_owned(),
        );
    }
    Ok((meta.uid(), meta.gid()))
}

/// Starts `exe` on `path` as `owner` (tyrant mode) with `NOTIFY_SOCKET` pointing at a fresh
/// abstract socket that reports to `notes`; `raw` copies its output without a prefix.
pub fn start(
    exe: &Path,
    path: &Path,
    owner: Option<(u32, u32)>,
    raw: bool,
    notes: mpsc::Sender<Notified>,
) -> std::io::Result<Started> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let format = Format::of(path).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not an .ini or .toml file",
        )
    })?;
    let name = format!(
        "segue-emperor-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    let socket = std::os::unix::net::UnixDatagram::bind_addr(&addr)?;
    socket.set_nonblocking(true)?;
    // Not inherited by the vassal: it gets the name, and sends from a socket of its own.
    crate::protocol::set_cloexec(socket.as_raw_fd(), true)?;
    let socket = tokio::net::UnixDatagram::from_std(socket)?;

    let mut cmd = Command::new(exe);
    cmd.arg(format.flag()).arg(path);
    // systemd's socket activation and watchdog are the emperor's; the vassal's own notify
    // socket is ours (set after the removal: the last call for a variable wins).
    for var in crate::systemd::MASTER_ONLY_ENV {
        cmd.env_remove(var);
    }
    cmd.env("NOTIFY_SOCKET", format!("@{name}"));
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let label: Arc<str> = Arc::from(
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string()),
    );
    let how = Launch {
        dir,
        stdin: false,
        uid: owner.map(|o| o.0),
        gid: owner.map(|o| o.1),
        outlives_master: false,
    };
    let pid = daemon_process::spawn(cmd, Side::Vassal { raw }, label, how)?;
    let listener = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_NOTIFY];
        // A plain recv: ancillary data (the fds of a vassal's FDSTORE=1) is not taken, and the
        // kernel closes those fds rather than leaving them in the emperor.
        while let Ok(n) = socket.recv(&mut buf).await {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            // Bounded: a flood waits in the socket's buffer (and then the sender's), never in
            // the emperor's memory.
            if notes.send(Notified { pid, text }).await.is_err() {
                break;
            }
        }
    });
    Ok(Started { pid, listener })
}
