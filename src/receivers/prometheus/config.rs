use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

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
}

/// One `[[receivers.prometheus.NAME.scrape_configs]]`, named as Prometheus'
/// `scrape_config` so that a `prometheus.yml` ports by translating syntax.
#[derive(Deserialize)]
struct RawScrapeConfig {
    job_name: String,
    scrape_interval: Option<HumanDuration>,
    scrape_timeout: Option<HumanDuration>,
    metrics_path: Option<String>,
    scheme: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, Vec<String>>,
    basic_auth: Option<BasicAuth>,
    bearer_token: Option<String>,
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    tls_config: TlsConfig,
    #[serde(default)]
    honor_labels: bool,
    honor_timestamps: Option<bool>,
    #[serde(default)]
    sample_limit: usize,
    #[serde(default)]
    label_limit: usize,
    #[serde(default)]
    label_name_length_limit: usize,
    #[serde(default)]
    label_value_length_limit: usize,
    body_size_limit: Option<ByteSize>,
    enable_compression: Option<bool>,
    #[serde(default)]
    static_configs: Vec<StaticConfig>,
    #[serde(default)]
    file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    kubernetes_sd_configs: Vec<RawKubernetesSdConfig>,
    #[serde(default)]
    relabel_configs: Vec<RawRelabelConfig>,
    #[serde(default)]
    metric_relabel_configs: Vec<RawRelabelConfig>,
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
}

impl PrometheusConfig {
    /// Whether a scrape config discovers pods or the node (and so needs the
    /// pod cache).
    pub fn uses_pod_cache(&self) -> bool {
        self.scrape_configs
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
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
    pub enable_compression: bool,
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// The section as written, for deciding whether a reload changed it.
    fingerprint: String,
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
    label_limit: usize,
    label_name_length_limit: usize,
    label_value_length_limit: usize,
    enable_compression: Option<bool>,
    kubernetes_sd_configs: Vec<RawKubernetesSdConfig>,
    metric_relabel_configs: Vec<RawRelabelConfig>,
}

impl Validate for RawPrometheusConfig {
    type Valid = PrometheusConfig;

    fn validate(self) -> Result<PrometheusConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let default_timeout = self
            .scrape_timeout
            .map_or(std::time::Duration::from_secs(10), |d| d.get());
        let defaults = JobDefaults {
            scrape_interval: self
                .scrape_interval
                .map_or(std::time::Duration::from_secs(60), |d| d.get()),
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
        if self.scrape_configs.is_empty() {
            errors.push(FieldError::new(
                "scrape_configs",
                "add at least one [[...scrape_configs]] with a job_name",
            ));
        }
        let mut jobs = Vec::new();
        let mut out = Vec::new();
        for (i, raw) in self.scrape_configs.into_iter().enumerate() {
            let at = |field: &str| format!("scrape_configs.{i}.{field}");
            let (raw_job, raw) = raw.split();
            let written = format!("{raw_job:?}|{raw:?}");
            let job = JobSettings::check(raw_job, &defaults, &mut jobs, &at, &mut errors);
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
                let prefix = sd.check(at, "prometheus.io", &mut errors);
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
            out.push(ScrapeConfig {
                job,
                metrics_path,
                params: raw.params,
                honor_labels: raw.honor_labels,
                honor_timestamps: raw.honor_timestamps.unwrap_or(true),
                sample_limit: raw.sample_limit,
                label_limit: raw.label_limit,
                label_name_length_limit: raw.label_name_length_limit,
                label_value_length_limit: raw.label_value_length_limit,
                enable_compression: raw.enable_compression.unwrap_or(true),
                kubernetes_sd_configs,
                metric_relabel_configs,
                fingerprint,
            });
        }
        if errors.is_empty() {
            Ok(PrometheusConfig {
                scrape_configs: out,
            })
        } else {
            Err(errors)
        }
    }
}
