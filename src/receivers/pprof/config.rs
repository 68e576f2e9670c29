use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::scrape::PROFILE_PATH_LABEL;
use crate::config::{ByteSize, FieldError, HumanDuration, Validate};
use crate::k8s::discovery::ScrapeAnnotations;
use crate::net::auth::BasicAuth;
use crate::net::server::{RawServerConfig, ServerConfig};
use crate::net::tls::TlsConfig;
use crate::prom::relabel::RawRelabelConfig;
use crate::scrape::{
    FileSdConfig, JobDefaults, JobSettings, RawJob, RawKubernetesSdConfig, StaticConfig,
};

/// `[receivers.pprof.NAME]` as written: push endpoints (`listen`), scrape
/// jobs (`scrape_configs`), or both.
#[derive(Deserialize)]
pub struct RawPprofConfig {
    /// Address for the push endpoints the Pyroscope SDKs send to
    /// (`/push.v1.PusherService/Push`, `/ingest`), e.g. `0.0.0.0:4040`.
    /// Omit to not listen.
    listen: Option<SocketAddr>,
    /// Largest profile or push request accepted, after decompression.
    max_profile_size: Option<ByteSize>,
    /// How long a push may wait for room in a full pipeline before it is
    /// refused with a retryable answer.
    pipeline_wait: Option<HumanDuration>,
    /// Connection and request limits of the push listener.
    #[serde(default)]
    server: RawServerConfig,
    /// Defaults for every scrape config.
    scrape_interval: Option<HumanDuration>,
    scrape_timeout: Option<HumanDuration>,
    #[serde(default)]
    scrape_configs: Vec<RawScrapeConfig>,
}

/// One `[[receivers.pprof.NAME.scrape_configs]]`: a job of Go-style pprof
/// targets, with the target fields of Prometheus' `scrape_config`.
#[derive(Deserialize)]
struct RawScrapeConfig {
    job_name: String,
    scrape_interval: Option<HumanDuration>,
    scrape_timeout: Option<HumanDuration>,
    scheme: Option<String>,
    basic_auth: Option<BasicAuth>,
    bearer_token: Option<String>,
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    tls_config: TlsConfig,
    /// The largest profile body taken from a target (compressed); a larger
    /// one fails its scrape.
    body_size_limit: Option<ByteSize>,
    #[serde(default)]
    static_configs: Vec<StaticConfig>,
    #[serde(default)]
    file_sd_configs: Vec<FileSdConfig>,
    /// The pods of this node, from the process's pod cache: by default those
    /// that ask with `profiles.grafana.com/<type>.scrape: "true"`.
    #[serde(default)]
    kubernetes_sd_configs: Vec<RawKubernetesSdConfig>,
    #[serde(default)]
    relabel_configs: Vec<RawRelabelConfig>,
    /// Profile types by name: the built-in `process_cpu`, `memory`,
    /// `goroutine`, `mutex`, `block`, or a custom name with a `path`.
    #[serde(default)]
    profiles: BTreeMap<String, RawProfileType>,
}

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
            kubernetes_sd_configs: self.kubernetes_sd_configs,
            profiles: self.profiles,
        };
        (job, own)
    }
}

/// The fields of a pprof scrape config beyond those every job has.
#[derive(Debug)]
struct RawOwn {
    kubernetes_sd_configs: Vec<RawKubernetesSdConfig>,
    profiles: BTreeMap<String, RawProfileType>,
}

/// `profiles.NAME = { enabled = ..., path = ..., delta = ... }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfileType {
    enabled: Option<bool>,
    path: Option<String>,
    /// Ask for a profile over the scrape interval (`?seconds=N`), as Go's
    /// CPU endpoint needs; N is the interval less one second.
    delta: Option<bool>,
}

/// A checked pprof receiver.
#[derive(Clone, Debug, PartialEq)]
pub struct PprofConfig {
    pub listen: Option<SocketAddr>,
    pub max_profile_size: usize,
    pub pipeline_wait: std::time::Duration,
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Limits of the push listener.
    pub server: ServerConfig,
}

impl PprofConfig {
    /// Whether a scrape config discovers pods (and so needs the pod cache).
    pub fn uses_pod_cache(&self) -> bool {
        self.scrape_configs
            .iter()
            .any(|c| !c.kubernetes_sd_configs.is_empty())
    }
}

