//! The config file: TOML in, a validated [`Config`] out.
//!
//! Layout: `[receivers.TYPE.NAME]`, `[processors.TYPE.NAME]`,
//! `[exporters.TYPE.NAME]`, `[pipelines.SIGNAL]` (or `[pipelines."SIGNAL/NAME"]`),
//! `[telemetry]`, `[log]` and a few top-level settings. Loading reports every
//! mistake at once with its dotted path and line (see [`document`]).

pub mod document;
pub mod env;
pub mod units;

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::DeValue;

pub use document::{ConfigError, ConfigErrors, FieldError, Validate};
pub use units::{ByteSize, Duration};

use crate::exporters::ExporterConfig;
use crate::k8s::{KubernetesConfig, RawKubernetesConfig};
use crate::processors::batch::BatchConfig;
use crate::processors::{DEFAULT_REDACT, ProcessorConfig};
use crate::receivers::ReceiverConfig;
use crate::signal::Signal;
use document::{Document, Value};

/// The largest config file ferro reads.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The config ferro runs when started without `-c`: useful on a laptop.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/local.toml");

/// Where a component lives in the config: `otlp.default` is
/// `[receivers.otlp.default]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId {
    pub type_name: String,
    pub name: String,
}

impl ComponentId {
    pub fn new(type_name: &str, name: &str) -> Self {
        Self {
            type_name: type_name.to_string(),
            name: name.to_string(),
        }
    }

    /// Parses `TYPE.NAME`; a bare `TYPE` means `TYPE.default`.
    pub fn parse(reference: &str) -> Self {
        match reference.split_once('.') {
            Some((type_name, name)) => Self::new(type_name, name),
            None => Self::new(reference, "default"),
        }
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.type_name, self.name)
    }
}

/// A validated config: what `ferro validate` approves and `ferro run` builds.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Bytes of telemetry in flight across the whole process before receivers refuse.
    pub memory_limit: ByteSize,
    pub shutdown_timeout: Duration,
    pub telemetry: TelemetryConfig,
    pub log: LogConfig,
    /// How the pod cache reaches the API server; `None` when nothing in
    /// the config reads pod metadata from it.
    pub kubernetes: Option<KubernetesConfig>,
    pub receivers: BTreeMap<ComponentId, ReceiverConfig>,
    pub processors: BTreeMap<ComponentId, ProcessorConfig>,
    pub exporters: BTreeMap<ComponentId, ExporterConfig>,
    pub pipelines: Vec<PipelineConfig>,
}

/// One pipeline: receivers → stages in config order → exporters, for one signal.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineConfig {
    /// `traces` or `traces/NAME`, as written in the config.
    pub name: String,
    pub signal: Signal,
    pub receivers: Vec<ComponentId>,
    pub stages: Vec<Stage>,
    pub exporters: Vec<ComponentId>,
    /// Whether the pipeline runs a redaction processor (`redact = false`
    /// turns the default off).
    pub redacted: bool,
}

/// A step of a pipeline between its receivers and its exporters.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// Groups items into batches by size and time (at most one per pipeline).
    Batch(BatchConfig),
    /// A processor that changes, enriches or filters what passes.
    Process(ComponentId, ProcessorConfig),
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// Address of ferro's own HTTP server (`/metrics`, `/-/healthy`, `/-/ready`).
    pub listen: SocketAddr,
    /// Set to false to run without the self-telemetry server.
    pub enabled: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8888)),
            enabled: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `info,ferro::exporters=debug`;
    /// `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The top-level settings other than the component sections.
#[derive(Deserialize)]
struct RawGlobals {
    data_dir: Option<PathBuf>,
    memory_limit: Option<ByteSize>,
    shutdown_timeout: Option<Duration>,
    #[serde(default)]
    telemetry: TelemetryConfig,
    #[serde(default)]
    log: LogConfig,
    kubernetes: Option<RawKubernetesConfig>,
}

struct Globals {
    data_dir: PathBuf,
    memory_limit: ByteSize,
    shutdown_timeout: Duration,
    telemetry: TelemetryConfig,
    log: LogConfig,
    kubernetes: Option<KubernetesConfig>,
}

