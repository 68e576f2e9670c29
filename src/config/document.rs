//! Reading a TOML document so that every mistake in it is reported in one pass,
//! each with its dotted path and line.
//!
//! Config structs do not use `#[serde(deny_unknown_fields)]`: it stops at the
//! first unknown key. Every key serde ignores is reported here instead, which
//! makes unknown keys errors just the same, all of them at once.
//!
//! The document is parsed once into toml's spanned tree. Each section is then
//! deserialized on its own, so one bad component does not hide the errors of the
//! next; unknown keys are collected with `serde_ignored` rather than stopping at
//! the first `deny_unknown_fields` hit; and errors found after deserialization
//! (`validate()`) are placed by walking the tree to the field they name.

use serde::de::DeserializeOwned;
use std::fmt;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::env;

/// One mistake in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the offending key, e.g. `exporters.otlp.tempo.endpont`.
    pub path: String,
    /// 1-based line of the key, when the document says where it is.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.path.is_empty()) {
            (Some(line), false) => write!(f, "line {line}: {}: {}", self.path, self.message),
            (Some(line), true) => write!(f, "line {line}: {}", self.message),
            (None, false) => write!(f, "{}: {}", self.path, self.message),
            (None, true) => write!(f, "{}", self.message),
        }
    }
}

/// Every mistake found in one config file (the first [`MAX_ERRORS`] of
/// them kept, the rest counted).
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub origin: String,
    pub errors: Vec<ConfigError>,
    /// Errors found beyond those kept.
    pub more: usize,
}

/// Errors a report shows; the rest are counted in one line.
pub const SHOWN_ERRORS: usize = 100;

impl ConfigErrors {
    /// One error that is about the whole file.
    pub fn whole_file(origin: String, message: String) -> Self {
        Self {
            origin,
            errors: vec![ConfigError {
                path: String::new(),
                line: None,
                message,
            }],
            more: 0,
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len() + self.more;
        writeln!(
            f,
            "{}: {n} error{}",
            self.origin,
            if n == 1 { "" } else { "s" }
        )?;
        for error in self.errors.iter().take(SHOWN_ERRORS) {
            writeln!(f, "  {error}")?;
        }
        if n > SHOWN_ERRORS {
            writeln!(f, "  … and {} more", n - SHOWN_ERRORS)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A mistake found by a component's `validate()`, relative to its own table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path inside the component's table; empty for the table itself.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A raw config section that checks itself and becomes a typed, validated value.
pub trait Validate: DeserializeOwned {
    type Valid;
    fn validate(self) -> Result<Self::Valid, Vec<FieldError>>;
}

pub type Value<'a> = Spanned<DeValue<'a>>;

/// How much `${VAR}` expansion may add to a whole document.
const MAX_GROWTH: usize = 16 << 20;

/// Errors kept for one document; beyond them, only counted.
pub const MAX_ERRORS: usize = 1000;

/// The spanned document plus the errors found in it so far.
pub struct Document<'a> {
    source: &'a str,
    pub errors: Vec<ConfigError>,
    /// Errors found past [`MAX_ERRORS`], not kept.
    pub more_errors: usize,
    /// Byte offsets of the source's line starts, once a line is asked for.
    line_starts: std::cell::OnceCell<Vec<usize>>,
    /// What `${VAR}` expansion may still add.
    growth_left: usize,
}

impl<'a> Document<'a> {
    /// Parses `source` and interpolates `${VAR}` in every string value. A syntax
    /// error ends the reading there: toml cannot say what the rest means.
    pub fn parse(
        source: &'a str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> (Self, Option<Spanned<DeTable<'a>>>) {
        let mut doc = Document {
            source,
            errors: Vec::new(),
            more_errors: 0,
            line_starts: std::cell::OnceCell::new(),
            growth_left: MAX_GROWTH,
        };
        match DeTable::parse(source) {
            Ok(mut root) => {
                let span = root.span();
                let mut path = Vec::new();
                doc.interpolate_table(root.get_mut(), &mut path, lookup);
                let _ = span;
                (doc, Some(root))
            }
            Err(err) => {
                let line = err.span().map(|s| doc.line_of(s.start));
                doc.errors.push(ConfigError {
                    path: String::new(),
                    line,
                    message: format!("TOML syntax: {}", err.message().trim()),
                });
                (doc, None)
            }
        }
    }

    fn interpolate_table(
        &mut self,
        table: &mut DeTable<'a>,
        path: &mut Vec<String>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) {
        for (key, value) in table.iter_mut() {
            path.push(key.get_ref().to_string());
            self.interpolate_value(value, path, lookup);
            path.pop();
        }
    }

    fn interpolate_value(
        &mut self,
        value: &mut Value<'a>,
        path: &mut Vec<String>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) {
        let span = value.span();
        match value.get_mut() {
            DeValue::String(text) => {
                let max = env::MAX_EXPANDED.min(text.len() + self.growth_left);
                match env::interpolate_within(text, lookup, max) {
                    Ok(expanded) => {
                        if expanded != text.as_ref() {
                            self.growth_left -= expanded.len().saturating_sub(text.len());
                            *text = expanded.into();
                        }
                    }
                    Err(message) => self.push(path.join("."), Some(span), message),
                }
            }
            DeValue::Array(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    path.push(index.to_string());
                    self.interpolate_value(item, path, lookup);
                    path.pop();
                }
            }
            DeValue::Table(table) => self.interpolate_table(table, path, lookup),
            _ => {}
        }
    }

    /// The 1-based line of a byte offset: a search in the line starts,
    /// which are found once, so that many errors cost no more than one.
    pub fn line_of(&self, offset: usize) -> usize {
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(memchr::memchr_iter(b'\n', self.source.as_bytes()).map(|at| at + 1))
                .collect()
        });
        starts.partition_point(|&start| start <= offset)
    }

