//! ferro's own observability: counters per component, process figures, and
//! the phase the process is in (served by the telemetry server in [`crate::app`]).

mod config;
mod families;
pub mod process;

pub use config::{LogConfig, LogFormat, TelemetryConfig};
pub use families::*;
#[allow(unused_imports)]
use families::*;
