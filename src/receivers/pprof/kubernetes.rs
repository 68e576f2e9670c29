//! The seam for Kubernetes pod discovery: which pods are profiled, and how,
//! from the annotations Alloy's and Grafana's docs use
//! (<https://grafana.com/docs/pyroscope/latest/configure-client/grafana-alloy/go_pull/>):
//!
//! ```yaml
//! profiles.grafana.com/cpu.scrape: "true"
//! profiles.grafana.com/cpu.port: "6060"          # or .port_name: "http-pprof"
//! profiles.grafana.com/cpu.path: "/debug/pprof/profile"   # optional
//! ```
//!
//! for the types `cpu`, `memory`, `goroutine`, `block`, `mutex`. The pod
//! cache (one node-scoped watch, shared with Prometheus pod discovery) hands
//! each pod to [`pod_groups`]; the target groups it returns go into the
//! job's reconcile loop beside the static ones, each asking for one profile
//! type at one path through `__profile_type__`/`__profile_path__`, and
//! carrying the pod's `__meta_kubernetes_*` labels for relabelling.

use std::collections::BTreeMap;

use super::scrape::{PROFILE_PATH_LABEL, PROFILE_TYPE_LABEL};
use crate::receivers::prometheus::StaticConfig;

const PREFIX: &str = "profiles.grafana.com/";

/// What the pod cache knows of a pod that discovery needs.
#[derive(Clone, Debug, Default)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub ip: String,
    /// `(container, port name, port number)` of each declared container port.
    pub ports: Vec<(String, String, u16)>,
    pub annotations: BTreeMap<String, String>,
    /// Pod labels, by name as in Kubernetes.
    pub labels: BTreeMap<String, String>,
}

/// The annotation type names, with the profile type (`__name__`) they scrape.
const TYPES: &[(&str, &str)] = &[
    ("cpu", "process_cpu"),
    ("memory", "memory"),
    ("goroutine", "goroutine"),
    ("block", "block"),
    ("mutex", "mutex"),
];

/// One target group per profile type the pod's annotations enable. A type
/// whose port cannot be resolved is skipped (with a log line): a pod
/// without an IP yet, or a `port_name` no container declares.
pub fn pod_groups(pod: &Pod) -> Vec<StaticConfig> {
    let mut out = Vec::new();
    if pod.ip.is_empty() {
        return out;
    }
    for (annotation, profile_type) in TYPES {
        let get = |key: &str| pod.annotations.get(&format!("{PREFIX}{annotation}.{key}"));
        if get("scrape").map(String::as_str) != Some("true") {
            continue;
        }
        let port = match (get("port"), get("port_name")) {
            (Some(port), _) => port.parse::<u16>().ok(),
            (None, Some(name)) => pod.ports.iter().find(|(_, n, _)| n == name).map(|p| p.2),
            (None, None) => None,
        };
        let Some(port) = port else {
            tracing::warn!(pod = %pod.name, namespace = %pod.namespace, profile = annotation, "profiles.grafana.com annotation without a usable port; skipped");
            continue;
        };
        let mut labels = BTreeMap::new();
        labels.insert(PROFILE_TYPE_LABEL.to_string(), profile_type.to_string());
        if let Some(path) = get("path") {
            labels.insert(PROFILE_PATH_LABEL.to_string(), path.clone());
        }
        labels.insert("__meta_kubernetes_namespace".into(), pod.namespace.clone());
        labels.insert("__meta_kubernetes_pod_name".into(), pod.name.clone());
        labels.insert("__meta_kubernetes_pod_ip".into(), pod.ip.clone());
        if let Some((container, _, _)) = pod.ports.iter().find(|p| p.2 == port) {
            labels.insert(
                "__meta_kubernetes_pod_container_name".into(),
                container.clone(),
            );
        }
        for (name, value) in &pod.labels {
            labels.insert(
                format!("__meta_kubernetes_pod_label_{}", sanitize(name)),
                value.clone(),
            );
        }
        for (name, value) in &pod.annotations {
            labels.insert(
                format!("__meta_kubernetes_pod_annotation_{}", sanitize(name)),
                value.clone(),
            );
        }
        let host = if pod.ip.contains(':') {
            format!("[{}]:{port}", pod.ip)
        } else {
            format!("{}:{port}", pod.ip)
        };
        out.push(StaticConfig {
            targets: vec![host],
            labels,
        });
    }
    out
}

/// Prometheus' label name sanitizing for meta labels: any other character
/// than ASCII letters, digits and `_` becomes `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
