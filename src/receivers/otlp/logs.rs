//! OTLP logs → Loki streams, the way Loki 3's own OTLP endpoint
//! (`/otlp/v1/logs`) maps them with its default settings, so that a stream
//! looks the same whether an application's logs reached Loki directly or
//! went through ferro:
//!
//! - stream labels: the resource attributes listed in `resource_labels`
//!   (Loki's `default_resource_attributes_as_index_labels` unless configured),
//!   with normalized names (`service.name` → `service_name`). A resource
//!   without a `service.name` gets `service_name` from the first of those
//!   labels that Loki's `discover_service_name` list names
//!   (`k8s_container_name`, `container_name`, `k8s_job_name`, …), else
//!   `service_name="unknown_service"`;
//! - structured metadata, in Loki's order: the record's attributes, then
//!   `observed_timestamp` (when both times are set), `severity_number`,
//!   `severity_text`, `dropped_attributes_count`, `flags`, `trace_id` and
//!   `span_id` (hex), each only when set; then the resource attributes that
//!   are not labels; then the scope's attributes, `scope_name`,
//!   `scope_version` and `scope_dropped_attributes_count`. Names are
//!   normalized like label names; map values are flattened
//!   (`http` = `{method: GET}` → `http_method="GET"`); other values are
//!   rendered as pcommon's `AsString` does (`values.rs`). `event_name` is not
//!   carried, as Loki does not carry it;
//! - `detected_level`, appended to the structured metadata the way Loki's
//!   distributor does on ingestion (`discover_log_levels`, on by default):
//!   from a `level`-like label or metadata field if there is one (Loki's
//!   default `log_level_fields`), else from `severity_number` (1–4 `trace`,
//!   5–8 `debug`, 9–12 `info`, 13–16 `warn`, 17–20 `error`, 21–24 `fatal`);
//! - line: the body; a string as is, anything else by `AsString` (JSON for
//!   maps and arrays, base64 for bytes); no body is an empty line;
//! - timestamp: `time_unix_nano`, else `observed_time_unix_nano`, else the
//!   time the request arrived;
//! - the entries of one label set form one stream; streams come in the order
//!   first met, and a stream's entries oldest first (a stable sort, so equal
//!   timestamps keep the request's order).
//!
//! Sources: Loki's `pkg/loghttp/push/otlp.go` and `otlp_config.go` (the
//! mapping), `pkg/distributor/field_detection.go` and
//! `pkg/validation/limits.go` (levels, service name discovery), and its docs,
//! "Ingesting logs to Loki using OpenTelemetry Collector".
//!
//! Departures, each where Loki's own behaviour cannot be carried through a
//! collector:
//!
//! - what makes Loki refuse a whole request rejects only the records
//!   concerned, counted and reported as partial success: an attribute key
//!   with no valid label name (empty, or nothing but characters that become
//!   `_`) and a trace or span id of the wrong length. So does a timestamp
//!   after the year 2262, which Loki wraps to a negative time and then
//!   refuses as too old;
//! - Loki guesses a level from the line's content (JSON, logfmt, keywords)
//!   when neither a level field nor a severity number gives one; ferro adds
//!   no `detected_level` then, and Loki makes the same guess on ingestion.

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

use super::rejections::Rejections;
use super::values;
use crate::signal::logs::{Entry, Stream};
use crate::signal::names::{LabelNamer, normalize_label_name};
use crate::signal::{Labels, LabelsBuilder, Logs};

