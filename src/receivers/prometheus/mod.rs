//! The Prometheus scrape receiver: pulls `/metrics` pages from targets on an
//! interval, with Prometheus' own `scrape_config` semantics (relabelling,
//! `job`/`instance`, `honor_labels`, limits, synthetic series, staleness).
//!
//! Formats: text exposition 0.0.4 and OpenMetrics 1.0, negotiated by
//! `Accept` (<https://prometheus.io/docs/instrumenting/exposition_formats/>).
//! Targets come from `static_configs`, `file_sd_configs` and
//! `kubernetes_sd_configs` (the pods of this node, from the process's pod
//! cache), through the reconcile loop shared with the pprof receiver
//! (`receivers::discovery`).

mod config;
pub mod monitors;
mod receiver;
pub mod scrape;
pub mod targets;

pub use config::{
    Defaults, KubernetesSdConfig, PrometheusConfig, RawPrometheusConfig, ScrapeConfig,
};
pub use receiver::*;
