//! A pipeline resolved: its receivers, its stages in order (the default
//! redaction first unless it says `redact = false`, at most one batch) and
//! its exporters, each checked to carry the pipeline's signal.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use crate::config::document::Document;
use crate::config::{ComponentId, FieldError, Validate};
use crate::exporters::ExporterConfig;
use crate::processors::batch::BatchConfig;
use crate::processors::{DEFAULT_REDACT, ProcessorConfig};
use crate::receivers::ReceiverConfig;
use crate::signal::Signal;

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

impl Stage {
    fn is_redaction(&self) -> bool {
        matches!(self, Stage::Process(_, ProcessorConfig::Redact(_)))
    }
}

#[derive(Deserialize)]
pub(super) struct RawPipeline {
    pub receivers: Vec<String>,
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

/// Every component name the config declares, valid or not: a reference to an
/// invalid component is not reported again as undefined.
#[derive(Default)]
pub(super) struct Declared {
    pub receivers: BTreeSet<ComponentId>,
    pub processors: BTreeSet<ComponentId>,
    pub exporters: BTreeSet<ComponentId>,
}

/// The components a pipeline may name.
pub(super) struct Known<'k> {
    pub receivers: &'k BTreeMap<ComponentId, ReceiverConfig>,
    pub processors: &'k BTreeMap<ComponentId, ProcessorConfig>,
    pub exporters: &'k BTreeMap<ComponentId, ExporterConfig>,
    pub declared: &'k Declared,
}

/// Where a pipeline's parts are written, for error lines.
pub(super) struct ListSpans {
    pub pipeline: Range<usize>,
    pub receivers: Option<Range<usize>>,
    pub processors: Option<Range<usize>>,
    pub exporters: Option<Range<usize>>,
}

/// Where one of a pipeline's lists is reported.
struct At<'d, 'a> {
    doc: &'d mut Document<'a>,
    path: String,
    span: Range<usize>,
}

impl At<'_, '_> {
    fn push(&mut self, message: impl Into<String>) {
        self.doc
            .push(self.path.clone(), Some(self.span.clone()), message);
    }
}

impl Known<'_> {
    /// Resolves pipeline `name`, recording its errors; `None` if it has any.
    pub fn resolve(
        &self,
        doc: &mut Document<'_>,
        path: &str,
        spans: &ListSpans,
        name: &str,
        raw: RawPipeline,
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
        let place = |list: &str, span: &Option<Range<usize>>| {
            (
                format!("{path}.{list}"),
                span.clone().unwrap_or(spans.pipeline.clone()),
            )
        };
        let (list, span) = place("receivers", &spans.receivers);
        let receivers = self.receivers(
            &mut At {
                doc,
                path: list,
                span,
            },
            &raw.receivers,
            signal,
        );
        let (list, span) = place("processors", &spans.processors);
        let stages = self.stages(
            &mut At {
                doc,
                path: list,
                span,
            },
            &raw,
            signal,
        );
        let (list, span) = place("exporters", &spans.exporters);
        let exporters = self.exporters(
            &mut At {
                doc,
                path: list,
                span,
            },
            &raw.exporters,
            signal,
        );
        if doc.errors.len() > errors_before {
            return None;
        }
        Some(PipelineConfig {
            name: name.to_string(),
            signal,
            receivers,
            redacted: stages.iter().any(Stage::is_redaction),
            stages,
            exporters,
        })
    }

    fn receivers(&self, at: &mut At, references: &[String], signal: Signal) -> Vec<ComponentId> {
        let mut ids = Vec::new();
        for reference in references {
            let id = ComponentId::parse(reference);
            match self.receivers.get(&id) {
                None if self.declared.receivers.contains(&id) => {}
                None => at.push(format!("receiver `{reference}` is not defined")),
                Some(r) if !r.signals().contains(&signal) => at.push(format!(
                    "receiver `{reference}` cannot carry {signal} (it carries {})",
                    list(r.signals())
                )),
                Some(_) if ids.contains(&id) => {
                    at.push(format!("receiver `{reference}` is listed twice"))
                }
                Some(_) => ids.push(id),
            }
        }
        ids
    }

    fn stages(&self, at: &mut At, raw: &RawPipeline, signal: Signal) -> Vec<Stage> {
        let mut stages: Vec<Stage> = Vec::new();
        for reference in &raw.processors {
            let id = ComponentId::parse(reference);
            let config = match self.processors.get(&id) {
                Some(config) => config.clone(),
                None if self.declared.processors.contains(&id) => continue,
                None => match ProcessorConfig::implicit(&id) {
                    Some(config) => config,
                    None => {
                        at.push(format!("processor `{reference}` is not defined"));
                        continue;
                    }
                },
            };
            if !config.signals().contains(&signal) {
                at.push(format!("processor `{reference}` cannot work on {signal}"));
                continue;
            }
            let batched = stages.iter().any(|s| matches!(s, Stage::Batch(_)));
            match config {
                ProcessorConfig::Batch(_) if batched => {
                    at.push("a pipeline has at most one batch stage")
                }
                ProcessorConfig::Batch(batch) => stages.push(Stage::Batch(batch)),
                ProcessorConfig::Redact(_) if raw.redact == Some(false) => at.push(format!(
                    "processor `{reference}` redacts, but the pipeline says `redact = false`"
                )),
                config => match config.must_precede_batch() {
                    Some(why) if batched => at.push(format!(
                        "processor `{reference}` {why}: list it before `batch`, which mixes data from many clients"
                    )),
                    _ => stages.push(Stage::Process(id, config)),
                },
            }
        }
        // Sanitize first: a pipeline that names no redaction gets the default
        // one (`[processors.redact.default]` if configured) before anything else.
        if raw.redact != Some(false) && !stages.iter().any(Stage::is_redaction) {
            let id = ComponentId::new(DEFAULT_REDACT.0, DEFAULT_REDACT.1);
            let config = self
                .processors
                .get(&id)
                .cloned()
                .or_else(|| ProcessorConfig::implicit(&id));
            if let Some(config) = config {
                stages.insert(0, Stage::Process(id, config));
            }
        }
        stages
    }

    fn exporters(&self, at: &mut At, references: &[String], signal: Signal) -> Vec<ComponentId> {
        let mut ids = Vec::new();
        for reference in references {
            let id = ComponentId::parse(reference);
            match self.exporters.get(&id) {
                None if self.declared.exporters.contains(&id) => {}
                None => at.push(format!("exporter `{reference}` is not defined")),
                Some(e) if !e.signals().contains(&signal) => at.push(format!(
                    "exporter `{reference}` cannot carry {signal} (it carries {})",
                    list(e.signals())
                )),
                Some(_) if ids.contains(&id) => {
                    at.push(format!("exporter `{reference}` is listed twice"))
                }
                Some(_) => ids.push(id),
            }
        }
        ids
    }
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
