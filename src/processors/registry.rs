//! The processors ferro has: one line per type in [`ProcessorConfig`], and
//! what the plan asks of a processor (its signals, whether it reads the pod
//! cache, whether it must run before batching).

use super::{batch, k8s_attributes, redact, tenant};

use crate::config::ComponentId;
use crate::config::document::{Document, Value};
use crate::config::keys::{TypeKeys, keys};
use crate::k8s::{NamespaceKeys, PodCacheUse};
use crate::signal::Signal;

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
    /// Every processor type, as the config names it, with the keys its table
    /// accepts (see [`crate::config::keys`]): what the docs test checks
    /// each type's page against.
    pub const TYPES: &[TypeKeys] = &[
        ("batch", keys::<batch::RawBatchConfig>),
        ("redact", keys::<redact::RawRedactConfig>),
        (
            "k8s_attributes",
            keys::<k8s_attributes::RawK8sAttributesConfig>,
        ),
        ("tenant", keys::<tenant::RawTenantConfig>),
    ];

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
