//! Go's `regexp`, as Prometheus uses it, on top of the `regex` crate.
//!
//! Prometheus compiles relabel regexes with Go's RE2 syntax and fills templates
//! with `Regexp.Expand`. The `regex` crate is close, but not the same where a
//! ported rule can notice:
//!
//! - `\d`, `\w`, `\s`, `\b` are ASCII in Go and Unicode in Rust;
//! - Go reads `[` inside a class and `{` that does not start a repetition as
//!   literals; Rust reads nested classes, class set operators (`&&`, `--`,
//!   `~~`) and rejects the `{`;
//! - Go has `\Q...\E` quoting and octal escapes; `\<` and `\>` are literals in
//!   Go, word boundaries in Rust;
//! - Rust's `Captures::expand` reads `$01` as group 1, takes any text inside
//!   `${...}` and only ASCII in `$name`; Go reads `$01` as the group named
//!   `01`, only letters, digits and `_` inside braces, and Unicode letters in
//!   names.
//!
//! So a pattern is rewritten into Rust syntax with Go's meaning before it is
//! compiled, and templates are expanded here with Go's rules. Known gaps: Rust
//! accepts some patterns Go rejects (capture names with `.` or non-ASCII
//! letters, more Unicode property names), and rejects capture names starting
//! with a digit, which Go accepts. The Unicode tables (classes, case folding) are the `regex` crate's,
//! which may be a version ahead of or behind Go's.

use regex::{Captures, Regex};
use std::borrow::Cow;
use std::fmt::Write;
use std::sync::LazyLock;

/// Compiles `pattern` the way Prometheus does: anchored at both ends, with `.`
/// matching newlines. The anchoring is textual, as in Prometheus, so a pattern
/// like `a)|(b` keeps its (surprising) Go meaning.
pub(super) fn compile_anchored(pattern: &str) -> Result<Regex, String> {
    let translated = translate(pattern)?;
    Regex::new(&format!("^(?s:{translated})$")).map_err(|e| e.to_string())
}

/// Rewrites a Go pattern into a Rust pattern that matches the same strings.
fn translate(go: &str) -> Result<String, String> {
    let mut out = String::with_capacity(go.len() + 16);
    let mut rest = go;
    // Go refuses stacked repetitions (`a**`, `a{2}{3}`); Rust nests them.
    let mut after_repetition = false;
    while let Some(c) = next(&mut rest) {
        let repetition = match c {
            '*' | '+' | '?' => Some(0),
            '{' => repetition_len(rest),
            _ => None,
        };
        if let Some(len) = repetition {
            if after_repetition {
                return Err(format!("invalid nested repetition operator: {c}"));
            }
            out.push(c);
            // The rest of `{n,m}`, and a `?` that makes it non-greedy.
            let len = len + usize::from(rest[len..].starts_with('?'));
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            after_repetition = true;
            continue;
        }
        after_repetition = false;
        match c {
            '\\' => escape(&mut rest, &mut out)?,
            '[' => class(&mut rest, &mut out)?,
            '(' if rest.starts_with('?') => group(&mut rest, &mut out)?,
            '{' | '}' | ']' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

fn next(rest: &mut &str) -> Option<char> {
    let c = rest.chars().next()?;
    *rest = &rest[c.len_utf8()..];
    Some(c)
}

/// After `(`, at `?`: named groups pass through; flag groups may only use
/// Go's flags.
fn group(rest: &mut &str, out: &mut String) -> Result<(), String> {
    out.push_str("(?");
    *rest = &rest[1..];
    let flags_end = rest.find([')', ':']).unwrap_or(rest.len());
    let flags = &rest[..flags_end];
    let named = flags.starts_with("P<") || flags.starts_with('<');
    if !named
        && !flags
            .chars()
            .all(|f| matches!(f, 'i' | 'm' | 's' | 'U' | '-'))
    {
        return Err(format!("invalid or unsupported Perl syntax: (?{flags}"));
    }
    Ok(())
}

/// The length of `n}`, `n,}` or `n,m}` after a `{`, if it is a repetition to
/// Go: decimal numbers without leading zeros. Anything else is a literal `{`.
fn repetition_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let number = |from: usize| {
        let len = bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let leading_zero = len > 1 && bytes[from] == b'0';
        (len > 0 && !leading_zero).then_some(from + len)
    };
    let mut end = number(0)?;
    if bytes.get(end) == Some(&b',') {
        end += 1;
        if bytes.get(end).is_some_and(u8::is_ascii_digit) {
            end = number(end)?;
        }
    }
    (bytes.get(end) == Some(&b'}')).then_some(end + 1)
}

/// After a `\` outside a class.
fn escape(rest: &mut &str, out: &mut String) -> Result<(), String> {
    let Some(c) = rest.chars().next() else {
        return Err("trailing backslash at end of expression".to_string());
    };
    match c {
        'A' | 'z' => {
            out.push('\\');
            out.push(c);
            next(rest);
        }
        'b' | 'B' => {
            out.push_str(if c == 'b' { r"(?-u:\b)" } else { r"(?-u:\B)" });
            next(rest);
        }
        'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
            out.push_str(perl_class(c));
            next(rest);
        }
        'p' | 'P' => unicode_class(rest, out)?,
        'Q' => {
            next(rest);
            // Without `\E` Go quotes the rest of the pattern, including the
            // `)$` of Prometheus' anchoring, which leaves a group unclosed.
            let end = rest
                .find(r"\E")
                .ok_or("missing closing ): \\Q without \\E")?;
            rest[..end].chars().for_each(|c| push_literal(out, c));
            *rest = &rest[end + 2..];
        }
        _ => push_literal(out, escaped_char(rest)?),
    }
    Ok(())
}

/// Go's Perl classes, which are ASCII-only.
fn perl_class(c: char) -> &'static str {
    match c {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        's' => r"[\t\n\x0C\r ]",
        _ => r"[^\t\n\x0C\r ]",
    }
}

