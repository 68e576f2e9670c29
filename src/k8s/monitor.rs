//! ServiceMonitors and PodMonitors (`monitoring.coreos.com/v1`, the
//! Prometheus Operator's CRDs) as ferro reads them: the fields that say
//! what to scrape and how, checked once, and the fields ferro does not
//! support, named so that they are logged and counted rather than silently
//! ignored.
//!
//! Field names and meanings are the Operator's
//! (`pkg/apis/monitoring/v1/{servicemonitor,podmonitor,types}.go`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

use super::selector::Selector;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MonitorKind {
    ServiceMonitor,
    PodMonitor,
}

impl MonitorKind {
    /// The CRD's plural, as its API path has it.
    pub fn plural(self) -> &'static str {
        match self {
            Self::ServiceMonitor => "servicemonitors",
            Self::PodMonitor => "podmonitors",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServiceMonitor => "ServiceMonitor",
            Self::PodMonitor => "PodMonitor",
        }
    }

    /// The job name's prefix, as the Operator writes it.
    pub fn job_prefix(self) -> &'static str {
        match self {
            Self::ServiceMonitor => "serviceMonitor",
            Self::PodMonitor => "podMonitor",
        }
    }
}

/// Which namespaces a monitor looks in (`namespaceSelector`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Namespaces {
    /// `any: true`.
    Any,
    /// `matchNames`, or the monitor's own namespace when that is empty.
    Names(Vec<String>),
}

impl Namespaces {
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Names(names) => names.iter().any(|n| n == namespace),
        }
    }
}

/// A port given by number or by name (`intstr.IntOrString`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

impl std::fmt::Display for IntOrString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(n) => write!(f, "{n}"),
            Self::String(s) => f.write_str(s),
        }
    }
}

/// A relabelling rule as the CRD writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relabeling {
    pub source_labels: Option<Vec<String>>,
    pub separator: Option<String>,
    pub target_label: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

/// A key of a Secret or a ConfigMap in the monitor's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
pub struct KeyRef {
    pub name: String,
    pub key: String,
}

/// `SecretOrConfigMap`: one of the two.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretOrConfigMap {
    pub secret: Option<KeyRef>,
    pub config_map: Option<KeyRef>,
}

/// The TLS settings ferro honours: files in ferro's own file system, keys
/// of Secrets and ConfigMaps (read where RBAC lets ferro), and names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointTls {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub ca: Option<SecretOrConfigMap>,
    pub cert: Option<SecretOrConfigMap>,
    pub key_secret: Option<KeyRef>,
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// One entry of `endpoints` (ServiceMonitor) or `podMetricsEndpoints`
/// (PodMonitor).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub port: Option<String>,
    /// PodMonitor only.
    pub port_number: Option<u16>,
    pub target_port: Option<IntOrString>,
    pub path: Option<String>,
    pub scheme: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    pub interval: Option<String>,
    pub scrape_timeout: Option<String>,
    #[serde(default)]
    pub honor_labels: bool,
    pub honor_timestamps: Option<bool>,
    pub filter_running: Option<bool>,
    pub bearer_token_file: Option<String>,
    pub tls_config: Option<EndpointTls>,
    #[serde(default)]
    pub relabelings: Vec<Relabeling>,
    #[serde(default)]
    pub metric_relabelings: Vec<Relabeling>,
}

/// A monitor's spec, as far as ferro reads it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    selector: LabelSelector,
    namespace_selector: Option<NamespaceSelector>,
    #[serde(default)]
    endpoints: Vec<Endpoint>,
    #[serde(default)]
    pod_metrics_endpoints: Vec<Endpoint>,
    job_label: Option<String>,
    #[serde(default)]
    target_labels: Vec<String>,
    #[serde(default)]
    pod_target_labels: Vec<String>,
    sample_limit: Option<u64>,
    target_limit: Option<u64>,
    label_limit: Option<u64>,
    label_name_length_limit: Option<u64>,
    label_value_length_limit: Option<u64>,
    body_size_limit: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NamespaceSelector {
    #[serde(default)]
    any: bool,
    #[serde(default)]
    match_names: Vec<String>,
}