impl Validate for RawGlobals {
    type Valid = Globals;
    fn validate(self) -> Result<Globals, Vec<FieldError>> {
        let mut errors = Vec::new();
        let memory_limit = self.memory_limit.unwrap_or(ByteSize::mib(256));
        if memory_limit.get() < 1 << 20 {
            errors.push(FieldError::new("memory_limit", "must be at least 1MiB"));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            errors.push(FieldError::new(
                "log.level",
                format!("not a log filter: {e}"),
            ));
        }
        let kubernetes = match self.kubernetes.map(Validate::validate) {
            None => None,
            Some(Ok(k)) => Some(k),
            Some(Err(found)) => {
                errors.extend(
                    found
                        .into_iter()
                        .map(|e| FieldError::new(format!("kubernetes.{}", e.field), e.message)),
                );
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Globals {
            kubernetes,
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from("/var/lib/ferro")),
            memory_limit,
            shutdown_timeout: self.shutdown_timeout.unwrap_or(Duration::from_secs(10)),
            telemetry: self.telemetry,
            log: self.log,
        })
    }
}

#[derive(Deserialize)]
struct RawPipeline {
    receivers: Vec<String>,
    #[serde(default)]
    processors: Vec<String>,
    exporters: Vec<String>,
    /// `false` turns off the redaction every pipeline otherwise runs first.
    redact: Option<bool>,
}

impl Validate for RawPipeline {
    type Valid = RawPipeline;
    fn validate(self) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.receivers.is_empty() {
            errors.push(FieldError::new(
                "receivers",
                "a pipeline needs at least one receiver",
            ));
        }
        if self.exporters.is_empty() {
            errors.push(FieldError::new(
                "exporters",
                "a pipeline needs at least one exporter",
            ));
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors)
        }
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn from_file(path: &Path) -> Result<Config, ConfigErrors> {
        let origin = path.display().to_string();
        let cannot = |message: String| ConfigErrors::whole_file(origin.clone(), message);
        // No config is this large: a file that is must not make ferro
        // spend its memory and time on it.
        let file = std::fs::File::open(path).map_err(|e| cannot(format!("cannot read: {e}")))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len > MAX_CONFIG_BYTES {
            return Err(cannot(format!(
                "the file is {} MiB; a config may be at most {} MiB",
                len >> 20,
                MAX_CONFIG_BYTES >> 20
            )));
        }
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(file, MAX_CONFIG_BYTES + 1),
            &mut text,
        )
        .map_err(|e| cannot(format!("cannot read: {e}")))?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(cannot(format!(
                "the file is larger than {} MiB, the most a config may be",
                MAX_CONFIG_BYTES >> 20
            )));
        }
        Self::from_str(&text, &origin)
    }

    /// The embedded default config.
    pub fn embedded() -> Result<Config, ConfigErrors> {
        Self::from_str(EMBEDDED_DEFAULT, "embedded config/local.toml")
    }

    /// Validates `text`, interpolating variables from the process environment.
    pub fn from_str(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
        Self::from_str_with_env(text, origin, &|name| std::env::var(name).ok())
    }

    pub fn from_str_with_env(
        text: &str,
        origin: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let (mut doc, root) = Document::parse(text, lookup);
        let config = root.and_then(|root| load(&mut doc, root));
        match config {
            Some(config) if doc.errors.is_empty() => Ok(config),
            _ => {
                let mut errors = doc.errors;
                errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
                Err(ConfigErrors {
                    origin: origin.to_string(),
                    errors,
                    more: doc.more_errors,
                })
            }
        }
    }

    /// One line per pipeline on how its data is redacted: what `ferro
    /// validate` prints and start-up logs, so that a pipeline with redaction
    /// off is never a surprise.
    pub fn redaction_notes(&self) -> Vec<String> {
        self.pipelines
            .iter()
            .map(|p| {
                let redactors: Vec<String> = p
                    .stages
                    .iter()
                    .filter_map(|s| match s {
                        Stage::Process(id, ProcessorConfig::Redact(_)) => Some(id.to_string()),
                        _ => None,
                    })
                    .collect();
                if redactors.is_empty() {
                    format!(
                        "pipeline {}: redaction is OFF (redact = false): secrets in its data leave the node",
                        p.name
                    )
                } else {
                    format!("pipeline {}: redacted by {}", p.name, redactors.join(", "))
                }
            })
            .collect()
    }

    /// A one-line description for `ferro validate` and the start-up log.
    pub fn summary(&self) -> String {
        let pipelines: Vec<&str> = self.pipelines.iter().map(|p| p.name.as_str()).collect();
        format!(
            "{} receiver(s), {} processor(s), {} exporter(s), pipelines: {}",
            self.receivers.len(),
            self.processors.len(),
            self.exporters.len(),
            if pipelines.is_empty() {
                "none".to_string()
            } else {
                pipelines.join(", ")
            }
        )
    }
}

