//! The receivers ferro has: one line per type in [`ReceiverConfig`], and
//! what the plan and the topology ask of a receiver (its signals, whether
//! it reads the pod cache, how long it waits for a full pipeline, how it
//! starts).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{
    Inputs, RunningReceiver, host_metrics, journald, kubernetes_events, otlp, pod_logs, pprof,
    prometheus, zipkin,
};

use crate::config::ComponentId;
use crate::config::document::{Document, Value};
use crate::config::keys::{TypeKeys, keys};
use crate::delivery::MemoryLimiter;
use crate::k8s::cluster::ClusterObjects;
use crate::k8s::{KubernetesConfig, PodCache, PodCacheUse};
use crate::net::server::Servers;
use crate::signal::Signal;
use crate::telemetry::Telemetry;

/// A validated `[receivers.TYPE.NAME]` section.
#[derive(Clone, Debug, PartialEq)]
pub enum ReceiverConfig {
    Otlp(otlp::OtlpReceiverConfig),
    Prometheus(prometheus::PrometheusConfig),
    PodLogs(pod_logs::PodLogsConfig),
    Pprof(pprof::PprofConfig),
    HostMetrics(host_metrics::HostMetricsConfig),
    Journald(journald::JournaldConfig),
    KubernetesEvents(kubernetes_events::KubernetesEventsConfig),
    Zipkin(zipkin::ZipkinConfig),
}

impl ReceiverConfig {
    /// Every receiver type, as the config names it, with the keys its table
    /// accepts (see [`crate::config::keys`]): what the docs test checks
    /// each type's page against.
    pub const TYPES: &[TypeKeys] = &[
        ("otlp", keys::<otlp::RawOtlpReceiverConfig>),
        ("prometheus", keys::<prometheus::RawPrometheusConfig>),
        ("pprof", keys::<pprof::RawPprofConfig>),
        ("pod_logs", keys::<pod_logs::RawPodLogsConfig>),
        ("host_metrics", keys::<host_metrics::RawHostMetricsConfig>),
        ("journald", keys::<journald::RawJournaldConfig>),
        (
            "kubernetes_events",
            keys::<kubernetes_events::RawKubernetesEventsConfig>,
        ),
        ("zipkin", keys::<zipkin::RawZipkinConfig>),
    ];

    /// Reads a `[receivers.TYPE.NAME]` table; `None` for an unknown type.
    pub fn parse<'a>(
        type_name: &str,
        doc: &mut Document<'a>,
        path: &str,
        value: Value<'a>,
    ) -> Option<Option<Self>> {
        match type_name {
            "prometheus" => Some(
                doc.section::<prometheus::RawPrometheusConfig>(path, value)
                    .map(Self::Prometheus),
            ),
            "otlp" => Some(
                doc.section::<otlp::RawOtlpReceiverConfig>(path, value)
                    .map(Self::Otlp),
            ),
            "pprof" => Some(
                doc.section::<pprof::RawPprofConfig>(path, value)
                    .map(Self::Pprof),
            ),
            "pod_logs" => Some(
                doc.section::<pod_logs::RawPodLogsConfig>(path, value)
                    .map(Self::PodLogs),
            ),
            "host_metrics" => Some(
                doc.section::<host_metrics::RawHostMetricsConfig>(path, value)
                    .map(Self::HostMetrics),
            ),
            "journald" => Some(
                doc.section::<journald::RawJournaldConfig>(path, value)
                    .map(Self::Journald),
            ),
            "kubernetes_events" => {
                let span = value.span();
                let config =
                    doc.section::<kubernetes_events::RawKubernetesEventsConfig>(path, value);
                // The default ConfigMap is named after the receiver.
                let name = path.rsplit('.').next().unwrap_or_default();
                if let Some(map) = config.as_ref().and_then(|c| c.configmap_for(name))
                    && !crate::k8s::is_object_name(&map)
                {
                    doc.push(
                        format!("{path}.state_configmap"),
                        Some(span),
                        format!("the default ConfigMap name `{map}` (from the receiver's name) is not a Kubernetes object name; set state_configmap"),
                    );
                }
                Some(config.map(Self::KubernetesEvents))
            }
            "zipkin" => Some(
                doc.section::<zipkin::RawZipkinConfig>(path, value)
                    .map(Self::Zipkin),
            ),
            _ => None,
        }
    }

    /// Whether the receiver reads the process's pod cache.
    pub fn uses_pod_cache(&self) -> bool {
        self.pod_cache_use().is_some()
    }

    /// What in its config reads the process's pod cache, if anything.
    pub fn pod_cache_use(&self) -> Option<PodCacheUse> {
        let discovers = match self {
            Self::Prometheus(c) => c.uses_pod_cache(),
            Self::Pprof(c) => c.uses_pod_cache(),
            Self::Otlp(_)
            | Self::PodLogs(_)
            | Self::HostMetrics(_)
            | Self::Journald(_)
            | Self::KubernetesEvents(_)
            | Self::Zipkin(_) => false,
        };
        let setting = if self.follows_monitors() {
            "monitors"
        } else {
            "kubernetes_sd_configs"
        };
        discovers.then_some(PodCacheUse {
            setting,
            otherwise: None,
        })
    }

    /// What in its config needs `[kubernetes]` to reach the API server,
    /// and whether it needs `[kubernetes.leader]` too.
    pub fn api_use(&self) -> Option<(&'static str, bool)> {
        match self {
            Self::KubernetesEvents(c) => Some(("kubernetes_events", c.leader_only)),
            _ => None,
        }
    }

    /// Whether the receiver follows ServiceMonitors or PodMonitors (and so
    /// needs the cluster's monitors and Services watched).
    pub fn follows_monitors(&self) -> bool {
        matches!(self, Self::Prometheus(c) if !c.monitors.is_empty())
    }

    /// Whether the receiver discovers this node (`role = "node"`), so that
    /// the pod cache watches the node's object too.
    pub fn watches_node(&self) -> bool {
        match self {
            Self::Prometheus(c) => c.watches_node(),
            _ => false,
        }
    }

    /// The signals this receiver can feed into pipelines today.
    pub fn signals(&self) -> &'static [Signal] {
        match self {
            Self::Otlp(_) => &[Signal::Traces, Signal::Metrics, Signal::Logs],
            Self::Zipkin(_) => &[Signal::Traces],
            Self::Prometheus(_) | Self::HostMetrics(_) => &[Signal::Metrics],
            Self::PodLogs(_) | Self::Journald(_) | Self::KubernetesEvents(_) => &[Signal::Logs],
            Self::Pprof(_) => &[Signal::Profiles],
        }
    }
}

