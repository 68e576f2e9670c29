//! `receivers.host_metrics`: the node's own metrics under node_exporter's
//! names, label sets, types and help texts
//! (<https://github.com/prometheus/node_exporter>), so that dashboards and
//! alerts written for node_exporter (kube-prometheus' "Node Exporter"
//! dashboards, `node-mixin`) work unchanged.
//!
//! Every `collection_interval` each enabled collector reads its files under
//! `proc_path`/`sys_path` (the host's, mounted under `/host` in a
//! container) once, and the samples go into the metrics pipelines with
//! `job` and `instance` labels, as a scrape of node_exporter would have
//! them. Label sets are built once and reused while the series lasts; a
//! series that is gone (an unmounted filesystem, a removed device) gets a
//! staleness marker. A file that cannot be read fails its collector only,
//! counted (`ferro_host_metrics_collector_errors_total`), never the others.
//!
//! Why no `procfs` crate: the files read here are a handful of simple
//! formats, and the crate parses each into fresh maps and strings on every
//! read; ferro's parsers read into one reused buffer per collector and
//! allocate nothing per collection once the label sets exist.

mod collectors;
mod config;
mod page;
mod receiver;

pub use config::{Collector, HostMetricsConfig, RawHostMetricsConfig};
pub use receiver::{Collection, PIPELINE_WAIT, start};

#[cfg(test)]
mod tests;
