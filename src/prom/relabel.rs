//! Prometheus relabelling (`relabel_configs`, `metric_relabel_configs`), with
//! Prometheus' semantics, so rules ported from a `prometheus.yml` keep their
//! meaning: <https://prometheus.io/docs/prometheus/latest/configuration/configuration/#relabel_config>.
//!
//! A rule is written as a [`RawRelabelConfig`] (the fields of Prometheus'
//! `relabel_config`, in TOML), checked by `validate()` into a
//! [`RelabelConfig`] and applied with [`process`]. The reference is
//! `model/relabel/relabel.go` in prometheus/prometheus. Where it leans on Go's
//! standard library, the same rules are reproduced here: the regex dialect and
//! `Regexp.Expand` (`go_regexp`), MD5 for `hashmod` (`md5`), and
//! `strings.ToLower`/`ToUpper`.
//!
//! Label names follow Prometheus' legacy rule, `[a-zA-Z_][a-zA-Z0-9_]*`, as
//! with `metric_name_validation_scheme: legacy`; Prometheus 3 defaults to
//! UTF-8 names, which ferro does not accept yet.

mod go_regexp;
mod md5;

use regex::Regex;
use serde::Deserialize;
use std::sync::LazyLock;

use crate::config::{FieldError, Validate};
use crate::signal::labels::LabelsBuilder;
use crate::signal::names::is_label_name;

/// One `relabel_configs` entry as written; absent fields take Prometheus'
/// defaults.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct RawRelabelConfig {
    /// Labels whose values, joined by `separator`, are the rule's input.
    pub source_labels: Option<Vec<String>>,
    /// Default `;`.
    pub separator: Option<String>,
    /// The label written by `replace`, `hashmod`, `lowercase`, `uppercase`, or
    /// compared by `keepequal`/`dropequal`.
    pub target_label: Option<String>,
    /// Default `(.*)`. Anchored at both ends, and `.` matches newlines.
    pub regex: Option<String>,
    /// Required by `hashmod`.
    pub modulus: Option<u64>,
    /// Default `$1`; `$1`, `${1}`, `$name` and `${name}` refer to the regex's
    /// groups.
    pub replacement: Option<String>,
    /// Default `replace`; case does not matter.
    pub action: Option<String>,
}

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

/// A checked relabelling rule.
#[derive(Clone, Debug)]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: String,
    pub action: Action,
}