/// What every receiver of a topology starts with besides its config and
/// its inputs.
pub struct Context<'a> {
    /// The process's memory limit, which a receiver asks before it accepts.
    pub limiter: &'a Arc<MemoryLimiter>,
    pub telemetry: &'a Arc<Telemetry>,
    /// The pod cache, when the config reads it.
    pub pods: Option<&'a PodCache>,
    /// Whether this agent leads (`[kubernetes.leader]`), for leader-only work.
    pub leading: Option<&'a tokio::sync::watch::Receiver<bool>>,
    /// The listeners, kept across reloads.
    pub servers: &'a Servers,
    /// Where receivers keep state across restarts (log positions).
    pub data_dir: &'a Path,
    /// `[kubernetes]`, for receivers that read the API server themselves.
    pub kubernetes: Option<&'a KubernetesConfig>,
    /// The cluster's monitors and Services, when a receiver follows monitors.
    pub cluster: Option<&'a ClusterObjects>,
}

impl ReceiverConfig {
    /// How long the receiver waits for room in a full pipeline before it
    /// refuses (or, for a scraper, skips).
    pub fn pipeline_wait(&self) -> Duration {
        match self {
            Self::Otlp(c) => c.pipeline_wait,
            Self::Zipkin(c) => c.pipeline_wait,
            Self::Pprof(c) => c.pipeline_wait,
            // A scrape that finds the pipeline full waits, then skips the
            // rest of its data and counts it: the next interval scrapes
            // afresh.
            Self::Prometheus(_) => Duration::from_secs(5),
            // A tailer (or the journal reader) offered no room waits and
            // offers the same batch again: the file is its buffer.
            Self::PodLogs(_) | Self::Journald(_) => Duration::from_secs(1),
            // Events wait in the API server (an hour): the watch is not
            // read while the pipelines are full.
            Self::KubernetesEvents(_) => Duration::from_secs(1),
            Self::HostMetrics(_) => host_metrics::PIPELINE_WAIT,
        }
    }

    /// Starts the receiver `id` feeding `inputs`.
    pub async fn start(
        &self,
        id: &ComponentId,
        inputs: Inputs,
        cx: &Context<'_>,
    ) -> std::io::Result<RunningReceiver> {
        let limiter = cx.limiter.clone();
        match self {
            Self::Otlp(c) => otlp::start(id, c, inputs, limiter, cx.telemetry, cx.servers).await,
            Self::Zipkin(c) => {
                zipkin::start(id, c, inputs, limiter, cx.telemetry, cx.servers).await
            }
            Self::Prometheus(c) => {
                let kubernetes = prometheus::Cluster {
                    pods: cx.pods.cloned(),
                    objects: cx.cluster.cloned(),
                    leading: cx.leading.cloned(),
                    tls_dir: cx.data_dir.join("monitors").join(&id.name),
                };
                prometheus::start(id, c, inputs, limiter, cx.telemetry, kubernetes).await
            }
            Self::Pprof(c) => {
                let pods = cx.pods.cloned();
                pprof::start(id, c, inputs, limiter, cx.telemetry, pods, cx.servers).await
            }
            Self::PodLogs(c) => {
                pod_logs::start(id, c, inputs, limiter, cx.telemetry, cx.data_dir).await
            }
            Self::HostMetrics(c) => host_metrics::start(id, c, inputs, limiter, cx.telemetry).await,
            Self::Journald(c) => {
                journald::start(id, c, inputs, limiter, cx.telemetry, cx.data_dir).await
            }
            Self::KubernetesEvents(c) => {
                let start = kubernetes_events::Start {
                    kubernetes: cx.kubernetes,
                    leading: cx.leading,
                    data_dir: cx.data_dir,
                };
                kubernetes_events::start(id, c, inputs, limiter, cx.telemetry, start).await
            }
        }
    }
}