    pub fn push(&mut self, path: String, span: Option<Range<usize>>, message: impl Into<String>) {
        if self.errors.len() >= MAX_ERRORS {
            self.more_errors += 1;
            return;
        }
        let line = span.map(|s| self.line_of(s.start));
        self.errors.push(ConfigError {
            path,
            line,
            message: message.into(),
        });
    }

    /// Deserializes `value` as `T` and validates it; every unknown key, the first
    /// type error and every validation error are recorded under `path`.
    pub fn section<T: Validate>(&mut self, path: &str, value: Value<'a>) -> Option<T::Valid> {
        let tree = value.clone();
        let mut unknown = Vec::new();
        let deserializer = ValueDeserializer::from(value);
        let result: Result<T, _> = serde_ignored::deserialize(deserializer, |p| {
            unknown.push(segments(&p));
        });
        for field in unknown {
            let span = find(&tree, &field).map(|v| v.span());
            let known_hint = "unknown field";
            self.push(join(path, &field.join(".")), span, known_hint);
        }
        let raw = match result {
            Ok(raw) => raw,
            Err(err) => {
                let span = err.span().unwrap_or(tree.span());
                let mut field = Vec::new();
                let field = if locate(&tree, &span, &mut field) {
                    field.join(".")
                } else {
                    String::new()
                };
                let message = err.message().trim().to_string();
                self.push(join(path, &field), Some(span), message);
                return None;
            }
        };
        match raw.validate() {
            Ok(valid) => Some(valid),
            Err(errors) => {
                for error in errors {
                    let field: Vec<String> = if error.field.is_empty() {
                        Vec::new()
                    } else {
                        error.field.split('.').map(str::to_string).collect()
                    };
                    let span = find(&tree, &field).map(|v| v.span()).or(Some(tree.span()));
                    self.push(join(path, &error.field), span, error.message);
                }
                None
            }
        }
    }
}

pub fn join(path: &str, field: &str) -> String {
    match (path.is_empty(), field.is_empty()) {
        (_, true) => path.to_string(),
        (true, false) => field.to_string(),
        (false, false) => format!("{path}.{field}"),
    }
}

fn segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
    use serde_ignored::Path;
    match path {
        Path::Root => Vec::new(),
        Path::Seq { parent, index } => {
            let mut v = segments(parent);
            v.push(index.to_string());
            v
        }
        Path::Map { parent, key } => {
            let mut v = segments(parent);
            v.push(key.clone());
            v
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => segments(parent),
    }
}

/// Finds the path of the innermost value whose span is `span`.
fn locate(value: &Value<'_>, span: &Range<usize>, path: &mut Vec<String>) -> bool {
    match value.get_ref() {
        DeValue::Table(table) => {
            for (key, child) in table.iter() {
                path.push(key.get_ref().to_string());
                if child.span() == *span || (key.span() == *span) || locate(child, span, path) {
                    return true;
                }
                path.pop();
            }
        }
        DeValue::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                path.push(index.to_string());
                if child.span() == *span || locate(child, span, path) {
                    return true;
                }
                path.pop();
            }
        }
        _ => {}
    }
    false
}

/// The value at a dotted path inside `value`, if the document has it.
pub fn find<'v, 'a>(value: &'v Value<'a>, path: &[String]) -> Option<&'v Value<'a>> {
    let mut current = value;
    for segment in path {
        current = match current.get_ref() {
            DeValue::Table(table) => table.get(segment.as_str())?,
            DeValue::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}
