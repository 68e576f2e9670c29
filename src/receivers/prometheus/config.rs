use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{ByteSize, FieldError, HumanDuration, Validate};
use crate::k8s::discovery::ScrapeAnnotations;
use crate::net::auth::{BasicAuth, Credentials};
use crate::net::tls::TlsConfig;
use crate::prom::relabel::{self, RawRelabelConfig, RelabelConfig};
use crate::scrape::{self, FileSdConfig, RawKubernetesSdConfig, StaticConfig};

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

/// A checked pod discovery source.
#[derive(Clone, Debug, PartialEq)]
pub struct KubernetesSdConfig {
    /// `None`: every container port (Prometheus' pod role).
    pub annotations: Option<ScrapeAnnotations>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PrometheusConfig {
    pub scrape_configs: Vec<ScrapeConfig>,
}

impl PrometheusConfig {
    /// Whether a scrape config discovers pods (and so needs the pod cache).
    pub fn uses_pod_cache(&self) -> bool {
        self.scrape_configs
            .iter()
            .any(|c| !c.kubernetes_sd_configs.is_empty())
    }
}

/// A checked scrape config.
#[derive(Clone, Debug)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub scrape_interval: std::time::Duration,
    pub scrape_timeout: std::time::Duration,
    pub metrics_path: String,
    pub scheme: String,
    pub params: BTreeMap<String, Vec<String>>,
    pub credentials: Credentials,
    pub tls: TlsConfig,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub sample_limit: usize,
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
    pub body_size_limit: usize,
    pub enable_compression: bool,
    pub static_configs: Vec<StaticConfig>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    pub relabel_configs: Vec<RelabelConfig>,
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

impl Validate for RawPrometheusConfig {
    type Valid = PrometheusConfig;

    fn validate(self) -> Result<PrometheusConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let default_interval = self
            .scrape_interval
            .map_or(std::time::Duration::from_secs(60), |d| d.get());
        let default_timeout = self
            .scrape_timeout
            .map_or(std::time::Duration::from_secs(10), |d| d.get());
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
            let fingerprint = format!(
                "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{}|{}|{}|{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
                raw.job_name,
                raw.scrape_interval,
                raw.scrape_timeout,
                raw.metrics_path,
                raw.scheme,
                raw.params,
                raw.honor_labels,
                raw.honor_timestamps,
                raw.sample_limit,
                raw.label_limit,
                raw.label_name_length_limit,
                raw.label_value_length_limit,
                raw.body_size_limit.map_or(0, |b| b.get()),
                raw.enable_compression,
                raw.static_configs,
                raw.file_sd_configs,
                raw.kubernetes_sd_configs,
                raw.tls_config,
                (&raw.basic_auth, &raw.bearer_token, &raw.bearer_token_file),
                raw.relabel_configs,
                raw.metric_relabel_configs,
            );
            scrape::check_job_name(&raw.job_name, &mut jobs, &at, &mut errors);
            let interval = raw.scrape_interval.map_or(default_interval, |d| d.get());
            let timeout = raw
                .scrape_timeout
                .map_or(default_timeout.min(interval), |d| d.get());
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
            let scheme = scrape::scheme(raw.scheme, &at, &mut errors);
            let metrics_path = raw.metrics_path.unwrap_or_else(|| "/metrics".into());
            if !metrics_path.starts_with('/') {
                errors.push(FieldError::new(at("metrics_path"), "must start with /"));
            }
            let credentials = scrape::credentials(
                raw.basic_auth,
                raw.bearer_token,
                raw.bearer_token_file,
                &raw.tls_config,
                &at,
                &mut errors,
            );
            scrape::check_file_sd(&raw.file_sd_configs, &at, &mut errors);
            let mut kubernetes_sd_configs = Vec::new();
            for (j, sd) in raw.kubernetes_sd_configs.iter().enumerate() {
                let at = at(&format!("kubernetes_sd_configs.{j}"));
                let prefix = sd.check(at, "prometheus.io", &mut errors);
                kubernetes_sd_configs.push(KubernetesSdConfig {
                    annotations: prefix.map(|p| ScrapeAnnotations::prefixed(&p)),
                });
            }
            let relabel_configs =
                relabel_list(raw.relabel_configs, &at("relabel_configs"), &mut errors);
            let metric_relabel_configs = relabel_list(
                raw.metric_relabel_configs,
                &at("metric_relabel_configs"),
                &mut errors,
            );
            out.push(ScrapeConfig {
                job_name: raw.job_name,
                scrape_interval: interval,
                scrape_timeout: timeout,
                metrics_path,
                scheme,
                params: raw.params,
                credentials,
                tls: raw.tls_config,
                honor_labels: raw.honor_labels,
                honor_timestamps: raw.honor_timestamps.unwrap_or(true),
                sample_limit: raw.sample_limit,
                label_limit: raw.label_limit,
                label_name_length_limit: raw.label_name_length_limit,
                label_value_length_limit: raw.label_value_length_limit,
                body_size_limit: raw
                    .body_size_limit
                    .map_or(DEFAULT_BODY_SIZE_LIMIT, |b| b.get())
                    .min(1 << 30) as usize,
                enable_compression: raw.enable_compression.unwrap_or(true),
                static_configs: raw.static_configs,
                file_sd_configs: raw.file_sd_configs,
                kubernetes_sd_configs,
                relabel_configs,
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

fn relabel_list(
    raw: Vec<RawRelabelConfig>,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<RelabelConfig> {
    relabel::validate_all(raw, at).unwrap_or_else(|found| {
        errors.extend(found);
        Vec::new()
    })
}