/// A checked pod discovery source of a pprof job.
#[derive(Clone, Debug, PartialEq)]
pub enum KubernetesSdConfig {
    /// Every container port of every pod, with every enabled profile type
    /// (`annotations = ""`), for `relabel_configs` to choose.
    EveryPort,
    /// Pods that ask by annotation, one profile type at a time: each enabled
    /// type's name and the annotations that ask for it.
    Annotated(Vec<(String, ScrapeAnnotations)>),
}

/// The annotations' name for a profile type: Grafana's `cpu` for
/// `process_cpu`, else the type's own name (`memory`, `goroutine`, `fgprof`).
pub fn annotation_type(profile_type: &str) -> &str {
    match profile_type {
        "process_cpu" => "cpu",
        other => other,
    }
}

/// One profile type a job fetches from each target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProfileType {
    /// `__name__` of its profiles: `process_cpu`, `memory`, …
    pub name: String,
    pub path: String,
    /// Sends `?seconds=N`: the target profiles for N seconds before answering.
    pub delta: bool,
}

/// A checked scrape job.
#[derive(Clone, Debug)]
pub struct ScrapeConfig {
    /// What every scrape job has: name, interval, timeout, scheme,
    /// credentials, body limit (by default `max_profile_size`), targets
    /// and `relabel_configs`.
    pub job: JobSettings,
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    /// Enabled profile types, by name.
    pub profiles: Vec<ProfileType>,
    fingerprint: String,
}

impl PartialEq for ScrapeConfig {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl ScrapeConfig {
    /// N of `?seconds=N` for delta profiles: the interval less a second (at
    /// least one), so a profile ends before the next one starts.
    pub fn delta_seconds(&self) -> u64 {
        self.job.scrape_interval.as_secs().saturating_sub(1).max(1)
    }
}

/// The built-in profile types: name, Go's path, delta, as Alloy's
/// `pyroscope.scrape` defaults them (all enabled).
pub const BUILT_IN: &[(&str, &str, bool)] = &[
    ("process_cpu", "/debug/pprof/profile", true),
    ("memory", "/debug/pprof/allocs", false),
    ("goroutine", "/debug/pprof/goroutine", false),
    ("mutex", "/debug/pprof/mutex", false),
    ("block", "/debug/pprof/block", false),
];

/// Largest profile taken when `max_profile_size`/`body_size_limit` are not
/// set: Go profiles of busy services are a few MiB; Pyroscope's own default
/// limit is 4MiB.
const DEFAULT_MAX_PROFILE: u64 = 16 << 20;

impl Validate for RawPprofConfig {
    type Valid = PprofConfig;

