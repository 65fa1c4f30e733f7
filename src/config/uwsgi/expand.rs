//! uWSGI's three expansion passes over every value once all files are read, in its order:
//! `$(VAR)` (environment, with `:-`/`-` defaults), `@(file)` (contents), then `%(name)`
//! (the first option or placeholder of that name, or `%(a + 1)` arithmetic). An expansion
//! that cannot be resolved is left as written, as uWSGI leaves it, with a warning.

use super::ini::{Reader, invalid, unsupported};
use super::{At, IniError, MAX_EXPANSIONS, MAX_VALUE_BYTES};
use crate::config::entry::Origin;

/// What one `X(...)` resolves to.
enum Resolved {
    /// Replace it with this.
    Value(String),
    /// Leave it as written.
    Keep,
}

impl Reader<'_, '_> {
    /// Runs the three passes over every item, in order, each value in place so that later
    /// `%(name)` lookups see earlier values already expanded (as uWSGI's do).
    pub(super) fn expand(&mut self) -> Result<(), IniError> {
        for symbol in ['$', '@', '%'] {
            for i in 0..self.items.len() {
                let Some(value) = self.items[i].value.clone() else {
                    continue;
                };
                if !value.contains(&format!("{symbol}(")) {
                    continue;
                }
                let origin = self.items[i].origin.clone();
                let key = self.items[i].key.clone();
                let expanded = self.pass(symbol, &value, &key, &origin)?;
                self.items[i].value = Some(expanded);
            }
        }
        Ok(())
    }

    /// One pass over one value: each `symbol(` ... matching `)` is resolved and, when replaced,
    /// the value is scanned again from the start, since a substituted value may hold more.
    fn pass(
        &mut self,
        symbol: char,
        value: &str,
        key: &str,
        origin: &Origin,
    ) -> Result<String, IniError> {
        let mut value = value.to_owned();
        let mut from = 0;
        let mut substitutions = 0;
        let opener = format!("{symbol}(");
        while let Some(start) = value[from..].find(&opener).map(|i| i + from) {
            let inner_start = start + 2;
            let Some(len) = closing(&value[inner_start..]) else {
                self.warnings.push(format!(
                    "{origin}: '{opener}' in the value of '{key}' has no closing ')': kept as written"
                ));
                break;
            };
            let inner = value[inner_start..inner_start + len].to_owned();
            let end = inner_start + len + 1;
            match self.resolve(symbol, &inner, key, origin)? {
                Resolved::Value(v) => {
                    value.replace_range(start..end, &v);
                    substitutions += 1;
                    if substitutions > MAX_EXPANSIONS || value.len() > MAX_VALUE_BYTES {
                        return Err(IniError::Runaway {
                            origin: origin.clone(),
                            key: key.to_owned(),
                        });
                    }
                    from = 0;
                }
                Resolved::Keep => from = end,
            }
        }
        Ok(value)
    }

    fn resolve(
        &mut self,
        symbol: char,
        inner: &str,
        key: &str,
        origin: &Origin,
    ) -> Result<Resolved, IniError> {
        match symbol {
            '$' => Ok(match env_with_default(inner, self.ctx.env) {
                Some(v) => Resolved::Value(v),
                None => {
                    self.warnings.push(format!(
                        "{origin}: $({inner}) in '{key}': the variable is not set, so it is kept as written (as uWSGI does); give a default with $({inner}:-DEFAULT)"
                    ));
                    Resolved::Keep
                }
            }),
            '@' => {
                if inner.contains("://") {
                    return Err(unsupported(
                        Some(origin),
                        format!(
                            "@({inner}): segue reads @() from files only, never from commands, URLs or sockets (put the value in a file, or in an environment variable and use $(VAR))"
                        ),
                    ));
                }
                if inner.is_empty() {
                    return Err(invalid(
                        origin,
                        "@() needs a file name: @(/path/to/file)".into(),
                    ));
                }
                let path = self.path(inner);
                let text = self.read_file(&path, &At(Some(origin.clone())))?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                Ok(Resolved::Value(
                    text.strip_suffix('\r').unwrap_or(text).to_owned(),
                ))
            }
            _ => Ok(match self.placeholder(inner) {
                Some(v) => Resolved::Value(v),
                None => {
                    // Request-log formats use %(var) for their own variables.
                    if !key.starts_with("log") {
                        self.warnings.push(format!(
                            "{origin}: %({inner}) in '{key}' names no option or placeholder: kept as written, as uWSGI does (define it with set-placeholder = {inner}=VALUE)"
                        ));
                    }
                    Resolved::Keep
                }
            }),
        }
    }

    /// `%(name)`: an `UWSGI_NAME` environment variable (uWSGI reads those as options before
    /// any file), else the first item called `name`; with spaces, uWSGI's arithmetic.
    fn placeholder(&mut self, inner: &str) -> Option<String> {
        if !inner.contains(' ') {
            return self.lookup(inner);
        }
        math(inner, &mut |name| self.lookup(name))
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        self.referenced.insert(name.to_owned());
        self.option_value(name)
    }
}

