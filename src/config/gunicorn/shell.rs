//! `GUNICORN_CMD_ARGS` is one string of shell words (gunicorn splits it with Python's
//! `shlex.split`); this turns it into the words a command-line parser takes.

/// Splits `s` into words as a POSIX shell would, without any expansion: blanks separate
/// words, `'...'` is literal, `"..."` keeps `\` only before `\ " $` and a backquote, a `\`
/// outside quotes takes the next character literally, and `\` before a newline joins lines.
/// `#` is an ordinary character, as in `shlex.split`. The error names the unclosed quote or
/// the trailing backslash.
pub fn split_cmd_args(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word exists once anything, even an empty `''`, was seen since the last blank.
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(unclosed('\'', s)),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('\\' | '"' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(unclosed('"', s)),
                        },
                        Some(c) => word.push(c),
                        None => return Err(unclosed('"', s)),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => {
                    return Err(format!(
                        "{s:?} ends with a backslash escaping nothing (remove it, or quote it \
                         as '\\')"
                    ));
                }
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn unclosed(quote: char, s: &str) -> String {
    format!("{s:?} has a {quote} quote that is never closed (close it, or escape it with \\)")
}

#[cfg(test)]
mod tests {
    use super::split_cmd_args;

    fn words(s: &str) -> Vec<String> {
        split_cmd_args(s).unwrap()
    }

    #[test]
    fn blanks_separate_words() {
        assert_eq!(
            words("  -w 4\t--bind=0.0.0.0:80\n"),
            ["-w", "4", "--bind=0.0.0.0:80"]
        );
        assert!(words("").is_empty());
        assert!(words("   ").is_empty());
    }

    #[test]
    fn quotes_group_and_may_be_empty() {
        assert_eq!(
            words(r#"--access-logformat '%(h)s "%(r)s"' -e "A=b c""#),
            ["--access-logformat", r#"%(h)s "%(r)s""#, "-e", "A=b c"]
        );
        assert_eq!(words("a'' '' b"), ["a", "", "b"]);
        assert_eq!(words(r#"x"y"'z'"#), ["xyz"]);
    }

    #[test]
    fn backslashes_escape_as_in_sh() {
        assert_eq!(words(r"a\ b c\\d"), [r"a b", r"c\d"]);
        assert_eq!(words(r#""a\"b\n\$""#), [r#"a"b\n$"#]);
        assert_eq!(words(r"'a\b'"), [r"a\b"]);
        assert_eq!(words("a\\\nb"), ["ab"]);
    }

    #[test]
    fn nothing_is_expanded() {
        assert_eq!(words("$HOME ~ * # x"), ["$HOME", "~", "*", "#", "x"]);
    }

    #[test]
    fn unclosed_quotes_and_trailing_backslash_are_errors() {
        assert!(
            split_cmd_args("-b 'x")
                .unwrap_err()
                .contains("never closed")
        );
        assert!(
            split_cmd_args("-b \"x")
                .unwrap_err()
                .contains("never closed")
        );
        assert!(split_cmd_args("-b x\\").unwrap_err().contains("backslash"));
    }
}
