//! ferro: a telemetry collector agent for Kubernetes nodes.
//!
//! The modules form layers; a module imports only from the layers below it
//! (`tests/layers.rs` fails on an import that goes the other way, and on a
//! component that reaches into another):
//!
//! ```text
//! 10 app          the `ferro run` process: signals, reload, shutdown, the telemetry server
//!  9 topology     runs a plan: one generic wiring over the signals
//!  8 plan         the whole config resolved into pipelines (asks components about themselves)
//!  7 receivers, processors, exporters
//!                 the components: one folder each, one line each in their kind's registry
//!  6 scrape       what the scrape receivers share: scrape_config checks, targets, discovery
//!  5 net, k8s     servers and clients; the node's pod cache and pod discovery
//!  4 telemetry    ferro's own counters, gauges and process figures
//!  3 delivery     batches, tickets, acknowledgements, the channels between stages, queues
//!    prom, pprof  Prometheus text parsing and relabelling; pprof checks
//!  2 signal       the kinds of telemetry, their models, label and name rules
//!  1 otlp         OTLP wire formats: the trace walker, OTLP/JSON, status
//!  0 config, wire the config leaf (units, the TOML document, errors, ComponentId);
//!                 the protobuf wire reader
//! ```
//!
//! - [`config`]: units, the TOML document with spans, [`config::FieldError`]
//!   and [`config::Validate`], [`config::ComponentId`]; it knows no component.
//! - [`plan`]: the top-level [`plan::Config`], pipeline resolution, where the
//!   default redaction goes.
//! - [`signal`]: the kinds of telemetry, their in-memory models, and
//!   [`signal::PerSignal`] for code written once for every signal.
//! - [`delivery`]: memory accounting and acknowledgement that ride with data,
//!   and the channels, refusals and queues that receivers, pipelines and
//!   exporters share without knowing the topology.
//! - [`receivers`], [`processors`], [`exporters`]: the components, a closed
//!   set dispatched with enums (`registry.rs` in each kind).
//! - [`topology`]: wiring a plan into running tasks; start, stop, reload.
//! - [`scrape`], [`net`], [`k8s`], [`prom`], [`pprof`], [`otlp`], [`wire`]:
//!   machinery the components share.
//! - [`telemetry`]: ferro's own metrics and the process phase.
//! - [`app`]: the `ferro run` process.

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

#[cfg(test)]
pub(crate) mod testing;
