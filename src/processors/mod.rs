//! Processors: the stages a pipeline runs between its receivers and exporters,
//! inline in the pipeline's task, in config order.
//!
//! Every processor but `batch` is a synchronous function over a batch of any
//! signal, reaching the data through [`crate::signal::Fields`]; `batch` holds
//! items across calls and is a stage the pipeline runner owns.

pub mod batch;
pub mod k8s_attributes;
pub mod redact;
pub mod tenant;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::ComponentId;
use crate::config::document::{Document, Value};
use crate::delivery::Batch;
use crate::k8s::{NamespaceKeys, PodCache, PodCacheUse};
use crate::signal::{Fields, Signal};
use crate::telemetry::Telemetry;

/// The processor every pipeline runs first unless it says `redact = false`.
pub const DEFAULT_REDACT: (&str, &str) = ("redact", "default");

/// A validated `[processors.TYPE.NAME]` section.
#[derive(Clone, Debug, PartialEq)]
pub enum ProcessorConfig {
    Batch(batch::BatchConfig),
    Redact(redact::RedactConfig),
    K8sAttributes(k8s_attributes::K8sAttributesConfig),
    Tenant(Box<tenant::TenantConfig>),
}

impl ProcessorConfig {
    /// Reads a `[processors.TYPE.NAME]` table; `None` for an unknown type.
    pub fn parse<'a>(
        type_name: &str,
        doc: &mut Document<'a>,
        path: &str,
        value: Value<'a>,
    ) -> Option<Option<Self>> {
        match type_name {
            "batch" => Some(
                doc.section::<batch::RawBatchConfig>(path, value)
                    .map(Self::Batch),
            ),
            "redact" => Some(
                doc.section::<redact::RawRedactConfig>(path, value)
                    .map(Self::Redact),
            ),
            "k8s_attributes" => Some(
                doc.section::<k8s_attributes::RawK8sAttributesConfig>(path, value)
                    .map(Self::K8sAttributes),
            ),
            "tenant" => Some(
                doc.section::<tenant::RawTenantConfig>(path, value)
                    .map(|c| Self::Tenant(Box::new(c))),
            ),
            _ => None,
        }
    }

    /// A processor a pipeline may name without configuring it: `batch` and
    /// `redact.default` with their defaults.
    pub fn implicit(id: &ComponentId) -> Option<Self> {
        match (id.type_name.as_str(), id.name.as_str()) {
            ("batch", "default") => Some(Self::Batch(batch::BatchConfig::default())),
            DEFAULT_REDACT => Some(Self::Redact(redact::RedactConfig::default())),
            _ => None,
        }
    }

    /// What in its config reads the process's pod cache, if anything.
    pub fn pod_cache_use(&self) -> Option<PodCacheUse> {
        match self {
            Self::K8sAttributes(c) if c.source == k8s_attributes::Source::Api => {
                Some(PodCacheUse {
                    setting: "source = \"api\"",
                    otherwise: Some("use source = \"env\" in a sidecar"),
                })
            }
            _ => None,
        }
    }

    /// Adds the namespace labels and annotations it copies: the pod cache
    /// then watches namespaces for them.
    pub fn namespace_keys(&self, keys: &mut NamespaceKeys) {
        if let Self::K8sAttributes(c) = self {
            keys.labels
                .extend(c.namespace_labels.iter().map(|copy| copy.key.clone()));
            keys.annotations
                .extend(c.namespace_annotations.iter().map(|copy| copy.key.clone()));
        }
    }

    /// Why it must run before a pipeline's `batch` stage, if it must: it
    /// reads something of each push that a batch of many pushes loses.
    pub fn must_precede_batch(&self) -> Option<&'static str> {
        match self {
            Self::K8sAttributes(c) if c.uses_peer() => {
                Some("finds pods by the sending client's address (associate has \"peer\")")
            }
            _ => None,
        }
    }

    pub fn signals(&self) -> &'static [Signal] {
        match self {
            Self::Batch(_) | Self::Redact(_) | Self::K8sAttributes(_) | Self::Tenant(_) => &[
                Signal::Traces,
                Signal::Metrics,
                Signal::Logs,
                Signal::Profiles,
            ],
        }
    }
}

