//! Kubernetes: the process-wide cache of this node's pods, fed by one
//! node-scoped list-and-watch against the API server
//! (<https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes>),
//! and what reads it: the `k8s_attributes` processor and pod discovery for
//! pull receivers.
//!
//! - [`cache`]: the watch (kube-rs' watcher: resume by resourceVersion,
//!   relist on `410 Gone`, backoff on errors) and the indexes by pod uid,
//!   IP and namespace/name. One per process ([`PodCaches`]), kept across
//!   config reloads.
//! - [`pod`]: the trimmed pod kept in the cache, and the workload
//!   (Deployment, CronJob, …) derived from owner names without more watches.
//! - [`namespace`]: the trimmed namespace kept when namespace labels or
//!   annotations are asked for (a second list-and-watch, of namespaces).
//! - [`discovery`]: scrape target groups from the cached pods, with
//!   Prometheus' `__meta_kubernetes_pod_*` labels and annotation opt-in.
//!
//! - [`leader`]: one leader per cluster on a `coordination.k8s.io/v1`
//!   Lease, with client-go's semantics, for the work that belongs to no node.
//! - [`selector`]: label selectors (a `LabelSelector`, a Service's
//!   selector) checked once and matched as the API server matches them.
//! - [`node`]: this node's trimmed object, watched by name when a scrape
//!   job discovers it (`role = "node"`), and its target group with
//!   Prometheus' `__meta_kubernetes_node_*` labels.
//!
//! ferro never watches pods cluster-wide, nor ReplicaSets, Jobs or other
//! nodes; it watches namespaces only when a processor copies their labels
//! or annotations, and its own Node only for node discovery.

pub mod cache;
pub mod cluster;
mod config;
pub mod discovery;
pub mod leader;
pub mod monitor;
pub mod namespace;
pub mod node;
pub mod pod;
pub mod selector;
pub mod service;
pub mod slices;

pub use cache::{K8sError, PodCache, PodCaches, Relist};
pub use config::{
    KubernetesConfig, NamespaceKeys, RawKubernetesConfig, is_namespace_name, is_object_name,
};
pub use pod::PodInfo;

/// What in a component's config reads the pod cache: named in the error
/// that asks for a `[kubernetes]` section when there is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodCacheUse {
    /// The setting, as the config writes it (`kubernetes_sd_configs`).
    pub setting: &'static str,
    /// What the user may do instead, if anything.
    pub otherwise: Option<&'static str>,
}

#[cfg(test)]
pub(crate) mod tests;