/// Loads every section of the document, recording all errors; `None` if any.
fn load<'a>(doc: &mut Document<'a>, root: toml::Spanned<toml::de::DeTable<'a>>) -> Option<Config> {
    let root_span = root.span();
    let mut root = root.into_inner();
    let receivers_v = root.remove("receivers");
    let processors_v = root.remove("processors");
    let exporters_v = root.remove("exporters");
    let pipelines_v = root.remove("pipelines");
    let globals =
        doc.section::<RawGlobals>("", toml::Spanned::new(root_span, DeValue::Table(root)));

    let mut declared = Declared::default();
    let receivers = components(
        doc,
        "receivers",
        receivers_v,
        ReceiverConfig::parse,
        &mut declared.receivers,
    );
    let processors = components(
        doc,
        "processors",
        processors_v,
        ProcessorConfig::parse,
        &mut declared.processors,
    );
    let exporters = components(
        doc,
        "exporters",
        exporters_v,
        ExporterConfig::parse,
        &mut declared.exporters,
    );
    let known = Known {
        receivers: &receivers,
        processors: &processors,
        exporters: &exporters,
        declared: &declared,
    };

    let mut pipelines = Vec::new();
    let mut referenced_receivers = BTreeSet::new();
    match pipelines_v.map(|v| (v.span(), v.into_inner())) {
        None => {}
        Some((_, DeValue::Table(table))) => {
            for (key, value) in table {
                let name = key.get_ref().to_string();
                let path = format!("pipelines.{}", quote_key(&name));
                let spans = ListSpans {
                    pipeline: key.span(),
                    receivers: document::find(&value, &["receivers".into()]).map(|v| v.span()),
                    processors: document::find(&value, &["processors".into()]).map(|v| v.span()),
                    exporters: document::find(&value, &["exporters".into()]).map(|v| v.span()),
                };
                let Some(raw) = doc.section::<RawPipeline>(&path, value) else {
                    continue;
                };
                referenced_receivers.extend(raw.receivers.iter().map(|r| ComponentId::parse(r)));
                if let Some(p) = resolve_pipeline(doc, &path, &spans, &name, raw, &known) {
                    pipelines.push(p);
                }
            }
        }
        Some((span, _)) => doc.push(
            "pipelines".into(),
            Some(span),
            "must be a table of pipelines",
        ),
    }
    for id in receivers.keys() {
        if !referenced_receivers.contains(id) {
            doc.push(
                format!("receivers.{id}"),
                None,
                "is not used by any pipeline (remove it, or add it to a pipeline's receivers)",
            );
        }
    }

    let mut globals = globals?;
    check_kubernetes(doc, &globals, &processors, &receivers);
    if let Some(kubernetes) = &mut globals.kubernetes {
        kubernetes.namespaces = namespace_keys(&processors);
    }
    if !doc.errors.is_empty() {
        return None;
    }
    Some(Config {
        data_dir: globals.data_dir,
        memory_limit: globals.memory_limit,
        shutdown_timeout: globals.shutdown_timeout,
        telemetry: globals.telemetry,
        log: globals.log,
        kubernetes: globals.kubernetes,
        receivers,
        processors,
        exporters,
        pipelines,
    })
}

/// The namespace labels and annotations the `k8s_attributes` processors
/// copy; `None` (no namespace watch) when none does.
fn namespace_keys(
    processors: &BTreeMap<ComponentId, ProcessorConfig>,
) -> Option<crate::k8s::NamespaceKeys> {
    let mut keys = crate::k8s::NamespaceKeys::default();
    for config in processors.values() {
        if let ProcessorConfig::K8sAttributes(c) = config {
            keys.labels
                .extend(c.namespace_labels.iter().map(|copy| copy.key.clone()));
            keys.annotations
                .extend(c.namespace_annotations.iter().map(|copy| copy.key.clone()));
        }
    }
    (!keys.labels.is_empty() || !keys.annotations.is_empty()).then_some(keys)
}

