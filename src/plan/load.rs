//! The top-level [`Config`]: the document read section by section, every
//! error recorded, then the pipelines resolved against the components.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use toml::de::DeValue;

use super::globals::{RawGlobals, check_kubernetes, namespace_keys};
use super::pipelines::{Declared, Known, ListSpans, PipelineConfig, RawPipeline, Stage};
use crate::config::document::{self, Document};
use crate::config::sections::{components, quote_key, read_file};
use crate::config::{ByteSize, ComponentId, ConfigErrors, HumanDuration};
use crate::exporters::ExporterConfig;
use crate::k8s::KubernetesConfig;
use crate::processors::ProcessorConfig;
use crate::receivers::ReceiverConfig;
use crate::telemetry::{LogConfig, TelemetryConfig};

/// The config ferro runs when started without `-c`: useful on a laptop.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/local.toml");

/// A validated config: what `ferro validate` approves and `ferro run` builds.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Bytes of telemetry in flight across the whole process before receivers refuse.
    pub memory_limit: ByteSize,
    pub shutdown_timeout: HumanDuration,
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

impl Config {
    /// Reads and validates the file at `path`.
    pub fn from_file(path: &Path) -> Result<Config, ConfigErrors> {
        let text = read_file(path)?;
        Self::from_str(&text, &path.display().to_string())
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
                if let Some(p) = known.resolve(doc, &path, &spans, &name, raw) {
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
        kubernetes.watch_node = receivers.values().any(|r| r.watches_node());
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
