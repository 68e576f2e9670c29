//! What ferro keeps of a pod: a trimmed copy of the fields association,
//! enrichment and discovery read, not the whole `Pod` object (managed
//! fields, container statuses, volumes and env are most of a pod's bytes and
//! none of ferro's business).

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::net::IpAddr;
use std::sync::Arc;

/// Annotation values longer than this are not kept: discovery and
/// enrichment want short values (`prometheus.io/port`), and a pod must not
/// be able to make the cache large with one huge annotation.
pub const MAX_ANNOTATION_VALUE: usize = 4096;

/// Annotations that are never kept: large, and only of use to `kubectl`.
const SKIPPED_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// A pod of this node, as far as ferro needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub uid: Arc<str>,
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    pub node: Arc<str>,
    /// The pod's primary IP; `None` while it starts, or after eviction.
    pub ip: Option<IpAddr>,
    /// The pod's other IP in a dual-stack cluster (`status.podIPs`: one
    /// per address family, the primary first).
    pub secondary_ip: Option<IpAddr>,
    pub host_ip: Option<IpAddr>,
    /// The pod shares the node's network namespace, so its IP is the
    /// node's and says nothing about which pod sent something.
    pub host_network: bool,
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    pub phase: Arc<str>,
    /// The `Ready` condition, lower case (`true`, `false`, `unknown`).
    pub ready: &'static str,
    /// The controlling owner reference as written (`ReplicaSet`, `web-5d8f9c7b6d`).
    pub controller: Option<(Arc<str>, Arc<str>)>,
    /// The workload the pod belongs to, derived from `controller`
    /// without watching owners (`Deployment`, `web`).
    pub owner: Option<(Arc<str>, Arc<str>)>,
    /// Sorted by key.
    pub labels: Vec<(Arc<str>, Arc<str>)>,
    /// Sorted by key; without [`SKIPPED_ANNOTATIONS`] and values longer
    /// than [`MAX_ANNOTATION_VALUE`].
    pub annotations: Vec<(Arc<str>, Arc<str>)>,
    pub containers: Vec<ContainerInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: Arc<str>,
    pub image: Arc<str>,
    pub init: bool,
    pub ports: Vec<PortInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    pub name: Arc<str>,
    pub number: u16,
    pub protocol: Arc<str>,
}

/// Why an object from the API (a pod, a namespace) was not taken into the
/// cache.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Incomplete {
    #[error("the object has no {0}")]
    Missing(&'static str),
}

impl PodInfo {
    /// The trimmed copy of `pod`; annotations dropped for size are counted
    /// in `skipped_annotations`.
    pub fn from_pod(pod: &Pod, skipped_annotations: &mut u64) -> Result<PodInfo, Incomplete> {
        let meta = &pod.metadata;
        let uid = meta.uid.as_deref().ok_or(Incomplete::Missing("uid"))?;
        let name = meta.name.as_deref().ok_or(Incomplete::Missing("name"))?;
        let namespace = meta.namespace.as_deref().unwrap_or("default");
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true))
            .map(|r| {
                (
                    Arc::<str>::from(r.kind.as_str()),
                    Arc::<str>::from(r.name.as_str()),
                )
            });
        let owner = controller
            .as_ref()
            .map(|(kind, name)| workload(kind, name))
            .map(|(kind, name)| (Arc::<str>::from(kind), Arc::<str>::from(name)));
        let labels = kept_labels(meta);
        let annotations = kept_annotations(meta, skipped_annotations);
        let mut containers = Vec::new();
        if let Some(spec) = spec {
            containers.extend(spec.containers.iter().map(|c| container(c, false)));
            containers.extend(
                spec.init_containers
                    .iter()
                    .flatten()
                    .map(|c| container(c, true)),
            );
        }
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map_or("unknown", |c| match c.status.as_str() {
                "True" => "true",
                "False" => "false",
                _ => "unknown",
            });
        let ip = status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        Ok(PodInfo {
            uid: uid.into(),
            namespace: namespace.into(),
            name: name.into(),
            node: spec
                .and_then(|s| s.node_name.as_deref())
                .unwrap_or("")
                .into(),
            ip,
            secondary_ip: status
                .and_then(|s| s.pod_ips.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|p| p.ip.parse::<IpAddr>().ok())
                .find(|other| Some(*other) != ip),
            host_ip: status
                .and_then(|s| s.host_ip.as_deref())
                .and_then(|ip| ip.parse().ok()),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            phase: status
                .and_then(|s| s.phase.as_deref())
                .unwrap_or("Unknown")
                .into(),
            ready,
            controller,
            owner,
            labels,
            annotations,
            containers,
        })
    }

    /// Every IP of the pod: the primary, then a dual-stack secondary.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ip.into_iter().chain(self.secondary_ip)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        lookup(&self.labels, key)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        lookup(&self.annotations, key)
    }

    /// Whether the pod has finished and its IP may already belong to another.
    pub fn terminated(&self) -> bool {
        matches!(&*self.phase, "Succeeded" | "Failed")
    }

    /// The pod's only regular container, if it has exactly one: the one a
    /// record that names no container must have come from.
    pub fn only_container(&self) -> Option<&str> {
        let mut regular = self.containers.iter().filter(|c| !c.init);
        match (regular.next(), regular.next()) {
            (Some(c), None) => Some(&c.name),
            _ => None,
        }
    }

    /// Roughly the heap bytes this entry holds, for the cache's gauge.
    pub fn heap_bytes(&self) -> usize {
        self.uid.len()
            + self.namespace.len()
            + self.name.len()
            + self.node.len()
            + pairs_bytes(&self.labels)
            + pairs_bytes(&self.annotations)
            + self
                .containers
                .iter()
                .map(|c| c.name.len() + c.image.len() + c.ports.len() * 48 + 64)
                .sum::<usize>()
            + std::mem::size_of::<Self>()
    }
}

