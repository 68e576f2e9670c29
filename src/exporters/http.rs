//! One HTTP request of an exporter: sent with a deadline, the answer read up
//! to a bound, transport failures and time-outs classified as retryable.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::time::Duration;

use super::ExportError;
use crate::net::http_client::HttpClient;

/// Largest answer body an exporter reads.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the server answered.
pub struct Answer {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// `Retry-After` in seconds, if the server sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    }

    /// The start of the body as text, for logs and error classification.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(1024)])
            .trim()
            .to_string()
    }
}

/// Sends `request` and reads the answer, all within `timeout`.
pub async fn send(
    client: &HttpClient,
    request: http::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Answer, ExportError> {
    let target = format!("{} {}", request.method(), request.uri());
    let exchange = async {
        let response = client.request(request).await.map_err(|e| {
            ExportError::retryable(
                "transport",
                format!("{target}: {}", crate::net::error_chain(&e)),
            )
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok(Answer {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        ExportError::retryable("timeout", format!("{target}: no answer within {timeout:?}"))
    })?
}
