use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;

use crate::config::{ByteSize, FieldError, HumanDuration, Validate};
use crate::signal::names::is_label_name;

/// `[receivers.pod_logs.NAME]` as written.
#[derive(Deserialize)]
pub struct RawPodLogsConfig {
    /// Globs of the files to tail; the default is kubelet's layout.
    include: Option<Vec<String>>,
    /// Globs of files never to tail, even if `include` matches them.
    #[serde(default)]
    exclude: Vec<String>,
    /// How lines are framed: `auto` detects CRI, Docker json-file or plain per file.
    format: Option<FormatName>,
    /// Where to start in the files found at the very first start (no positions yet).
    start_at: Option<StartAt>,
    /// How often the globs are expanded again; inotify only makes it sooner.
    rescan_interval: Option<HumanDuration>,
    /// Longer lines are cut to this size and marked `truncated = "true"`.
    max_line_size: Option<ByteSize>,
    /// Set to false to leave out the `pod_uid` label (one stream per pod
    /// restart is more streams than some Loki limits allow).
    pod_uid_label: Option<bool>,
    /// Labels added to every stream of this receiver.
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Joins continuation lines (stack traces) to the line that starts them.
    multiline: Option<RawMultiline>,
}

#[derive(Deserialize)]
struct RawMultiline {
    /// A regex matching the first line of an entry.
    start: String,
    /// How long a joined entry waits for its next line before it is sent.
    timeout: Option<HumanDuration>,
    /// Lines after which a joined entry is sent even without a new start.
    max_lines: Option<usize>,
}

/// How a file's lines are framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatName {
    /// Detected per file from its first line.
    Auto,
    /// containerd / CRI-O: `<RFC3339Nano> <stdout|stderr> <P|F> <line>`.
    Cri,
    /// Docker's json-file driver: `{"log":"…\n","stream":"stdout","time":"…"}`.
    Docker,
    /// One entry per line, timestamped when read.
    Plain,
}

/// Where tailing starts in files found at the very first start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// Skip what is there: a new node agent does not replay days of history.
    End,
    /// Read everything that is there.
    Beginning,
}

/// A checked `[receivers.pod_logs.NAME]`.
#[derive(Clone, Debug)]
pub struct PodLogsConfig {
    pub include: Vec<String>,
    pub exclude: Vec<glob::Pattern>,
    pub format: FormatName,
    pub start_at: StartAt,
    pub rescan_interval: std::time::Duration,
    pub max_line_size: usize,
    pub pod_uid_label: bool,
    pub labels: BTreeMap<String, String>,
    pub multiline: Option<MultilineConfig>,
}

/// A checked `multiline = { … }`.
#[derive(Clone, Debug)]
pub struct MultilineConfig {
    pub start: Regex,
    pub timeout: std::time::Duration,
    pub max_lines: usize,
}

impl PartialEq for PodLogsConfig {
    fn eq(&self, other: &Self) -> bool {
        let multiline = |m: &Option<MultilineConfig>| {
            m.as_ref()
                .map(|m| (m.start.as_str().to_string(), m.timeout, m.max_lines))
        };
        self.include == other.include
            && self.exclude == other.exclude
            && self.format == other.format
            && self.start_at == other.start_at
            && self.rescan_interval == other.rescan_interval
            && self.max_line_size == other.max_line_size
            && self.pod_uid_label == other.pod_uid_label
            && self.labels == other.labels
            && multiline(&self.multiline) == multiline(&other.multiline)
    }
}

/// kubelet's layout: `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`.
pub const DEFAULT_INCLUDE: &str = "/var/log/pods/*/*/*.log";

/// Largest `max_line_size`: a line is held whole in memory before it is sent.
const MAX_LINE_SIZE_LIMIT: u64 = 16 << 20;

impl Validate for RawPodLogsConfig {
    type Valid = PodLogsConfig;

    fn validate(self) -> Result<PodLogsConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let include = self
            .include
            .unwrap_or_else(|| vec![DEFAULT_INCLUDE.to_string()]);
        if include.is_empty() {
            errors.push(FieldError::new("include", "list at least one glob"));
        }
        for (i, pattern) in include.iter().enumerate() {
            if let Err(e) = glob::Pattern::new(pattern) {
                errors.push(FieldError::new(
                    format!("include.{i}"),
                    format!("not a glob: {e}"),
                ));
            } else if !pattern.starts_with('/') {
                errors.push(FieldError::new(
                    format!("include.{i}"),
                    "must be an absolute path",
                ));
            }
        }
        let mut exclude = Vec::new();
        for (i, pattern) in self.exclude.iter().enumerate() {
            match glob::Pattern::new(pattern) {
                Ok(p) => exclude.push(p),
                Err(e) => errors.push(FieldError::new(
                    format!("exclude.{i}"),
                    format!("not a glob: {e}"),
                )),
            }
        }
        let rescan_interval = self
            .rescan_interval
            .map_or(std::time::Duration::from_secs(5), |d| d.get());
        if rescan_interval < std::time::Duration::from_millis(10) {
            errors.push(FieldError::new("rescan_interval", "must be at least 10ms"));
        }
        let max_line_size = self.max_line_size.map_or(256 * 1024, |b| b.get());
        if !(64..=MAX_LINE_SIZE_LIMIT).contains(&max_line_size) {
            errors.push(FieldError::new(
                "max_line_size",
                "must be between 64B and 16MiB",
            ));
        }
        for name in self.labels.keys() {
            if !is_label_name(name) {
                errors.push(FieldError::new(
                    format!("labels.{name}"),
                    "not a label name (letters, digits and _, not starting with a digit)",
                ));
            }
        }
        let multiline = self.multiline.and_then(|raw| {
            let start = match Regex::new(&raw.start) {
                Ok(re) => Some(re),
                Err(e) => {
                    errors.push(FieldError::new(
                        "multiline.start",
                        format!("not a regex: {e}"),
                    ));
                    None
                }
            };
            let timeout = raw
                .timeout
                .map_or(std::time::Duration::from_millis(500), |d| d.get());
            if timeout.is_zero() {
                errors.push(FieldError::new("multiline.timeout", "must be more than 0"));
            }
            let max_lines = raw.max_lines.unwrap_or(1000);
            if max_lines < 2 {
                errors.push(FieldError::new("multiline.max_lines", "must be at least 2"));
            }
            start.map(|start| MultilineConfig {
                start,
                timeout,
                max_lines,
            })
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(PodLogsConfig {
            include,
            exclude,
            format: self.format.unwrap_or(FormatName::Auto),
            start_at: self.start_at.unwrap_or(StartAt::End),
            rescan_interval,
            max_line_size: max_line_size as usize,
            pod_uid_label: self.pod_uid_label.unwrap_or(true),
            labels: self.labels,
            multiline,
        })
    }
}
