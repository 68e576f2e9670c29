use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::monitors::{MonitorSource, MonitorsConfig, RawMonitorsConfig};
use crate::config::{ByteSize, FieldError, HumanDuration, Validate};
use crate::k8s::discovery::ScrapeAnnotations;
use crate::net::auth::BasicAuth;
use crate::net::tls::TlsConfig;
use crate::prom::relabel::{self, RawRelabelConfig, RelabelConfig};
use crate::scrape::{
    FileSdConfig, JobDefaults, JobSettings, RawJob, RawKubernetesSdConfig, StaticConfig,
};

/// `[receivers.prometheus.NAME]` as written.
#[derive(Deserialize)]
pub struct RawPrometheusConfig {
    /// Defaults for every scrape config, as Prometheus' `global` section.
    scrape_interval: Option<HumanDuration>,
    scrape_timeout: Option<HumanDuration>,
    #[serde(default)]
    scrape_configs: Vec<RawScrapeConfig>,
    /// Which ServiceMonitors and PodMonitors to scrape the targets of.
    #[serde(default)]
    monitors: Vec<RawMonitorsConfig>,
}

/// One `[[receivers.prometheus.NAME.scrape_configs]]`, named as Prometheus'
/// `scrape_config` so that a `prometheus.yml` ports by translating syntax.
#[derive(Deserialize, Default)]
pub(super) struct RawScrapeConfig {
    pub(super) job_name: String,
    pub(super) scrape_interval: Option<HumanDuration>,
    pub(super) scrape_timeout: Option<HumanDuration>,
    pub(super) metrics_path: Option<String>,
    pub(super) scheme: Option<String>,
    #[serde(default)]
    pub(super) params: BTreeMap<String, Vec<String>>,
    pub(super) basic_auth: Option<BasicAuth>,
    pub(super) bearer_token: Option<String>,
    pub(super) bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) tls_config: TlsConfig,
    #[serde(default)]
    pub(super) honor_labels: bool,
    pub(super) honor_timestamps: Option<bool>,
    #[serde(default)]
    pub(super) sample_limit: usize,
    #[serde(default)]
    pub(super) target_limit: usize,
    #[serde(default)]
    pub(super) label_limit: usize,
    #[serde(default)]
    pub(super) label_name_length_limit: usize,
    #[serde(default)]
    pub(super) label_value_length_limit: usize,
    pub(super) body_size_limit: Option<ByteSize>,
    pub(super) enable_compression: Option<bool>,
    #[serde(default)]
    pub(super) static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub(super) file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    pub(super) kubernetes_sd_configs: Vec<RawKubernetesSdConfig>,
    #[serde(default)]
    pub(super) relabel_configs: Vec<RawRelabelConfig>,
    #[serde(default)]
    pub(super) metric_relabel_configs: Vec<RawRelabelConfig>,
}

/// A checked Kubernetes discovery source.
#[derive(Clone, Debug, PartialEq)]
pub enum KubernetesSdConfig {
    /// The pods of this node; `annotations` `None`: every container port
    /// (Prometheus' pod role).
    Pods {
        annotations: Option<ScrapeAnnotations>,
    },
    /// This node itself (Prometheus' node role): its kubelet's address and
    /// `__meta_kubernetes_node_*` labels.
    Node,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PrometheusConfig {
    pub scrape_configs: Vec<ScrapeConfig>,
    /// The ServiceMonitors and PodMonitors honoured (`[[...monitors]]`).
    pub monitors: Vec<MonitorsConfig>,
    pub defaults: Defaults,
}

impl PrometheusConfig {
    /// Whether a scrape config discovers pods or the node (and so needs the
    /// pod cache).
    pub fn uses_pod_cache(&self) -> bool {
        !self.monitors.is_empty()
            || self
                .scrape_configs
                .iter()
                .any(|c| !c.kubernetes_sd_configs.is_empty())
    }

