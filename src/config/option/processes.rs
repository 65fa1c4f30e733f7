//! The options of the other supervised process kinds, uWSGI's process management: attached
//! daemons, cron jobs, cheap and idle modes, adaptive worker counts (cheaper), the emperor.

use super::{Kind, OnReload, Opt};

/// These options, in `--help` order.
pub static PROCESSES: &[Opt] = &[
    // Preloading.
    opt!(
        "preload",
        None,
        Bool,
        false,
        Some("false"),
        "",
        Applies,
        "Import the app once per generation in a zygote process and fork the workers from it: they share its memory, start without importing, and a reload still imports the new code (gunicorn's --preload; see docs/preload.md)"
    ),
    opt!(
        "no-gc-freeze",
        None,
        Bool,
        false,
        Some("false"),
        "",
        Applies,
        "With --preload, do not call gc.freeze() in the zygote before forking (by default it does, so the collector does not dirty the shared pages)"
    ),
    opt!(
        "preload-allow-threads",
        None,
        Bool,
        false,
        Some("false"),
        "",
        Applies,
        "With --preload, fork even if the app started threads at import (they do not exist in the workers; by default this is refused, naming them)"
    ),
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
    opt!(
        "attach-daemon2",
        None,
        Text,
        true,
        None,
        "KEY=VALUE,...",
        Applies,
        "A daemon described by uWSGI's keys: cmd, pidfile, daemonize, control, touch, stopsignal, reloadsignal, stdin, chdir, uid, gid (repeatable; uWSGI's attach-daemon2)"
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
    // Cheap, idle and cheaper: how many workers run when.
    opt!(
        "cheap",
        None,
        Bool,
        false,
        Some("false"),
        "",
        NeedsRestart,
        "Start no workers until the first connection arrives; it waits in the listen queue meanwhile (uWSGI's cheap)"
    ),
    opt!(
        "idle",
        None,
        Seconds,
        false,
        Some("0"),
        "SECS",
        NeedsRestart,
        "After SECS without a request, drain and stop the workers until the next connection (0: never; uWSGI's idle)"
    ),
    opt!(
        "die-on-idle",
        None,
        Bool,
        false,
        Some("false"),
        "",
        NeedsRestart,
        "At the --idle point, stop the whole server gracefully instead (uWSGI's die-on-idle)"
    ),
    opt!(
        "cheaper",
        None,
        Count,
        false,
        Some("0"),
        "N",
        NeedsRestart,
        "Adapt the worker count to the load, between N and --workers (0: off; uWSGI's cheaper)"
    ),
    opt!(
        "cheaper-initial",
        None,
        Count,
        false,
        None,
        "N",
        NeedsRestart,
        "Workers to start with under --cheaper [default: the --cheaper minimum]"
    ),
    opt!(
        "cheaper-step",
        None,
        Count,
        false,
        Some("1"),
        "N",
        NeedsRestart,
        "Workers --cheaper adds at once"
    ),
    opt!(
        "cheaper-overload",
        None,
        Count,
        false,
        Some("3"),
        "N",
        NeedsRestart,
        "spare: seconds every worker must be busy before adding; backlog: the listen-queue length above which workers are added"
    ),
    opt!(
        "cheaper-idle",
        None,
        Count,
        false,
        Some("10"),
        "SECS",
        NeedsRestart,
        "backlog: quiet seconds (empty queue, two or more workers free) before one worker is removed"
    ),
    opt!(
        "cheaper-algo",
        None,
        Text,
        false,
        Some("spare"),
        "ALGO",
        NeedsRestart,
        "spare (add when all workers are busy, uWSGI's default) or backlog (add when the listen queue grows)"
    ),
    // The emperor.
    opt!(
        "emperor",
        None,
        Text,
        true,
        None,
        "DIR",
        NeedsRestart,
        "Run as an emperor: one segue per *.ini (uWSGI format) or *.toml file in DIR, started, restarted when it dies, reloaded when its file changes, stopped when it goes; DIR may end in a glob such as /etc/segue/*.ini (repeatable; uWSGI's emperor; see docs/emperor.md)"
    ),
    opt!(
        "emperor-freq",
        None,
        Seconds,
        false,
        Some("3"),
        "SECS",
        NeedsRestart,
        "How often the emperor looks at its directories"
    ),
    opt!(
        "emperor-tyrant",
        None,
        Bool,
        false,
        None,
        "",
        NeedsRestart,
        "Run each vassal as the owner (uid and gid) of its file; root only, and root-owned files are refused (uWSGI's emperor-tyrant)"
    ),
];