/// `\pL`, `\p{Greek}`, `\P{...}`, with Go's `\p{^Greek}` negation. Rust knows
/// every name Go does.
fn unicode_class(rest: &mut &str, out: &mut String) -> Result<(), String> {
    let negated = next(rest) == Some('P');
    let name = if let Some(braced) = rest.strip_prefix('{') {
        let end = braced.find('}').ok_or("missing } in Unicode class")?;
        *rest = &braced[end + 1..];
        &braced[..end]
    } else {
        let c = rest.chars().next().ok_or("missing Unicode class name")?;
        let name = &rest[..c.len_utf8()];
        *rest = &rest[c.len_utf8()..];
        name
    };
    let (negated, name) = match name.strip_prefix('^') {
        Some(name) => (!negated, name),
        None => (negated, name),
    };
    out.push_str(if negated { r"\P{" } else { r"\p{" });
    out.push_str(name);
    out.push('}');
    Ok(())
}

/// After a `[`, through its `]`. Each item is written so Rust cannot read it
/// as a nested class or a set operator: literals escaped, ranges explicit.
fn class(rest: &mut &str, out: &mut String) -> Result<(), String> {
    out.push('[');
    if let Some(after) = rest.strip_prefix('^') {
        out.push('^');
        *rest = after;
    }
    let mut first = true;
    loop {
        if !first && let Some(after) = rest.strip_prefix(']') {
            out.push(']');
            *rest = after;
            return Ok(());
        }
        first = false;
        if let Some(after) = rest.strip_prefix("[:")
            && let Some(end) = after.find(":]")
        {
            let name = &rest[..end + 4];
            if !POSIX_CLASSES.contains(&name.trim_start_matches("[:").trim_start_matches('^')) {
                return Err(format!("invalid character class range: {name}"));
            }
            out.push_str(name);
            *rest = &rest[end + 4..];
            continue;
        }
        if let Some(after) = rest.strip_prefix('\\') {
            match after.chars().next() {
                Some(c @ ('d' | 'D' | 'w' | 'W' | 's' | 'S')) => {
                    // A nested class is a union in Rust.
                    out.push_str(perl_class(c));
                    *rest = &after[1..];
                    continue;
                }
                Some('p' | 'P') => {
                    *rest = after;
                    unicode_class(rest, out)?;
                    continue;
                }
                _ => {}
            }
        }
        let lo = class_char(rest)?;
        push_literal(out, lo);
        if rest.len() >= 2
            && let Some(after) = rest.strip_prefix('-')
            && !after.starts_with(']')
        {
            *rest = after;
            let hi = class_char(rest)?;
            if hi < lo {
                return Err(format!("invalid character class range: {lo}-{hi}"));
            }
            out.push('-');
            push_literal(out, hi);
        }
    }
}

/// Names inside `[:...:]`, after the optional `^`, with the closing `:]`.
const POSIX_CLASSES: [&str; 14] = [
    "alnum:]", "alpha:]", "ascii:]", "blank:]", "cntrl:]", "digit:]", "graph:]", "lower:]",
    "print:]", "punct:]", "space:]", "upper:]", "word:]", "xdigit:]",
];

fn class_char(rest: &mut &str) -> Result<char, String> {
    match next(rest) {
        None => Err("missing closing ]".to_string()),
        Some('\\') => escaped_char(rest),
        Some(c) => Ok(c),
    }
}