    /// Whether a scrape config discovers this node (`role = "node"`).
    pub fn watches_node(&self) -> bool {
        self.scrape_configs
            .iter()
            .any(|c| c.kubernetes_sd_configs.contains(&KubernetesSdConfig::Node))
    }
}

/// A checked scrape config.
#[derive(Clone, Debug)]
pub struct ScrapeConfig {
    /// What every scrape job has: name, interval, timeout, scheme,
    /// credentials, body limit, targets and `relabel_configs`.
    pub job: JobSettings,
    pub metrics_path: String,
    pub params: BTreeMap<String, Vec<String>>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub sample_limit: usize,
    /// More targets than this (after relabelling) and every target of the
    /// job fails unscraped; 0: no limit.
    pub target_limit: usize,
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
    pub enable_compression: bool,
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// For a job made from a ServiceMonitor or PodMonitor: where its
    /// targets come from.
    pub monitor: Option<MonitorSource>,
    /// The section as written, for deciding whether a reload changed it.
    fingerprint: String,
}

impl ScrapeConfig {
    /// Adds what else decides the job's targets to what tells two
    /// configs apart (a monitor's selector and namespaces).
    pub(super) fn extend_fingerprint(&mut self, extra: &str) {
        self.fingerprint.push('|');
        self.fingerprint.push_str(extra);
    }
}

impl PartialEq for ScrapeConfig {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

/// Largest scrape body accepted when `body_size_limit` is not set: a target
/// must not be able to make ferro buffer without bound.
const DEFAULT_BODY_SIZE_LIMIT: u64 = 64 << 20;

impl RawScrapeConfig {
    /// The fields every scrape job has, and the rest.
    fn split(self) -> (RawJob, RawOwn) {
        let job = RawJob {
            job_name: self.job_name,
            scrape_interval: self.scrape_interval,
            scrape_timeout: self.scrape_timeout,
            scheme: self.scheme,
            basic_auth: self.basic_auth,
            bearer_token: self.bearer_token,
            bearer_token_file: self.bearer_token_file,
            tls_config: self.tls_config,
            body_size_limit: self.body_size_limit,
            static_configs: self.static_configs,
            file_sd_configs: self.file_sd_configs,
            relabel_configs: self.relabel_configs,
        };
        let own = RawOwn {
            metrics_path: self.metrics_path,
            params: self.params,
            honor_labels: self.honor_labels,
            honor_timestamps: self.honor_timestamps,
            sample_limit: self.sample_limit,
            target_limit: self.target_limit,
            label_limit: self.label_limit,
            label_name_length_limit: self.label_name_length_limit,
            label_value_length_limit: self.label_value_length_limit,
            enable_compression: self.enable_compression,
            kubernetes_sd_configs: self.kubernetes_sd_configs,
            metric_relabel_configs: self.metric_relabel_configs,
        };
        (job, own)
    }
}

/// The fields of a Prometheus scrape config that the pprof receiver's jobs do not have.
#[derive(Debug)]
struct RawOwn {
    metrics_path: Option<String>,
    params: BTreeMap<String, Vec<String>>,
    honor_labels: bool,
    honor_timestamps: Option<bool>,
    sample_limit: usize,
    target_limit: usize,
    label_limit: usize,
    label_name_length_limit: usize,
    label_value_length_limit: usize,
    enable_compression: Option<bool>,
    kubernetes_sd_configs: Vec<RawKubernetesSdConfig>,
    metric_relabel_configs: Vec<RawRelabelConfig>,
}

/// The receiver's rules for a job's interval, timeout and body, from its
/// `scrape_interval` and `scrape_timeout` (Prometheus' `global`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    pub scrape_interval: std::time::Duration,
    pub scrape_timeout: std::time::Duration,
}

impl Defaults {
    /// Checks one raw scrape config by these defaults; `jobs` holds the job
    /// names seen so far (each must be unique), `at` names a field.
    pub(super) fn check(
        &self,
        raw: RawScrapeConfig,
        jobs: &mut Vec<String>,
        at: &dyn Fn(&str) -> String,
        errors: &mut Vec<FieldError>,
    ) -> ScrapeConfig {
        let default_timeout = self.scrape_timeout;
        let defaults = JobDefaults {
            scrape_interval: self.scrape_interval,
            scrape_timeout: &|interval| default_timeout.min(interval),
            check_times: &|interval, timeout, at, errors| {
                if interval.is_zero() {
                    errors.push(FieldError::new(
                        at("scrape_interval"),
                        "must be more than 0",
                    ));
                }
                if timeout > interval {
                    errors.push(FieldError::new(
                        at("scrape_timeout"),
                        "must not be longer than scrape_interval",
                    ));
                }
            },
            body_size_limit: DEFAULT_BODY_SIZE_LIMIT,
        };
        let (raw_job, raw) = raw.split();
        let written = format!("{raw_job:?}|{raw:?}");
        let job = JobSettings::check(raw_job, &defaults, jobs, at, errors);
        let metrics_path = raw.metrics_path.unwrap_or_else(|| "/metrics".into());
        if !metrics_path.starts_with('/') {
            errors.push(FieldError::new(at("metrics_path"), "must start with /"));
        }
        let mut kubernetes_sd_configs = Vec::new();
        for (j, sd) in raw.kubernetes_sd_configs.iter().enumerate() {
            let at = at(&format!("kubernetes_sd_configs.{j}"));
            if sd.is_node() {
                kubernetes_sd_configs.push(KubernetesSdConfig::Node);
                continue;
            }
            let prefix = sd.check(at, "prometheus.io", errors);
            kubernetes_sd_configs.push(KubernetesSdConfig::Pods {
                annotations: prefix.map(|p| ScrapeAnnotations::prefixed(&p)),
            });
        }
        let metric_relabel_configs =
            relabel::validate_all(raw.metric_relabel_configs, &at("metric_relabel_configs"))
                .unwrap_or_else(|found| {
                    errors.extend(found);
                    Vec::new()
                });
        let fingerprint = format!(
            "{written}|{:?}|{:?}|{}",
            job.scrape_interval, job.scrape_timeout, job.body_size_limit
        );
        ScrapeConfig {
            job,
            metrics_path,
            params: raw.params,
            honor_labels: raw.honor_labels,
            honor_timestamps: raw.honor_timestamps.unwrap_or(true),
            sample_limit: raw.sample_limit,
            target_limit: raw.target_limit,
            label_limit: raw.label_limit,
            label_name_length_limit: raw.label_name_length_limit,
            label_value_length_limit: raw.label_value_length_limit,
            enable_compression: raw.enable_compression.unwrap_or(true),
            kubernetes_sd_configs,
            metric_relabel_configs,
            monitor: None,
            fingerprint,
        }
    }
}

impl Validate for RawPrometheusConfig {
    type Valid = PrometheusConfig;