/// Components that read the pod cache need `[kubernetes]` to say which
/// node's pods to watch.
fn check_kubernetes(
    doc: &mut Document<'_>,
    globals: &Globals,
    processors: &BTreeMap<ComponentId, ProcessorConfig>,
    receivers: &BTreeMap<ComponentId, ReceiverConfig>,
) {
    if globals.kubernetes.is_some() {
        return;
    }
    let hint = "needs a [kubernetes] section with node_name = \"${NODE_NAME}\" (NODE_NAME from the downward API's spec.nodeName)";
    for (id, config) in processors {
        if let ProcessorConfig::K8sAttributes(c) = config
            && c.source == crate::processors::k8s_attributes::Source::Api
        {
            doc.push(
                format!("processors.{id}"),
                None,
                format!("source = \"api\" {hint}, or use source = \"env\" in a sidecar"),
            );
        }
    }
    for (id, config) in receivers {
        if config.uses_pod_cache() {
            doc.push(
                format!("receivers.{id}"),
                None,
                format!("kubernetes_sd_configs {hint}"),
            );
        }
    }
}

fn quote_key(key: &str) -> String {
    if key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        format!("\"{key}\"")
    }
}

type ParseFn<'a, T> = fn(&str, &mut Document<'a>, &str, Value<'a>) -> Option<Option<T>>;

/// Reads `[KIND.TYPE.NAME]` tables through the kind's `parse` function.
fn components<'a, T>(
    doc: &mut Document<'a>,
    kind: &str,
    value: Option<Value<'a>>,
    parse: ParseFn<'a, T>,
    declared: &mut BTreeSet<ComponentId>,
) -> BTreeMap<ComponentId, T> {
    let mut out = BTreeMap::new();
    let Some(value) = value else { return out };
    let span = value.span();
    let DeValue::Table(types) = value.into_inner() else {
        doc.push(
            kind.to_string(),
            Some(span),
            format!("must be a table such as [{kind}.TYPE.NAME]"),
        );
        return out;
    };
    for (type_key, named) in types {
        let type_name = type_key.get_ref().to_string();
        let type_span = type_key.span();
        let named_span = named.span();
        let DeValue::Table(named) = named.into_inner() else {
            doc.push(
                format!("{kind}.{type_name}"),
                Some(named_span),
                format!("must be a table of named components such as [{kind}.{type_name}.NAME]"),
            );
            continue;
        };
        for (name_key, body) in named {
            let name = name_key.get_ref().to_string();
            let path = format!("{kind}.{type_name}.{name}");
            declared.insert(ComponentId::new(&type_name, &name));
            if !matches!(body.get_ref(), DeValue::Table(_)) {
                doc.push(
                    path,
                    Some(name_key.span()),
                    format!("must be a table: [{kind}.{type_name}.{name}]"),
                );
                continue;
            }
            match parse(&type_name, doc, &path, body) {
                None => {
                    doc.push(
                        format!("{kind}.{type_name}"),
                        Some(type_span.clone()),
                        format!("unknown {kind} type `{type_name}`"),
                    );
                    break;
                }
                Some(Some(config)) => {
                    out.insert(ComponentId::new(&type_name, &name), config);
                }
                Some(None) => {}
            }
        }
    }
    out
}

/// Every component name the config declares, valid or not: a reference to an
/// invalid component is not reported again as undefined.
#[derive(Default)]
struct Declared {
    receivers: BTreeSet<ComponentId>,
    processors: BTreeSet<ComponentId>,
    exporters: BTreeSet<ComponentId>,
}

struct Known<'k> {
    receivers: &'k BTreeMap<ComponentId, ReceiverConfig>,
    processors: &'k BTreeMap<ComponentId, ProcessorConfig>,
    exporters: &'k BTreeMap<ComponentId, ExporterConfig>,
    declared: &'k Declared,
}

/// Where a pipeline's parts are written, for error lines.
struct ListSpans {
    pipeline: Range<usize>,
    receivers: Option<Range<usize>>,
    processors: Option<Range<usize>>,
    exporters: Option<Range<usize>>,
}

