//! What ferro keeps of its own node, and the node as a scrape target:
//! Prometheus' `kubernetes_sd_configs` with `role = "node"`, scoped to the
//! node ferro runs on (<https://prometheus.io/docs/prometheus/latest/configuration/configuration/#node>).

use k8s_openapi::api::core::v1::Node;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::discovery::{TargetGroup, sanitize};
use super::pod::MAX_ANNOTATION_VALUE;

/// The address types a node's target address is taken from, in
/// Prometheus' order of preference.
const ADDRESS_PREFERENCE: [&str; 6] = [
    "InternalIP",
    "InternalDNS",
    "ExternalIP",
    "ExternalDNS",
    "LegacyHostIP",
    "Hostname",
];

/// This node, as far as discovery needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: Arc<str>,
    /// `spec.providerID`, empty when the node has none.
    pub provider_id: Arc<str>,
    /// Sorted by key.
    pub labels: Vec<(Arc<str>, Arc<str>)>,
    /// Sorted by key; values longer than [`MAX_ANNOTATION_VALUE`] left out.
    pub annotations: Vec<(Arc<str>, Arc<str>)>,
    /// `status.addresses` in order: type and address.
    pub addresses: Vec<(Arc<str>, Arc<str>)>,
    /// `status.daemonEndpoints.kubeletEndpoint.Port`.
    pub kubelet_port: u16,
}

impl NodeInfo {
    /// The trimmed copy of `node`; `None` for a node without a name.
    pub fn from_node(node: &Node) -> Option<Self> {
        let meta = &node.metadata;
        let name: Arc<str> = meta.name.as_deref()?.into();
        let sorted = |map: Option<&BTreeMap<String, String>>, cap: usize| {
            map.into_iter()
                .flatten()
                .filter(|(_, v)| v.len() <= cap)
                .map(|(k, v)| (Arc::from(k.as_str()), Arc::from(v.as_str())))
                .collect::<Vec<_>>()
        };
        let status = node.status.as_ref();
        let addresses = status
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .map(|a| (Arc::from(a.type_.as_str()), Arc::from(a.address.as_str())))
            .collect();
        let kubelet_port = status
            .and_then(|s| s.daemon_endpoints.as_ref())
            .and_then(|d| d.kubelet_endpoint.as_ref())
            .and_then(|e| u16::try_from(e.port).ok())
            .unwrap_or(10250);
        Some(Self {
            name,
            provider_id: node
                .spec
                .as_ref()
                .and_then(|s| s.provider_id.as_deref())
                .unwrap_or("")
                .into(),
            labels: sorted(meta.labels.as_ref(), usize::MAX),
            annotations: sorted(meta.annotations.as_ref(), MAX_ANNOTATION_VALUE),
            addresses,
            kubelet_port,
        })
    }

    /// The address a scrape of this node goes to: the first address of
    /// the most preferred type present, with the kubelet's port.
    pub fn target_address(&self) -> Option<String> {
        let host = ADDRESS_PREFERENCE.iter().find_map(|wanted| {
            self.addresses
                .iter()
                .find(|(kind, _)| &**kind == *wanted)
                .map(|(_, address)| address)
        })?;
        Some(match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", self.kubelet_port),
            _ => format!("{host}:{}", self.kubelet_port),
        })
    }

    /// The node as a target group, with Prometheus' `__meta_kubernetes_node_*`
    /// labels and `instance` set to the node's name; `None` for a node
    /// without an address.
    pub fn target_group(&self) -> Option<TargetGroup> {
        const META: &str = "__meta_kubernetes_node_";
        let address = self.target_address()?;
        let mut labels = BTreeMap::new();
        let mut set = |name: &str, value: &str| {
            labels.insert(format!("{META}{name}"), value.to_string());
        };
        set("name", &self.name);
        set("provider_id", &self.provider_id);
        for (key, value) in &self.labels {
            let name = sanitize(key);
            set(&format!("label_{name}"), value);
            set(&format!("labelpresent_{name}"), "true");
        }
        for (key, value) in &self.annotations {
            let name = sanitize(key);
            set(&format!("annotation_{name}"), value);
            set(&format!("annotationpresent_{name}"), "true");
        }
        // The first address of each type.
        for (kind, address) in &self.addresses {
            labels
                .entry(format!("{META}address_{}", sanitize(kind)))
                .or_insert_with(|| address.to_string());
        }
        labels.insert("instance".into(), self.name.to_string());
        Some(TargetGroup {
            targets: vec![address],
            labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(addresses: serde_json::Value) -> NodeInfo {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "node-a",
                "labels": {"kubernetes.io/hostname": "node-a", "topology.kubernetes.io/zone": "eu-1a"},
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"}
            },
            "spec": {"providerID": "aws:///eu-1a/i-123"},
            "status": {
                "addresses": addresses,
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}
            }
        }))
        .unwrap();
        NodeInfo::from_node(&node).unwrap()
    }

    #[test]
    fn the_node_is_a_target_as_prometheus_discovers_it() {
        let n = node(serde_json::json!([
            {"type": "Hostname", "address": "node-a"},
            {"type": "InternalIP", "address": "10.0.0.7"},
            {"type": "InternalIP", "address": "10.0.0.8"},
            {"type": "ExternalIP", "address": "203.0.113.7"}
        ]));
        let group = n.target_group().unwrap();
        assert_eq!(group.targets, ["10.0.0.7:10250"]);
        let l = |k: &str| group.labels.get(k).map(String::as_str);
        assert_eq!(l("instance"), Some("node-a"));
        assert_eq!(l("__meta_kubernetes_node_name"), Some("node-a"));
        assert_eq!(
            l("__meta_kubernetes_node_provider_id"),
            Some("aws:///eu-1a/i-123")
        );
        assert_eq!(
            l("__meta_kubernetes_node_label_topology_kubernetes_io_zone"),
            Some("eu-1a")
        );
        assert_eq!(
            l("__meta_kubernetes_node_labelpresent_kubernetes_io_hostname"),
            Some("true")
        );
        assert_eq!(
            l("__meta_kubernetes_node_annotation_node_alpha_kubernetes_io_ttl"),
            Some("0")
        );
        assert_eq!(
            l("__meta_kubernetes_node_address_InternalIP"),
            Some("10.0.0.7")
        );
        assert_eq!(
            l("__meta_kubernetes_node_address_ExternalIP"),
            Some("203.0.113.7")
        );
        assert_eq!(l("__meta_kubernetes_node_address_Hostname"), Some("node-a"));
    }

    #[test]
    fn the_address_follows_prometheus_preference() {
        let only_host = node(serde_json::json!([{"type": "Hostname", "address": "node-a"}]));
        assert_eq!(only_host.target_address().unwrap(), "node-a:10250");
        let v6 = node(serde_json::json!([{"type": "InternalIP", "address": "fd00::7"}]));
        assert_eq!(v6.target_address().unwrap(), "[fd00::7]:10250");
        let none = node(serde_json::json!([]));
        assert!(none.target_group().is_none());
    }
}
