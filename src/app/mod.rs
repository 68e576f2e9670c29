//! The `ferro run` process: logging, the self-telemetry server, the topology,
//! and the signals that stop (SIGTERM, SIGINT) or reload (SIGHUP) it.
//!
//! The top of the crate: it runs a [`crate::plan`] through the
//! [`crate::topology`], and serves ferro's own figures (the telemetry
//! server sits here rather than in [`crate::telemetry`], which the network
//! layer below it counts into).

mod ready_file;
mod run;
mod telemetry_server;

pub use run::{ConfigSource, init_logging, run};
