//! Keeps docs/migrating-from-uwsgi.md's option table printed from the catalog and the rules.
