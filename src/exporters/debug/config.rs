//! `[exporters.debug.NAME]`: how much to print, and the queue.

use serde::Deserialize;

use crate::config::{FieldError, Validate};
use crate::delivery::QueueConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    Basic,
    Detailed,
}

#[derive(Deserialize)]
pub struct RawDebugConfig {
    verbosity: Option<Verbosity>,
    #[serde(default, deserialize_with = "crate::delivery::queue_setting")]
    queue: QueueConfig,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DebugConfig {
    pub verbosity: Verbosity,
    pub queue: QueueConfig,
}

impl Validate for RawDebugConfig {
    type Valid = DebugConfig;
    fn validate(self) -> Result<DebugConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        self.queue.check(&mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(DebugConfig {
            verbosity: self.verbosity.unwrap_or(Verbosity::Basic),
            queue: self.queue,
        })
    }
}
