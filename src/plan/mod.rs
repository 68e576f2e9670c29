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

/// The keys of a config outside its component tables: the top-level
/// settings, and a pipeline's (`pipelines.*.receivers`).
pub fn top_level_keys() -> std::collections::BTreeSet<String> {
    use crate::config::keys::keys;
    let mut found = keys::<globals::RawGlobals>();
    found.extend(
        keys::<pipelines::RawPipeline>()
            .into_iter()
            .map(|key| format!("pipelines.*.{key}")),
    );
    found
}

#[cfg(test)]
mod tests;
