//! What one send attempt of an exporter comes to.

use std::time::Duration;

/// Why one send attempt failed, and whether trying again may help.
#[derive(Debug, Clone)]
pub struct ExportError {
    pub retryable: bool,
    /// Short label for counters: `transport`, `timeout`, `http_503`, `grpc_unavailable`, …
    pub reason: &'static str,
    /// What the server asked for (`Retry-After`, gRPC `RetryInfo`).
    pub retry_after: Option<Duration>,
    pub message: String,
}

impl ExportError {
    pub fn retryable(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            reason,
            retry_after: None,
            message: message.into(),
        }
    }

    pub fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            reason,
            retry_after: None,
            message: message.into(),
        }
    }

    pub fn after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a successful send may still report: items the backend refused.
#[derive(Debug, Default)]
pub struct Sent {
    pub rejected_items: u64,
    pub rejected_message: String,
}
