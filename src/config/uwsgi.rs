//! Placeholder until the uWSGI dialect lands (helper/uwsgi): knows no names.
#![allow(missing_docs, dead_code)]
use super::entry::{Arity, Entry, Verdict};
use std::path::{Path, PathBuf};
pub struct UwsgiOption {
    pub name: &'static str,
    pub arity: Arity,
}
pub fn option(_name: &str) -> Option<&'static UwsgiOption> {
    None
}
pub fn translate(_key: &str, _value: Option<&str>, _base: &Path) -> Verdict {
    Verdict::Unknown { nearest: None }
}
pub fn names() -> impl Iterator<Item = &'static str> {
    std::iter::empty()
}
pub struct Ini {
    pub entries: Vec<Entry>,
    pub warnings: Vec<String>,
    pub files: Vec<PathBuf>,
}
#[derive(Debug, thiserror::Error)]
#[error("ini files are not supported yet")]
pub struct IniError;
pub fn read_ini(_spec: &str, _env: &dyn Fn(&str) -> Option<String>) -> Result<Ini, IniError> {
    Err(IniError)
}
