//! Kubernetes pod discovery for pprof jobs (`kubernetes_sd_configs`): the
//! pods of this node from the process's pod cache, through the same
//! `k8s::discovery` as the Prometheus receiver, so targets carry the same
//! `__meta_kubernetes_pod_*` labels and relabel the same way.
//!
//! By default a pod asks to be profiled per type, with the annotations
//! Grafana's docs use
//! (<https://grafana.com/docs/pyroscope/latest/configure-client/grafana-alloy/go_pull/>):
//!
//! ```yaml
//! profiles.grafana.com/cpu.scrape: "true"
//! profiles.grafana.com/cpu.port: "6060"          # or .port_name: "http-pprof"
//! profiles.grafana.com/cpu.path: "/debug/pprof/profile"   # optional
//! ```
//!
//! for each profile type the job enables (`cpu` for `process_cpu`, else the
//! type's name). Each group asks for one type through `__profile_type__`,
//! and for its path, if annotated, through `__profile_path__`.

use std::sync::Arc;

use super::config::KubernetesSdConfig;
use super::scrape::PROFILE_TYPE_LABEL;
use crate::k8s::PodInfo;
use crate::k8s::discovery::target_groups;
use crate::scrape::StaticConfig;

/// The target groups `sd_configs` find among `pods`.
pub fn pod_groups(sd_configs: &[KubernetesSdConfig], pods: &[Arc<PodInfo>]) -> Vec<StaticConfig> {
    let mut out = Vec::new();
    for sd in sd_configs {
        match sd {
            KubernetesSdConfig::EveryPort => {
                out.extend(target_groups(pods, None).into_iter().map(|g| StaticConfig {
                    targets: g.targets,
                    labels: g.labels,
                }));
            }
            KubernetesSdConfig::Annotated(types) => {
                for (profile_type, keys) in types {
                    for mut g in target_groups(pods, Some(keys)) {
                        g.labels
                            .insert(PROFILE_TYPE_LABEL.to_string(), profile_type.clone());
                        out.push(StaticConfig {
                            targets: g.targets,
                            labels: g.labels,
                        });
                    }
                }
            }
        }
    }
    out
}
