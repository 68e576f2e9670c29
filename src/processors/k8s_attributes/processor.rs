//! The enricher: each record's pod found (by its attributes, or the sending
//! client's address) and the configured metadata copied onto it.

use super::config::{Association, Field, K8sAttributesConfig, Source};
use prometheus_client::metrics::counter::Counter;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::ComponentId;
use crate::delivery::Batch;
use crate::k8s::{PodCache, PodInfo};
use crate::signal::{Fields, Group, Naming, Signal};
use crate::telemetry::Telemetry;

/// A built `k8s_attributes` processor.
pub struct K8sAttributes {
    config: K8sAttributesConfig,
    lookup: Lookup,
    /// Per signal, in [`Signal`] order.
    counters: [Counters; 4],
}

pub(super) enum Lookup {
    Cache(PodCache),
    /// The pairs to set, per naming, read from the environment once.
    Env {
        otel: Vec<(String, String)>,
        labels: Vec<(String, String)>,
    },
    /// `source = "api"` without a cache: validation prevents it, but a
    /// processor built so counts rather than guesses.
    Missing,
}

pub(super) struct Counters {
    associated: Counter,
    no_key: Counter,
    not_found: Counter,
    no_cache: Counter,
}

/// Why a group's pod was not found.
pub(super) enum Miss {
    /// Nothing to find it by: no uid, name, IP or peer.
    NoKey,
    /// Keys were there, but no cached pod matches them.
    NotFound,
}

/// The downward-API variables a sidecar's `source = "env"` reads.
pub const ENV_VARS: [(&str, Field); 5] = [
    ("POD_NAMESPACE", Field::Namespace),
    ("POD_NAME", Field::Pod),
    ("POD_UID", Field::PodUid),
    ("NODE_NAME", Field::Node),
    ("CONTAINER_NAME", Field::Container),
];

impl K8sAttributes {
    pub fn new(
        id: &ComponentId,
        config: &K8sAttributesConfig,
        pods: Option<PodCache>,
        telemetry: &Telemetry,
    ) -> Self {
        Self::with_env(id, config, pods, telemetry, &|name| {
            std::env::var(name).ok()
        })
    }

