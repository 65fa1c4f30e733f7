//! What `--print-config` prints and the one-line summary the master logs at start: the
//! effective settings with where each came from, and every name that was implied, refused or
//! not understood, so a migration can be read before it is tried.

use serde_json::{Map, Value, json};

use super::Config;
use super::option::{self, Kind};
use super::resolve::{Resolved, Setting};

fn typed(opt: &option::Opt, value: &str) -> Value {
    match opt.kind {
        Kind::Bool => option::parse_bool(value).map_or_else(|| json!(value), Value::Bool),
        Kind::Count => value
            .trim()
            .parse::<u64>()
            .map_or_else(|_| json!(value), |n| json!(n)),
        Kind::Seconds => value
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .unwrap_or_else(|| json!(value)),
        Kind::Text => json!(value),
    }
}

fn setting_json(r: &Resolved, opt: &option::Opt, s: &Setting) -> Value {
    let value = if opt.repeat {
        Value::Array(s.values.iter().map(|v| typed(opt, v)).collect())
    } else {
        s.values.last().map_or(Value::Null, |v| typed(opt, v))
    };
    let mut obj = Map::new();
    obj.insert("value".into(), value);
    obj.insert("source".into(), json!(s.origin.to_string()));
    // A repeatable option set on several lines: where each value came from.
    let origins = r.origins(opt.name);
    if opt.repeat && origins.len() > 1 {
        let each: Vec<String> = origins.iter().map(ToString::to_string).collect();
        obj.insert("sources".into(), json!(each));
    }
    if s.written.trim_start_matches('-') != opt.name
        && !matches!(s.origin, super::entry::Origin::Default)
    {
        obj.insert("as".into(), json!(s.written));
    }
    Value::Object(obj)
}

/// The `--print-config` document: `settings` (every option: value, source, and the name it
/// was written as when that differs), `implied`, `unsupported`, `unknown`, `invalid`,
/// `warnings`, `files`, `problems` (what serving would refuse, empty when it would start) and
/// `effective`: the configuration the master (or, with `emperor`, the emperor) would run with
/// (null when refused), which shows what compound options became (gunicorn's `timeout` as
/// harakiri and heartbeat timeout).
pub fn print_config(r: &Resolved) -> Value {
    let settings: Map<String, Value> = r
        .settings()
        .into_iter()
        .filter(|(opt, _)| opt.on_reload != option::OnReload::Control)
        .map(|(opt, s)| (opt.name.to_owned(), setting_json(r, opt, &s)))
        .collect();
    let (problems, effective) = match r.emperor() {
        Some(Ok(emperor)) => (
            Vec::new(),
            serde_json::to_value(&emperor).unwrap_or(Value::Null),
        ),
        Some(Err(refusal)) => (refusal.problems, Value::Null),
        None => match r.config() {
            Ok(config) => (
                Vec::new(),
                serde_json::to_value(&config).unwrap_or(Value::Null),
            ),
            Err(refusal) => (refusal.problems, Value::Null),
        },
    };
    json!({
        "settings": settings,
        "implied": r.implied,
        "unsupported": r.unsupported,
        "unknown": r.unknown,
        "invalid": r.invalid,
        "warnings": r.warnings,
        "files": r.files,
        "problems": problems,
        "effective": effective,
    })
}

/// One line naming what this server will do, as gunicorn prints at start.
pub fn summary(config: &Config, r: &Resolved) -> String {
    let listen: Vec<String> = config.listen.iter().map(ToString::to_string).collect();
    let mut from: Vec<String> = r.files.iter().map(|f| f.display().to_string()).collect();
    if from.is_empty() {
        from.push("command line".into());
    }
    format!(
        "serving {} on {} with {} worker{} x {} thread{}, {:?} reloads; configuration from {}",
        config.worker.app,
        listen.join(", "),
        config.workers,
        if config.workers == 1 { "" } else { "s" },
        config.worker.threads,
        if config.worker.threads == 1 { "" } else { "s" },
        config.reload_strategy,
        from.join(", "),
    )
    .replace("Chain reloads", "chain reloads")
    .replace("Respawn reloads", "respawn reloads")
}
