//! Sending one request and reading its answer.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::time::Duration;

use crate::exporters::ExportError;
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
    /// How long the server asked to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers, std::time::SystemTime::now())
    }

    /// The start of the body as text, for logs and error classification.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(1024)])
            .trim()
            .to_string()
    }
}

/// `Retry-After` (RFC 9110 §10.2.3) as a wait from `now`: delay-seconds, or
/// an HTTP-date (a date already past is no wait). `None` for anything else.
pub fn retry_after(headers: &http::HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn with(value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, value.parse().unwrap());
        headers
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        // Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example.
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after(&with(" 7 "), now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after(&with("Sun, 06 Nov 1994 08:50:07 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&with("Sun, 06 Nov 1994 08:49:00 GMT"), now),
            Some(Duration::ZERO),
            "a date already past"
        );
        assert_eq!(retry_after(&with("soon"), now), None);
        assert_eq!(retry_after(&with("-1"), now), None);
        assert_eq!(
            retry_after(&http::HeaderMap::new(), SystemTime::now()),
            None
        );
    }
}