    fn validate(self) -> Result<PprofConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.listen.is_none() && self.scrape_configs.is_empty() {
            errors.push(FieldError::new(
                "",
                "set `listen` to receive pushed profiles, add [[...scrape_configs]] to scrape targets, or both",
            ));
        }
        let max_profile_size = self
            .max_profile_size
            .map_or(DEFAULT_MAX_PROFILE, |b| b.get());
        if max_profile_size == 0 || max_profile_size > 1 << 30 {
            errors.push(FieldError::new(
                "max_profile_size",
                "must be more than 0 and at most 1GiB",
            ));
        }
        let default_timeout = self.scrape_timeout.map(|d| d.get());
        let defaults = JobDefaults {
            scrape_interval: self
                .scrape_interval
                .map_or(std::time::Duration::from_secs(15), |d| d.get()),
            // A CPU profile takes interval − 1 s to answer; the default
            // leaves it 3 s more, as Alloy's 15 s / 18 s defaults do.
            scrape_timeout: &|interval| {
                default_timeout.unwrap_or(interval + std::time::Duration::from_secs(3))
            },
            check_times: &|interval, timeout, at, errors| {
                if interval < std::time::Duration::from_secs(2) {
                    errors.push(FieldError::new(
                        at("scrape_interval"),
                        "must be at least 2s (CPU profiles last the interval less a second)",
                    ));
                }
                if timeout.is_zero() {
                    errors.push(FieldError::new(at("scrape_timeout"), "must be more than 0"));
                }
            },
            body_size_limit: max_profile_size,
        };
        let mut jobs: Vec<String> = Vec::new();
        let mut scrape_configs = Vec::new();
        for (i, raw) in self.scrape_configs.into_iter().enumerate() {
            let at = |field: &str| format!("scrape_configs.{i}.{field}");
            let (raw_job, raw) = raw.split();
            let written = format!("{raw_job:?}|{raw:?}");
            let job = JobSettings::check(raw_job, &defaults, &mut jobs, &at, &mut errors);
            let (interval, timeout) = (job.scrape_interval, job.scrape_timeout);
            let profiles = profile_types(&raw.profiles, &at, &mut errors);
            let delta_seconds = interval.as_secs().saturating_sub(1).max(1);
            if profiles.iter().any(|p| p.delta)
                && timeout <= std::time::Duration::from_secs(delta_seconds)
            {
                errors.push(FieldError::new(
                    at("scrape_timeout"),
                    format!(
                        "must be longer than the {delta_seconds}s a delta (CPU) profile takes: the scrape interval less a second"
                    ),
                ));
            }
            let kubernetes_sd_configs = raw
                .kubernetes_sd_configs
                .iter()
                .enumerate()
                .map(|(j, sd)| {
                    let at = at(&format!("kubernetes_sd_configs.{j}"));
                    match sd.check(at, "profiles.grafana.com", &mut errors) {
                        None => KubernetesSdConfig::EveryPort,
                        Some(prefix) => KubernetesSdConfig::Annotated(
                            profiles
                                .iter()
                                .map(|p| {
                                    let kind = annotation_type(&p.name);
                                    let keys = ScrapeAnnotations::profiles(
                                        &prefix,
                                        kind,
                                        PROFILE_PATH_LABEL,
                                    );
                                    (p.name.clone(), keys)
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            let fingerprint = format!("{written}|{interval:?}|{timeout:?}|{}", job.body_size_limit);
            scrape_configs.push(ScrapeConfig {
                job,
                kubernetes_sd_configs,
                profiles,
                fingerprint,
            });
        }
        let server = self
            .server
            .validate(max_profile_size.min(1 << 30) as usize, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(PprofConfig {
            server,
            listen: self.listen,
            max_profile_size: max_profile_size as usize,
            pipeline_wait: self
                .pipeline_wait
                .map_or(std::time::Duration::from_secs(1), |d| d.get()),
            scrape_configs,
        })
    }
}

/// The enabled profile types: the built-ins as configured, then custom ones.
fn profile_types(
    raw: &BTreeMap<String, RawProfileType>,
    at: &dyn Fn(&str) -> String,
    errors: &mut Vec<FieldError>,
) -> Vec<ProfileType> {
    let mut out = Vec::new();
    for (name, path, delta) in BUILT_IN {
        let configured = raw.get(*name);
        if configured.and_then(|c| c.enabled) == Some(false) {
            continue;
        }
        out.push(ProfileType {
            name: name.to_string(),
            path: configured
                .and_then(|c| c.path.clone())
                .unwrap_or_else(|| path.to_string()),
            delta: configured.and_then(|c| c.delta).unwrap_or(*delta),
        });
    }
    for (name, custom) in raw {
        let field = at(&format!("profiles.{name}"));
        if let Some(path) = &custom.path
            && !path.starts_with('/')
        {
            errors.push(FieldError::new(
                format!("{field}.path"),
                "must start with /",
            ));
        }
        if BUILT_IN.iter().any(|(n, _, _)| n == name) {
            continue;
        }
        if !crate::signal::names::is_metric_name(name) {
            errors.push(FieldError::new(
                field,
                "a profile type name is used as `__name__`: letters, digits, `_` and `:`, not starting with a digit",
            ));
            continue;
        }
        let Some(path) = custom.path.clone() else {
            errors.push(FieldError::new(
                field,
                format!("`{name}` is not a built-in profile type (process_cpu, memory, goroutine, mutex, block): give it a `path`"),
            ));
            continue;
        };
        if custom.enabled != Some(false) {
            out.push(ProfileType {
                name: name.clone(),
                path,
                delta: custom.delta.unwrap_or(false),
            });
        }
    }
    if out.is_empty() {
        errors.push(FieldError::new(
            at("profiles"),
            "every profile type is disabled",
        ));
    }
    out
}
