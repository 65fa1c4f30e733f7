//! The settings of the other process kinds: attached daemons, cron jobs, and how many workers
//! run when (cheap, idle, cheaper).

use super::{Reader, absolute};
use crate::config::cron::CronSpec;
use crate::config::daemon::DaemonSpec;
use crate::config::scaling::{self, Scaling};

/// `cheap`, `idle`, `die-on-idle` and the `cheaper` family.
pub(super) fn scaling(rd: &mut Reader<'_>, workers: usize) -> Scaling {
    let written = scaling::Written {
        cheap: rd.boolean("cheap"),
        idle: rd.secs("idle"),
        die_on_idle: rd.boolean("die-on-idle"),
        workers,
        cheaper: rd.count("cheaper"),
        initial: rd.count("cheaper-initial"),
        step: rd.count("cheaper-step"),
        overload: rd.count("cheaper-overload"),
        cheaper_idle: rd.count("cheaper-idle"),
        algo: rd.r.get("cheaper-algo").and(rd.text("cheaper-algo")),
    };
    Scaling::check(&written).unwrap_or_else(|p| {
        rd.bad(p.option, p.message);
        Scaling::default()
    })
}

/// `cron`, then `unique-cron`.
pub(super) fn crons(rd: &mut Reader<'_>) -> Vec<CronSpec> {
    let mut out = Vec::new();
    for (option, unique) in [("cron", false), ("unique-cron", true)] {
        for value in rd.list(option) {
            match CronSpec::parse(&value, unique) {
                Ok(c) => out.push(c),
                Err(e) => rd.bad(option, e),
            }
        }
    }
    out
}

/// `attach-daemon`, `smart-attach-daemon`, `smart-attach-daemon2` and `attach-daemon2`, in
/// that order. `attach-daemon2`'s `chdir` and `touch` paths are taken from the working
/// directory, as every other path is.
pub(super) fn daemons(rd: &mut Reader<'_>) -> Vec<DaemonSpec> {
    let mut out = Vec::new();
    for option in [
        "attach-daemon",
        "smart-attach-daemon",
        "smart-attach-daemon2",
        "attach-daemon2",
    ] {
        for value in rd.list(option) {
            let spec = match option {
                "attach-daemon" => DaemonSpec::plain(&value),
                "attach-daemon2" => DaemonSpec::keyed(&value),
                _ => DaemonSpec::smart(&value, option == "smart-attach-daemon"),
            };
            match spec {
                Ok(mut s) => {
                    let cwd = rd.r.cwd.clone();
                    s.keys.chdir = s.keys.chdir.map(|d| absolute(&cwd, &d));
                    s.keys.touch = s.keys.touch.iter().map(|t| absolute(&cwd, t)).collect();
                    if let Err(why) = can_switch_user(s.keys.uid, s.keys.gid) {
                        rd.bad(option, why);
                    }
                    out.push(s);
                }
                Err(e) => rd.bad(option, e),
            }
        }
    }
    out
}

/// `uid=`/`gid=` need root unless they name what segue already runs as.
fn can_switch_user(uid: Option<u32>, gid: Option<u32>) -> Result<(), String> {
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if euid == 0 {
        return Ok(());
    }
    let other_user = uid.is_some_and(|u| u != euid);
    let other_group = gid.is_some_and(|g| g != egid);
    if other_user || other_group {
        return Err(format!(
            "uid/gid: segue runs as uid {euid} gid {egid}, not root, so it cannot start the daemon as another user or group (run segue as root, or drop the uid/gid keys)"
        ));
    }
    Ok(())
}
