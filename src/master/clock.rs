//! The local time cron jobs are checked against, to the minute: the C library's `localtime_r`,
//! so the timezone is the one cron would use (`TZ`, else `/etc/localtime`).
//!
//! Test hook: with `SEGUE_TEST_CRON_SECONDS=1` in the master's environment a "minute" lasts a
//! second (the minute field is the local second), so tests see the uWSGI syntax run without
//! waiting for the clock. It is read once, at start.

use crate::config::WallClock;

/// The environment variable of the test hook.
pub const TEST_SECONDS: &str = "SEGUE_TEST_CRON_SECONDS";

/// Whether the test hook is on.
pub fn test_seconds() -> bool {
    std::env::var_os(TEST_SECONDS).is_some_and(|v| v == "1")
}

/// The local time now (`seconds_as_minutes`: the test hook's reading).
pub fn wall_clock(seconds_as_minutes: bool) -> WallClock {
    // SAFETY: time(NULL) and localtime_r write only into the tm we own.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    let part = |v: libc::c_int| u32::try_from(v).unwrap_or(0);
    WallClock {
        minute: part(if seconds_as_minutes {
            tm.tm_sec % 60
        } else {
            tm.tm_min
        }),
        hour: part(tm.tm_hour),
        mday: part(tm.tm_mday),
        month: part(tm.tm_mon + 1),
        wday: part(tm.tm_wday),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_are_in_cron_ranges() {
        let t = wall_clock(false);
        assert!(t.minute < 60 && t.hour < 24);
        assert!((1..=31).contains(&t.mday) && (1..=12).contains(&t.month) && t.wday < 7);
    }
}