/// Loki's `default_resource_attributes_as_index_labels`.
pub const DEFAULT_RESOURCE_LABELS: &[&str] = &[
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// Loki's default `discover_service_name`: without a `service.name`, the
/// first resource label (in attribute order) named here gives `service_name`.
const DISCOVER_SERVICE_NAME: &[&str] = &[
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

/// Loki's default `log_level_fields`: labels or metadata that give a level.
const LEVEL_FIELDS: &[&str] = &[
    "level", "LEVEL", "Level", "Severity", "severity", "SEVERITY", "lvl", "LVL", "Lvl",
];

const SERVICE_NAME_ATTRIBUTE: &str = "service.name";
const SERVICE_NAME_LABEL: &str = "service_name";
const UNKNOWN_SERVICE: &str = "unknown_service";
const DETECTED_LEVEL: &str = "detected_level";
const SEVERITY_NUMBER: &str = "severity_number";

/// Rejection reason: an attribute key Loki cannot name.
pub const REASON_INVALID_ATTRIBUTE: &str = "invalid_attribute";
/// Rejection reason: a trace or span id of the wrong length.
pub const REASON_INVALID_ID: &str = "invalid_id";
/// Rejection reason: a timestamp beyond what Loki stores (after 2262).
pub const REASON_INVALID_TIMESTAMP: &str = "invalid_timestamp";

/// How OTLP logs become streams: the receiver's `[logs]` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct LogsConversion {
    /// Resource attribute keys (as sent, e.g. `service.name`) that become
    /// stream labels.
    resource_labels: Vec<String>,
}

impl Default for LogsConversion {
    fn default() -> Self {
        Self::with_resource_labels(
            DEFAULT_RESOURCE_LABELS
                .iter()
                .map(ToString::to_string)
                .collect(),
        )
    }
}

impl LogsConversion {
    /// A conversion labelling streams with these resource attributes (checked
    /// by the config: non-empty, each with a valid label name).
    pub fn with_resource_labels(resource_labels: Vec<String>) -> Self {
        Self { resource_labels }
    }

    pub fn resource_labels(&self) -> &[String] {
        &self.resource_labels
    }

    fn is_label(&self, key: &str) -> bool {
        self.resource_labels.iter().any(|k| k == key)
    }
}

/// What one request became.
#[derive(Debug, Default)]
pub struct ConvertedLogs {
    /// The streams.
    pub logs: Logs,
    /// OTLP log records not converted.
    pub rejected_records: u64,
    /// The rejected records by reason, in the order the reasons were first met.
    pub rejections: Vec<(&'static str, u64)>,
    /// For the OTLP `partial_success` answer; empty if nothing was rejected.
    pub error_message: String,
}

/// Converts an OTLP logs request to Loki streams. Never fails as a whole:
/// what cannot be converted is counted in the answer.
pub fn convert(request: ExportLogsServiceRequest, config: &LogsConversion) -> ConvertedLogs {
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    convert_at(request, config, now_ns)
}

/// [`convert`], with the arrival time given.
fn convert_at(
    request: ExportLogsServiceRequest,
    config: &LogsConversion,
    now_ns: u64,
) -> ConvertedLogs {
    let mut converter = Converter {
        config,
        now_ns,
        streams: Vec::new(),
        index: HashMap::new(),
        rejections: Rejections::default(),
    };
    for resource_logs in request.resource_logs {
        converter.resource(resource_logs);
    }
    converter.finish()
}

struct Converter<'c> {
    config: &'c LogsConversion,
    now_ns: u64,
    streams: Vec<Stream>,
    /// Where each label set's stream is.
    index: HashMap<Labels, usize>,
    rejections: Rejections,
}

/// An attribute key with no label name (with its prefix, for a map entry).
struct BadKey {
    key: String,
}

impl Converter<'_> {
    fn resource(&mut self, resource_logs: ResourceLogs) {
        let records = resource_logs
            .scope_logs
            .iter()
            .map(|s| s.log_records.len() as u64)
            .sum::<u64>();
        if records == 0 {
            return;
        }
        let attributes = resource_logs
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default();
        let (labels, metadata) = match self.resource_labels(attributes) {
            Ok(split) => split,
            Err(BadKey { key }) => {
                self.rejections.add(
                    REASON_INVALID_ATTRIBUTE,
                    records,
                    format!("resource attribute key {key:?} has no valid label name"),
                );
                return;
            }
        };
        // Every record of a resource lands in the resource's stream.
        let stream = self.stream_index(labels);
        for scope_logs in resource_logs.scope_logs {
            self.scope(stream, scope_logs, &metadata);
        }
    }

    /// Splits resource attributes into stream labels and structured metadata.
    fn resource_labels(
        &self,
        attributes: Vec<KeyValue>,
    ) -> Result<(Labels, Vec<(String, String)>), BadKey> {
        let mut has_service_name = attributes
            .iter()
            .find(|kv| kv.key == SERVICE_NAME_ATTRIBUTE)
            .is_some_and(|kv| !values::value_string(kv.value.as_ref()).is_empty());
        let mut labels = LabelsBuilder::new();
        let mut metadata = Vec::new();
        let mut pairs = Vec::new();
        for kv in attributes {
            if !self.config.is_label(&kv.key) {
                flatten(kv.key, kv.value, None, &mut metadata)?;
                continue;
            }
            pairs.clear();
            flatten(kv.key, kv.value, None, &mut pairs)?;
            for (name, value) in &pairs {
                labels.set(name, value);
                if !has_service_name && DISCOVER_SERVICE_NAME.contains(&name.as_str()) {
                    labels.set(SERVICE_NAME_LABEL, value);
                    has_service_name = true;
                }
            }
        }
        if !has_service_name {
            labels.set(SERVICE_NAME_LABEL, UNKNOWN_SERVICE);
        }
        Ok((labels.labels(), metadata))
    }

    fn scope(
        &mut self,
        stream: usize,
        scope_logs: ScopeLogs,
        resource_metadata: &[(String, String)],
    ) {
        let records = scope_logs.log_records.len() as u64;
        let scope_metadata = match scope_metadata(scope_logs.scope) {
            Ok(metadata) => metadata,
            Err(BadKey { key }) => {
                self.rejections.add(
                    REASON_INVALID_ATTRIBUTE,
                    records,
                    format!("scope attribute key {key:?} has no valid label name"),
                );
                return;
            }
        };
        for record in scope_logs.log_records {
            match self.entry(stream, record, resource_metadata, &scope_metadata) {
                Ok(entry) => self.streams[stream].entries.push(entry),
                Err((reason, problem)) => self.rejections.add(reason, 1, problem),
            }
        }
    }

    /// One record as an entry of `stream`, or why it cannot be one.
    fn entry(
        &self,
        stream: usize,
        record: LogRecord,
        resource_metadata: &[(String, String)],
        scope_metadata: &[(String, String)],
    ) -> Result<Entry, (&'static str, String)> {
        let timestamp = match record.time_unix_nano {
            0 => match record.observed_time_unix_nano {
                0 => self.now_ns,
                observed => observed,
            },
            time => time,
        };
        let timestamp_ns = i64::try_from(timestamp).map_err(|_| {
            (
                REASON_INVALID_TIMESTAMP,
                "timestamp is after the year 2262".to_string(),
            )
        })?;
        let trace_id = hex_id(&record.trace_id, 16).map_err(|len| {
            (
                REASON_INVALID_ID,
                format!("trace_id has {len} bytes, not 16"),
            )
        })?;
        let span_id = hex_id(&record.span_id, 8)
            .map_err(|len| (REASON_INVALID_ID, format!("span_id has {len} bytes, not 8")))?;

        let mut metadata = Vec::with_capacity(
            record.attributes.len() + 9 + resource_metadata.len() + scope_metadata.len(),
        );
        for kv in record.attributes {
            flatten(kv.key, kv.value, None, &mut metadata).map_err(|BadKey { key }| {
                (
                    REASON_INVALID_ATTRIBUTE,
                    format!("log attribute key {key:?} has no valid label name"),
                )
            })?;
        }
        if record.time_unix_nano != 0 && record.observed_time_unix_nano != 0 {
            // Loki writes Go's int64 of the time, wrapping as Go does.
            let observed = record.observed_time_unix_nano as i64;
            metadata.push(("observed_timestamp".into(), observed.to_string()));
        }
        if record.severity_number != 0 {
            metadata.push((SEVERITY_NUMBER.into(), record.severity_number.to_string()));
        }
        if !record.severity_text.is_empty() {
            metadata.push(("severity_text".into(), record.severity_text));
        }
        if record.dropped_attributes_count != 0 {
            let count = record.dropped_attributes_count.to_string();
            metadata.push(("dropped_attributes_count".into(), count));
        }
        if record.flags != 0 {
            metadata.push(("flags".into(), record.flags.to_string()));
        }
        if let Some(id) = trace_id {
            metadata.push(("trace_id".into(), id));
        }
        if let Some(id) = span_id {
            metadata.push(("span_id".into(), id));
        }
        metadata.extend_from_slice(resource_metadata);
        metadata.extend_from_slice(scope_metadata);
        add_detected_level(&self.streams[stream].labels, &mut metadata);

        Ok(Entry {
            timestamp_ns,
            line: Bytes::from(into_string(record.body)),
            metadata,
        })
    }

    fn stream_index(&mut self, labels: Labels) -> usize {
        if let Some(&index) = self.index.get(&labels) {
            return index;
        }
        let index = self.streams.len();
        self.index.insert(labels.clone(), index);
        self.streams.push(Stream::new(labels));
        index
    }

    fn finish(mut self) -> ConvertedLogs {
        // A resource whose records were all rejected leaves an empty stream.
        self.streams.retain(|s| !s.entries.is_empty());
        for stream in &mut self.streams {
            // Streams are oldest first; OTLP records need not be.
            if !stream.entries.is_sorted_by_key(|e| e.timestamp_ns) {
                stream.entries.sort_by_key(|e| e.timestamp_ns);
            }
        }
        let (rejected_records, rejections, error_message) =
            self.rejections.finish("log record", "record");
        ConvertedLogs {
            logs: Logs::new(self.streams),
            rejected_records,
            rejections,
            error_message,
        }
    }
}

