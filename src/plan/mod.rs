//! The whole config resolved into a plan: the top-level [`Config`] with its
//! components and pipelines, each pipeline's stages in order with the
//! default redaction placed first.
//!
//! This is the one module that knows every kind's registry. It asks the
//! components about themselves (the signals they carry, whether they read
//! the pod cache, whether they must run before batching) and applies the
//! rules that are about pipelines, not about any one component.

mod globals;
mod load;
mod pipelines;

pub use load::{Config, EMBEDDED_DEFAULT};
pub use pipelines::{PipelineConfig, Stage};

#[cfg(test)]
mod tests;
