//! The exporters ferro has: one line per type in [`ExporterConfig`], and
//! what the plan and the topology ask of an exporter (its signals, its
//! queue).

use super::{blackhole, debug, loki, otlp, pyroscope, remote_write};

use crate::config::document::{Document, Value};
use crate::config::keys::{TypeKeys, keys};
use crate::delivery::QueueConfig;
use crate::signal::Signal;

/// A validated `[exporters.TYPE.NAME]` section.
#[derive(Clone, Debug, PartialEq)]
pub enum ExporterConfig {
    Otlp(Box<otlp::OtlpExporterConfig>),
    Debug(debug::DebugConfig),
    Blackhole(blackhole::BlackholeConfig),
    RemoteWrite(Box<remote_write::RemoteWriteConfig>),
    Loki(Box<loki::LokiConfig>),
    Pyroscope(Box<pyroscope::PyroscopeConfig>),
}

impl ExporterConfig {
    /// Every exporter type, as the config names it, with the keys its table
    /// accepts (see [`crate::config::keys`]): what the docs test checks
    /// each type's page against.
    pub const TYPES: &[TypeKeys] = &[
        ("otlp", keys::<otlp::RawOtlpExporterConfig>),
        ("remote_write", keys::<remote_write::RawRemoteWriteConfig>),
        ("loki", keys::<loki::RawLokiConfig>),
        ("pyroscope", keys::<pyroscope::RawPyroscopeConfig>),
        ("debug", keys::<debug::RawDebugConfig>),
        ("blackhole", keys::<blackhole::RawBlackholeConfig>),
    ];

    /// Reads an `[exporters.TYPE.NAME]` table; `None` for an unknown type.
    pub fn parse<'a>(
        type_name: &str,
        doc: &mut Document<'a>,
        path: &str,
        value: Value<'a>,
    ) -> Option<Option<Self>> {
        match type_name {
            "otlp" => Some(
                doc.section::<otlp::RawOtlpExporterConfig>(path, value)
                    .map(|c| Self::Otlp(Box::new(c))),
            ),
            "debug" => Some(
                doc.section::<debug::RawDebugConfig>(path, value)
                    .map(Self::Debug),
            ),
            "remote_write" => Some(
                doc.section::<remote_write::RawRemoteWriteConfig>(path, value)
                    .map(|c| Self::RemoteWrite(Box::new(c))),
            ),
            "loki" => Some(
                doc.section::<loki::RawLokiConfig>(path, value)
                    .map(|c| Self::Loki(Box::new(c))),
            ),
            "pyroscope" => Some(
                doc.section::<pyroscope::RawPyroscopeConfig>(path, value)
                    .map(|c| Self::Pyroscope(Box::new(c))),
            ),
            "blackhole" => Some(
                doc.section::<blackhole::RawBlackholeConfig>(path, value)
                    .map(Self::Blackhole),
            ),
            _ => None,
        }
    }

    pub fn signals(&self) -> &'static [Signal] {
        match self {
            Self::Otlp(_) => &[Signal::Traces],
            Self::Debug(_) | Self::Blackhole(_) => &[
                Signal::Traces,
                Signal::Metrics,
                Signal::Logs,
                Signal::Profiles,
            ],
            Self::RemoteWrite(_) => &[Signal::Metrics],
            Self::Loki(_) => &[Signal::Logs],
            Self::Pyroscope(_) => &[Signal::Profiles],
        }
    }

    pub fn queue(&self) -> &QueueConfig {
        match self {
            Self::Otlp(c) => &c.http.queue,
            Self::Debug(c) => &c.queue,
            Self::Blackhole(c) => &c.queue,
            Self::RemoteWrite(c) => &c.http.queue,
            Self::Loki(c) => &c.http.queue,
            Self::Pyroscope(c) => &c.http.queue,
        }
    }
}
