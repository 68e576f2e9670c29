//! The fields every scrape job has, from Prometheus' `scrape_config`
//! (<https://prometheus.io/docs/prometheus/latest/configuration/configuration/#scrape_config>),
//! and their checks: the job name, interval and timeout, the scheme, the
//! credentials and TLS, the body limit, the static and file targets, and
//! `relabel_configs`.
//!
//! Each receiver reads these fields inside its own raw section, so that an
//! unknown key is reported where it was written, hands them here as a
//! [`RawJob`], and keeps the checked [`JobSettings`] in its job config.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::{FileSdConfig, StaticConfig, TargetRules};
use crate::config::{ByteSize, FieldError, HumanDuration};
use crate::net::auth::{BasicAuth, Credentials};
use crate::net::tls::TlsConfig;
use crate::prom::relabel::{self, RawRelabelConfig, RelabelConfig};

/// The shared fields of one scrape config, as written.
#[derive(Debug)]
pub struct RawJob {
    pub job_name: String,
    pub scrape_interval: Option<HumanDuration>,
    pub scrape_timeout: Option<HumanDuration>,
    pub scheme: Option<String>,
    pub basic_auth: Option<BasicAuth>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub tls_config: TlsConfig,
    pub body_size_limit: Option<ByteSize>,
    pub static_configs: Vec<StaticConfig>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub relabel_configs: Vec<RawRelabelConfig>,
}

/// Records what is wrong with a job's interval and timeout, by the
/// receiver's rules, at the job's paths.
pub type CheckTimes<'a> =
    &'a dyn Fn(Duration, Duration, &dyn Fn(&str) -> String, &mut Vec<FieldError>);

/// What differs between receivers in their jobs: the values a job takes
/// when it leaves a field out, and the rules of interval and timeout.
pub struct JobDefaults<'a> {
    pub scrape_interval: Duration,
    /// The timeout of a job that sets none, from the job's interval.
    pub scrape_timeout: &'a dyn Fn(Duration) -> Duration,
    pub check_times: CheckTimes<'a>,
    pub body_size_limit: u64,
}

/// The largest body any job may take, whatever it configures.
const MAX_BODY_SIZE_LIMIT: u64 = 1 << 30;

/// The checked shared fields of one scrape job.
#[derive(Clone, Debug)]
pub struct JobSettings {
    pub job_name: String,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    /// `http` or `https`.
    pub scheme: String,
    pub credentials: Credentials,
    pub tls: TlsConfig,
    /// The largest body taken from a target, at most 1GiB.
    pub body_size_limit: usize,
    pub static_configs: Vec<StaticConfig>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub relabel_configs: Vec<RelabelConfig>,
}

impl JobSettings {
    /// Checks `raw`, recording each problem at its path (`at(field)`) and
    /// the job name in `jobs`, where a second job of the same name is an
    /// error.
    pub fn check(
        raw: RawJob,
        defaults: &JobDefaults<'_>,
        jobs: &mut Vec<String>,
        at: &dyn Fn(&str) -> String,
        errors: &mut Vec<FieldError>,
    ) -> Self {
        check_job_name(&raw.job_name, jobs, at, errors);
        let scrape_interval = raw
            .scrape_interval
            .map_or(defaults.scrape_interval, |d| d.get());
        let scrape_timeout = raw
            .scrape_timeout
            .map_or_else(|| (defaults.scrape_timeout)(scrape_interval), |d| d.get());
        (defaults.check_times)(scrape_interval, scrape_timeout, at, errors);
        let scheme = raw.scheme.unwrap_or_else(|| "http".into());
        if scheme != "http" && scheme != "https" {
            errors.push(FieldError::new(at("scheme"), "must be http or https"));
        }
        let credentials = credentials(
            raw.basic_auth,
            raw.bearer_token,
            raw.bearer_token_file,
            &raw.tls_config,
            at,
            errors,
        );
        for (j, file_sd) in raw.file_sd_configs.iter().enumerate() {
            if file_sd.files.is_empty() {
                errors.push(FieldError::new(
                    at(&format!("file_sd_configs.{j}.files")),
                    "list at least one file",
                ));
            }
        }
        let relabel_configs = relabel::validate_all(raw.relabel_configs, &at("relabel_configs"))
            .unwrap_or_else(|found| {
                errors.extend(found);
                Vec::new()
            });
        let body_size_limit = raw
            .body_size_limit
            .map_or(defaults.body_size_limit, |b| b.get())
            .min(MAX_BODY_SIZE_LIMIT) as usize;
        Self {
            job_name: raw.job_name,
            scrape_interval,
            scrape_timeout,
            scheme,
            credentials,
            tls: raw.tls_config,
            body_size_limit,
            static_configs: raw.static_configs,
            file_sd_configs: raw.file_sd_configs,
            relabel_configs,
        }
    }

    /// The rules that turn this job's discovered groups into targets; see
    /// [`TargetRules`] for `metrics_path`, `params` and `keep`.
    pub fn target_rules<'a>(
        &'a self,
        metrics_path: Option<&'a str>,
        params: &'a BTreeMap<String, Vec<String>>,
        keep: &'a [&'a str],
    ) -> TargetRules<'a> {
        TargetRules {
            job_name: &self.job_name,
            scheme: &self.scheme,
            metrics_path,
            scrape_interval: self.scrape_interval,
            scrape_timeout: self.scrape_timeout,
            params,
            relabel_configs: &self.relabel_configs,
            keep,
        }
    }
}

/// Records why `job_name` is empty or already used by one of `jobs`, and adds it.
fn check_job_name(
    job_name: &str,
    jobs: &mut Vec<String>,
    at: &dyn Fn(&str) -> String,
    errors: &mut Vec<FieldError>,
) {
    if job_name.is_empty() {
        errors.push(FieldError::new(at("job_name"), "must not be empty"));
    } else if jobs.iter().any(|j| j == job_name) {
        errors.push(FieldError::new(
            at("job_name"),
            format!("`{job_name}` is used by another scrape config"),
        ));
    }
    jobs.push(job_name.to_string());
}

/// The job's credentials, with their problems and `tls_config`'s recorded at the job's paths.
fn credentials(
    basic_auth: Option<BasicAuth>,
    bearer_token: Option<String>,
    bearer_token_file: Option<PathBuf>,
    tls: &TlsConfig,
    at: &dyn Fn(&str) -> String,
    errors: &mut Vec<FieldError>,
) -> Credentials {
    let mut inner = Vec::new();
    let credentials =
        Credentials::checked(basic_auth, bearer_token, bearer_token_file, "", &mut inner);
    tls.check(&mut inner);
    for e in inner {
        errors.push(FieldError::new(
            at(&e.field.replace("tls.", "tls_config.")),
            e.message,
        ));
    }
    credentials
}
