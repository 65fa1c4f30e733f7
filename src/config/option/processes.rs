//! The options of the other supervised process kinds, uWSGI's process management: attached
//! daemons, cron jobs, cheap and idle modes, adaptive worker counts (cheaper), the emperor.

use super::{Kind, OnReload, Opt};

/// These options, in `--help` order.
pub static PROCESSES: &[Opt] = &[
    // Attached daemons.
    opt!(
        "attach-daemon",
        None,
        Text,
        true,
        None,
        "CMD",
        Applies,
        "Run CMD (by /bin/sh -c) beside the workers: started with the master, restarted when it dies, stopped and started again when a reload is promoted (repeatable; uWSGI's attach-daemon)"
    ),
    opt!(
        "smart-attach-daemon",
        None,
        Text,
        true,
        None,
        "PIDFILE CMD",
        Applies,
        "Run CMD, which daemonizes and writes PIDFILE, unless the pid in PIDFILE is alive; watched by its pidfile, kept running across reloads (repeatable; uWSGI's smart-attach-daemon)"
    ),
    opt!(
        "smart-attach-daemon2",
        None,
        Text,
        true,
        None,
        "PIDFILE CMD",
        Applies,
        "As smart-attach-daemon for a CMD that stays in the foreground (repeatable; uWSGI's smart-attach-daemon2)"
    ),
    // Cron jobs.
    opt!(
        "cron",
        None,
        Text,
        true,
        None,
        "MIN HOUR DAY MONTH WEEKDAY CMD",
        Applies,
        "Run CMD (by /bin/sh -c) when the local time matches: uWSGI's -1 (any) and -N (every N), or crontab's *, */N, A-B and lists (repeatable; uWSGI's cron)"
    ),
    opt!(
        "unique-cron",
        None,
        Text,
        true,
        None,
        "MIN HOUR DAY MONTH WEEKDAY CMD",
        Applies,
        "As cron, but a run due while the previous one still runs is skipped (repeatable; uWSGI's unique-cron)"
    ),
    opt!(
        "cron-harakiri",
        None,
        Seconds,
        false,
        Some("0"),
        "SECS",
        Applies,
        "Kill a cron run still going after SECS (0: no limit; uWSGI's cron-harakiri)"
    ),
];
