//! Processors: the stages a pipeline runs between its receivers and exporters,
//! inline in the pipeline's task, in config order.
//!
//! Every processor but `batch` is a synchronous function over a batch of any
//! signal, reaching the data through [`crate::signal::Fields`]; `batch` holds
//! items across calls and is a stage the pipeline runner owns.

pub mod batch;
pub mod k8s_attributes;
mod processor;
pub mod redact;
mod registry;
pub mod tenant;

pub use processor::{Processor, Processors};
pub use registry::{DEFAULT_REDACT, ProcessorConfig};