/// An object's labels, sorted by key (as the API's map keeps them).
pub(super) fn kept_labels(meta: &ObjectMeta) -> Vec<(Arc<str>, Arc<str>)> {
    meta.labels
        .iter()
        .flatten()
        .map(|(k, v)| (Arc::<str>::from(k.as_str()), Arc::<str>::from(v.as_str())))
        .collect()
}

/// An object's annotations, sorted by key, without [`SKIPPED_ANNOTATIONS`]
/// and values longer than [`MAX_ANNOTATION_VALUE`] (counted in `skipped`).
pub(super) fn kept_annotations(meta: &ObjectMeta, skipped: &mut u64) -> Vec<(Arc<str>, Arc<str>)> {
    let mut annotations = Vec::new();
    for (k, v) in meta.annotations.iter().flatten() {
        if SKIPPED_ANNOTATIONS.contains(&k.as_str()) || v.len() > MAX_ANNOTATION_VALUE {
            *skipped += 1;
            continue;
        }
        annotations.push((Arc::<str>::from(k.as_str()), Arc::<str>::from(v.as_str())));
    }
    annotations
}

/// Bytes of a label or annotation list, for the cache's gauge.
pub(super) fn pairs_bytes(pairs: &[(Arc<str>, Arc<str>)]) -> usize {
    pairs.iter().map(|(k, v)| k.len() + v.len() + 32).sum()
}

pub(super) fn lookup<'a>(pairs: &'a [(Arc<str>, Arc<str>)], key: &str) -> Option<&'a str> {
    pairs
        .binary_search_by(|(k, _)| (**k).cmp(key))
        .ok()
        .map(|i| &*pairs[i].1)
}

fn container(c: &Container, init: bool) -> ContainerInfo {
    ContainerInfo {
        name: c.name.as_str().into(),
        image: c.image.as_deref().unwrap_or("").into(),
        init,
        ports: c
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(PortInfo {
                    name: p.name.as_deref().unwrap_or("").into(),
                    number: u16::try_from(p.container_port).ok()?,
                    protocol: p.protocol.as_deref().unwrap_or("TCP").into(),
                })
            })
            .collect(),
    }
}

/// The workload behind a controlling owner, from names alone: a
/// Deployment's ReplicaSet is `<deployment>-<pod-template-hash>`, a
/// CronJob's Job is `<cronjob>-<scheduled minutes since the epoch>`.
/// Anything else is its own workload.
pub fn workload<'a>(kind: &'a str, name: &'a str) -> (&'a str, &'a str) {
    match kind {
        "ReplicaSet" => match name.rsplit_once('-') {
            Some((deployment, hash)) if !deployment.is_empty() && is_template_hash(hash) => {
                ("Deployment", deployment)
            }
            _ => (kind, name),
        },
        "Job" => match name.rsplit_once('-') {
            Some((cronjob, stamp))
                if !cronjob.is_empty()
                    && (8..=12).contains(&stamp.len())
                    && stamp.bytes().all(|b| b.is_ascii_digit()) =>
            {
                ("CronJob", cronjob)
            }
            _ => (kind, name),
        },
        _ => (kind, name),
    }
}

/// Whether `s` can be a pod-template-hash: Kubernetes writes the hash in
/// an alphabet without vowels and look-alike characters (`SafeEncodeString`),
/// up to 10 characters.
fn is_template_hash(s: &str) -> bool {
    const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (1..=10).contains(&s.len()) && s.bytes().all(|b| SAFE.contains(&b))
}