fn resolve_pipeline(
    doc: &mut Document<'_>,
    path: &str,
    spans: &ListSpans,
    name: &str,
    raw: RawPipeline,
    known: &Known<'_>,
) -> Option<PipelineConfig> {
    let signal_name = name.split_once('/').map_or(name, |(signal, _)| signal);
    let Some(signal) = Signal::from_name(signal_name) else {
        doc.push(
            path.to_string(),
            Some(spans.pipeline.clone()),
            format!(
                "`{signal_name}` is not a signal (use traces, metrics, logs or profiles, optionally as \"traces/NAME\")"
            ),
        );
        return None;
    };
    let errors_before = doc.errors.len();
    let receivers_at = || spans.receivers.clone().or(Some(spans.pipeline.clone()));
    let processors_at = || spans.processors.clone().or(Some(spans.pipeline.clone()));
    let exporters_at = || spans.exporters.clone().or(Some(spans.pipeline.clone()));

    let mut receiver_ids = Vec::new();
    for reference in &raw.receivers {
        let id = ComponentId::parse(reference);
        let at = format!("{path}.receivers");
        match known.receivers.get(&id) {
            None if known.declared.receivers.contains(&id) => {}
            None => doc.push(
                at,
                receivers_at(),
                format!("receiver `{reference}` is not defined"),
            ),
            Some(r) if !r.signals().contains(&signal) => doc.push(
                at,
                receivers_at(),
                format!(
                    "receiver `{reference}` cannot carry {signal} (it carries {})",
                    list(r.signals())
                ),
            ),
            Some(_) if receiver_ids.contains(&id) => doc.push(
                at,
                receivers_at(),
                format!("receiver `{reference}` is listed twice"),
            ),
            Some(_) => receiver_ids.push(id),
        }
    }

    let mut stages = Vec::new();
    for reference in &raw.processors {
        let id = ComponentId::parse(reference);
        let at = format!("{path}.processors");
        let config = match known.processors.get(&id) {
            Some(config) => config.clone(),
            None if known.declared.processors.contains(&id) => continue,
            None => match ProcessorConfig::implicit(&id) {
                Some(config) => config,
                None => {
                    doc.push(
                        at,
                        processors_at(),
                        format!("processor `{reference}` is not defined"),
                    );
                    continue;
                }
            },
        };
        if !config.signals().contains(&signal) {
            doc.push(
                at,
                processors_at(),
                format!("processor `{reference}` cannot work on {signal}"),
            );
            continue;
        }
        match config {
            ProcessorConfig::Batch(batch) => {
                if stages.iter().any(|s| matches!(s, Stage::Batch(_))) {
                    doc.push(
                        at,
                        processors_at(),
                        "a pipeline has at most one batch stage",
                    );
                    continue;
                }
                stages.push(Stage::Batch(batch));
            }
            ProcessorConfig::K8sAttributes(c)
                if c.uses_peer() && stages.iter().any(|s| matches!(s, Stage::Batch(_))) =>
            {
                doc.push(
                    at,
                    processors_at(),
                    format!(
                        "processor `{reference}` finds pods by the sending client's address (associate has \"peer\"): list it before `batch`, which mixes data from many clients"
                    ),
                )
            }
            ProcessorConfig::Redact(_) if raw.redact == Some(false) => doc.push(
                at,
                processors_at(),
                format!("processor `{reference}` redacts, but the pipeline says `redact = false`"),
            ),
            config => stages.push(Stage::Process(id, config)),
        }
    }
    // Sanitize first: a pipeline that names no redaction gets the default
    // one (`[processors.redact.default]` if configured) before anything else.
    let names_redaction = stages
        .iter()
        .any(|s| matches!(s, Stage::Process(_, ProcessorConfig::Redact(_))));
    if raw.redact != Some(false) && !names_redaction {
        let id = ComponentId::new(DEFAULT_REDACT.0, DEFAULT_REDACT.1);
        let config = known
            .processors
            .get(&id)
            .cloned()
            .or_else(|| ProcessorConfig::implicit(&id));
        if let Some(config) = config {
            stages.insert(0, Stage::Process(id, config));
        }
    }

    let mut exporter_ids = Vec::new();
    for reference in &raw.exporters {
        let id = ComponentId::parse(reference);
        let at = format!("{path}.exporters");
        match known.exporters.get(&id) {
            None if known.declared.exporters.contains(&id) => {}
            None => doc.push(
                at,
                exporters_at(),
                format!("exporter `{reference}` is not defined"),
            ),
            Some(e) if !e.signals().contains(&signal) => doc.push(
                at,
                exporters_at(),
                format!(
                    "exporter `{reference}` cannot carry {signal} (it carries {})",
                    list(e.signals())
                ),
            ),
            Some(_) if exporter_ids.contains(&id) => doc.push(
                at,
                exporters_at(),
                format!("exporter `{reference}` is listed twice"),
            ),
            Some(_) => exporter_ids.push(id),
        }
    }
    if doc.errors.len() > errors_before {
        return None;
    }
    Some(PipelineConfig {
        name: name.to_string(),
        signal,
        receivers: receiver_ids,
        redacted: stages
            .iter()
            .any(|s| matches!(s, Stage::Process(_, ProcessorConfig::Redact(_)))),
        stages,
        exporters: exporter_ids,
    })
}

fn list(signals: &[Signal]) -> String {
    if signals.is_empty() {
        return "nothing yet".into();
    }
    signals
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
