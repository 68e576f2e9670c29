use regex::{Regex, RegexBuilder};
use serde::Deserialize;

use super::rules::{BUILTINS, Kind};
use crate::config::{FieldError, Validate};

/// What a redacted value becomes unless a rule says otherwise.
pub const DEFAULT_REPLACEMENT: &str = "[REDACTED]";

/// `[processors.redact.NAME]` as written.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RawRedactConfig {
    /// What a redacted value becomes.
    replacement: Option<String>,
    /// Key names whose values are always redacted, on top of the built-in
    /// deny-list (matched the same way: case, `-` and `_` ignored).
    deny_keys: Vec<String>,
    /// Allow-list mode: only these keys keep their values; every other
    /// attribute, label and metadata key is redacted.
    allow_keys: Option<Vec<String>>,
    /// Built-in rules to turn off, by name (`credit_card`, `secret_keys`, …).
    disable: Vec<String>,
    /// Opt-in personal-data rules: `email`, `ipv4`, `ipv6`, `phone`.
    pii: Vec<String>,
    /// Whether log lines that are JSON objects are redacted field by field.
    json_fields: Option<bool>,
    /// The operator's own rules.
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
struct RawRule {
    /// Names the rule in `ferro_redactions_total`.
    name: String,
    /// A regex on keys: a matching key's value is replaced whole.
    key: Option<String>,
    /// A regex on values and text: each match is replaced (or, when the regex
    /// has a group named `secret`, only that group).
    value: Option<String>,
    replacement: Option<String>,
}

/// A checked redaction config.
#[derive(Clone, Debug, PartialEq)]
pub struct RedactConfig {
    pub replacement: String,
    /// Normalized (lower case, no `-` or `_`) extra deny-list entries.
    pub deny_keys: Vec<String>,
    pub allow_keys: Option<Vec<String>>,
    /// Built-in rules in force, as indexes into [`BUILTINS`].
    pub builtins: Vec<usize>,
    pub json_fields: bool,
    pub rules: Vec<UserRule>,
}

#[derive(Clone, Debug)]
pub struct UserRule {
    pub name: String,
    pub key: Option<Regex>,
    pub value: Option<Regex>,
    pub replacement: Option<String>,
}

impl PartialEq for UserRule {
    fn eq(&self, other: &Self) -> bool {
        let source = |r: &Option<Regex>| r.as_ref().map(|r| r.as_str().to_string());
        self.name == other.name
            && source(&self.key) == source(&other.key)
            && source(&self.value) == source(&other.value)
            && self.replacement == other.replacement
    }
}

impl Default for RedactConfig {
    /// The default every pipeline runs: every built-in secret rule, no PII rule.
    fn default() -> Self {
        Self {
            replacement: DEFAULT_REPLACEMENT.to_string(),
            deny_keys: Vec::new(),
            allow_keys: None,
            builtins: (0..BUILTINS.len())
                .filter(|&i| BUILTINS[i].kind != Kind::Pii)
                .collect(),
            json_fields: true,
            rules: Vec::new(),
        }
    }
}

/// Lower case without `-` and `_`: how keys are compared.
pub fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

impl Validate for RawRedactConfig {
    type Valid = RedactConfig;

    fn validate(self) -> Result<RedactConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let replacement = self
            .replacement
            .unwrap_or_else(|| DEFAULT_REPLACEMENT.to_string());
        if replacement.is_empty() {
            errors.push(FieldError::new(
                "replacement",
                "must not be empty: an empty value would look like a missing one",
            ));
        }
        let secret_names: Vec<&str> = BUILTINS
            .iter()
            .filter(|b| b.kind != Kind::Pii)
            .map(|b| b.name)
            .collect();
        let pii_names: Vec<&str> = BUILTINS
            .iter()
            .filter(|b| b.kind == Kind::Pii)
            .map(|b| b.name)
            .collect();
        for name in &self.disable {
            if !secret_names.contains(&name.as_str()) {
                errors.push(FieldError::new(
                    "disable",
                    format!(
                        "`{name}` is not a built-in rule (they are: {})",
                        secret_names.join(", ")
                    ),
                ));
            }
        }
        for name in &self.pii {
            if !pii_names.contains(&name.as_str()) {
                errors.push(FieldError::new(
                    "pii",
                    format!(
                        "`{name}` is not a personal-data rule (they are: {})",
                        pii_names.join(", ")
                    ),
                ));
            }
        }
        let builtins = BUILTINS
            .iter()
            .enumerate()
            .filter(|(_, b)| match b.kind {
                Kind::Pii => self.pii.iter().any(|n| n == b.name),
                _ => !self.disable.iter().any(|n| n == b.name),
            })
            .map(|(i, _)| i)
            .collect();
        let mut deny_keys = Vec::new();
        for (i, key) in self.deny_keys.iter().enumerate() {
            let normalized = normalize_key(key);
            if normalized.is_empty() || normalized.len() > super::rules::MAX_DENY_KEY {
                errors.push(FieldError::new(
                    format!("deny_keys[{i}]"),
                    format!(
                        "must name a key (letters or digits, at most {} of them)",
                        super::rules::MAX_DENY_KEY
                    ),
                ));
            } else {
                deny_keys.push(normalized);
            }
        }
        if let Some(allow) = &self.allow_keys
            && allow.is_empty()
        {
            errors.push(FieldError::new(
                "allow_keys",
                "an empty allow-list would redact every value; leave it out to use the deny-list",
            ));
        }
        let mut rules = Vec::new();
        for (i, raw) in self.rules.into_iter().enumerate() {
            let at = |field: &str| format!("rules[{i}].{field}");
            if raw.name.is_empty() {
                errors.push(FieldError::new(at("name"), "must not be empty"));
            }
            if raw.key.is_none() && raw.value.is_none() {
                errors.push(FieldError::new(
                    format!("rules[{i}]"),
                    "needs `key`, `value` or both",
                ));
            }
            let compile = |field: &str, pattern: &Option<String>, errors: &mut Vec<FieldError>| {
                let pattern = pattern.as_ref()?;
                match RegexBuilder::new(pattern).size_limit(1 << 20).build() {
                    Ok(regex) => Some(regex),
                    Err(e) => {
                        errors.push(FieldError::new(at(field), format!("invalid regex: {e}")));
                        None
                    }
                }
            };
            let key = compile("key", &raw.key, &mut errors);
            let value = compile("value", &raw.value, &mut errors);
            if let Some(value) = &value
                && value.is_match("")
            {
                errors.push(FieldError::new(
                    at("value"),
                    "matches the empty string, so it would redact between every character",
                ));
            }
            rules.push(UserRule {
                name: raw.name,
                key,
                value,
                replacement: raw.replacement,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RedactConfig {
            replacement,
            deny_keys,
            allow_keys: self.allow_keys,
            builtins,
            json_fields: self.json_fields.unwrap_or(true),
            rules,
        })
    }
}