/// The structured metadata every record of a scope carries.
fn scope_metadata(scope: Option<InstrumentationScope>) -> Result<Vec<(String, String)>, BadKey> {
    let Some(scope) = scope else {
        return Ok(Vec::new());
    };
    let mut metadata = Vec::with_capacity(scope.attributes.len() + 3);
    for kv in scope.attributes {
        flatten(kv.key, kv.value, None, &mut metadata)?;
    }
    if !scope.name.is_empty() {
        metadata.push(("scope_name".into(), scope.name));
    }
    if !scope.version.is_empty() {
        metadata.push(("scope_version".into(), scope.version));
    }
    if scope.dropped_attributes_count != 0 {
        let count = scope.dropped_attributes_count.to_string();
        metadata.push(("scope_dropped_attributes_count".into(), count));
    }
    Ok(metadata)
}

/// Appends the pairs one attribute becomes: itself under its normalized
/// name, or, for a map, each of its entries under `name_key`, recursively (an
/// empty map becomes nothing).
fn flatten(
    key: String,
    value: Option<AnyValue>,
    prefix: Option<&str>,
    out: &mut Vec<(String, String)>,
) -> Result<(), BadKey> {
    let key = match prefix {
        Some(prefix) => format!("{prefix}_{key}"),
        None => key,
    };
    let name = match normalize_label_name(&key, LabelNamer::Loki) {
        None => return Err(BadKey { key }),
        Some(Cow::Owned(name)) => name,
        Some(Cow::Borrowed(_)) => key,
    };
    match value {
        Some(AnyValue {
            value: Some(any_value::Value::KvlistValue(map)),
        }) => {
            for kv in map.values {
                flatten(kv.key, kv.value, Some(&name), out)?;
            }
        }
        value => out.push((name, into_string(value))),
    }
    Ok(())
}

