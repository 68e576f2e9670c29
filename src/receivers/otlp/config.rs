use serde::Deserialize;
use std::net::SocketAddr;

use super::logs::{self, LogsConversion};
use crate::config::{ByteSize, FieldError, HumanDuration, Validate};
use crate::net::server::{RawServerConfig, ServerConfig};

/// `[receivers.otlp.NAME]` as written.
#[derive(Deserialize)]
pub struct RawOtlpReceiverConfig {
    /// Address for OTLP/gRPC, e.g. `0.0.0.0:4317`. Omit to not serve gRPC.
    grpc: Option<SocketAddr>,
    /// Address for OTLP/HTTP, e.g. `0.0.0.0:4318`. Omit to not serve HTTP.
    http: Option<SocketAddr>,
    /// Largest request accepted, after decompression (gRPC message or HTTP body).
    max_recv_msg_size: Option<ByteSize>,
    /// How long a request may wait for room in a full pipeline before it is
    /// refused with a retryable answer.
    pipeline_wait: Option<HumanDuration>,
    /// How OTLP logs become Loki streams.
    logs: Option<RawLogsConfig>,
    /// Connection and request limits of both listeners.
    #[serde(default)]
    server: RawServerConfig,
}

/// `[receivers.otlp.NAME.logs]` as written.
#[derive(Deserialize)]
struct RawLogsConfig {
    /// Resource attributes, by their OTLP key (`k8s.pod.name`), that become
    /// stream labels; the others go to structured metadata. Omitted, Loki's
    /// default list, so that streams match what Loki's OTLP endpoint makes.
    resource_labels: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OtlpReceiverConfig {
    pub grpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub max_recv_msg_size: usize,
    pub pipeline_wait: std::time::Duration,
    pub logs: LogsConversion,
    pub server: ServerConfig,
}

impl Validate for RawOtlpReceiverConfig {
    type Valid = OtlpReceiverConfig;

    fn validate(self) -> Result<OtlpReceiverConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.grpc.is_none() && self.http.is_none() {
            errors.push(FieldError::new(
                "",
                "set `grpc`, `http` or both to an address such as \"0.0.0.0:4317\"",
            ));
        }
        if let (Some(g), Some(h)) = (self.grpc, self.http)
            && g == h
            && g.port() != 0
        {
            errors.push(FieldError::new(
                "http",
                "gRPC and HTTP need different ports",
            ));
        }
        let max = self.max_recv_msg_size.unwrap_or(ByteSize::mib(4));
        if max.get() < 1024 || max.get() > 1 << 30 {
            errors.push(FieldError::new(
                "max_recv_msg_size",
                "must be between 1KiB and 1GiB",
            ));
        }
        let server = self.server.validate(max.as_usize(), &mut errors);
        let logs = self.logs.and_then(|l| l.resource_labels).map_or_else(
            LogsConversion::default,
            |labels| {
                check_resource_labels(&labels, &mut errors);
                LogsConversion::with_resource_labels(labels)
            },
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(OtlpReceiverConfig {
            grpc: self.grpc,
            http: self.http,
            max_recv_msg_size: max.as_usize(),
            pipeline_wait: self
                .pipeline_wait
                .map_or(std::time::Duration::from_secs(1), |d| d.get()),
            logs,
            server,
        })
    }
}

fn check_resource_labels(labels: &[String], errors: &mut Vec<FieldError>) {
    const FIELD: &str = "logs.resource_labels";
    if labels.is_empty() {
        errors.push(FieldError::new(
            FIELD,
            "list at least one resource attribute (Loki needs a label on every stream), \
             or leave the key out for Loki's default list",
        ));
    }
    for (i, key) in labels.iter().enumerate() {
        if logs::label_name(key).is_none() {
            errors.push(FieldError::new(
                format!("{FIELD}.{i}"),
                format!("{key:?} has no valid label name: it needs a letter or a digit"),
            ));
        } else if labels[..i].contains(key) {
            errors.push(FieldError::new(
                format!("{FIELD}.{i}"),
                format!("{key:?} is listed twice"),
            ));
        }
    }
}
