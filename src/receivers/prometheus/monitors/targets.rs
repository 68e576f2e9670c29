//! A monitor's target groups on this node, with the labels Prometheus'
//! Kubernetes discovery gives them, so that the Operator's relabel rules
//! (and the user's) read what they would read in Prometheus:
//!
//! - ServiceMonitor (Prometheus' `endpoints` role, resolved locally): for
//!   each Service the monitor selects, each pod of this node the Service
//!   selects, and each Service port whose target port the pod has, one
//!   target `podIP:targetPort` with `__meta_kubernetes_endpoint_*`,
//!   `__meta_kubernetes_endpoints_*`, `__meta_kubernetes_service_*` and the
//!   pod's and container's labels; and, as Prometheus adds them, one target
//!   per container port of those pods that no Service port covers.
//! - PodMonitor (the `pod` role): every container port of this node's pods
//!   in the monitor's namespaces.
//!
//! Label names: <https://prometheus.io/docs/prometheus/latest/configuration/configuration/#endpoints>.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::k8s::PodInfo;
use crate::k8s::discovery::{container_group, pod_labels, sanitize, target_groups};
use crate::k8s::monitor::{IntOrString, Monitor, MonitorKind};
use crate::k8s::service::ServiceInfo;
use crate::k8s::slices::SliceInfo;
use crate::scrape::StaticConfig;

const META: &str = "__meta_kubernetes_";

/// The groups of `monitor` among this node's `pods` (and, for a
/// ServiceMonitor, the cluster's `services`).
pub fn groups(
    monitor: &Monitor,
    services: &[Arc<ServiceInfo>],
    pods: &[Arc<PodInfo>],
) -> Vec<StaticConfig> {
    let in_scope: Vec<&Arc<PodInfo>> = pods
        .iter()
        .filter(|p| monitor.namespaces.contains(&p.namespace))
        .collect();
    match monitor.kind {
        MonitorKind::PodMonitor => {
            // The selector is also a keep rule; checking it here keeps the
            // other pods from becoming dropped targets.
            let selected: Vec<Arc<PodInfo>> = in_scope
                .into_iter()
                .filter(|p| monitor.selects.matches(&label_map(p)))
                .cloned()
                .collect();
            target_groups(&selected, None)
                .into_iter()
                .map(|g| StaticConfig {
                    targets: g.targets,
                    labels: g.labels,
                })
                .collect()
        }
        MonitorKind::ServiceMonitor => {
            let mut out = Vec::new();
            for service in services.iter().filter(|s| {
                monitor.namespaces.contains(&s.namespace) && monitor.selects.matches(&s.labels)
            }) {
                for pod in &in_scope {
                    if pod.namespace.as_ref() != service.namespace
                        || pod.terminated()
                        || !service.selector.matches(&label_map(pod))
                    {
                        continue;
                    }
                    endpoint_groups(service, pod, &mut out);
                }
            }
            out
        }
    }
}

/// The leader's targets of a ServiceMonitor: the endpoints of the
/// Services it selects that are not pods (from their EndpointSlices), with
/// the same labels as Prometheus' `endpoints` role gives them.
pub fn leader_groups(
    monitor: &Monitor,
    services: &[Arc<ServiceInfo>],
    slices: &[Arc<SliceInfo>],
) -> Vec<StaticConfig> {
    let mut out = Vec::new();
    for service in services
        .iter()
        .filter(|s| monitor.namespaces.contains(&s.namespace) && monitor.selects.matches(&s.labels))
    {
        let mut shared = BTreeMap::new();
        shared.insert(format!("{META}namespace"), service.namespace.clone());
        service_labels(service, &mut shared);
        let theirs = slices
            .iter()
            .filter(|s| s.namespace == service.namespace && s.service == service.name);
        for slice in theirs {
            for endpoint in &slice.endpoints {
                for address in &endpoint.addresses {
                    let Ok(ip) = address.parse::<std::net::IpAddr>() else {
                        continue;
                    };
                    for port in &slice.ports {
                        let mut labels = shared.clone();
                        let target = endpoint
                            .target
                            .as_ref()
                            .map(|(kind, name)| (kind.as_str(), name.as_str()));
                        let endpoint = Address {
                            port_name: &port.name,
                            protocol: &port.protocol,
                            ready: endpoint.ready,
                            node: endpoint.node_name.as_deref(),
                            target,
                        };
                        endpoint.label(&mut labels);
                        out.push(StaticConfig {
                            targets: vec![SocketAddr::new(ip, port.port).to_string()],
                            labels,
                        });
                    }
                }
            }
        }
    }
    out
}

