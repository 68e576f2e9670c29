//! The debug exporter: prints what passes, for a new user's first run.
//!
//! `basic` prints one line per batch; `detailed` prints every span with its
//! ids, timing and attributes, every series with its samples, and every log
//! stream with its entries and their structured metadata, every profile with
//! its labels, time range and sample types. Output goes to
//! stdout, apart from ferro's logs.

mod config;
mod render;

pub use config::{DebugConfig, RawDebugConfig, Verbosity};
pub use render::{Render, render_logs, render_metrics, render_profiles, render_traces};