/// The length of the text before the `)` that closes an opening `(` just before `text`,
/// counting nested parentheses.
fn closing(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `$(VAR)`, `$(VAR:-DEFAULT)` (default when unset or empty), `$(VAR-DEFAULT)` (when unset).
fn env_with_default(inner: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some((var, default)) = inner.split_once(":-") {
        return Some(
            env(var)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned()),
        );
    }
    if let Some((var, default)) = inner.split_once('-') {
        return Some(env(var).unwrap_or_else(|| default.to_owned()));
    }
    env(inner)
}

/// uWSGI's placeholder arithmetic (`uwsgi_manage_placeholder`): space-separated tokens read
/// left to right; numbers and option values are concatenated unless an operator (`+ - * /`)
/// stands before them; `++`/`--` step the result; integers only, division by zero is 0, and
/// a name with no value counts as empty. `None` when nothing but operators was given.
pub(super) fn math(expr: &str, lookup: &mut dyn FnMut(&str) -> Option<String>) -> Option<String> {
    #[derive(Clone, Copy)]
    enum Op {
        Concat,
        Add,
        Sub,
        Mul,
        Div,
    }
    let mut op = Op::Concat;
    let mut current: Option<String> = None;
    for token in expr.split(' ').filter(|t| !t.is_empty()) {
        let value = match token {
            "+" => {
                op = Op::Add;
                continue;
            }
            "-" => {
                op = Op::Sub;
                continue;
            }
            "*" => {
                op = Op::Mul;
                continue;
            }
            "/" => {
                op = Op::Div;
                continue;
            }
            "++" | "--" => {
                if let Some(c) = &current {
                    let step = if token == "++" { 1 } else { -1 };
                    current = Some(strtoll(c).wrapping_add(step).to_string());
                }
                op = Op::Concat;
                continue;
            }
            t if t.bytes().all(|b| b.is_ascii_digit()) => t.to_owned(),
            name => lookup(name).unwrap_or_default(),
        };
        let a = current.as_deref().map_or(0, strtoll);
        let b = strtoll(&value);
        current = Some(match op {
            Op::Concat => current.unwrap_or_default() + &value,
            Op::Add => a.wrapping_add(b).to_string(),
            Op::Sub => a.wrapping_sub(b).to_string(),
            Op::Mul => a.wrapping_mul(b).to_string(),
            Op::Div => a.checked_div(b).unwrap_or(0).to_string(),
        });
        op = Op::Concat;
    }
    current
}

/// C's `strtoll(s, NULL, 10)`: leading blanks, a sign, then digits up to the first other
/// character; saturating on overflow; 0 when there are no digits.
fn strtoll(s: &str) -> i64 {
    let s = s.trim_start();
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        let d = i64::from(b - b'0');
        n = match n.checked_mul(10).and_then(|n| {
            if negative {
                n.checked_sub(d)
            } else {
                n.checked_add(d)
            }
        }) {
            Some(n) => n,
            None => return if negative { i64::MIN } else { i64::MAX },
        };
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(expr: &str) -> Option<String> {
        math(expr, &mut |name| match name {
            "processes" => Some("2".into()),
            "cpu" => Some("8".into()),
            "foo" => Some("41".into()),
            _ => None,
        })
    }

    #[test]
    fn arithmetic_follows_uwsgi_pipeline() {
        assert_eq!(eval("2 * 1024").as_deref(), Some("2048"));
        assert_eq!(eval("8 * 2").as_deref(), Some("16"));
        assert_eq!(eval("foo + 1").as_deref(), Some("42"));
        // Concatenation first, then the operator: uWSGI's own documented example.
        assert_eq!(eval("processes cpu + 2").as_deref(), Some("30"));
        assert_eq!(eval("foo ++").as_deref(), Some("42"));
        assert_eq!(eval("foo -- --").as_deref(), Some("39"));
        assert_eq!(eval("7 / 0").as_deref(), Some("0"));
        assert_eq!(eval("7 / 2").as_deref(), Some("3"));
        assert_eq!(eval("missing + 1").as_deref(), Some("1"));
        assert_eq!(
            eval("9223372036854775807 + 1").as_deref(),
            Some("-9223372036854775808")
        );
        assert_eq!(eval("+ *"), None);
    }

    #[test]
    fn strtoll_is_cs() {
        assert_eq!(strtoll("  -12abc"), -12);
        assert_eq!(strtoll("x"), 0);
        assert_eq!(strtoll("99999999999999999999"), i64::MAX);
    }

    #[test]
    fn env_defaults() {
        let env = |k: &str| match k {
            "SET" => Some("v".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(env_with_default("SET", &env).as_deref(), Some("v"));
        assert_eq!(env_with_default("UNSET", &env), None);
        assert_eq!(env_with_default("EMPTY:-d", &env).as_deref(), Some("d"));
        assert_eq!(env_with_default("EMPTY-d", &env).as_deref(), Some(""));
        assert_eq!(env_with_default("UNSET-a-b", &env).as_deref(), Some("a-b"));
    }

    #[test]
    fn parentheses_nest() {
        assert_eq!(closing("a (b) c) d"), Some(7));
        assert_eq!(closing("a (b c"), None);
    }
}