fn label_map(pod: &PodInfo) -> BTreeMap<String, String> {
    pod.labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The targets of `pod` behind `service`.
fn endpoint_groups(service: &ServiceInfo, pod: &PodInfo, out: &mut Vec<StaticConfig>) {
    let Some(ip) = pod.ip else { return };
    let mut shared = pod_labels(pod);
    service_labels(service, &mut shared);
    let mut covered = BTreeSet::new();
    for port in &service.ports {
        let number = match &port.target_port {
            IntOrString::Int(n) => u16::try_from(*n).ok(),
            IntOrString::String(name) => pod
                .containers
                .iter()
                .flat_map(|c| &c.ports)
                .find(|p| &*p.name == name)
                .map(|p| p.number),
        };
        // A named port the pod does not have: no endpoint, as the
        // endpoints controller leaves it out.
        let Some(number) = number.filter(|n| *n > 0) else {
            continue;
        };
        covered.insert(number);
        let address = SocketAddr::new(ip, number).to_string();
        let declared = pod
            .containers
            .iter()
            .find_map(|c| c.ports.iter().find(|p| p.number == number).map(|p| (c, p)));
        let mut labels = match declared {
            Some((c, p)) => container_group(&shared, address.clone(), c, Some(p)).labels,
            None => shared.clone(),
        };
        Address {
            port_name: &port.name,
            protocol: &port.protocol,
            ready: pod.ready == "true",
            node: Some(&pod.node),
            target: Some(("Pod", &pod.name)),
        }
        .label(&mut labels);
        out.push(StaticConfig {
            targets: vec![address],
            labels,
        });
    }
    // Container ports no Service port reaches: Prometheus makes targets of
    // them too, for the pods behind the endpoints (the Operator's
    // targetPort rules can pick them).
    if covered.is_empty() {
        return;
    }
    for c in &pod.containers {
        for p in c.ports.iter().filter(|p| !covered.contains(&p.number)) {
            let address = SocketAddr::new(ip, p.number).to_string();
            let group = container_group(&shared, address, c, Some(p));
            out.push(StaticConfig {
                targets: group.targets,
                labels: group.labels,
            });
        }
    }
}

/// One endpoint address and port, as the `endpoints` role labels it.
struct Address<'a> {
    port_name: &'a str,
    protocol: &'a str,
    ready: bool,
    node: Option<&'a str>,
    /// The object behind the address: its kind and name.
    target: Option<(&'a str, &'a str)>,
}

impl Address<'_> {
    fn label(&self, labels: &mut BTreeMap<String, String>) {
        let mut set = |name: &str, value: &str| {
            labels.insert(format!("{META}{name}"), value.to_string());
        };
        set("endpoint_port_name", self.port_name);
        set("endpoint_port_protocol", self.protocol);
        set("endpoint_ready", if self.ready { "true" } else { "false" });
        if let Some(node) = self.node {
            set("endpoint_node_name", node);
        }
        if let Some((kind, name)) = self.target {
            set("endpoint_address_target_kind", kind);
            set("endpoint_address_target_name", name);
        }
    }
}

