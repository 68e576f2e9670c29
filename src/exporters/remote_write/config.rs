use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{FieldError, HumanDuration, Validate};
use crate::delivery::QueueConfig;
use crate::exporters::RawRetryConfig;
use crate::exporters::http::settings::{HttpRules, HttpSettings, RawHttpSettings};
use crate::net::auth::BasicAuth;
use crate::net::tls::TlsConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum ProtocolVersion {
    #[serde(rename = "1.0")]
    V1,
    #[serde(rename = "2.0")]
    V2,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct MetadataConfig {
    /// Send metric metadata (`# HELP`, `# TYPE`, `# UNIT`); 1.0 sends it in
    /// requests of its own every `send_interval`, 2.0 inline with each series.
    pub send: bool,
    pub send_interval: HumanDuration,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self {
            send: true,
            send_interval: HumanDuration::from_secs(60),
        }
    }
}

/// `[exporters.remote_write.NAME]` as written. Names follow Prometheus'
/// `remote_write` and `queue_config` where they exist.
#[derive(Deserialize)]
pub struct RawRemoteWriteConfig {
    /// The write URL, e.g. `http://mimir:8080/api/v1/push`.
    endpoint: String,
    /// `"1.0"` (default, every receiver) or `"2.0"`.
    protocol_version: Option<ProtocolVersion>,
    /// Sent as `X-Scope-OrgID` (Mimir, Cortex, Thanos receive).
    tenant_id: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    basic_auth: Option<BasicAuth>,
    bearer_token: Option<String>,
    bearer_token_file: Option<PathBuf>,
    /// Deadline of one send attempt.
    timeout: Option<HumanDuration>,
    #[serde(default)]
    tls: TlsConfig,
    /// Parallel senders; each series always goes to the same one, so its
    /// samples arrive in order. Scaled with the backlog between the two.
    min_shards: Option<usize>,
    max_shards: Option<usize>,
    /// Samples in one request at most.
    max_samples_per_send: Option<usize>,
    /// How long a shard waits to fill a request before sending what it has.
    /// Samples older than this when they are sent are dropped and
    /// counted (`too_old`) instead of sent: what a backend would refuse
    /// after a long outage. Unset: every sample is sent.
    max_sample_age: Option<HumanDuration>,
    batch_send_deadline: Option<HumanDuration>,
    #[serde(default)]
    metadata: MetadataConfig,
    #[serde(default, deserialize_with = "crate::delivery::queue_setting")]
    queue: QueueConfig,
    #[serde(default)]
    retry: RawRetryConfig,
}

/// A checked remote-write exporter.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteWriteConfig {
    /// Endpoint, headers (with `tenant_id` as `X-Scope-OrgID`), credentials,
    /// TLS, timeout, queue, retry.
    pub http: HttpSettings,
    pub protocol_version: ProtocolVersion,
    pub min_shards: usize,
    pub max_shards: usize,
    pub max_samples_per_send: usize,
    pub batch_send_deadline: std::time::Duration,
    pub max_sample_age: Option<std::time::Duration>,
    pub metadata: MetadataConfig,
}

impl Validate for RawRemoteWriteConfig {
    type Valid = RemoteWriteConfig;

    fn validate(self) -> Result<RemoteWriteConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut headers = self.headers;
        if let Some(tenant) = self.tenant_id {
            headers.insert("X-Scope-OrgID".into(), tenant);
        }
        let http = RawHttpSettings {
            endpoint: self.endpoint,
            headers,
            tenant_id: None,
            credentials: Some((self.basic_auth, self.bearer_token, self.bearer_token_file)),
            tls: self.tls,
            timeout: self.timeout,
            queue: self.queue,
            retry: self.retry,
        }
        .check(
            &HttpRules {
                default_timeout: std::time::Duration::from_secs(30),
                tenant_elsewhere: None,
            },
            &mut errors,
        );
        let min_shards = self.min_shards.unwrap_or(1);
        let max_shards = self.max_shards.unwrap_or(8);
        if min_shards == 0 {
            errors.push(FieldError::new("min_shards", "must be at least 1"));
        }
        if max_shards < min_shards || max_shards > 1000 {
            errors.push(FieldError::new(
                "max_shards",
                "must be between min_shards and 1000",
            ));
        }
        let max_samples_per_send = self.max_samples_per_send.unwrap_or(2000);
        if max_samples_per_send == 0 {
            errors.push(FieldError::new(
                "max_samples_per_send",
                "must be at least 1",
            ));
        }
        if self.metadata.send_interval.get().is_zero() {
            errors.push(FieldError::new(
                "metadata.send_interval",
                "must be more than 0",
            ));
        }
        match http {
            Some(http) if errors.is_empty() => Ok(RemoteWriteConfig {
                http,
                protocol_version: self.protocol_version.unwrap_or(ProtocolVersion::V1),
                min_shards,
                max_shards,
                max_samples_per_send,
                max_sample_age: self.max_sample_age.map(|d| d.get()),
                batch_send_deadline: self
                    .batch_send_deadline
                    .map_or(std::time::Duration::from_secs(5), |d| d.get()),
                metadata: self.metadata,
            }),
            _ => Err(errors),
        }
    }
}
