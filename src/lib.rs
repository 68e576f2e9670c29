//! ferro: a telemetry collector agent for Kubernetes nodes.
//!
//! Layout:
//! - [`config`]: TOML in, a validated [`config::Config`] out, every error at once.
//! - [`signal`]: the kinds of telemetry and their in-memory models.
//! - [`delivery`]: memory accounting and acknowledgement that ride with data.
//! - [`receivers`], [`processors`], [`exporters`]: the components, a closed set
//!   dispatched with enums.
//! - [`topology`]: wiring a config into running tasks; start, stop, reload.
//! - [`queue`]: the bounded exporter queue.
//! - [`otlp`], [`prom`], [`pprof`], [`net`]: wire formats, Prometheus parsing and
//!   relabelling, pprof checks,
//!   and network plumbing shared by components.
//! - [`k8s`]: the cache of this node's pods (one watch per process) and pod discovery.
//! - [`telemetry`]: ferro's own metrics and probes.
//! - [`app`]: the `ferro run` process: signals, reload, shutdown.

pub mod app;
pub mod config;
pub mod delivery;
pub mod exporters;
pub mod k8s;
pub mod net;
pub mod otlp;
pub mod plan;
pub mod pprof;
pub mod processors;
pub mod prom;
pub mod receivers;
pub mod scrape;
pub mod signal;
pub mod telemetry;
pub mod topology;
pub mod wire;
