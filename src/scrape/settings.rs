//! The checks of the fields every scrape job shares, from Prometheus'
//! `scrape_config`
//! (<https://prometheus.io/docs/prometheus/latest/configuration/configuration/#scrape_config>):
//! the job name, the scheme, the credentials and TLS, the `file_sd_configs`.

use std::path::PathBuf;

use super::FileSdConfig;
use crate::config::FieldError;
use crate::net::auth::{BasicAuth, Credentials};
use crate::net::tls::TlsConfig;

/// Records why `job_name` is empty or already used by one of `jobs`, and adds it.
pub fn check_job_name(
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

/// The job's `scheme`, `http` by default, or records why it is neither http nor https.
pub fn scheme(
    raw: Option<String>,
    at: &dyn Fn(&str) -> String,
    errors: &mut Vec<FieldError>,
) -> String {
    let scheme = raw.unwrap_or_else(|| "http".into());
    if scheme != "http" && scheme != "https" {
        errors.push(FieldError::new(at("scheme"), "must be http or https"));
    }
    scheme
}

/// The job's credentials, with their problems and `tls_config`'s recorded at the job's paths.
pub fn credentials(
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

/// Records each `file_sd_configs` entry that lists no file.
pub fn check_file_sd(
    file_sd_configs: &[FileSdConfig],
    at: &dyn Fn(&str) -> String,
    errors: &mut Vec<FieldError>,
) {
    for (j, file_sd) in file_sd_configs.iter().enumerate() {
        if file_sd.files.is_empty() {
            errors.push(FieldError::new(
                at(&format!("file_sd_configs.{j}.files")),
                "list at least one file",
            ));
        }
    }
}
