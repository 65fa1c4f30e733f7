//! Every option name uWSGI knows, core and plugins, with whether it takes a value: what lets
//! the ini reader tell a user's placeholder from a typo, lets a command-line parser know
//! whether `--master wsgi.py` has a value, and lets the migration guide list every option.

mod core;
mod plugins;

use crate::config::entry::Arity;

/// What an option's value means to uWSGI, as far as segue needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A boolean (`master`, `vacuum`): bare, or `true/false/1/0/yes/no/on/off`.
    Bool,
    /// A bare action without a boolean meaning (`version`, `if-reload`).
    Action,
    /// One value; a later one replaces it (`processes`).
    Single,
    /// Each occurrence adds one more (`env`, `pythonpath`, `static-map`, `attach-daemon`).
    Repeat,
}

/// One uWSGI option as its source declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UwsgiOption {
    /// The name as written in an ini file or after `--`.
    pub name: &'static str,
    /// Whether it takes a value (uWSGI's no_argument, required_argument, optional_argument).
    pub arity: Arity,
    /// Its one-letter command-line form, if any (`p` for `processes`).
    pub short: Option<char>,
    /// What its value means.
    pub kind: Kind,
    /// Where uWSGI defines it: `core`, or the plugin's directory name (`python`, `http`).
    pub group: &'static str,
}

/// Expands `CODE "name" 'c'` items into [`UwsgiOption`]s; the codes are listed in the tables'
/// module docs. A macro keeps the tables compact (rustfmt leaves macro bodies alone).
macro_rules! options {
    ($group:literal; $($code:ident $name:literal $($short:literal)?),* $(,)?) => {
        &[$($crate::config::uwsgi::catalog::UwsgiOption {
            name: $name,
            arity: $crate::config::uwsgi::catalog::code!(@arity $code),
            short: $crate::config::uwsgi::catalog::code!(@short $($short)?),
            kind: $crate::config::uwsgi::catalog::code!(@kind $code),
            group: $group,
        }),*]
    };
}

/// The meaning of one table code (see [`options!`]).
macro_rules! code {
    (@arity F) => {
        $crate::config::entry::Arity::Flag
    };
    (@arity X) => {
        $crate::config::entry::Arity::Flag
    };
    (@arity B) => {
        $crate::config::entry::Arity::Value
    };
    (@arity V) => {
        $crate::config::entry::Arity::Value
    };
    (@arity L) => {
        $crate::config::entry::Arity::Value
    };
    (@arity O) => {
        $crate::config::entry::Arity::Optional
    };
    (@arity P) => {
        $crate::config::entry::Arity::Optional
    };
    (@arity Q) => {
        $crate::config::entry::Arity::Optional
    };
    (@kind F) => {
        $crate::config::uwsgi::catalog::Kind::Bool
    };
    (@kind B) => {
        $crate::config::uwsgi::catalog::Kind::Bool
    };
    (@kind P) => {
        $crate::config::uwsgi::catalog::Kind::Bool
    };
    (@kind X) => {
        $crate::config::uwsgi::catalog::Kind::Action
    };
    (@kind V) => {
        $crate::config::uwsgi::catalog::Kind::Single
    };
    (@kind O) => {
        $crate::config::uwsgi::catalog::Kind::Single
    };
    (@kind L) => {
        $crate::config::uwsgi::catalog::Kind::Repeat
    };
    (@kind Q) => {
        $crate::config::uwsgi::catalog::Kind::Repeat
    };
    (@short) => {
        None
    };
    (@short $c:literal) => {
        Some($c)
    };
}

pub(crate) use {code, options};

