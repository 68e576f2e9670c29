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
                        let mut set = |name: &str, value: &str| {
                            labels.insert(format!("{META}{name}"), value.to_string());
                        };
                        set("endpoint_port_name", &port.name);
                        set("endpoint_port_protocol", &port.protocol);
                        set(
                            "endpoint_ready",
                            if endpoint.ready { "true" } else { "false" },
                        );
                        if let Some(node) = &endpoint.node_name {
                            set("endpoint_node_name", node);
                        }
                        if let Some((kind, name)) = &endpoint.target {
                            set("endpoint_address_target_kind", kind);
                            set("endpoint_address_target_name", name);
                        }
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
        let mut set = |name: &str, value: &str| {
            labels.insert(format!("{META}{name}"), value.to_string());
        };
        set("endpoint_port_name", &port.name);
        set("endpoint_port_protocol", &port.protocol);
        set(
            "endpoint_ready",
            if pod.ready == "true" { "true" } else { "false" },
        );
        set("endpoint_node_name", &pod.node);
        set("endpoint_address_target_kind", "Pod");
        set("endpoint_address_target_name", &pod.name);
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