/// The label name Loki gives an attribute key (otlptranslator's
/// `LabelNamer`): characters other than ASCII letters and digits become `_`,
/// a leading digit gets `key_` before it and a single leading `_` gets `key`.
/// `None` for an empty key or one that becomes nothing but underscores
/// (Loki refuses both).
pub(crate) fn label_name(key: &str) -> Option<String> {
    normalize_label_name(key, LabelNamer::Loki).map(Cow::into_owned)
}

/// A value as text, moving a string out rather than copying it.
fn into_string(value: Option<AnyValue>) -> String {
    match value {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(s)),
        }) => s,
        other => values::value_string(other.as_ref()),
    }
}

/// An id as hex: `None` when absent or all zero (OTLP's "no id"), `Err` with
/// its length when it is not `len` bytes.
fn hex_id(id: &[u8], len: usize) -> Result<Option<String>, usize> {
    if id.is_empty() {
        return Ok(None);
    }
    if id.len() != len {
        return Err(id.len());
    }
    Ok(id.iter().any(|&b| b != 0).then(|| hex::encode(id)))
}

/// Adds `detected_level` as Loki's distributor does: an existing one is
/// normalized; otherwise the first `level`-like stream label, else metadata
/// field, else `severity_number`, gives it. Without any of them Loki reads
/// the line, which is left to Loki.
fn add_detected_level(labels: &Labels, metadata: &mut Vec<(String, String)>) {
    if let Some((_, level)) = metadata.iter_mut().find(|(n, _)| n == DETECTED_LEVEL) {
        if let Some(known) = known_level(level) {
            *level = known.to_string();
        }
        return;
    }
    let field = LEVEL_FIELDS
        .iter()
        .find_map(|name| labels.get(name))
        .or_else(|| {
            LEVEL_FIELDS.iter().find_map(|name| {
                metadata
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            })
        });
    let level = match field {
        Some(value) => known_level(value).unwrap_or(value).to_string(),
        None => match metadata.iter().find(|(n, _)| n == SEVERITY_NUMBER) {
            Some((_, number)) => severity_level(number).to_string(),
            None => return,
        },
    };
    // An empty level field gives no level (and stops the search), as in Loki.
    if !level.is_empty() {
        metadata.push((DETECTED_LEVEL.into(), level));
    }
}

/// Loki's spelling of a level written another way (`WARNING` → `warn`).
fn known_level(value: &str) -> Option<&'static str> {
    const SPELLINGS: &[(&str, &[&str])] = &[
        ("trace", &["trace", "trc"]),
        ("debug", &["debug", "dbg"]),
        ("info", &["info", "inf", "information"]),
        ("warn", &["warn", "wrn", "warning"]),
        ("error", &["error", "err"]),
        ("critical", &["critical"]),
        ("fatal", &["fatal"]),
    ];
    SPELLINGS
        .iter()
        .find(|(_, spellings)| spellings.iter().any(|s| value.eq_ignore_ascii_case(s)))
        .map(|(level, _)| *level)
}

/// The level of an OTLP severity number (the OTel log data model's ranges).
fn severity_level(number: &str) -> &'static str {
    // Loki reads anything but an integer as `info`.
    let Ok(number) = number.parse::<i64>() else {
        return "info";
    };
    match number {
        0 => "unknown",
        ..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => "unknown",
    }
}
