use http::Uri;
use serde::Deserialize;
use std::collections::BTreeMap;

use crate::config::{FieldError, HumanDuration, Validate};
use crate::delivery::QueueConfig;
use crate::exporters::RawRetryConfig;
use crate::exporters::http::settings::{HttpRules, HttpSettings, RawHttpSettings};
use crate::net::tls::TlsConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Grpc,
    Http,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// `[exporters.otlp.NAME]` as written.
#[derive(Deserialize)]
pub struct RawOtlpExporterConfig {
    /// `http(s)://host:port` of the OTLP receiver (Tempo, a collector, …).
    endpoint: String,
    /// `grpc` (default) or `http` (OTLP/HTTP with protobuf bodies).
    protocol: Option<Protocol>,
    /// Full URL for traces over HTTP; default `endpoint` + `/v1/traces`.
    traces_endpoint: Option<String>,
    /// `gzip` (default), `zstd` or `none`.
    compression: Option<Compression>,
    /// Extra request headers or gRPC metadata, e.g. `X-Scope-OrgID`.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Deadline of one send attempt.
    timeout: Option<HumanDuration>,
    #[serde(default)]
    tls: TlsConfig,
    #[serde(default, deserialize_with = "crate::delivery::queue_setting")]
    queue: QueueConfig,
    #[serde(default)]
    retry: RawRetryConfig,
}

/// A checked OTLP exporter.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpExporterConfig {
    /// Endpoint, headers, TLS, timeout, queue, retry (no credentials: they
    /// go in `headers`).
    pub http: HttpSettings,
    pub protocol: Protocol,
    pub traces_url: Uri,
    pub compression: Compression,
}

impl Validate for RawOtlpExporterConfig {
    type Valid = OtlpExporterConfig;

    fn validate(self) -> Result<OtlpExporterConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let protocol = self.protocol.unwrap_or(Protocol::Grpc);
        let http = RawHttpSettings {
            endpoint: self.endpoint,
            headers: self.headers,
            tenant_id: None,
            credentials: None,
            tls: self.tls,
            timeout: self.timeout,
            queue: self.queue,
            retry: self.retry,
        }
        .check(
            &HttpRules {
                default_timeout: std::time::Duration::from_secs(10),
                tenant_elsewhere: None,
            },
            &mut errors,
        );
        let traces_url = match (&self.traces_endpoint, &http) {
            (Some(url), _) => crate::exporters::check_url("traces_endpoint", url, &mut errors),
            (None, Some(http)) => {
                let base = http.endpoint.to_string();
                format!("{}/v1/traces", base.trim_end_matches('/'))
                    .parse()
                    .ok()
            }
            (None, None) => None,
        };
        if protocol == Protocol::Grpc
            && let Some(http) = &http
            && !matches!(http.endpoint.path(), "" | "/")
        {
            errors.push(FieldError::new(
                "endpoint",
                "a gRPC endpoint is host and port only (the path belongs to the protocol)",
            ));
        }
        match (http, traces_url) {
            (Some(http), Some(traces_url)) if errors.is_empty() => Ok(OtlpExporterConfig {
                http,
                protocol,
                traces_url,
                compression: self.compression.unwrap_or(Compression::Gzip),
            }),
            _ => Err(errors),
        }
    }
}
