//! Byte-level scanning of one exposition line: names, quoted strings, label
//! values, numbers. Everything here works on a line already known to be
//! UTF-8 and to hold no `\n`; errors are plain messages that the parser turns
//! into a [`super::ParseError`] with the line number.

use std::borrow::Cow;

/// What went wrong on a line, before the line number is attached.
pub(super) type LineError = String;

/// Bytes allowed in a metric name: `[a-zA-Z0-9_:]` (digits not first).
const METRIC_NAME_CHARS: [bool; 256] = name_table(true);
/// Bytes allowed in a label name: `[a-zA-Z0-9_]` (digits not first).
const LABEL_NAME_CHARS: [bool; 256] = name_table(false);

const fn name_table(colon: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_' || (colon && c == b':');
        b += 1;
    }
    table
}

/// A read position within one line.
#[derive(Clone)]
pub(super) struct Cursor<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(line: &'a str) -> Self {
        Cursor { line, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.line.as_bytes()
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    pub(super) fn advance(&mut self) {
        self.pos += 1;
    }

    /// Everything not read yet.
    pub(super) fn rest(&self) -> &'a str {
        self.line.get(self.pos..).unwrap_or_default()
    }

    /// Consumes `prefix` if the unread part starts with it.
    pub(super) fn eat(&mut self, prefix: &str) -> bool {
        let found = self.rest().starts_with(prefix);
        if found {
            self.pos += prefix.len();
        }
        found
    }

    /// Skips spaces and tabs (the 0.0.4 separators); tells whether there were any.
    pub(super) fn skip_blanks(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Consumes `byte` or fails naming what was expected.
    pub(super) fn expect(&mut self, byte: u8, what: &str) -> Result<(), LineError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    /// Consumes a run of bytes up to the next space or tab (or the end).
    pub(super) fn token(&mut self) -> &'a str {
        let start = self.pos;
        while !matches!(self.peek(), None | Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        &self.line[start..self.pos]
    }

    /// A metric name, bare (`http_requests_total`) or quoted (`"my.metric"`).
    pub(super) fn metric_name(&mut self) -> Result<&'a str, LineError> {
        match self.peek() {
            Some(b'"') => self.quoted_name("metric name"),
            Some(c) if METRIC_NAME_CHARS[c as usize] && !c.is_ascii_digit() => {
                Ok(self.run(&METRIC_NAME_CHARS))
            }
            _ => Err(self.unexpected("a metric name")),
        }
    }

    /// A bare metric name; samples put quoted ones inside the braces.
    pub(super) fn bare_metric_name(&mut self) -> Result<&'a str, LineError> {
        match self.peek() {
            Some(b'"') => Err(self.at("a quoted metric name must be inside the braces")),
            _ => self.metric_name(),
        }
    }

    /// A bare label name; quoted ones are handled by the label-set parser,
    /// which needs to see what follows a quoted string to know its role.
    pub(super) fn label_name(&mut self) -> Result<&'a str, LineError> {
        match self.peek() {
            Some(c) if LABEL_NAME_CHARS[c as usize] && !c.is_ascii_digit() => {
                Ok(self.run(&LABEL_NAME_CHARS))
            }
            _ => Err(self.unexpected("a label name")),
        }
    }

    /// Consumes the remaining characters of a metric name or unit:
    /// `[a-zA-Z0-9_:]*`.
    pub(super) fn metric_name_chars(&mut self) -> &'a str {
        self.run(&METRIC_NAME_CHARS)
    }

    fn run(&mut self, allowed: &[bool; 256]) -> &'a str {
        let start = self.pos;
        let bytes = self.bytes();
        while self.pos < bytes.len() && allowed[bytes[self.pos] as usize] {
            self.pos += 1;
        }
        &self.line[start..self.pos]
    }

    /// A quoted UTF-8 name (`"my.metric"`, Prometheus 3's syntax for names
    /// outside the classic character set). Escapes are refused rather than
    /// unescaped: names are handed out as slices of the body, and names that
    /// need a `"`, `\` or newline do not occur in practice.
    pub(super) fn quoted_name(&mut self, what: &str) -> Result<&'a str, LineError> {
        let start = self.pos;
        let (raw, escaped) = self.quoted(what)?;
        if escaped {
            self.pos = start;
            return Err(self.at(&format!(
                "escape sequences in a quoted {what} are not supported"
            )));
        }
        if raw.is_empty() {
            self.pos = start;
            return Err(self.at(&format!("empty quoted {what}")));
        }
        Ok(raw)
    }

    /// A label value, from its opening quote to its closing one, unescaped
    /// only if it holds a backslash.
    pub(super) fn label_value(&mut self) -> Result<Cow<'a, str>, LineError> {
        let (raw, escaped) = self.quoted("label value")?;
        Ok(if escaped {
            Cow::Owned(unescape(raw, true))
        } else {
            Cow::Borrowed(raw)
        })
    }

    /// The text between a pair of double quotes, and whether it holds escapes.
    /// A backslash escapes whatever follows it, so `\"` does not end the string.
    fn quoted(&mut self, what: &str) -> Result<(&'a str, bool), LineError> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected(&format!("'\"' opening a {what}")));
        }
        self.pos += 1;
        let start = self.pos;
        let bytes = self.bytes();
        let mut escaped = false;
        let mut at = start;
        while let Some(found) = memchr::memchr2(b'"', b'\\', &bytes[at..]) {
            let i = at + found;
            if bytes[i] == b'"' {
                self.pos = i + 1;
                return Ok((&self.line[start..i], escaped));
            }
            escaped = true;
            // Skip the escaped byte; if it starts a multi-byte character the
            // search resumes on a continuation byte, never a quote or backslash.
            at = i + 2;
            if at > bytes.len() {
                break;
            }
        }
        self.pos = start - 1;
        Err(self.at(&format!("unterminated {what}")))
    }

    /// An error naming what was expected and what was found instead.
    pub(super) fn unexpected(&self, expected: &str) -> LineError {
        let found = match self.rest().chars().next() {
            None => "end of line".to_string(),
            Some(c) if c.is_ascii_graphic() || c == ' ' => format!("'{c}'"),
            Some(c) => format!("{c:?}"),
        };
        self.at(&format!("expected {expected}, found {found}"))
    }

    /// `message` with the current column (1-based, in characters).
    pub(super) fn at(&self, message: &str) -> LineError {
        let column = self
            .line
            .get(..self.pos)
            .map_or(self.pos, |before| before.chars().count())
            + 1;
        format!("{message} at column {column}")
    }
}

