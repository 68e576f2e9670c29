//! Scrape targets from the pod cache: Prometheus' `kubernetes_sd_configs`
//! pod role (the same `__meta_kubernetes_pod_*` labels, one target per
//! declared container port), optionally narrowed to pods that ask to be
//! scraped by annotation (`prometheus.io/scrape: "true"` with `/port`,
//! `/path`, `/scheme`).
//!
//! The annotation keys are a parameter ([`ScrapeAnnotations`]) so that any
//! pull receiver can use the same source: the Prometheus receiver with
//! `prometheus.io/*`, the pprof receiver with `profiles.grafana.com/<type>.*`
//! (one set of keys per profile type, as Grafana's docs write them:
//! <https://grafana.com/docs/pyroscope/latest/configure-client/grafana-alloy/go_pull/>).
//! Label names: <https://prometheus.io/docs/prometheus/latest/configuration/configuration/#pod>.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::pod::{ContainerInfo, PodInfo, PortInfo};

/// Addresses and the labels they share: what a discovery source yields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetGroup {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// The annotations by which a pod asks to be scraped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeAnnotations {
    /// Must be `"true"` for the pod to be a target.
    pub scrape: String,
    /// The port to scrape, instead of every declared container port.
    pub port: String,
    /// The name of a declared container port to scrape, when `port` is not
    /// set: Pyroscope's convention has it, Prometheus' does not.
    pub port_name: Option<String>,
    /// The path to scrape; becomes the label `path_label`.
    pub path: String,
    /// Becomes `__scheme__` (`http` or `https`).
    pub scheme: String,
    /// The target label the path goes into: `__metrics_path__` for
    /// Prometheus, `__profile_path__` for the pprof receiver.
    pub path_label: &'static str,
}

impl ScrapeAnnotations {
    /// `PREFIX/scrape`, `PREFIX/port`, `PREFIX/path`, `PREFIX/scheme`: the
    /// Prometheus convention with `prometheus.io`.
    pub fn prefixed(prefix: &str) -> Self {
        Self {
            scrape: format!("{prefix}/scrape"),
            port: format!("{prefix}/port"),
            port_name: None,
            path: format!("{prefix}/path"),
            scheme: format!("{prefix}/scheme"),
            path_label: "__metrics_path__",
        }
    }

    /// Pyroscope's convention for one profile type, with `prefix`
    /// `profiles.grafana.com`: `PREFIX/cpu.scrape`, `.port`, `.port_name`,
    /// `.path`, `.scheme`; the path goes into `path_label`.
    pub fn profiles(prefix: &str, profile_type: &str, path_label: &'static str) -> Self {
        let key = |what: &str| format!("{prefix}/{profile_type}.{what}");
        Self {
            scrape: key("scrape"),
            port: key("port"),
            port_name: Some(key("port_name")),
            path: key("path"),
            scheme: key("scheme"),
            path_label,
        }
    }
}

const META: &str = "__meta_kubernetes_";

