//! Processors: the stages a pipeline runs between its receivers and exporters,
//! inline in the pipeline's task, in config order.

pub mod batch;

use crate::config::ComponentId;
use crate::config::document::{Document, Value};
use crate::signal::Signal;

/// A validated `[processors.TYPE.NAME]` section.
#[derive(Clone, Debug, PartialEq)]
pub enum ProcessorConfig {
    Batch(batch::BatchConfig),
}

impl ProcessorConfig {
    /// Reads a `[processors.TYPE.NAME]` table; `None` for an unknown type.
    pub fn parse<'a>(
        type_name: &str,
        doc: &mut Document<'a>,
        path: &str,
        value: Value<'a>,
    ) -> Option<Option<Self>> {
        match type_name {
            "batch" => Some(
                doc.section::<batch::RawBatchConfig>(path, value)
                    .map(Self::Batch),
            ),
            _ => None,
        }
    }

    /// A processor a pipeline may name without configuring it: `batch` with defaults.
    pub fn implicit(id: &ComponentId) -> Option<Self> {
        match (id.type_name.as_str(), id.name.as_str()) {
            ("batch", "default") => Some(Self::Batch(batch::BatchConfig::default())),
            _ => None,
        }
    }

    pub fn signals(&self) -> &'static [Signal] {
        match self {
            Self::Batch(_) => &[
                Signal::Traces,
                Signal::Metrics,
                Signal::Logs,
                Signal::Profiles,
            ],
        }
    }
}
