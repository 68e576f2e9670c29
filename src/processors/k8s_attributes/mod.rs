//! Kubernetes attributes: finds the pod each group of records came from
//! and adds its namespace, name, uid, container, node, owning workload and
//! chosen labels and annotations, as OpenTelemetry resource attributes on
//! traces (`k8s.namespace.name`, …,
//! <https://opentelemetry.io/docs/specs/semconv/resource/k8s/>) and as
//! labels on metrics, logs and profiles (`namespace`, `pod`, …).
//!
//! With `source = "api"` the pod comes from the process's pod cache
//! ([`crate::k8s`]), found by uid, namespace/name, IP, scrape `instance`
//! or the sending client's address, in the configured order. With
//! `source = "env"` (a sidecar) every record gets ferro's own pod, read
//! once from downward-API variables, and no API server is involved.
//!
//! Groups whose pod is not found pass unchanged and are counted in
//! `ferro_k8s_attributes_unassociated_items{reason}`.

mod config;
mod processor;

pub use config::{Association, Field, K8sAttributesConfig, RawK8sAttributesConfig, Source};
pub use processor::*;

#[cfg(test)]
mod tests;
