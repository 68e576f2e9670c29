//! The batch stage: groups what the receivers accept into batches of a target
//! size, sent when full or when the oldest item has waited `timeout`.
//!
//! It is a stage the pipeline runner owns rather than a function over a batch,
//! because it holds items across calls and has a timer. Larger inputs are cut
//! to `send_batch_max_size` so that no exporter request grows without bound.

mod config;
mod processor;

pub use config::{BatchConfig, RawBatchConfig};
pub use processor::*;

#[cfg(test)]
mod tests;
