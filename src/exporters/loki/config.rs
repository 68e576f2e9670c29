use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{ByteSize, FieldError, HumanDuration, Validate};
use crate::delivery::QueueConfig;
use crate::exporters::RawRetryConfig;
use crate::exporters::http::settings::{HttpRules, HttpSettings, RawHttpSettings};
use crate::net::auth::BasicAuth;
use crate::net::tls::TlsConfig;
use crate::signal::names::is_label_name;

/// The body format of a push request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// `logproto.PushRequest`, snappy block format: what Loki's own clients send.
    Protobuf,
    /// Loki's JSON push body: larger, for proxies that inspect or rewrite it.
    Json,
}

/// `[exporters.loki.NAME]` as written. Names follow Alloy's `loki.write`
/// where they exist.
#[derive(Deserialize)]
pub struct RawLokiConfig {
    /// The push URL, e.g. `http://loki:3100/loki/api/v1/push`.
    endpoint: String,
    /// Sent as `X-Scope-OrgID`; the tenant of streams without `tenant_label`.
    tenant_id: Option<String>,
    /// A stream label whose value is the stream's tenant; removed before
    /// sending, since it says where a stream goes, not what it is.
    tenant_label: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    basic_auth: Option<BasicAuth>,
    bearer_token: Option<String>,
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    tls: TlsConfig,
    /// Deadline of one send attempt.
    timeout: Option<HumanDuration>,
    /// `"protobuf"` (default) or `"json"`.
    encoding: Option<Encoding>,
    /// A request is sent once it holds this many bytes of streams...
    batch_size: Option<ByteSize>,
    /// ...or once its oldest entry has waited this long.
    batch_wait: Option<HumanDuration>,
    #[serde(default, deserialize_with = "crate::delivery::queue_setting")]
    queue: QueueConfig,
    #[serde(default)]
    retry: RawRetryConfig,
}

/// A checked Loki exporter.
#[derive(Clone, Debug, PartialEq)]
pub struct LokiConfig {
    /// Endpoint, headers, `tenant_id`, credentials, TLS, timeout, queue, retry.
    pub http: HttpSettings,
    pub tenant_label: Option<String>,
    pub encoding: Encoding,
    pub batch_size: usize,
    pub batch_wait: std::time::Duration,
}

/// Largest `batch_size`: past this a request is likelier to hit a body limit
/// in Loki or a proxy than to save anything.
const MAX_BATCH_SIZE: u64 = 64 << 20;

impl Validate for RawLokiConfig {
    type Valid = LokiConfig;

    fn validate(self) -> Result<LokiConfig, Vec<FieldError>> {
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
                tenant_elsewhere: Some("set the tenant with tenant_id or tenant_label"),
            },
            &mut errors,
        );
        if let Some(label) = &self.tenant_label
            && !is_label_name(label)
        {
            errors.push(FieldError::new(
                "tenant_label",
                format!("`{label}` is not a label name"),
            ));
        }
        let batch_size = self.batch_size.map_or(1 << 20, ByteSize::get);
        if batch_size == 0 || batch_size > MAX_BATCH_SIZE {
            errors.push(FieldError::new(
                "batch_size",
                "must be more than 0 and at most 64MiB",
            ));
        }
        let batch_wait = self
            .batch_wait
            .map_or(std::time::Duration::from_secs(1), |d| d.get());
        if batch_wait.is_zero() {
            errors.push(FieldError::new("batch_wait", "must be more than 0"));
        }
        match http {
            Some(http) if errors.is_empty() => Ok(LokiConfig {
                http,
                tenant_label: self.tenant_label,
                encoding: self.encoding.unwrap_or(Encoding::Protobuf),
                batch_size: batch_size as usize,
                batch_wait,
            }),
            _ => Err(errors),
        }
    }
}

/// A tenant ID as Loki accepts it, as a header value.
pub use crate::delivery::valid_tenant;