    /// As [`K8sAttributes::new`], reading variables through `env`.
    pub fn with_env(
        id: &ComponentId,
        config: &K8sAttributesConfig,
        pods: Option<PodCache>,
        telemetry: &Telemetry,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Self {
        let lookup = match (config.source, pods) {
            (Source::Api, Some(cache)) => Lookup::Cache(cache),
            (Source::Api, None) => Lookup::Missing,
            (Source::Env, _) => {
                let values: Vec<(Field, String)> = ENV_VARS
                    .iter()
                    .filter_map(|(var, field)| {
                        env(var).filter(|v| !v.is_empty()).map(|v| (*field, v))
                    })
                    .collect();
                if values.is_empty() {
                    tracing::warn!(
                        processor = %id,
                        "source = \"env\" but none of POD_NAMESPACE, POD_NAME, POD_UID, NODE_NAME is set: add them from the downward API"
                    );
                }
                let pairs = |names: &[(Field, String)]| {
                    names
                        .iter()
                        .filter_map(|(field, name)| {
                            let value = values.iter().find(|(f, _)| f == field)?;
                            Some((name.clone(), value.1.clone()))
                        })
                        .collect()
                };
                Lookup::Env {
                    otel: pairs(&config.otel_names),
                    labels: pairs(&config.label_names),
                }
            }
        };
        let counters = [
            Signal::Traces,
            Signal::Metrics,
            Signal::Logs,
            Signal::Profiles,
        ]
        .map(|signal| {
            let labels = Telemetry::labels("processor", id, signal);
            let miss =
                |reason| Telemetry::reason_counter(&telemetry.k8s.unassociated, &labels, reason);
            Counters {
                associated: Telemetry::counter(&telemetry.k8s.associated, &labels),
                no_key: miss("no_pod_key"),
                not_found: miss("pod_not_found"),
                no_cache: miss("no_pod_cache"),
            }
        });
        Self {
            config: config.clone(),
            lookup,
            counters,
        }
    }

    /// Adds pod metadata to every group of `batch` whose pod is found.
    pub fn process<T: Fields>(&self, batch: &mut Batch<T>) {
        let counters = &self.counters[T::SIGNAL as usize];
        let peer = batch.peer;
        let mut changed = false;
        match &self.lookup {
            Lookup::Env { otel, labels } => {
                let pairs = match T::NAMING {
                    Naming::Otel => otel,
                    Naming::Labels => labels,
                };
                let refs: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                batch.data.retain_groups(&mut |group| {
                    counters.associated.inc_by(group.items() as u64);
                    group.set(&refs);
                    true
                });
                changed = !refs.is_empty();
            }
            Lookup::Missing => batch.data.retain_groups(&mut |group| {
                counters.no_cache.inc_by(group.items() as u64);
                true
            }),
            Lookup::Cache(cache) => {
                let mut pairs: Vec<(String, String)> = Vec::new();
                batch.data.retain_groups(&mut |group| {
                    let items = group.items() as u64;
                    match self.find(cache, &*group, T::NAMING, peer) {
                        Ok(pod) => {
                            pairs.clear();
                            self.pairs(&pod, &*group, T::NAMING, &mut pairs);
                            let refs: Vec<(&str, &str)> = pairs
                                .iter()
                                .map(|(k, v)| (k.as_str(), v.as_str()))
                                .collect();
                            group.set(&refs);
                            changed = true;
                            counters.associated.inc_by(items);
                        }
                        Err(Miss::NoKey) => {
                            counters.no_key.inc_by(items);
                        }
                        Err(Miss::NotFound) => {
                            counters.not_found.inc_by(items);
                        }
                    }
                    true
                });
            }
        }
        if changed {
            batch.bytes = batch.data.encoded_len();
        }
    }

    /// The pod of `group`, by the first association that names one.
    fn find(
        &self,
        cache: &PodCache,
        group: &dyn Group,
        naming: Naming,
        peer: Option<IpAddr>,
    ) -> Result<Arc<PodInfo>, Miss> {
        let (uid_key, ns_key, pod_key, ip_key) = match naming {
            Naming::Otel => (
                "k8s.pod.uid",
                "k8s.namespace.name",
                "k8s.pod.name",
                "k8s.pod.ip",
            ),
            Naming::Labels => ("pod_uid", "namespace", "pod", "pod_ip"),
        };
        let mut keyed = false;
        for association in &self.config.associate {
            let found = match association {
                Association::PodUid => group.get(uid_key).filter(|v| !v.is_empty()).map(|uid| {
                    keyed = true;
                    cache.by_uid(uid)
                }),
                Association::NamespacePod => match name_keys(group, naming, ns_key, pod_key) {
                    (Some(ns), Some(name)) if !ns.is_empty() && !name.is_empty() => {
                        keyed = true;
                        Some(cache.by_name(ns, name))
                    }
                    _ => None,
                },
                Association::PodIp => group
                    .get(ip_key)
                    .and_then(|ip| ip.parse::<IpAddr>().ok())
                    .map(|ip| {
                        keyed = true;
                        cache.by_ip(ip.to_canonical())
                    }),
                Association::Instance if naming == Naming::Labels => {
                    group.get("instance").and_then(instance_ip).map(|ip| {
                        keyed = true;
                        cache.by_ip(ip)
                    })
                }
                Association::Instance => None,
                Association::Peer => peer.map(|ip| {
                    keyed = true;
                    cache.by_ip(ip)
                }),
            };
            if let Some(Some(pod)) = found {
                return Ok(pod);
            }
        }
        Err(if keyed { Miss::NotFound } else { Miss::NoKey })
    }

    /// The `(name, value)` pairs `pod` gives `group`.
    fn pairs(
        &self,
        pod: &PodInfo,
        group: &dyn Group,
        naming: Naming,
        out: &mut Vec<(String, String)>,
    ) {
        let names = match naming {
            Naming::Otel => &self.config.otel_names,
            Naming::Labels => &self.config.label_names,
        };
        let container_key = names
            .iter()
            .find(|(f, _)| *f == Field::Container)
            .map(|(_, n)| n.as_str());
        for (field, name) in names {
            let value: Option<&str> = match field {
                Field::Namespace => Some(&pod.namespace),
                Field::Pod => Some(&pod.name),
                Field::PodUid => Some(&pod.uid),
                Field::Node => Some(&pod.node),
                // A record that names its container keeps it; otherwise
                // only a pod with a single container says which it was.
                Field::Container => match container_key.and_then(|k| group.get(k)) {
                    Some(existing) if !existing.is_empty() => None,
                    _ => pod.only_container(),
                },
                Field::OwnerKind => pod.owner.as_ref().map(|(kind, _)| &**kind),
                Field::OwnerName => pod.owner.as_ref().map(|(_, name)| &**name),
            };
            let Some(value) = value.filter(|v| !v.is_empty()) else {
                continue;
            };
            let name = if name.contains("{kind}") {
                match &pod.owner {
                    Some((kind, _)) => name.replace("{kind}", &kind.to_ascii_lowercase()),
                    None => continue,
                }
            } else {
                name.clone()
            };
            out.push((name, value.to_string()));
        }
        copy_found(&self.config.pod_labels, |k| pod.label(k), naming, out);
        copy_found(
            &self.config.pod_annotations,
            |k| pod.annotation(k),
            naming,
            out,
        );
        if !self.config.uses_namespaces() {
            return;
        }
        let Lookup::Cache(cache) = &self.lookup else {
            return;
        };
        // Not yet listed, or gone: the pod's own metadata still applies.
        let Some(namespace) = cache.namespace(&pod.namespace) else {
            return;
        };
        copy_found(
            &self.config.namespace_labels,
            |k| namespace.label(k),
            naming,
            out,
        );
        copy_found(
            &self.config.namespace_annotations,
            |k| namespace.annotation(k),
            naming,
            out,
        );
    }
}

/// The `(name, value)` pair of each copy whose key `lookup` finds, under
/// `naming`'s name.
pub(super) fn copy_found<'v>(
    copies: &[super::config::Copy],
    lookup: impl Fn(&str) -> Option<&'v str>,
    naming: Naming,
    out: &mut Vec<(String, String)>,
) {
    for copy in copies {
        if let Some(value) = lookup(&copy.key) {
            let name = match naming {
                Naming::Otel => &copy.otel,
                Naming::Labels => &copy.label,
            };
            out.push((name.clone(), value.to_string()));
        }
    }
}

/// A group's namespace and pod name; on labels also as Loki's OTLP
/// endpoint names them (`k8s_namespace_name`, `k8s_pod_name`), which is
/// how OTLP logs arrive.
pub(super) fn name_keys<'g>(
    group: &'g dyn Group,
    naming: Naming,
    ns_key: &str,
    pod_key: &str,
) -> (Option<&'g str>, Option<&'g str>) {
    match (naming, group.get(ns_key), group.get(pod_key)) {
        (Naming::Labels, None, None) => {
            (group.get("k8s_namespace_name"), group.get("k8s_pod_name"))
        }
        (_, ns, pod) => (ns, pod),
    }
}

/// The IP in a scrape target's `instance` (`10.1.0.5:9102`, `[fd00::7]:80`).
pub(super) fn instance_ip(instance: &str) -> Option<IpAddr> {
    if let Ok(addr) = instance.parse::<std::net::SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    instance.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}