/// A built processor, shared by the pipelines that run it.
#[derive(Clone)]
pub enum Processor {
    /// The redactor, and the private keys its pipeline's log streams are in
    /// the middle of (one per pipeline: each sees its streams in order).
    Redact(
        Arc<redact::Redactor>,
        Arc<std::sync::Mutex<redact::OpenKeys>>,
    ),
    K8sAttributes(Arc<k8s_attributes::K8sAttributes>),
    Tenant(Arc<tenant::TenantLimiter>),
    /// Panics on a batch of more than one item: a stand-in for a bug, to
    /// test that a pipeline survives one.
    #[cfg(test)]
    PanicOnMany,
}

impl Processor {
    /// Runs on `batch`, pushing what comes out (none, one or several
    /// batches) onto `out`.
    pub fn process<T: Fields>(&self, mut batch: Batch<T>, out: &mut Vec<Batch<T>>) {
        match self {
            Self::Redact(redactor, open_keys) => {
                // Only the pipeline's own task takes it.
                let mut open_keys = open_keys.lock().unwrap_or_else(|p| p.into_inner());
                redactor.process_stream(&mut batch, &mut open_keys);
                out.push(batch);
            }
            Self::K8sAttributes(enricher) => {
                enricher.process(&mut batch);
                out.push(batch);
            }
            Self::Tenant(limiter) => limiter.process(batch, out),
            #[cfg(test)]
            Self::PanicOnMany => {
                assert!(batch.items() <= 1, "a processor bug");
                out.push(batch);
            }
        }
    }

    /// This processor for one more pipeline: shared, but for what a
    /// pipeline keeps of its own.
    fn for_pipeline(&self) -> Self {
        match self {
            Self::Redact(redactor, _) => Self::Redact(redactor.clone(), Arc::default()),
            other => other.clone(),
        }
    }

    /// A tenant limiter the pipeline's push receivers must ask before they
    /// accept (`refuse = true`).
    pub fn admission(&self) -> Option<&Arc<tenant::TenantLimiter>> {
        match self {
            Self::Tenant(limiter) if limiter.refuses() => Some(limiter),
            Self::Tenant(_) | Self::Redact(..) | Self::K8sAttributes(_) => None,
            #[cfg(test)]
            Self::PanicOnMany => None,
        }
    }
}

impl Processor {
    /// Whether this processor reads the `X-Scope-OrgID` pushes come with:
    /// without one that does, receivers ignore the header.
    pub fn reads_org_id(&self) -> bool {
        matches!(self, Self::Tenant(limiter) if limiter.reads_org_id())
    }
}

/// Builds each processor a topology's pipelines name, once.
#[derive(Default)]
pub struct Built {
    built: BTreeMap<ComponentId, Processor>,
    /// The process's pod cache, for `k8s_attributes` with `source = "api"`.
    pods: Option<PodCache>,
}

impl Built {
    pub fn new(pods: Option<PodCache>) -> Self {
        Self {
            built: BTreeMap::new(),
            pods,
        }
    }

    /// The processor `id` with `config`, built on first use.
    pub fn get(
        &mut self,
        id: &ComponentId,
        config: &ProcessorConfig,
        telemetry: &Telemetry,
    ) -> Option<Processor> {
        if let Some(built) = self.built.get(id) {
            return Some(built.for_pipeline());
        }
        let built = match config {
            ProcessorConfig::Batch(_) => return None,
            ProcessorConfig::Redact(c) => Processor::Redact(
                Arc::new(redact::Redactor::new(id, c, telemetry)),
                Arc::default(),
            ),
            ProcessorConfig::K8sAttributes(c) => Processor::K8sAttributes(Arc::new(
                k8s_attributes::K8sAttributes::new(id, c, self.pods.clone(), telemetry),
            )),
            ProcessorConfig::Tenant(c) => {
                Processor::Tenant(Arc::new(tenant::TenantLimiter::new(id, c, telemetry)))
            }
        };
        self.built.insert(id.clone(), built.clone());
        Some(built)
    }
}