/// The tables in uWSGI's own precedence (core, then python, then the rest by name); each is
/// sorted by name and no name is in two of them.
const TABLES: &[&[UwsgiOption]] = &[
    core::CORE,
    plugins::PYTHON,
    plugins::ASYNCIO,
    plugins::CARBON,
    plugins::CGI,
    plugins::CHEAPER_BUSYNESS,
    plugins::COROAE,
    plugins::CURL_CRON,
    plugins::DUMBLOOP,
    plugins::FASTROUTER,
    plugins::FIBER,
    plugins::FORKPTYROUTER,
    plugins::GCCGO,
    plugins::GEOIP,
    plugins::GEVENT,
    plugins::GLUSTERFS,
    plugins::GREENLET,
    plugins::HTTP,
    plugins::JVM,
    plugins::JWSGI,
    plugins::LDAP,
    plugins::LOGZMQ,
    plugins::LUA,
    plugins::MONGREL2,
    plugins::MONO,
    plugins::NAGIOS,
    plugins::NOTFOUND,
    plugins::PAM,
    plugins::PHP,
    plugins::PING,
    plugins::PSGI,
    plugins::PTY,
    plugins::PYPY,
    plugins::RACK,
    plugins::RADOS,
    plugins::RAWROUTER,
    plugins::RBTHREADS,
    plugins::RING,
    plugins::RRDTOOL,
    plugins::RSYSLOG,
    plugins::SQLITE3,
    plugins::SSLROUTER,
    plugins::STACKLESS,
    plugins::STATS_PUSHER_STATSD,
    plugins::SYMCALL,
    plugins::TORNADO,
    plugins::TUNTAP,
    plugins::UGREEN,
    plugins::WEBDAV,
    plugins::XSLT,
    plugins::ZABBIX,
    plugins::ZERGPOOL,
];

/// The uWSGI option called `name` (exactly as uWSGI matches it: no `_`/`-` folding), if any.
pub fn option(name: &str) -> Option<&'static UwsgiOption> {
    TABLES.iter().find_map(|table| {
        table
            .binary_search_by(|o| o.name.cmp(name))
            .ok()
            .map(|i| &table[i])
    })
}

/// The uWSGI option whose one-letter form is `short` (`p` is `processes`); when several share
/// a letter (`H`: `home`, `virtualenv`, ...) any of them, since they are aliases.
pub fn by_short(short: char) -> Option<&'static UwsgiOption> {
    all().find(|o| o.short == Some(short))
}

/// Every catalog entry, core first, then each plugin's, each group sorted by name.
pub fn all() -> impl Iterator<Item = &'static UwsgiOption> {
    TABLES.iter().flat_map(|t| t.iter())
}

/// Every catalog name, for a nearest-name search across dialects.
pub fn names() -> impl Iterator<Item = &'static str> {
    all().map(|o| o.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_names_unique() {
        for table in TABLES {
            assert!(table.windows(2).all(|w| w[0].name < w[1].name));
        }
        let mut seen = std::collections::HashSet::new();
        assert!(names().all(|n| seen.insert(n)));
        assert!(seen.len() > 1300, "{} names", seen.len());
    }

    #[test]
    fn aliases_and_arities_are_uwsgis() {
        for alias in ["home", "virtualenv", "venv", "pyhome"] {
            let o = option(alias).unwrap();
            assert_eq!(
                (o.arity, o.short, o.group),
                (Arity::Value, Some('H'), "python")
            );
        }
        assert_eq!(option("master").unwrap().kind, Kind::Bool);
        assert_eq!(option("master").unwrap().arity, Arity::Flag);
        assert_eq!(option("chmod-socket").unwrap().arity, Arity::Optional);
        assert_eq!(option("env").unwrap().kind, Kind::Repeat);
        assert_eq!(option("processes").unwrap().short, Some('p'));
        assert_eq!(by_short('p').unwrap().name, "processes");
        assert_eq!(option("http").unwrap().group, "http");
        assert_eq!(
            option("cheaper-busyness-max").unwrap().group,
            "cheaper_busyness"
        );
        assert!(option("gevent").is_some() && option("stats-push").is_some());
        assert!(option("procesess").is_none() && option("chmod_socket").is_none());
    }
}
