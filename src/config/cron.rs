//! Cron jobs (uWSGI's `cron`, `unique-cron`): a schedule in uWSGI's syntax or crontab's, and
//! the command the master runs when the local time matches it.
//!
//! Each of the five fields (minute, hour, day of month, month, day of week) is uWSGI's `-1`
//! (any) or `-N` (when the value is divisible by N), or crontab's `*`, `*/N`, `A`, `A-B`,
//! `A-B/N` and comma lists of those. Day of month and day of week are ORed when both are
//! restricted, as in crontab and uWSGI. Sunday is 0 or 7.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The local time a schedule is checked against, to the minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WallClock {
    /// 0-59.
    pub minute: u32,
    /// 0-23.
    pub hour: u32,
    /// 1-31.
    pub mday: u32,
    /// 1-12.
    pub month: u32,
    /// 0-6, Sunday 0.
    pub wday: u32,
}

/// One field's allowed values, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Field {
    bits: u64,
    /// Written as "any" (`-1`, `*`): matters for the day-of-month/day-of-week rule.
    any: bool,
}

impl Field {
    fn has(&self, v: u32) -> bool {
        v < 64 && self.bits & (1 << v) != 0
    }
}

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    minute: Field,
    hour: Field,
    mday: Field,
    month: Field,
    wday: Field,
    /// As written, for status and logs.
    text: String,
}

/// One cron job as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronSpec {
    /// When.
    pub schedule: Schedule,
    /// The command line, run by `/bin/sh -c`.
    pub command: String,
    /// `unique-cron`: never two runs at once (a run due while one is still going is skipped).
    pub unique: bool,
}

/// Why a cron value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// Fewer than five fields and a command.
    #[error(
        "invalid value '{0}': expected MINUTE HOUR DAY MONTH WEEKDAY COMMAND (uWSGI's -1 and -N, or crontab's *, */N, A-B and lists)"
    )]
    Shape(String),
    /// A field that is not a schedule.
    #[error("invalid {field} '{text}' in '{value}': {why}")]
    Field {
        /// Which field.
        field: &'static str,
        /// As written.
        text: String,
        /// The whole value.
        value: String,
        /// What is wrong.
        why: String,
    },
}

const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

/// One field: `lo..=hi` is its range (day of week allows 7, folded onto 0).
fn field(text: &str, lo: u32, hi: u32) -> Result<Field, String> {
    let number = |s: &str| -> Result<u32, String> {
        let n: u32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
        if n < lo || n > hi {
            return Err(format!("{n} is outside {lo}-{hi}"));
        }
        Ok(n)
    };
    let all = |step: u32, from: u32, to: u32| -> u64 {
        (from..=to)
            .step_by(step as usize)
            .fold(0u64, |b, v| b | (1 << v))
    };
    // uWSGI's forms.
    if let Some(n) = text.strip_prefix('-') {
        let n: u32 = n.parse().map_err(|_| format!("'{text}' is not -1 or -N"))?;
        return match n {
            0 => Err("-0 is not a schedule (-1 is any, -N every N)".into()),
            1 => Ok(Field {
                bits: all(1, lo, hi),
                any: true,
            }),
            n => Ok(Field {
                bits: (lo..=hi)
                    .filter(|v| v % n == 0)
                    .fold(0, |b, v| b | (1 << v)),
                any: false,
            }),
        };
    }
    if text == "*" {
        return Ok(Field {
            bits: all(1, lo, hi),
            any: true,
        });
    }
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let s: u32 = s
                    .parse()
                    .map_err(|_| format!("step '{s}' is not a number"))?;
                if s == 0 {
                    return Err("a step of 0".into());
                }
                (r, s)
            }
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (number(a)?, number(b)?);
            if a > b {
                return Err(format!("the range {a}-{b} runs backwards"));
            }
            (a, b)
        } else {
            let a = number(range)?;
            (a, if step > 1 { hi } else { a })
        };
        bits |= all(step, from, to);
    }
    Ok(Field { bits, any: false })
}

impl CronSpec {
    /// `cron = MIN HOUR MDAY MON WDAY CMD` (`unique` for `unique-cron`).
    pub fn parse(value: &str, unique: bool) -> Result<CronSpec, CronError> {
        let mut rest = value.trim();
        let mut parsed = Vec::with_capacity(5);
        let mut texts = Vec::with_capacity(5);
        for (name, lo, hi) in FIELDS {
            let (word, tail) = rest
                .split_once(char::is_whitespace)
                .ok_or_else(|| CronError::Shape(value.to_owned()))?;
            let f = field(word, lo, hi).map_err(|why| CronError::Field {
                field: name,
                text: word.to_owned(),
                value: value.to_owned(),
                why,
            })?;
            parsed.push(f);
            texts.push(word);
            rest = tail.trim_start();
        }
        if rest.is_empty() {
            return Err(CronError::Shape(value.to_owned()));
        }
        let mut wday = parsed[4];
        if wday.has(7) {
            wday.bits = (wday.bits & !(1 << 7)) | 1;
        }
        Ok(CronSpec {
            schedule: Schedule {
                minute: parsed[0],
                hour: parsed[1],
                mday: parsed[2],
                month: parsed[3],
                wday,
                text: texts.join(" "),
            },
            command: rest.to_owned(),
            unique,
        })
    }
}

