//! The blackhole exporter: counts what reaches it and discards it. For
//! benchmarks and pipeline tests, where the sink must cost nothing.

use serde::Deserialize;

use crate::config::{FieldError, Validate};
use crate::delivery::QueueConfig;

#[derive(Deserialize)]
pub struct RawBlackholeConfig {
    #[serde(default, deserialize_with = "crate::delivery::queue_setting")]
    queue: QueueConfig,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BlackholeConfig {
    pub queue: QueueConfig,
}

impl Validate for RawBlackholeConfig {
    type Valid = BlackholeConfig;
    fn validate(self) -> Result<BlackholeConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        self.queue.check(&mut errors);
        if errors.is_empty() {
            Ok(BlackholeConfig { queue: self.queue })
        } else {
            Err(errors)
        }
    }
}
