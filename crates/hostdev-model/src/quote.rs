//! Quoting what people gave in error sentences.
//!
//! Owns: the one rule for putting input into a message — escaped (a newline
//! or a terminal escape never reaches a terminal or cuts a JSON line) and
//! bounded (a 10 MB line never becomes a 10 MB error or API reply) — and the
//! sentence of a TOML error, which names the line and column instead of
//! printing the line. Must not: read anything.

/// The most characters of someone's input a message quotes.
pub const MAX_QUOTE: usize = 120;

/// `s` escaped, at most [`MAX_QUOTE`] characters of it, with how long it
/// was when cut.
pub fn quote(s: &str) -> String {
    quote_at_most(s, MAX_QUOTE)
}

/// `s` escaped, at most `max` characters of it.
fn quote_at_most(s: &str, max: usize) -> String {
    let escaped = s.escape_debug();
    let mut q: String = escaped.clone().take(max).collect();
    if escaped.count() > max {
        q.push_str(&format!("… ({} bytes)", s.len()));
    }
    q
}

/// A TOML error as `line L, column C: what`, without the offending line
/// (which may be huge, or another file's content) and with the parser's
/// sentence bounded (room for the list of keys an unknown one is not).
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let what = quote_at_most(e.message().trim_end(), 4 * MAX_QUOTE);
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {what}")
        }
        None => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_escaped_and_bounded() {
        assert_eq!(quote("a\nb"), "a\\nb");
        let q = quote(&"x".repeat(10_000));
        assert!(q.ends_with("… (10000 bytes)") && q.len() < 150, "{q}");
    }

    #[test]
    fn toml_errors_name_the_place_not_the_line() {
        let text = format!("a = 1\nb = {}\n", "Q".repeat(50_000));
        let e = toml::from_str::<toml::Table>(&text).unwrap_err();
        let s = toml_error(&text, &e);
        assert!(s.starts_with("line 2, column 5: "), "{s}");
        assert!(s.len() < 200 && !s.contains("QQQ"), "{s}");
    }
}