impl Schedule {
    /// Whether a job is due at `t`.
    pub fn matches(&self, t: &WallClock) -> bool {
        let day = match (self.mday.any, self.wday.any) {
            (false, false) => self.mday.has(t.mday) || self.wday.has(t.wday),
            _ => self.mday.has(t.mday) && self.wday.has(t.wday),
        };
        self.minute.has(t.minute) && self.hour.has(t.hour) && self.month.has(t.month) && day
    }
}

/// The schedule as written.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: u32, hour: u32, mday: u32, month: u32, wday: u32) -> WallClock {
        WallClock {
            minute,
            hour,
            mday,
            month,
            wday,
        }
    }

    #[test]
    fn the_seeds_uwsgi_syntax_runs_every_five_minutes() {
        let c = CronSpec::parse("-5 -1 -1 -1 -1 /path/to/some/script --flag", false).unwrap();
        assert_eq!(c.command, "/path/to/some/script --flag");
        assert_eq!(c.schedule.to_string(), "-5 -1 -1 -1 -1");
        assert!(c.schedule.matches(&at(0, 3, 9, 2, 1)));
        assert!(c.schedule.matches(&at(35, 23, 31, 12, 0)));
        assert!(!c.schedule.matches(&at(36, 23, 31, 12, 0)));
        // The uWSGI docs' examples.
        let c =
            CronSpec::parse("59 2 -1 -1 -1 /usr/bin/backup_my_home --recursive", false).unwrap();
        assert!(c.schedule.matches(&at(59, 2, 1, 1, 4)));
        assert!(!c.schedule.matches(&at(59, 3, 1, 1, 4)));
        let c = CronSpec::parse("9 11 -1 -1 2 /opt/dem/bin/send_reminders", false).unwrap();
        assert!(c.schedule.matches(&at(9, 11, 5, 6, 2)));
        assert!(!c.schedule.matches(&at(9, 11, 5, 6, 3)));
    }

    #[test]
    fn crontab_syntax_is_accepted_too() {
        let c = CronSpec::parse("*/15 9-17 * * 1-5 report", true).unwrap();
        assert!(c.unique);
        assert!(c.schedule.matches(&at(45, 17, 3, 3, 5)));
        assert!(!c.schedule.matches(&at(50, 17, 3, 3, 5)));
        assert!(!c.schedule.matches(&at(0, 9, 3, 3, 6)));
        let c = CronSpec::parse("0,30 0 1 1,7 * x", false).unwrap();
        assert!(c.schedule.matches(&at(30, 0, 1, 7, 3)));
        assert!(!c.schedule.matches(&at(30, 0, 1, 8, 3)));
        // Sunday as 7; day of month and day of week ORed when both are set.
        let c = CronSpec::parse("0 0 13 * 7 x", false).unwrap();
        assert!(c.schedule.matches(&at(0, 0, 13, 5, 2)));
        assert!(c.schedule.matches(&at(0, 0, 14, 5, 0)));
        assert!(!c.schedule.matches(&at(0, 0, 14, 5, 1)));
        // A bare number with a step starts there: 5/20 is 5, 25, 45.
        let c = CronSpec::parse("5/20 * * * * x", false).unwrap();
        assert!(c.schedule.matches(&at(45, 0, 1, 1, 0)));
        assert!(!c.schedule.matches(&at(50, 0, 1, 1, 0)));
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        for (bad, says) in [
            ("-1 -1 -1 -1 -1", "expected MINUTE"),
            ("-1 -1 -1 -1", "expected MINUTE"),
            ("60 * * * * x", "60 is outside 0-59"),
            ("* 24 * * * x", "outside 0-23"),
            ("* * 0 * * x", "outside 1-31"),
            ("* * * 13 * x", "outside 1-12"),
            ("* * * * 8 x", "outside 0-7"),
            ("-0 * * * * x", "-0"),
            ("*/0 * * * * x", "step of 0"),
            ("5-1 * * * * x", "backwards"),
            ("a * * * * x", "not a number"),
        ] {
            let e = CronSpec::parse(bad, false).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