/// What a rule does, with what it needs. Every regex is anchored (`^(?s:…)$`);
/// build rules through [`RawRelabelConfig::validate`] to keep it so.
#[derive(Clone, Debug)]
pub enum Action {
    /// If the source value matches, sets the label named by `target_label`
    /// (expanded with the match) to the expanded `replacement`; an empty
    /// result removes the label.
    Replace {
        regex: Regex,
        target_label: String,
        replacement: String,
    },
    /// Drops unless the source value matches.
    Keep { regex: Regex },
    /// Drops if the source value matches.
    Drop { regex: Regex },
    /// Drops unless the source value equals the target label's value.
    KeepEqual { target_label: String },
    /// Drops if the source value equals the target label's value.
    DropEqual { target_label: String },
    /// Sets the target label to MD5(source value) mod `modulus`, for sharding.
    HashMod { modulus: u64, target_label: String },
    /// Copies every label whose name matches to the expanded `replacement`.
    LabelMap { regex: Regex, replacement: String },
    /// Removes every label whose name matches.
    LabelDrop { regex: Regex },
    /// Removes every label whose name does not match.
    LabelKeep { regex: Regex },
    /// Sets the target label to the lower-cased source value.
    Lowercase { target_label: String },
    /// Sets the target label to the upper-cased source value.
    Uppercase { target_label: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Kind {
    const ALL: [(Kind, &'static str); 11] = [
        (Kind::Replace, "replace"),
        (Kind::Keep, "keep"),
        (Kind::Drop, "drop"),
        (Kind::KeepEqual, "keepequal"),
        (Kind::DropEqual, "dropequal"),
        (Kind::HashMod, "hashmod"),
        (Kind::LabelMap, "labelmap"),
        (Kind::LabelDrop, "labeldrop"),
        (Kind::LabelKeep, "labelkeep"),
        (Kind::Lowercase, "lowercase"),
        (Kind::Uppercase, "uppercase"),
    ];

    fn parse(action: &str) -> Option<Kind> {
        let action = go_to_lower(action);
        Self::ALL
            .iter()
            .find(|(_, name)| *name == action)
            .map(|(kind, _)| *kind)
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("", |e| e.1)
    }
}

impl Validate for RawRelabelConfig {
    type Valid = RelabelConfig;

    /// Prometheus' `Config.Validate` plus its unmarshalling checks (source
    /// label names, regex syntax), reporting every problem instead of the
    /// first.
    fn validate(self) -> Result<RelabelConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let kind = match self.action.as_deref().map(|a| (a, Kind::parse(a))) {
            None => Some(Kind::Replace),
            Some((_, Some(kind))) => Some(kind),
            Some((action, None)) => {
                errors.push(FieldError::new(
                    "action",
                    format!("unknown relabel action {action:?}"),
                ));
                None
            }
        };
        for (i, name) in self.source_labels.iter().flatten().enumerate() {
            if !is_label_name(name) {
                errors.push(FieldError::new(
                    format!("source_labels.{i}"),
                    format!("{name:?} is not a valid label name"),
                ));
            }
        }
        let regex = self.regex.as_deref().unwrap_or(DEFAULT_REGEX);
        let regex = go_regexp::compile_anchored(regex)
            .map_err(|e| errors.push(FieldError::new("regex", e)))
            .ok();
        let Some(kind) = kind else {
            return Err(errors);
        };
        check_fields(&self, kind, &mut errors);
        let Some(regex) = regex.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        let target_label = self.target_label.unwrap_or_default();
        let replacement = self
            .replacement
            .unwrap_or_else(|| DEFAULT_REPLACEMENT.to_string());
        let action = match kind {
            Kind::Replace => Action::Replace {
                regex,
                target_label,
                replacement,
            },
            Kind::Keep => Action::Keep { regex },
            Kind::Drop => Action::Drop { regex },
            Kind::KeepEqual => Action::KeepEqual { target_label },
            Kind::DropEqual => Action::DropEqual { target_label },
            Kind::HashMod => Action::HashMod {
                modulus: self.modulus.unwrap_or(0),
                target_label,
            },
            Kind::LabelMap => Action::LabelMap { regex, replacement },
            Kind::LabelDrop => Action::LabelDrop { regex },
            Kind::LabelKeep => Action::LabelKeep { regex },
            Kind::Lowercase => Action::Lowercase { target_label },
            Kind::Uppercase => Action::Uppercase { target_label },
        };
        Ok(RelabelConfig {
            source_labels: self.source_labels.unwrap_or_default(),
            separator: self
                .separator
                .unwrap_or_else(|| DEFAULT_SEPARATOR.to_string()),
            action,
        })
    }
}

/// The per-action rules of Prometheus' `Config.Validate`.
fn check_fields(raw: &RawRelabelConfig, kind: Kind, errors: &mut Vec<FieldError>) {
    let action = kind.name();
    let target = raw.target_label.as_deref().unwrap_or("");
    let replacement = raw.replacement.as_deref().unwrap_or(DEFAULT_REPLACEMENT);
    let modulus = raw.modulus.unwrap_or(0);
    let separator = raw.separator.as_deref().unwrap_or(DEFAULT_SEPARATOR);
    let mut error = |field: &str, message: String| errors.push(FieldError::new(field, message));

    if kind == Kind::HashMod && modulus == 0 {
        error(
            "modulus",
            "the hashmod action needs a non-zero modulus".into(),
        );
    }
    let needs_target = matches!(
        kind,
        Kind::Replace
            | Kind::HashMod
            | Kind::Lowercase
            | Kind::Uppercase
            | Kind::KeepEqual
            | Kind::DropEqual
    );
    if needs_target {
        // Only replace may name its target with `$` references to the match.
        let valid = if kind == Kind::Replace && target.contains('$') {
            LABEL_TEMPLATE.is_match(target)
        } else {
            is_label_name(target)
        };
        if target.is_empty() {
            error(
                "target_label",
                format!("the {action} action needs a target_label"),
            );
        } else if !valid {
            error(
                "target_label",
                format!("{target:?} is not a valid target_label for the {action} action"),
            );
        }
    }
    if kind == Kind::LabelMap && !LABEL_TEMPLATE.is_match(replacement) {
        error(
            "replacement",
            format!("{replacement:?} is not a valid label name for the labelmap action"),
        );
    }
    let mut only = |fields: &str, extra: &[(&str, bool)]| {
        for (field, _) in extra.iter().filter(|(_, set)| *set) {
            error(field, format!("the {action} action takes only {fields}"));
        }
    };
    match kind {
        Kind::Lowercase | Kind::Uppercase if replacement != DEFAULT_REPLACEMENT => error(
            "replacement",
            format!("cannot be set for the {action} action"),
        ),
        // Prometheus tells an explicit regex from the default by identity, so
        // even `regex = "(.*)"` is refused here.
        Kind::KeepEqual | Kind::DropEqual => only(
            "source_labels and target_label",
            &[
                ("regex", raw.regex.is_some()),
                ("modulus", modulus != 0),
                ("separator", separator != DEFAULT_SEPARATOR),
                ("replacement", replacement != DEFAULT_REPLACEMENT),
            ],
        ),
        Kind::LabelDrop | Kind::LabelKeep => only(
            "regex",
            &[
                ("source_labels", raw.source_labels.is_some()),
                ("target_label", !target.is_empty()),
                ("modulus", modulus != 0),
                ("separator", separator != DEFAULT_SEPARATOR),
                ("replacement", replacement != DEFAULT_REPLACEMENT),
            ],
        ),
        _ => {}
    }
}

/// Validates a list of rules, placing each error under `field.<index>`.
pub fn validate_all(
    raw: Vec<RawRelabelConfig>,
    field: &str,
) -> Result<Vec<RelabelConfig>, Vec<FieldError>> {
    let mut valid = Vec::with_capacity(raw.len());
    let mut errors = Vec::new();
    for (i, config) in raw.into_iter().enumerate() {
        match config.validate() {
            Ok(config) => valid.push(config),
            Err(found) => errors.extend(
                found
                    .into_iter()
                    .map(|e| FieldError::new(format!("{field}.{i}.{}", e.field), e.message)),
            ),
        }
    }
    if errors.is_empty() {
        Ok(valid)
    } else {
        Err(errors)
    }
}

/// Applies `configs` in order, as Prometheus' `relabel.ProcessBuilder`.
/// Returns false as soon as a `keep`, `drop`, `keepequal` or `dropequal` rule
/// drops the target or series; the labels are then left half-processed.
///
/// An empty result is not a drop here, as in Prometheus: its scrape loop drops
/// a series whose labels end up empty, and target discovery drops a target
/// without `__address__`. Callers must do the same.
pub fn process(labels: &mut LabelsBuilder, configs: &[RelabelConfig]) -> bool {
    let mut scratch = String::new();
    configs
        .iter()
        .all(|config| config.apply_with(labels, &mut scratch))
}

impl RelabelConfig {
    /// Applies this rule alone; false when it drops the target or series.
    pub fn apply(&self, labels: &mut LabelsBuilder) -> bool {
        self.apply_with(labels, &mut String::new())
    }

    fn apply_with(&self, labels: &mut LabelsBuilder, value: &mut String) -> bool {
        if !matches!(
            self.action,
            Action::LabelMap { .. } | Action::LabelDrop { .. } | Action::LabelKeep { .. }
        ) {
            self.source_value(labels, value);
        }
        match &self.action {
            Action::Replace {
                regex,
                target_label,
                replacement,
            } => {
                let Some(captures) = regex.captures(value) else {
                    return true;
                };
                let target = go_regexp::expand(target_label, &captures);
                if is_label_name(&target) {
                    // An empty result removes the label.
                    labels.set(&target, &go_regexp::expand(replacement, &captures));
                }
            }
            Action::Keep { regex } => return regex.is_match(value),
            Action::Drop { regex } => return !regex.is_match(value),
            Action::KeepEqual { target_label } => {
                return labels.get(target_label).unwrap_or("") == value.as_str();
            }
            Action::DropEqual { target_label } => {
                return labels.get(target_label).unwrap_or("") != value.as_str();
            }
            Action::HashMod {
                modulus,
                target_label,
            } => {
                // The last 8 bytes of the digest, big-endian: what Prometheus
                // has always used, so shards stay where they were.
                let digest = md5::digest(value.as_bytes());
                let mut tail = [0u8; 8];
                tail.copy_from_slice(&digest[8..]);
                let shard = u64::from_be_bytes(tail) % modulus;
                labels.set(target_label, &shard.to_string());
            }
            Action::LabelMap { regex, replacement } => {
                // Names are matched against the labels as they were before the
                // rule, as Prometheus' `Builder.Range` does; a name the rule
                // writes is not matched again. Prometheus uses
                // `ReplaceAllString`, which for an anchored regex is one
                // expansion, and does not check the resulting name.
                let renamed: Vec<(String, String)> = labels
                    .iter()
                    .filter(|(name, _)| regex.is_match(name))
                    .map(|(name, value)| {
                        let new_name = regex.replace_all(name, |captures: &regex::Captures| {
                            go_regexp::expand(replacement, captures).into_owned()
                        });
                        (new_name.into_owned(), value.to_string())
                    })
                    .collect();
                for (name, value) in &renamed {
                    labels.set(name, value);
                }
            }
            Action::LabelDrop { regex } => labels.retain(|name, _| !regex.is_match(name)),
            Action::LabelKeep { regex } => labels.retain(|name, _| regex.is_match(name)),
            Action::Lowercase { target_label } => labels.set(target_label, &go_to_lower(value)),
            Action::Uppercase { target_label } => labels.set(target_label, &go_to_upper(value)),
        }
        true
    }

    /// The source labels' values joined by the separator; a missing label
    /// counts as empty.
    fn source_value(&self, labels: &LabelsBuilder, out: &mut String) {
        out.clear();
        for (i, name) in self.source_labels.iter().enumerate() {
            if i > 0 {
                out.push_str(&self.separator);
            }
            out.push_str(labels.get(name).unwrap_or(""));
        }
    }
}

/// A label name that may contain `$name`/`${name}` references, which expand to
/// the rest of a name (Prometheus' `relabelTargetLegacy`, `\w` being ASCII).
static LABEL_TEMPLATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$")
        .expect("static pattern")
});

/// Go's `strings.ToLower`: rune by rune with the one-to-one (simple) Unicode
/// mapping, so unlike `str::to_lowercase` there is no final-sigma rule and
/// 'İ' becomes 'i', not "i̇".
fn go_to_lower(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.chars()
        .map(|c| {
            let mut lower = c.to_lowercase();
            match (lower.len(), c) {
                (1, _) => lower.next().unwrap_or(c),
                (_, '\u{130}') => 'i',
                _ => c,
            }
        })
        .collect()
}

/// Go's `strings.ToUpper`: rune by rune with the simple mapping, so 'ß' stays
/// 'ß' where `str::to_uppercase` writes "SS".
fn go_to_upper(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    s.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            if upper.len() == 1 {
                return upper.next().unwrap_or(c);
            }
            // Characters whose full mapping has several characters; most have
            // no simple one, but Greek letters with ypogegrammeni map to
            // their title-case form.
            let offset = match c as u32 {
                0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => 8,
                0x1FB3 | 0x1FC3 | 0x1FF3 => 9,
                _ => 0,
            };
            char::from_u32(c as u32 + offset).unwrap_or(c)
        })
        .collect()
}

#[cfg(test)]
mod tests;
