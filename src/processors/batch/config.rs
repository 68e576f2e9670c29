use serde::Deserialize;

use crate::config::{FieldError, HumanDuration, Validate};

/// `[processors.batch.NAME]` as written.
#[derive(Deserialize)]
pub struct RawBatchConfig {
    /// Items (spans, samples, records) after which a batch is sent at once.
    send_batch_size: Option<usize>,
    /// The most items one batch may hold; larger inputs are split. 0 = no limit.
    send_batch_max_size: Option<usize>,
    /// How long the first item of a batch may wait for the batch to fill.
    timeout: Option<HumanDuration>,
}

/// A checked batch stage.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchConfig {
    pub send_batch_size: usize,
    pub send_batch_max_size: Option<usize>,
    pub timeout: HumanDuration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            send_batch_size: 8192,
            send_batch_max_size: None,
            timeout: HumanDuration::from_millis(200),
        }
    }
}

impl Validate for RawBatchConfig {
    type Valid = BatchConfig;

    fn validate(self) -> Result<BatchConfig, Vec<FieldError>> {
        let defaults = BatchConfig::default();
        let size = self.send_batch_size.unwrap_or(defaults.send_batch_size);
        let max = self.send_batch_max_size.filter(|&m| m > 0);
        let timeout = self.timeout.unwrap_or(defaults.timeout);
        let mut errors = Vec::new();
        if size == 0 {
            errors.push(FieldError::new("send_batch_size", "must be at least 1"));
        }
        if let Some(max) = max
            && max < size
        {
            errors.push(FieldError::new(
                "send_batch_max_size",
                format!("must be 0 (no limit) or at least send_batch_size ({size})"),
            ));
        }
        if timeout.get().is_zero() {
            errors.push(FieldError::new("timeout", "must be more than 0"));
        }
        if errors.is_empty() {
            Ok(BatchConfig {
                send_batch_size: size,
                send_batch_max_size: max,
                timeout,
            })
        } else {
            Err(errors)
        }
    }
}