/// One group per target of the pods: with `annotations`, only pods that ask
/// for it; without, every container port of every pod (Prometheus' pod
/// role, for relabelling to choose). Pods without an IP and finished pods
/// have nothing to scrape.
///
/// An annotated pod is scraped on its `port` annotation; else on the
/// declared port its `port_name` annotation names (none if no container
/// declares it); else on each declared TCP port of its regular containers.
pub fn target_groups(
    pods: &[std::sync::Arc<PodInfo>],
    annotations: Option<&ScrapeAnnotations>,
) -> Vec<TargetGroup> {
    let mut out = Vec::new();
    for pod in pods {
        let Some(ip) = pod.ip else { continue };
        if pod.terminated() {
            continue;
        }
        let base = pod_labels(pod);
        match annotations {
            None => {
                for c in &pod.containers {
                    if c.ports.is_empty() {
                        // Prometheus' anonymous target: the user adds a port by relabelling.
                        out.push(container_group(&base, ip.to_string(), c, None));
                    }
                    for p in &c.ports {
                        out.push(container_group(&base, address(ip, p.number), c, Some(p)));
                    }
                }
            }
            Some(keys) => {
                if pod.annotation(&keys.scrape) != Some("true") {
                    continue;
                }
                let mut extra = BTreeMap::new();
                if let Some(path) = pod.annotation(&keys.path).filter(|p| p.starts_with('/')) {
                    extra.insert(keys.path_label.to_string(), path.to_string());
                }
                if let Some(scheme) = pod
                    .annotation(&keys.scheme)
                    .filter(|s| matches!(*s, "http" | "https"))
                {
                    extra.insert("__scheme__".to_string(), scheme.to_string());
                }
                let port = pod
                    .annotation(&keys.port)
                    .and_then(|p| p.trim().parse::<u16>().ok())
                    .filter(|p| *p > 0);
                let port_name = keys
                    .port_name
                    .as_deref()
                    .and_then(|key| pod.annotation(key));
                let before = out.len();
                match (port, port_name) {
                    (None, Some(name)) => {
                        let named = pod.containers.iter().find_map(|c| {
                            c.ports.iter().find(|p| &*p.name == name).map(|p| (c, p))
                        });
                        match named {
                            Some((c, p)) => {
                                out.push(container_group(&base, address(ip, p.number), c, Some(p)))
                            }
                            None => tracing::debug!(
                                namespace = %pod.namespace,
                                pod = %pod.name,
                                annotation = %keys.scrape,
                                port_name = name,
                                "no container declares the annotated port name; not scraped"
                            ),
                        }
                    }
                    (Some(port), _) => {
                        // The container that declares the port, if any.
                        let declared = pod.containers.iter().find_map(|c| {
                            c.ports.iter().find(|p| p.number == port).map(|p| (c, p))
                        });
                        let mut g = match declared {
                            Some((c, p)) => container_group(&base, address(ip, port), c, Some(p)),
                            None => TargetGroup {
                                targets: vec![address(ip, port)],
                                labels: base.clone(),
                            },
                        };
                        if declared.is_none()
                            && let Some(name) = pod.only_container()
                        {
                            g.labels
                                .insert(format!("{META}pod_container_name"), name.to_string());
                        }
                        out.push(g);
                    }
                    (None, None) => {
                        for c in pod.containers.iter().filter(|c| !c.init) {
                            for p in c.ports.iter().filter(|p| &*p.protocol == "TCP") {
                                out.push(container_group(&base, address(ip, p.number), c, Some(p)));
                            }
                        }
                    }
                }
                for g in &mut out[before..] {
                    g.labels
                        .extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
    }
    out
}

/// `ip:port`, bracketed for IPv6.
fn address(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

/// The target `address` of container `c` (on `port`, if declared), with
/// the pod's labels `base` and the container's.
pub fn container_group(
    base: &BTreeMap<String, String>,
    address: String,
    c: &ContainerInfo,
    port: Option<&PortInfo>,
) -> TargetGroup {
    let mut labels = base.clone();
    labels.insert(format!("{META}pod_container_name"), c.name.to_string());
    labels.insert(format!("{META}pod_container_image"), c.image.to_string());
    labels.insert(format!("{META}pod_container_init"), c.init.to_string());
    if let Some(p) = port {
        labels.insert(format!("{META}pod_container_port_name"), p.name.to_string());
        labels.insert(
            format!("{META}pod_container_port_number"),
            p.number.to_string(),
        );
        labels.insert(
            format!("{META}pod_container_port_protocol"),
            p.protocol.to_string(),
        );
    }
    TargetGroup {
        targets: vec![address],
        labels,
    }
}

/// The labels every target of `pod` has, as Prometheus names them.
pub fn pod_labels(pod: &PodInfo) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut set = |name: &str, value: &str| {
        labels.insert(format!("{META}{name}"), value.to_string());
    };
    set("namespace", &pod.namespace);
    set("pod_name", &pod.name);
    set(
        "pod_ip",
        &pod.ip.map(|ip| ip.to_string()).unwrap_or_default(),
    );
    set("pod_ready", pod.ready);
    set("pod_phase", &pod.phase);
    set("pod_node_name", &pod.node);
    set(
        "pod_host_ip",
        &pod.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
    );
    set("pod_uid", &pod.uid);
    if let Some((kind, name)) = &pod.controller {
        set("pod_controller_kind", kind);
        set("pod_controller_name", name);
    }
    for (key, value) in &pod.labels {
        let name = sanitize(key);
        set(&format!("pod_label_{name}"), value);
        set(&format!("pod_labelpresent_{name}"), "true");
    }
    for (key, value) in &pod.annotations {
        let name = sanitize(key);
        set(&format!("pod_annotation_{name}"), value);
        set(&format!("pod_annotationpresent_{name}"), "true");
    }
    labels
}

/// A Kubernetes key as a label name: every character outside
/// `[a-zA-Z0-9_]` becomes `_` (`app.kubernetes.io/name` → `app_kubernetes_io_name`).
pub fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
