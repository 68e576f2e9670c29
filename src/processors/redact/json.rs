//! Redaction inside a log line that is a JSON object, field by field: a
//! deny-listed field keeps its name and gets a string `"[REDACTED]"` whatever
//! its value was (object, array, number, string); every other string (and
//! long number) is redacted as text. Everything else in the line is kept
//! byte for byte, so the line stays the JSON it was.

use super::Redactor;

/// Deeper nesting than this is treated as plain text.
const MAX_DEPTH: usize = 128;

/// `None` if `text` is not one JSON value (the caller then treats it as plain
/// text); `Some(None)` if nothing in it needs redacting; otherwise the line.
pub(super) fn redact(text: &str, redactor: &Redactor, hits: &mut [u64]) -> Option<Option<String>> {
    let mut walk = Walk {
        text,
        bytes: text.as_bytes(),
        at: 0,
        redactor,
        hits,
        edits: Vec::new(),
    };
    walk.skip_whitespace();
    walk.value(0, None)?;
    walk.skip_whitespace();
    if walk.at != walk.bytes.len() {
        return None;
    }
    if walk.edits.is_empty() {
        return Some(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, replacement) in walk.edits {
        out.push_str(&text[at..start]);
        out.push_str(&replacement);
        at = end;
    }
    out.push_str(&text[at..]);
    Some(Some(out))
}

struct Walk<'a, 'h> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    redactor: &'a Redactor,
    hits: &'h mut [u64],
    /// Byte ranges of the line to replace, in order.
    edits: Vec<(usize, usize, String)>,
}

impl Walk<'_, '_> {
    fn skip_whitespace(&mut self) {
        while self
            .bytes
            .get(self.at)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// Parses one value; `key_rule` is the rule that redacts it whole.
    fn value(&mut self, depth: usize, key_rule: Option<usize>) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_whitespace();
        let start = self.at;
        let result = match *self.bytes.get(self.at)? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => {
                let (content_start, content_end, escaped) = self.string()?;
                if key_rule.is_none() {
                    self.text_value(start, content_start, content_end, escaped);
                }
                Some(())
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => {
                self.number();
                if key_rule.is_none() && self.at - start >= 13 {
                    let number = &self.text[start..self.at];
                    if let Some(new) = self.redactor.redact_text(number, self.hits) {
                        self.edits.push((start, self.at, quote(&new)));
                    }
                }
                Some(())
            }
            _ => None,
        };
        result?;
        if let Some(rule) = key_rule {
            let replacement = self.redactor.replacement_for(rule);
            let raw = &self.text[start..self.at];
            if raw.len() < 2 || &raw[1..raw.len() - 1] != replacement || !raw.starts_with('"') {
                // Inner edits of the replaced value no longer apply.
                self.edits.retain(|(s, _, _)| *s < start);
                self.edits.push((start, self.at, quote(replacement)));
                self.hits[rule] += 1;
            }
        }
        Some(())
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        self.at += 1;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.skip_whitespace();
            if self.bytes.get(self.at) != Some(&b'"') {
                return None;
            }
            let (start, end, escaped) = self.string()?;
            let key = if escaped {
                unescape(&self.text[start - 1..end + 1])?
            } else {
                self.text[start..end].to_string()
            };
            self.eat(b':')?;
            let rule = self.redactor.key_rule(&key);
            self.value(depth + 1, rule)?;
            if self.eat(b',').is_none() {
                return self.eat(b'}');
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.at += 1;
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.value(depth + 1, None)?;
            if self.eat(b',').is_none() {
                return self.eat(b']');
            }
        }
    }

    /// A string at `self.at`; returns its content's range and whether it
    /// holds escapes.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        self.at += 1;
        let start = self.at;
        let mut escaped = false;
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => {
                    let end = self.at;
                    self.at += 1;
                    return Some((start, end, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.at += 2;
                }
                _ => self.at += 1,
            }
        }
    }

    /// Redacts a string value as text.
    fn text_value(
        &mut self,
        start: usize,
        content_start: usize,
        content_end: usize,
        escaped: bool,
    ) {
        let raw = &self.text[content_start..content_end];
        if !self.redactor.may_change(raw.as_bytes()) {
            return;
        }
        let decoded;
        let content = if escaped {
            match unescape(&self.text[start..content_end + 1]) {
                Some(text) => {
                    decoded = text;
                    decoded.as_str()
                }
                None => return,
            }
        } else {
            raw
        };
        if let Some(new) = self.redactor.redact_text(content, self.hits) {
            self.edits.push((start, content_end + 1, quote(&new)));
        }
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.bytes[self.at..]
            .starts_with(word.as_bytes())
            .then(|| self.at += word.len())
    }

    fn number(&mut self) {
        while self
            .bytes
            .get(self.at)
            .is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
        {
            self.at += 1;
        }
    }
}

fn unescape(quoted: &str) -> Option<String> {
    serde_json::from_str(quoted).ok()
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}