/// Resolves `\\`, `\n` and (if `quotes`) `\"`. Any other backslash is kept
/// as written: Prometheus does the same, and OpenMetrics' grammar allows a
/// backslash before any character, so `C:\Program Files` survives a scrape.
pub(super) fn unescape(raw: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..i]);
        match rest.as_bytes().get(i + 1) {
            Some(b'\\') => out.push('\\'),
            Some(b'n') => out.push('\n'),
            Some(b'"') if quotes => out.push('"'),
            _ => {
                out.push('\\');
                rest = &rest[i + 1..];
                continue;
            }
        }
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    out
}

/// Whether a help text needs [`unescape`]; most do not, and stay borrowed.
pub(super) fn help_text(raw: &str, quotes: bool) -> Cow<'_, str> {
    if memchr::memchr(b'\\', raw.as_bytes()).is_some() {
        Cow::Owned(unescape(raw, quotes))
    } else {
        Cow::Borrowed(raw)
    }
}

/// A sample or exemplar value: a Go-style float (`1`, `-0.5`, `1.5e-3`,
/// `NaN`, `+Inf`, `Inf`), case-insensitive for the special values.
pub(super) fn value(token: &str) -> Option<f64> {
    // Most values on real pages are small integers (counts, bytes, states);
    // below 10^15 they are exact in an f64 and cheaper to read by hand.
    let bytes = token.as_bytes();
    if !bytes.is_empty() && bytes.len() <= 15 && bytes.iter().all(u8::is_ascii_digit) {
        let n = bytes
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        return Some(n as f64);
    }
    // Rust's float syntax is Go's minus hex floats and digit separators,
    // which Prometheus refuses too.
    token.parse().ok()
}

/// A 0.0.4 timestamp: integer milliseconds since the epoch.
pub(super) fn timestamp_ms(token: &str) -> Option<i64> {
    token.parse().ok()
}

/// An OpenMetrics timestamp: seconds since the epoch as a decimal number,
/// turned into milliseconds exactly (truncating toward zero) instead of
/// through an `f64`, where `1520879607.789 * 1000` can land on `...788`.
pub(super) fn seconds_as_ms(token: &str) -> Option<i64> {
    let bytes = token.as_bytes();
    let (negative, mut i) = match bytes.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    // mantissa * 10^shift milliseconds, where digits past what a u64 holds
    // are dropped: truncating them early gives the same integer result.
    let mut mantissa: u64 = 0;
    let mut shift: i64 = 3;
    let mut digits = 0;
    let mut saturated = false;
    let mut fraction = false;
    while i < bytes.len() {
        match bytes[i] {
            d @ b'0'..=b'9' => {
                digits += 1;
                if !saturated {
                    match mantissa
                        .checked_mul(10)
                        .and_then(|m| m.checked_add(u64::from(d - b'0')))
                    {
                        Some(m) => mantissa = m,
                        None => saturated = true,
                    }
                }
                if saturated && !fraction {
                    shift += 1;
                } else if !saturated && fraction {
                    shift -= 1;
                }
            }
            b'.' if !fraction => fraction = true,
            b'e' | b'E' => break,
            _ => return None,
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if i < bytes.len() {
        shift += exponent(&bytes[i + 1..])?;
    }
    let ms = if shift >= 0 {
        if mantissa == 0 {
            0
        } else {
            let scale = 10u64.checked_pow(u32::try_from(shift).ok()?)?;
            mantissa.checked_mul(scale)?
        }
    } else {
        u32::try_from(-shift)
            .ok()
            .and_then(|s| 10u64.checked_pow(s))
            .map_or(0, |scale| mantissa / scale)
    };
    let ms = i64::try_from(ms).ok()?;
    Some(if negative { -ms } else { ms })
}

/// The part after `e` in a number: a sign and at least one digit. Clamped
/// far beyond any timestamp so that huge exponents cannot overflow.
fn exponent(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits
        .iter()
        .fold(0i64, |e, &d| (e * 10 + i64::from(d - b'0')).min(1_000_000));
    Some(if negative { -magnitude } else { magnitude })
}