/// The character a Go escape stands for: octal, hex, C-style, or escaped
/// punctuation (which in Go includes space and `<`, `>`).
fn escaped_char(rest: &mut &str) -> Result<char, String> {
    let c = next(rest).ok_or("trailing backslash at end of expression")?;
    let octal = |b: Option<&u8>| b.is_some_and(|b| (b'0'..=b'7').contains(b));
    let value = match c {
        // `\1` alone would be a backreference, which RE2 does not have.
        '1'..='7' if !octal(rest.as_bytes().first()) => None,
        '0'..='7' => {
            let mut value = c as u32 - '0' as u32;
            for _ in 0..2 {
                if !octal(rest.as_bytes().first()) {
                    break;
                }
                value = value * 8 + u32::from(rest.as_bytes()[0] - b'0');
                *rest = &rest[1..];
            }
            char::from_u32(value)
        }
        'x' => hex_escape(rest),
        'a' => Some('\x07'),
        'f' => Some('\x0C'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0B'),
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Some(c),
        _ => None,
    };
    value.ok_or_else(|| format!("invalid escape sequence: \\{c}"))
}

/// After `\x`: two hex digits, or any number in braces.
fn hex_escape(rest: &mut &str) -> Option<char> {
    let digits = if let Some(braced) = rest.strip_prefix('{') {
        let end = braced.find('}')?;
        *rest = &braced[end + 1..];
        &braced[..end]
    } else {
        let digits = rest.get(..2)?;
        *rest = &rest[2..];
        digits
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    char::from_u32(u32::from_str_radix(digits, 16).ok()?)
}

/// Writes `c` so Rust reads it as itself, inside or outside a class.
fn push_literal(out: &mut String, c: char) {
    if c.is_ascii_punctuation() && c != '<' && c != '>' {
        out.push('\\');
        out.push(c);
    } else if c.is_control() {
        let _ = write!(out, r"\x{{{:X}}}", c as u32);
    } else {
        out.push(c);
    }
}

/// A capture name after `$`: Go's `unicode.IsLetter`, `unicode.IsDigit` or `_`.
static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\p{L}\p{Nd}_]+").expect("static pattern"));

/// Go's `Regexp.Expand`: `$1`, `${1}`, `$name`, `${name}` and `$$`. A name is
/// the longest run of letters, digits and `_`, so `$1x` is the group named
/// `1x`; a missing or unmatched group expands to nothing; a `$` that starts
/// no reference is kept.
pub(super) fn expand<'t>(template: &'t str, captures: &Captures<'_>) -> Cow<'t, str> {
    if !template.contains('$') {
        return Cow::Borrowed(template);
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some((name, after)) = reference(rest) else {
            out.push('$');
            continue;
        };
        rest = after;
        let group = match group_number(name) {
            Some(number) => captures.get(number),
            None => captures.name(name),
        };
        if let Some(group) = group {
            out.push_str(group.as_str());
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Splits `name...` or `{name}...` after a `$` into the name and what follows.
fn reference(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, s),
    };
    let len = NAME.find(body)?.end();
    let (name, after) = body.split_at(len);
    if braced {
        Some((name, after.strip_prefix('}')?))
    } else {
        Some((name, after))
    }
}

/// Go takes ASCII digits without a leading zero as a group number; `01` is a
/// name (that no group can have, so it expands to nothing).
fn group_number(name: &str) -> Option<usize> {
    let digits = name.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = name.len() > 1 && name.starts_with('0');
    if digits && !leading_zero {
        // Past usize, no group exists either way.
        name.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        compile_anchored(pattern)
            .unwrap_or_else(|e| panic!("{pattern:?}: {e}"))
            .is_match(text)
    }

    #[test]
    fn anchored_and_dot_matches_newline() {
        assert!(matches("a", "a"));
        assert!(!matches("a", "ba"));
        assert!(!matches("a", "ab"));
        assert!(matches("line1.*line2", "line1\nline2"));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
        // Textual anchoring, as in Prometheus: the alternation escapes it.
        assert!(matches("a)|(b", "xxb"));
    }

    #[test]
    fn perl_classes_are_ascii() {
        assert!(matches(r"\d+", "0123456789"));
        assert!(!matches(r"\d", "٣"));
        assert!(matches(r"\D", "٣"));
        assert!(!matches(r"\w", "é"));
        assert!(matches(r"\W", "é"));
        assert!(!matches(r"\s", "\u{A0}"));
        assert!(!matches(r"\s", "\x0B"));
        assert!(matches(r"\s+", " \t\n\r\x0C"));
        assert!(matches(r"[\d\s]+", "1 2"));
        assert!(!matches(r"[\d]", "٣"));
        assert!(matches(r"[^\D]", "7"));
        assert!(!matches(r"[^\D]", "x"));
        // ASCII word boundary: é is not a word character to Go.
        assert!(matches(r"é\bfoo", "éfoo"));
        assert!(!matches(r"a\bb", "ab"));
        assert!(matches(r"a\Bb", "ab"));
    }

    #[test]
    fn go_literals_that_rust_reads_as_syntax() {
        assert!(matches("a{", "a{"));
        assert!(matches("a{,2}", "a{,2}"));
        assert!(matches("a{01}", "a{01}"));
        assert!(matches("a{x}", "a{x}"));
        assert!(matches("a{2}", "aa"));
        assert!(matches("a{1,}", "aaa"));
        assert!(matches("a{0,2}b", "ab"));
        assert!(matches("a{1,2}?a", "aa"));
        assert!(matches("a*?b+?c??", "abc"));
        assert!(matches(r"a\**", "a**"));
        assert!(matches("}]", "}]"));
        assert!(matches("[[]", "["));
        assert!(matches("[a&&b]", "&"));
        assert!(matches("[a~~b]", "~"));
        assert!(matches("[]a]", "]"));
        assert!(matches("[^]a]", "b"));
        assert!(matches("[a-]", "-"));
        // Go: a range from '-' to 'a'; Rust would read a set difference.
        assert!(matches("[--a]", "B"));
        assert!(matches(r"[\d-z]", "-"));
        assert!(matches(r"\<\>", "<>"));
        assert!(matches(r"\Qa.b*\E+", "a.b**"));
        assert!(!matches(r"\Qa.b\E", "axb"));
        assert!(matches(r"\101\0", "A\0"));
        assert!(matches(r"\x41\x{263A}", "A☺"));
        assert!(matches(r"[\x41-\x43]", "B"));
        assert!(matches(r"\ ", " "));
    }

    #[test]
    fn unicode_and_posix_classes() {
        assert!(matches(r"\pL+", "éa"));
        assert!(matches(r"\p{Greek}", "α"));
        assert!(matches(r"\p{^Greek}", "a"));
        assert!(!matches(r"\P{^Greek}", "a"));
        assert!(matches(r"[\p{Greek}x]+", "αx"));
        assert!(matches("[[:alpha:]]+", "abc"));
        assert!(matches("[[:^digit:]]", "a"));
        assert!(matches("(?i)FOO", "foo"));
        assert!(matches("(?P<a>x)(?<b>y)", "xy"));
    }

    #[test]
    fn patterns_go_rejects_are_rejected() {
        for pattern in [
            "a**",
            "a*+",
            "a{2}{3}",
            "a*??",
            "*",
            "(?=a)",
            r"\1",
            r"a\",
            r"\Qabc",
            r"\C",
            r"\e",
            "[[:foo:]]",
            "[z-a]",
            "(?x)a",
            "(",
            "[a",
        ] {
            assert!(compile_anchored(pattern).is_err(), "{pattern:?} compiled");
        }
    }

    fn expand_with(pattern: &str, text: &str, template: &str) -> String {
        let regex = compile_anchored(pattern).unwrap();
        let captures = regex.captures(text).unwrap();
        expand(template, &captures).into_owned()
    }

    #[test]
    fn expand_follows_go() {
        let cases = [
            ("$1", "a"),
            ("${1}", "a"),
            ("${1}x", "ax"),
            ("$1x", ""), // the group named "1x"
            ("$2-$1", "b-a"),
            ("$0", "ab"),
            ("$01", ""), // the group named "01"
            ("$first.$second", "a.b"),
            ("${second}_", "b_"),
            ("$second_", ""),
            ("$3", ""),
            ("$$1", "$1"),
            ("$", "$"),
            ("a$", "a$"),
            ("$-", "$-"),
            ("${", "${"),
            ("${}", "${}"),
            ("${a-b}", "${a-b}"),
            ("${1", "${1"),
            ("$é", ""),    // a Unicode letter continues a name
            ("$1é", ""),   // the group named "1é"
            ("$1²", "a²"), // '²' is no decimal digit to Go
            ("static", "static"),
        ];
        for (template, expected) in cases {
            assert_eq!(
                expand_with("(?P<first>a)(?P<second>b)", "ab", template),
                expected,
                "template {template:?}"
            );
        }
    }

    #[test]
    fn unmatched_group_expands_to_nothing() {
        assert_eq!(expand_with("(a)|(b)", "b", "[$1][$2]"), "[][b]");
    }
}
