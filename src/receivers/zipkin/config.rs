use serde::Deserialize;
use std::net::SocketAddr;

use crate::config::{ByteSize, FieldError, HumanDuration, Validate};
use crate::net::body::BodyRules;
use crate::net::server::{RawServerConfig, ServerConfig};

/// `[receivers.zipkin.NAME]` as written.
#[derive(Deserialize)]
pub struct RawZipkinConfig {
    /// Where to listen, e.g. `0.0.0.0:9411` (Zipkin's port).
    http: Option<SocketAddr>,
    /// Largest request accepted, after decompression.
    max_recv_msg_size: Option<ByteSize>,
    /// How long a request may wait for room in a full pipeline before it is
    /// refused with a retryable answer.
    pipeline_wait: Option<HumanDuration>,
    /// Tags that look like integers, decimals or booleans become typed attributes.
    #[serde(default)]
    parse_string_tags: bool,
    /// Connection and request limits.
    #[serde(default)]
    server: RawServerConfig,
}

/// A checked `[receivers.zipkin.NAME]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ZipkinConfig {
    pub http: SocketAddr,
    pub parse_string_tags: bool,
    pub pipeline_wait: std::time::Duration,
    pub server: ServerConfig,
    /// How bodies are read: the size limit and the server's rates.
    pub body: BodyRules,
}

impl Validate for RawZipkinConfig {
    type Valid = ZipkinConfig;

    fn validate(self) -> Result<ZipkinConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(http) = self.http else {
            return Err(vec![FieldError::new(
                "http",
                "set `http` to an address such as \"0.0.0.0:9411\"",
            )]);
        };
        let max = self.max_recv_msg_size.unwrap_or(ByteSize::mib(4));
        if max.get() < 1024 || max.get() > 1 << 30 {
            errors.push(FieldError::new(
                "max_recv_msg_size",
                "must be between 1KiB and 1GiB",
            ));
        }
        let server = self.server.validate(max.as_usize(), &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ZipkinConfig {
            http,
            parse_string_tags: self.parse_string_tags,
            pipeline_wait: self
                .pipeline_wait
                .map_or(std::time::Duration::from_secs(1), |d| d.get()),
            body: server.body,
            server,
        })
    }
}
