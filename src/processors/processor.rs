//! Processors built: each once per topology, shared by the pipelines that
//! run it, and run inline in a pipeline's task.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{ProcessorConfig, k8s_attributes, redact, tenant};
use crate::config::ComponentId;
use crate::delivery::Batch;
use crate::k8s::PodCache;
use crate::signal::Fields;
use crate::telemetry::Telemetry;

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
pub struct Processors {
    built: BTreeMap<ComponentId, Processor>,
    /// The process's pod cache, for `k8s_attributes` with `source = "api"`.
    pods: Option<PodCache>,
}

impl Processors {
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
