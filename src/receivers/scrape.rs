//! What the two scrape receivers (`prometheus`, `pprof`) share: the checks of
//! the target fields of Prometheus' `scrape_config`
//! (<https://prometheus.io/docs/prometheus/latest/configuration/configuration/#scrape_config>),
//! a job's HTTP client, and a GET whose body is capped before and after gzip.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::io::Read;
use std::path::PathBuf;

use crate::config::FieldError;
use crate::net::auth::{BasicAuth, Credentials};
use crate::net::http_client::{self, HttpClient};
use crate::net::tls::TlsConfig;
use crate::receivers::prometheus::FileSdConfig;

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

/// A scrape job with what its scrapes send with: the client over its TLS
/// settings and the `Authorization` header of its credentials.
pub struct Job<C> {
    pub config: C,
    pub client: HttpClient,
    pub authorization: Option<http::HeaderValue>,
}

impl<C> Job<C> {
    /// A job over `config`, whose `tls` and `credentials` give its client and header.
    pub fn new(config: C, tls: &TlsConfig, credentials: &Credentials) -> std::io::Result<Self> {
        let (client, authorization) =
            http_client::authorized(tls, credentials).map_err(std::io::Error::other)?;
        Ok(Self {
            config,
            client,
            authorization,
        })
    }

    /// Sends `request` as a GET of `url` with ferro's `User-Agent` and the
    /// job's `Authorization`; the response's headers and its body, at most
    /// `limit` bytes both as sent and once gunzipped.
    pub async fn get(
        &self,
        request: http::request::Builder,
        url: &str,
        limit: usize,
    ) -> Result<(http::HeaderMap, Bytes), FetchError> {
        let mut request = request.header(
            http::header::USER_AGENT,
            concat!("ferro/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(auth) = &self.authorization {
            request = request.header(http::header::AUTHORIZATION, auth);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let response =
            self.client.request(request).await.map_err(|e| {
                FetchError::Http(format!("GET {url}: {}", crate::net::error_chain(&e)))
            })?;
        if response.status() != http::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let (parts, mut body) = response.into_parts();
        let gzip = parts
            .headers
            .get(http::header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        // Read frame by frame into one buffer sized from Content-Length: a
        // large body is held once, not once as frames and again when joined.
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(FetchError::TooLarge(limit));
        }
        let mut raw = Vec::with_capacity(declared.unwrap_or(64 * 1024).min(limit));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| FetchError::Http(format!("reading the body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if raw.len() + data.len() > limit {
                    return Err(FetchError::TooLarge(limit));
                }
                raw.extend_from_slice(&data);
            }
        }
        if !gzip {
            return Ok((parts.headers, raw.into()));
        }
        // gzip as transport encoding (asked for by the Prometheus receiver,
        // or added by a proxy in front of a pprof endpoint).
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .take(limit as u64 + 1)
            .read_to_end(&mut plain)
            .map_err(|e| FetchError::Http(format!("the body is not valid gzip: {e}")))?;
        if plain.len() > limit {
            return Err(FetchError::TooLarge(limit));
        }
        Ok((parts.headers, plain.into()))
    }
}

/// Why a GET of a target brought no body.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Http(String),
    #[error("server returned HTTP status {0}")]
    Status(u16),
    #[error("body larger than body_size_limit ({0} bytes)")]
    TooLarge(usize),
}