/// A checked monitor.
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor {
    pub kind: MonitorKind,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `spec.selector` as written (the Operator's relabel rules are made
    /// from it) and checked.
    pub selector: LabelSelector,
    pub selects: Selector,
    pub namespaces: Namespaces,
    pub job_label: Option<String>,
    pub target_labels: Vec<String>,
    pub pod_target_labels: Vec<String>,
    pub sample_limit: Option<u64>,
    /// Per agent: the limit applies to the targets on its node.
    pub target_limit: Option<u64>,
    pub label_limit: Option<u64>,
    pub label_name_length_limit: Option<u64>,
    pub label_value_length_limit: Option<u64>,
    pub body_size_limit: Option<String>,
    pub endpoints: Vec<Endpoint>,
    /// Fields set that ferro does not act on (`spec.attachMetadata`,
    /// `spec.endpoints[0].basicAuth`): logged once and counted.
    pub unsupported: Vec<String>,
}

/// The spec fields ferro acts on; any other that is set is unsupported.
const SPEC_FIELDS: &[&str] = &[
    "selector",
    "namespaceSelector",
    "endpoints",
    "podMetricsEndpoints",
    "jobLabel",
    "targetLabels",
    "podTargetLabels",
    "sampleLimit",
    "targetLimit",
    "labelLimit",
    "labelNameLengthLimit",
    "labelValueLengthLimit",
    "bodySizeLimit",
];

/// Spec fields whose value is what ferro does anyway.
const SPEC_DEFAULTS: &[(&str, &str)] = &[
    ("selectorMechanism", "RelabelConfig"),
    ("serviceDiscoveryRole", "Endpoints"),
];

const ENDPOINT_FIELDS: &[&str] = &[
    "port",
    "portNumber",
    "targetPort",
    "path",
    "scheme",
    "params",
    "interval",
    "scrapeTimeout",
    "honorLabels",
    "honorTimestamps",
    "filterRunning",
    "bearerTokenFile",
    "tlsConfig",
    "relabelings",
    "metricRelabelings",
    // Only which HTTP version carries the scrape.
    "enableHttp2",
];

const TLS_FIELDS: &[&str] = &[
    "caFile",
    "certFile",
    "keyFile",
    "ca",
    "cert",
    "keySecret",
    "serverName",
    "insecureSkipVerify",
];

/// Why a monitor cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("the object has no {0}")]
    Missing(&'static str),
    #[error("spec: {0}")]
    Spec(String),
    #[error("spec.selector: {0}")]
    Selector(super::selector::SelectorError),
}

impl Monitor {
    /// The monitor in a `monitoring.coreos.com/v1` object (its `metadata`
    /// and `spec`, as JSON).
    pub fn from_object(kind: MonitorKind, object: &Value) -> Result<Monitor, MonitorError> {
        let metadata = &object["metadata"];
        let namespace = metadata["namespace"]
            .as_str()
            .ok_or(MonitorError::Missing("metadata.namespace"))?
            .to_string();
        let name = metadata["name"]
            .as_str()
            .ok_or(MonitorError::Missing("metadata.name"))?
            .to_string();
        let labels = metadata["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let raw_spec = object.get("spec").cloned().unwrap_or(Value::Null);
        let unsupported = unsupported_fields(kind, &raw_spec);
        let spec: Spec = serde_json::from_value(if raw_spec.is_null() {
            Value::Object(Default::default())
        } else {
            raw_spec
        })
        .map_err(|e| MonitorError::Spec(e.to_string()))?;
        let selects =
            Selector::from_label_selector(&spec.selector).map_err(MonitorError::Selector)?;
        let namespaces = match spec.namespace_selector {
            Some(s) if s.any => Namespaces::Any,
            Some(s) if !s.match_names.is_empty() => Namespaces::Names(s.match_names),
            _ => Namespaces::Names(vec![namespace.clone()]),
        };
        let endpoints = match kind {
            MonitorKind::ServiceMonitor => spec.endpoints,
            MonitorKind::PodMonitor => spec.pod_metrics_endpoints,
        };
        Ok(Monitor {
            kind,
            namespace,
            name,
            labels,
            selector: spec.selector,
            selects,
            namespaces,
            job_label: spec.job_label.filter(|l| !l.is_empty()),
            target_labels: spec.target_labels,
            pod_target_labels: spec.pod_target_labels,
            sample_limit: spec.sample_limit,
            target_limit: spec.target_limit,
            label_limit: spec.label_limit,
            label_name_length_limit: spec.label_name_length_limit,
            label_value_length_limit: spec.label_value_length_limit,
            body_size_limit: spec.body_size_limit,
            endpoints,
            unsupported,
        })
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The fields of `spec` that are set and that ferro does not act on.
fn unsupported_fields(kind: MonitorKind, spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(spec) = spec.as_object() else {
        return out;
    };
    let endpoints_key = match kind {
        MonitorKind::ServiceMonitor => "endpoints",
        MonitorKind::PodMonitor => "podMetricsEndpoints",
    };
    for (key, value) in spec {
        let default = SPEC_DEFAULTS
            .iter()
            .any(|(k, v)| k == key && value.as_str() == Some(v));
        let wrong_list =
            matches!(key.as_str(), "endpoints" | "podMetricsEndpoints") && key != endpoints_key;
        if (!SPEC_FIELDS.contains(&key.as_str()) && !default && is_set(value)) || wrong_list {
            out.push(format!("spec.{key}"));
        }
    }
    for (i, endpoint) in spec
        .get(endpoints_key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(endpoint) = endpoint.as_object() else {
            continue;
        };
        for (key, value) in endpoint {
            let at = format!("spec.{endpoints_key}[{i}].{key}");
            if key == "tlsConfig" {
                for (tls_key, tls_value) in value.as_object().into_iter().flatten() {
                    if !TLS_FIELDS.contains(&tls_key.as_str()) && is_set(tls_value) {
                        out.push(format!("{at}.{tls_key}"));
                    }
                }
            } else if key == "followRedirects" && value == &Value::Bool(true) {
                // What ferro does.
            } else if !ENDPOINT_FIELDS.contains(&key.as_str()) && is_set(value) {
                out.push(at);
            }
        }
    }
    out
}

/// Whether a field says anything (`null`, `false`, `""`, `[]` and `{}` do not).
fn is_set(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_service_monitor_reads_with_its_defaults_and_unsupported_fields_named() {
        let object = json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"release": "prom"}},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "endpoints": [
                    {"port": "http", "interval": "15s", "basicAuth": {"username": {"name": "s", "key": "u"}},
                     "tlsConfig": {"serverName": "web", "ca": {"secret": {"name": "ca", "key": "ca.crt"}}},
                     "followRedirects": true},
                    {"targetPort": 9090, "path": "/m"}
                ],
                "attachMetadata": {"node": true},
                "selectorMechanism": "RelabelConfig",
                "sampleLimit": 1000
            }
        });
        let m = Monitor::from_object(MonitorKind::ServiceMonitor, &object).unwrap();
        assert_eq!(m.key(), "shop/web");
        assert_eq!(m.namespaces, Namespaces::Names(vec!["shop".into()]));
        assert_eq!(m.endpoints.len(), 2);
        assert_eq!(m.endpoints[1].target_port, Some(IntOrString::Int(9090)));
        assert_eq!(m.sample_limit, Some(1000));
        assert!(
            m.selects
                .matches(&BTreeMap::from([("app".into(), "web".into())]))
        );
        assert_eq!(
            m.unsupported,
            ["spec.attachMetadata", "spec.endpoints[0].basicAuth"]
        );
        let ca = m.endpoints[0]
            .tls_config
            .as_ref()
            .unwrap()
            .ca
            .as_ref()
            .unwrap();
        assert_eq!(
            ca.secret,
            Some(KeyRef {
                name: "ca".into(),
                key: "ca.crt".into()
            })
        );
    }

    #[test]
    fn namespace_selection_and_bad_selectors() {
        let pod_monitor = |spec: Value| {
            Monitor::from_object(
                MonitorKind::PodMonitor,
                &json!({"metadata": {"name": "p", "namespace": "a"}, "spec": spec}),
            )
        };
        let any = pod_monitor(json!({"namespaceSelector": {"any": true, "matchNames": ["x"]}}));
        assert_eq!(any.unwrap().namespaces, Namespaces::Any);
        let names = pod_monitor(json!({"namespaceSelector": {"matchNames": ["x", "y"]}}));
        assert_eq!(
            names.unwrap().namespaces,
            Namespaces::Names(vec!["x".into(), "y".into()])
        );
        let bad = pod_monitor(
            json!({"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}),
        );
        assert!(bad.unwrap_err().to_string().contains("Near"));
        let wrong_type = pod_monitor(json!({"podMetricsEndpoints": "port 80"}));
        assert!(matches!(wrong_type, Err(MonitorError::Spec(_))));
        let no_name = Monitor::from_object(
            MonitorKind::PodMonitor,
            &json!({"metadata": {"namespace": "a"}}),
        );
        assert!(matches!(
            no_name,
            Err(MonitorError::Missing("metadata.name"))
        ));
    }
}
