use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::export::is_field_name;
use crate::config::{ByteSize, FieldError, HumanDuration, Validate};
use crate::signal::names::is_label_name;

/// `[receivers.journald.NAME]` as written.
#[derive(Deserialize)]
pub struct RawJournaldConfig {
    /// The journalctl program that reads the journal (Debian's, in ferro's image).
    journalctl_path: Option<PathBuf>,
    /// Read the journals of the system whose `/` is here (`journalctl
    /// --root`): `/host` in a container with the host's `/` mounted there.
    root_path: Option<PathBuf>,
    /// Read only the journal files in this directory (`journalctl --directory`).
    directory: Option<PathBuf>,
    /// Only these systemd units (`journalctl --unit`); all when empty.
    #[serde(default)]
    units: Vec<String>,
    /// journalctl matches (`FIELD=value`, `+` between groups); all when empty.
    #[serde(default)]
    matches: Vec<String>,
    /// The least important priority kept (`emerg` … `debug`, or 0–7).
    priority: Option<String>,
    /// At a first start (or after a long stop), how far back to begin.
    max_age: Option<HumanDuration>,
    /// The `job` label of every stream.
    job: Option<String>,
    /// Labels taken from journal fields: label name → field name.
    field_labels: Option<BTreeMap<String, String>>,
    /// Structured metadata taken from journal fields: name → field name.
    #[serde(default)]
    structured_metadata: BTreeMap<String, String>,
    /// Labels added to every stream of this receiver.
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Longer messages are cut to this size and marked `truncated = "true"`.
    max_line_size: Option<ByteSize>,
}

/// Where journalctl reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The journals of the system whose `/` is at this path (`/` for this one).
    Root(PathBuf),
    /// The journal files in one directory.
    Directory(PathBuf),
}

/// A checked `[receivers.journald.NAME]`.
#[derive(Clone, Debug, PartialEq)]
pub struct JournaldConfig {
    pub journalctl_path: PathBuf,
    pub source: Source,
    pub units: Vec<String>,
    pub matches: Vec<String>,
    /// 0 (emerg) … 7 (debug).
    pub priority: Option<u8>,
    pub max_age: std::time::Duration,
    pub job: String,
    pub field_labels: BTreeMap<String, String>,
    pub structured_metadata: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub max_line_size: usize,
}

/// syslog's priorities as journald numbers them, under the names
/// `journalctl --priority` takes and the `level` label carries (Alloy's
/// `__journal_priority_keyword`, but `err` is `error`).
pub const PRIORITIES: [&str; 8] = [
    "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
];

/// The longest `max_line_size`: a message is held whole before it is sent.
const MAX_LINE_SIZE_LIMIT: u64 = 16 << 20;

impl Validate for RawJournaldConfig {
    type Valid = JournaldConfig;

    fn validate(self) -> Result<JournaldConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let source = match (self.root_path, self.directory) {
            (Some(_), Some(_)) => {
                errors.push(FieldError::new(
                    "directory",
                    "give root_path or directory, not both",
                ));
                Source::Root("/".into())
            }
            (_, Some(dir)) => Source::Directory(dir),
            (root, None) => Source::Root(root.unwrap_or_else(|| "/".into())),
        };
        for (i, unit) in self.units.iter().enumerate() {
            if unit.is_empty() || unit.starts_with('-') || unit.contains(char::is_whitespace) {
                errors.push(FieldError::new(
                    format!("units.{i}"),
                    "not a unit name (like `kubelet.service`)",
                ));
            }
        }
        for (i, m) in self.matches.iter().enumerate() {
            let field_match = m
                .split_once('=')
                .is_some_and(|(field, _)| is_field_name(field.as_bytes()));
            if m != "+" && !field_match {
                errors.push(FieldError::new(
                    format!("matches.{i}"),
                    "not a journal match: `FIELD=value` (FIELD in upper case), or `+` between groups",
                ));
            }
        }
        let priority = self.priority.and_then(|p| {
            let n = PRIORITIES
                .iter()
                .position(|name| *name == p || (p == "err" && *name == "error"))
                .or_else(|| p.parse::<usize>().ok().filter(|n| *n < 8));
            if n.is_none() {
                errors.push(FieldError::new(
                    "priority",
                    format!(
                        "`{p}` is not a priority; use 0–7 or one of {}",
                        PRIORITIES.join(", ")
                    ),
                ));
            }
            n.map(|n| n as u8)
        });
        let max_age = self
            .max_age
            .map_or(std::time::Duration::from_secs(7 * 3600), |d| d.get());
        if max_age.is_zero() {
            errors.push(FieldError::new("max_age", "must be more than 0"));
        }
        let job = self.job.unwrap_or_else(|| "systemd-journal".into());
        if job.is_empty() {
            errors.push(FieldError::new("job", "must not be empty"));
        }
        let field_labels = self.field_labels.unwrap_or_else(|| {
            BTreeMap::from([
                ("unit".to_string(), "_SYSTEMD_UNIT".to_string()),
                ("host".to_string(), "_HOSTNAME".to_string()),
            ])
        });
        let mut check_fields = |key: &str, map: &BTreeMap<String, String>| {
            for (name, field) in map {
                if !is_field_name(field.as_bytes()) {
                    errors.push(FieldError::new(
                        format!("{key}.{name}"),
                        format!("`{field}` is not a journal field name (upper-case letters, digits and _)"),
                    ));
                }
            }
        };
        check_fields("field_labels", &field_labels);
        check_fields("structured_metadata", &self.structured_metadata);
        for (key, map) in [("field_labels", &field_labels), ("labels", &self.labels)] {
            for name in map.keys() {
                if !is_label_name(name) {
                    errors.push(FieldError::new(
                        format!("{key}.{name}"),
                        "not a label name (letters, digits and _, not starting with a digit)",
                    ));
                } else if name == "job" || name == "level" {
                    errors.push(FieldError::new(
                        format!("{key}.{name}"),
                        format!("`{name}` is set by the receiver (see `job`, and `level` from the priority)"),
                    ));
                }
            }
        }
        for name in field_labels.keys() {
            if self.labels.contains_key(name) {
                errors.push(FieldError::new(
                    format!("labels.{name}"),
                    "also in field_labels; give it once",
                ));
            }
        }
        for name in self.structured_metadata.keys() {
            if name.is_empty() {
                errors.push(FieldError::new(
                    "structured_metadata",
                    "a name must not be empty",
                ));
            }
        }
        let max_line_size = self.max_line_size.map_or(256 * 1024, |b| b.get());
        if !(64..=MAX_LINE_SIZE_LIMIT).contains(&max_line_size) {
            errors.push(FieldError::new(
                "max_line_size",
                "must be between 64B and 16MiB",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(JournaldConfig {
            journalctl_path: self
                .journalctl_path
                .unwrap_or_else(|| PathBuf::from("journalctl")),
            source,
            units: self.units,
            matches: self.matches,
            priority,
            max_age,
            job,
            field_labels,
            structured_metadata: self.structured_metadata,
            labels: self.labels,
            max_line_size: max_line_size as usize,
        })
    }
}
