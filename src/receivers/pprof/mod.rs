//! The pprof receiver: profiles into ferro, by scraping Go-style pprof
//! endpoints (`net/http/pprof`, <https://pkg.go.dev/net/http/pprof>) and by
//! taking what the Pyroscope SDKs push (`push.v1.PusherService/Push`,
//! `/ingest`), in the same component as Alloy's `pyroscope.scrape` and
//! `pyroscope.receive_http` together.
//!
//! Every profile is checked to be pprof (`crate::pprof`) before it is handed
//! on: a broken one is counted in `ferro_dropped_items_total` by reason and
//! never passed on. Scrape targets come through the reconcile loop shared
//! with the Prometheus receiver (`receivers::discovery`), so static groups,
//! `file_sd`, pod discovery (`kubernetes_sd_configs`, by
//! `profiles.grafana.com/*` annotations: [`kubernetes`]) and relabelling
//! work as they do there.

mod config;
pub mod kubernetes;
pub mod push;
mod receiver;
pub mod scrape;

pub use config::{KubernetesSdConfig, PprofConfig, ProfileType, RawPprofConfig, ScrapeConfig};
pub use receiver::*;

#[cfg(test)]
mod tests;
