//! `segue --help`: generated from the option table, so it never lists an option that does not
//! exist or misses one that does.

use super::option::{self, Kind};

/// The help text for serving.
pub fn text() -> String {
    let mut out = format!(
        "segue {}: a WSGI application server whose reloads never drop a request\n\n\
         Usage: segue [OPTIONS] APP\n\
         \x20      segue --ini uwsgi.ini | -c gunicorn.conf.py | --config segue.toml [OPTIONS]\n\
         \x20      segue reload|status|stop|workers|upgrade|check-reload --help\n\n\
         APP is MODULE[:NAME], MODULE:FACTORY(ARGS) or a .py file. gunicorn's flags (-b, --bind,\n\
         --pid, --keep-alive, ...) and uWSGI's options (--processes, --http-socket, --master, ...)\n\
         are understood too: see docs/migrating-from-gunicorn.md and docs/migrating-from-uwsgi.md.\n\
         Every option can also be set as SEGUE_<NAME> (SEGUE_WORKERS=4) or in segue.toml;\n\
         precedence: command line > environment > configuration files > defaults.\n\nOptions:\n",
        env!("CARGO_PKG_VERSION")
    );
    let flags: Vec<(String, &str, Option<&str>)> = option::all()
        .map(|o| {
            let short = o.short.map_or("    ".to_owned(), |c| format!("-{c}, "));
            let value = if o.kind == Kind::Bool {
                String::new()
            } else {
                format!(" {}", o.value_name)
            };
            (format!("{short}--{}{value}", o.name), o.help, o.default)
        })
        .collect();
    let width = flags.iter().map(|(f, _, _)| f.len()).max().unwrap_or(0);
    for (flag, help, default) in flags {
        let default = match default {
            Some(d) if !help.contains("[default") && d != "false" => format!(" [default: {d}]"),
            _ => String::new(),
        };
        out.push_str(&format!("  {flag:width$}  {help}{default}\n"));
    }
    out.push_str(&format!("  {:width$}  Print this help\n", "-h, --help"));
    out.push_str(&format!(
        "  {:width$}  Print the version\n",
        "-v, --version"
    ));
    out
}
