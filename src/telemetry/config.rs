//! The `[telemetry]` and `[log]` tables: where ferro serves its own
//! figures, and how it logs.

use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// Address of ferro's own HTTP server (`/metrics`, `/-/healthy`, `/-/ready`).
    pub listen: SocketAddr,
    /// Set to false to run without the self-telemetry server.
    pub enabled: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8888)),
            enabled: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `info,ferro::exporters=debug`;
    /// `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}