    fn validate(self) -> Result<PrometheusConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let defaults = Defaults {
            scrape_interval: self
                .scrape_interval
                .map_or(std::time::Duration::from_secs(60), |d| d.get()),
            scrape_timeout: self
                .scrape_timeout
                .map_or(std::time::Duration::from_secs(10), |d| d.get()),
        };
        if self.scrape_configs.is_empty() && self.monitors.is_empty() {
            errors.push(FieldError::new(
                "scrape_configs",
                "add at least one [[...scrape_configs]] with a job_name, or [[...monitors]]",
            ));
        }
        let mut jobs = Vec::new();
        let mut out = Vec::new();
        for (i, raw) in self.scrape_configs.into_iter().enumerate() {
            let at = |field: &str| format!("scrape_configs.{i}.{field}");
            out.push(defaults.check(raw, &mut jobs, &at, &mut errors));
        }
        let mut monitors = Vec::new();
        for (i, raw) in self.monitors.into_iter().enumerate() {
            let at = |field: &str| format!("monitors.{i}.{field}");
            monitors.push(raw.check(&at, &mut errors));
        }
        if errors.is_empty() {
            Ok(PrometheusConfig {
                scrape_configs: out,
                monitors,
                defaults,
            })
        } else {
            Err(errors)
        }
    }
}