/// The labels of `service` and of its Endpoints object (which carries the
/// Service's labels), as Prometheus names them.
fn service_labels(service: &ServiceInfo, labels: &mut BTreeMap<String, String>) {
    let mut set = |name: String, value: &str| {
        labels.insert(format!("{META}{name}"), value.to_string());
    };
    set("endpoints_name".into(), &service.name);
    set("service_name".into(), &service.name);
    for (key, value) in &service.labels {
        let name = sanitize(key);
        set(format!("service_label_{name}"), value);
        set(format!("service_labelpresent_{name}"), "true");
        set(format!("endpoints_label_{name}"), value);
        set(format!("endpoints_labelpresent_{name}"), "true");
    }
    for (key, value) in &service.annotations {
        let name = sanitize(key);
        set(format!("service_annotation_{name}"), value);
        set(format!("service_annotationpresent_{name}"), "true");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(
        name: &str,
        namespace: &str,
        labels: serde_json::Value,
        ports: serde_json::Value,
        phase: &str,
    ) -> Arc<PodInfo> {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"), "labels": labels},
            "spec": {"nodeName": "node-a", "containers": [
                {"name": "app", "image": "app:1", "ports": ports},
                {"name": "sidecar", "image": "envoy:1", "ports": [{"name": "admin", "containerPort": 15000}]}
            ]},
            "status": {"phase": phase, "podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}],
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        Arc::new(PodInfo::from_pod(&pod, &mut 0).unwrap())
    }

    fn service(
        name: &str,
        selector: serde_json::Value,
        ports: serde_json::Value,
    ) -> Arc<ServiceInfo> {
        let service: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop", "uid": format!("svc-{name}"),
                         "labels": {"app": "web", "app.kubernetes.io/part-of": "shop"}},
            "spec": {"selector": selector, "ports": ports}
        }))
        .unwrap();
        Arc::new(ServiceInfo::from_service(&service).unwrap())
    }

    fn service_monitor() -> Monitor {
        Monitor::from_object(
            MonitorKind::ServiceMonitor,
            &json!({"metadata": {"name": "web", "namespace": "shop"},
                    "spec": {"selector": {"matchLabels": {"app": "web"}}, "endpoints": [{"port": "http"}]}}),
        )
        .unwrap()
    }

    fn targets(groups: &[StaticConfig]) -> Vec<String> {
        let mut out: Vec<String> = groups.iter().flat_map(|g| g.targets.clone()).collect();
        out.sort();
        out
    }

    #[test]
    fn service_ports_resolve_against_the_pods_container_ports() {
        let web = pod(
            "web-0",
            "shop",
            json!({"app": "web"}),
            json!([{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}]),
            "Running",
        );
        let services = [service(
            "web",
            json!({"app": "web"}),
            json!([
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9090},
                {"name": "grpc", "port": 81, "targetPort": "grpc"}
            ]),
        )];
        let groups = groups(&service_monitor(), &services, &[web]);
        // http by name, metrics by number (the port itself), grpc not on
        // the pod; the sidecar's admin port as an uncovered container port.
        assert_eq!(
            targets(&groups),
            ["10.0.0.7:15000", "10.0.0.7:8080", "10.0.0.7:9090"]
        );
        let http = groups
            .iter()
            .find(|g| g.targets == ["10.0.0.7:8080"])
            .unwrap();
        for (name, value) in [
            ("__meta_kubernetes_endpoint_port_name", "http"),
            ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
            ("__meta_kubernetes_endpoint_address_target_name", "web-0"),
            ("__meta_kubernetes_endpoint_ready", "true"),
            ("__meta_kubernetes_endpoints_name", "web"),
            ("__meta_kubernetes_service_name", "web"),
            (
                "__meta_kubernetes_service_label_app_kubernetes_io_part_of",
                "shop",
            ),
            ("__meta_kubernetes_pod_container_name", "app"),
            ("__meta_kubernetes_pod_container_port_name", "http"),
            ("__meta_kubernetes_namespace", "shop"),
        ] {
            assert_eq!(
                http.labels.get(name).map(String::as_str),
                Some(value),
                "{name}"
            );
        }
        let admin = groups
            .iter()
            .find(|g| g.targets == ["10.0.0.7:15000"])
            .unwrap();
        assert!(
            !admin
                .labels
                .contains_key("__meta_kubernetes_endpoint_port_name")
        );
        assert_eq!(
            admin.labels["__meta_kubernetes_pod_container_name"],
            "sidecar"
        );
    }

    #[test]
    fn only_selected_running_pods_of_selected_services_in_scope_are_targets() {
        let ports = json!([{"name": "http", "containerPort": 8080}]);
        let pods = [
            pod(
                "other-app",
                "shop",
                json!({"app": "api"}),
                ports.clone(),
                "Running",
            ),
            pod(
                "other-ns",
                "dev",
                json!({"app": "web"}),
                ports.clone(),
                "Running",
            ),
            pod(
                "done",
                "shop",
                json!({"app": "web"}),
                ports.clone(),
                "Succeeded",
            ),
        ];
        let http = json!([{"name": "http", "port": 80, "targetPort": "http"}]);
        let services = [
            service("web", json!({"app": "web"}), http.clone()),
            // No selector: its endpoints are not pods (the leader's).
            service("manual", serde_json::Value::Null, http),
        ];
        assert!(groups(&service_monitor(), &services, &pods).is_empty());
    }

    #[test]
    fn a_pod_monitor_takes_the_selected_pods_container_ports() {
        let monitor = Monitor::from_object(
            MonitorKind::PodMonitor,
            &json!({"metadata": {"name": "web", "namespace": "shop"},
                    "spec": {"selector": {"matchLabels": {"app": "web"}},
                             "podMetricsEndpoints": [{"port": "http"}]}}),
        )
        .unwrap();
        let ports = json!([{"name": "http", "containerPort": 8080}]);
        let pods = [
            pod(
                "web-0",
                "shop",
                json!({"app": "web"}),
                ports.clone(),
                "Running",
            ),
            pod("api-0", "shop", json!({"app": "api"}), ports, "Running"),
        ];
        assert_eq!(
            targets(&groups(&monitor, &[], &pods)),
            ["10.0.0.7:15000", "10.0.0.7:8080"]
        );
    }

    #[test]
    fn the_leader_takes_the_endpoints_that_are_not_pods() {
        let services = [service(
            "web",
            json!({"app": "web"}),
            json!([{"name": "https", "port": 443}]),
        )];
        let slice = Arc::new(SliceInfo {
            namespace: "shop".into(),
            service: "web".into(),
            ports: vec![crate::k8s::slices::SlicePort {
                name: "https".into(),
                port: 6443,
                protocol: "TCP".into(),
            }],
            endpoints: vec![crate::k8s::slices::OtherEndpoint {
                addresses: vec!["192.168.1.10".into(), "not-an-ip".into()],
                ready: true,
                target: Some(("Node".into(), "node-b".into())),
                node_name: Some("node-b".into()),
            }],
        });
        let groups = leader_groups(&service_monitor(), &services, &[slice]);
        assert_eq!(targets(&groups), ["192.168.1.10:6443"]);
        assert_eq!(
            groups[0].labels["__meta_kubernetes_endpoint_address_target_kind"],
            "Node"
        );
        assert_eq!(groups[0].labels["__meta_kubernetes_service_name"], "web");
    }
}
