//! What ferro keeps of a Service, for ServiceMonitors: its name, labels,
//! annotations, pod selector and ports. Services are watched across the
//! cluster (they are few and small next to pods); their pods are looked up
//! in this node's pod cache, so no Endpoints or EndpointSlices are read
//! for targets that are pods.

use k8s_openapi::api::core::v1::Service;
use std::collections::BTreeMap;

use super::monitor::IntOrString;
use super::pod::MAX_ANNOTATION_VALUE;
use super::selector::Selector;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePortInfo {
    pub name: String,
    pub port: i32,
    /// The pods' port, by number or by a container port's name; the
    /// Service's port when not set.
    pub target_port: IntOrString,
    pub protocol: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `spec.selector`: none selects no pods.
    pub selector: Selector,
    pub ports: Vec<ServicePortInfo>,
}

impl ServiceInfo {
    /// The trimmed copy of `service`; `None` without a uid, name or
    /// namespace, or with a selector the API server would not have taken.
    pub fn from_service(service: &Service) -> Option<ServiceInfo> {
        let meta = &service.metadata;
        let spec = service.spec.as_ref();
        let selector =
            Selector::from_service_selector(spec.and_then(|s| s.selector.as_ref())).ok()?;
        let ports = spec
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .map(|p| ServicePortInfo {
                name: p.name.clone().unwrap_or_default(),
                port: p.port,
                target_port: match &p.target_port {
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => {
                        IntOrString::Int(i64::from(*n))
                    }
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => {
                        IntOrString::String(s.clone())
                    }
                    None => IntOrString::Int(i64::from(p.port)),
                },
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            })
            .collect();
        Some(ServiceInfo {
            uid: meta.uid.clone()?,
            namespace: meta.namespace.clone()?,
            name: meta.name.clone()?,
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta
                .annotations
                .iter()
                .flatten()
                .filter(|(k, v)| {
                    v.len() <= MAX_ANNOTATION_VALUE
                        && k.as_str() != "kubectl.kubernetes.io/last-applied-configuration"
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            selector,
            ports,
        })
    }
}
