use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{ByteSize, FieldError, HumanDuration, Validate};
use crate::delivery::QueueConfig;
use crate::exporters::RawRetryConfig;
use crate::exporters::http::settings::{HttpRules, HttpSettings, RawHttpSettings};
use crate::net::auth::BasicAuth;
use crate::net::tls::TlsConfig;

/// Which Pyroscope API requests go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `POST /push.v1.PusherService/Push` (connect, protobuf): several
    /// profiles per request, every label kept. What Alloy and the SDKs use.
    Push,
    /// `POST /ingest?name=...&format=pprof`: one profile per request, for
    /// Pyroscope servers older than 1.0 and proxies that only know it.
    Ingest,
}

/// Request body compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    None,
}

/// `[exporters.pyroscope.NAME]` as written. Names follow Alloy's
/// `pyroscope.write` where they exist.
#[derive(Deserialize)]
pub struct RawPyroscopeConfig {
    /// Pyroscope's base URL, e.g. `http://pyroscope:4040`; the API path is
    /// appended.
    endpoint: String,
    /// `"push"` (default) or `"ingest"`.
    api: Option<Api>,
    /// Sent as `X-Scope-OrgID`, for a multi-tenant Pyroscope.
    tenant_id: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    basic_auth: Option<BasicAuth>,
    bearer_token: Option<String>,
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    tls: TlsConfig,
    /// Deadline of one send attempt.
    timeout: Option<HumanDuration>,
    /// `"gzip"` (default) or `"none"`; pprof bytes that are already gzip'd
    /// gain little, the labels and plain profiles gain much.
    compression: Option<Compression>,
    /// Profiles are packed into push requests of at most this many bytes
    /// (a single larger profile goes alone). Pyroscope's default limit on a
    /// profile is 4MiB, proxies often cap bodies near 10MiB.
    max_request_size: Option<ByteSize>,
    #[serde(default, deserialize_with = "crate::delivery::queue_setting")]
    queue: QueueConfig,
    #[serde(default)]
    retry: RawRetryConfig,
}

/// A checked Pyroscope exporter.
#[derive(Clone, Debug, PartialEq)]
pub struct PyroscopeConfig {
    /// Endpoint, headers, `tenant_id`, credentials, TLS, timeout, queue, retry.
    pub http: HttpSettings,
    pub api: Api,
    pub compression: Compression,
    pub max_request_size: usize,
}

impl PyroscopeConfig {
    /// Where one request of this exporter's API goes (`/ingest` gets its query added).
    pub fn url(&self) -> String {
        let endpoint = self.http.endpoint.to_string();
        let base = endpoint.trim_end_matches('/');
        match self.api {
            Api::Push => format!("{base}/push.v1.PusherService/Push"),
            Api::Ingest => format!("{base}/ingest"),
        }
    }
}

impl Validate for RawPyroscopeConfig {
    type Valid = PyroscopeConfig;

    fn validate(self) -> Result<PyroscopeConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let http = RawHttpSettings {
            endpoint: self.endpoint,
            headers: self.headers,
            tenant_id: self.tenant_id,
            credentials: Some((self.basic_auth, self.bearer_token, self.bearer_token_file)),
            tls: self.tls,
            timeout: self.timeout,
            queue: self.queue,
            retry: self.retry,
        }
        .check(
            &HttpRules {
                default_timeout: std::time::Duration::from_secs(10),
                tenant_elsewhere: Some("set the tenant with tenant_id"),
            },
            &mut errors,
        );
        if let Some(http) = &http
            && http.endpoint.query().is_some()
        {
            errors.push(FieldError::new(
                "endpoint",
                "must not have a query: it is Pyroscope's base URL",
            ));
        }
        let max_request_size = self.max_request_size.map_or(4 << 20, ByteSize::get);
        if max_request_size == 0 || max_request_size > 256 << 20 {
            errors.push(FieldError::new(
                "max_request_size",
                "must be more than 0 and at most 256MiB",
            ));
        }
        match http {
            Some(http) if errors.is_empty() => Ok(PyroscopeConfig {
                http,
                api: self.api.unwrap_or(Api::Push),
                compression: self.compression.unwrap_or(Compression::Gzip),
                max_request_size: max_request_size as usize,
            }),
            _ => Err(errors),
        }
    }
}
