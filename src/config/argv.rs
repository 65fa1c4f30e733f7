//! Command-line words into [`Entry`]s, GNU style (`--name value`, `--name=value`, `-w 4`,
//! `-w4`, `--` ends the options), without deciding what any name means: whether a flag takes
//! the next word is asked of the dialects, so `--master wsgi.py` (a uWSGI flag, then the app)
//! and `--processes 4` both parse as their users mean. The same parser reads
//! `GUNICORN_CMD_ARGS`.

use super::entry::{Arity, Entry, Origin};

/// The words, split into options and positional arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Options in the order given; `key` is the flag as typed (`--bind`, `-b`).
    pub entries: Vec<Entry>,
    /// The rest (the app, a `.ini` or `.py` file).
    pub positional: Vec<String>,
}

/// A word that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// A flag that takes a value came last.
    #[error("{0} needs a value (e.g. {0} VALUE or {0}=VALUE)")]
    MissingValue(String),
}

/// Parses `words`; `arity` says whether a flag (as typed, `--bind` or `-b`) takes a value, or
/// `None` for a name no dialect knows (it is then taken as a bare flag, and reported as unknown
/// later). `origin` names where the words came from for entries not on the command line
/// (`GUNICORN_CMD_ARGS`).
pub fn parse(
    words: &[String],
    env_origin: Option<&str>,
    arity: &dyn Fn(&str) -> Option<Arity>,
) -> Result<Parsed, ArgError> {
    let origin = |flag: &str| match env_origin {
        Some(var) => Origin::Env(var.to_owned()),
        None => Origin::Flag(flag.to_owned()),
    };
    let mut parsed = Parsed::default();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            parsed.positional.extend(words.by_ref().cloned());
            break;
        }
        let (flag, inline) = if let Some(long) = word.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, value)) => (format!("--{name}"), Some(value.to_owned())),
                None => (word.clone(), None),
            }
        } else if word.len() > 1
            && word.starts_with('-')
            && !word[1..].starts_with(|c: char| c.is_ascii_digit())
        {
            // `-w4` is `-w 4`; `-b=x` is not a thing in gunicorn, but `-b` `x` is.
            let mut chars = word[1..].chars();
            let short = chars.next().unwrap_or('-');
            let rest: String = chars.collect();
            let flag = format!("-{short}");
            if rest.is_empty() {
                (flag, None)
            } else if arity(&flag) == Some(Arity::Value) {
                (flag, Some(rest))
            } else {
                // A flag glued to something that is not its value: keep it whole so that the
                // unknown-option report shows what was typed.
                (word.clone(), None)
            }
        } else {
            parsed.positional.push(word.clone());
            continue;
        };
        let value = match (inline, arity(&flag)) {
            (Some(v), _) => Some(v),
            (None, Some(Arity::Value)) => Some(
                words
                    .next()
                    .cloned()
                    .ok_or_else(|| ArgError::MissingValue(flag.clone()))?,
            ),
            // A name no dialect knows (reported later as a typo): if a word follows that is
            // not a flag, and another word after it, the first is most likely its value
            // (`--wokrers 2 app`), so that the report names the typo, not "two apps".
            (None, None) => {
                let rest = words.as_slice();
                match rest {
                    [next, _, ..] if !next.starts_with('-') => {
                        words.next();
                        Some(next.clone())
                    }
                    _ => None,
                }
            }
            (None, _) => None,
        };
        parsed.entries.push(Entry {
            origin: origin(&flag),
            key: flag,
            value,
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arity(flag: &str) -> Option<Arity> {
        match flag {
            "--workers" | "-w" | "--bind" | "-b" | "--processes" | "--cron" => Some(Arity::Value),
            "--master" | "--enable-threads" | "--preload" => Some(Arity::Flag),
            "--py-autoreload" => Some(Arity::Optional),
            _ => None,
        }
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn pairs(p: &Parsed) -> Vec<(String, Option<String>)> {
        p.entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect()
    }

    #[test]
    fn gunicorn_and_uwsgi_styles_parse_as_their_users_mean() {
        let p = parse(
            &words("-w 4 -b0.0.0.0:8000 --master app:app --processes=3"),
            None,
            &arity,
        )
        .unwrap();
        assert_eq!(
            pairs(&p),
            [
                ("-w".into(), Some("4".into())),
                ("-b".into(), Some("0.0.0.0:8000".into())),
                ("--master".into(), None),
                ("--processes".into(), Some("3".into())),
            ]
        );
        assert_eq!(p.positional, ["app:app"]);
        assert_eq!(p.entries[0].origin, Origin::Flag("-w".into()));
    }

    #[test]
    fn values_may_start_with_a_dash_and_optional_arguments_need_equals() {
        let p = parse(
            &words("--cron -5 --py-autoreload wsgi.py --py-autoreload=3"),
            None,
            &arity,
        )
        .unwrap();
        assert_eq!(
            pairs(&p),
            [
                ("--cron".into(), Some("-5".into())),
                ("--py-autoreload".into(), None),
                ("--py-autoreload".into(), Some("3".into())),
            ]
        );
        assert_eq!(p.positional, ["wsgi.py"]);
    }

    #[test]
    fn double_dash_ends_options_and_a_missing_value_is_an_error() {
        let p = parse(&words("--workers 2 -- --weird-module"), None, &arity).unwrap();
        assert_eq!(p.positional, ["--weird-module"]);
        assert_eq!(
            parse(&words("--bind"), None, &arity).unwrap_err(),
            ArgError::MissingValue("--bind".into())
        );
        let p = parse(&words("--typo-flag app"), Some("GUNICORN_CMD_ARGS"), &arity).unwrap();
        assert_eq!(p.entries[0].origin, Origin::Env("GUNICORN_CMD_ARGS".into()));
        assert_eq!(p.positional, ["app"]);
        let p = parse(&words("--wokrers 2 app"), None, &arity).unwrap();
        assert_eq!(pairs(&p), [("--wokrers".into(), Some("2".into()))]);
        assert_eq!(p.positional, ["app"]);
    }
}
