//! Placeholder until the gunicorn dialect lands (helper/gunicorn): knows no names.
#![allow(missing_docs, dead_code)]
use super::entry::{Arity, Entry, Verdict};
use std::path::{Path, PathBuf};
use std::time::Duration;
pub struct Setting {
    pub name: &'static str,
    pub arity: Arity,
}
pub fn setting(_name: &str) -> Option<&'static Setting> {
    None
}
pub fn flag(_flag: &str) -> Option<&'static Setting> {
    None
}
pub fn translate(_s: &str, _value: Option<&str>) -> Verdict {
    Verdict::Unknown { nearest: None }
}
pub fn names() -> impl Iterator<Item = &'static str> {
    std::iter::empty()
}
pub struct Conf {
    pub entries: Vec<Entry>,
    pub file: PathBuf,
}
#[derive(Debug, thiserror::Error)]
#[error("gunicorn config files are not supported yet")]
pub struct ConfError;
pub fn read_conf(_python: &Path, _target: &str, _timeout: Duration) -> Result<Conf, ConfError> {
    Err(ConfError)
}
pub fn default_conf(_dir: &Path) -> Option<PathBuf> {
    None
}
pub fn split_cmd_args(s: &str) -> Result<Vec<String>, String> {
    Ok(s.split_whitespace().map(str::to_owned).collect())
}
