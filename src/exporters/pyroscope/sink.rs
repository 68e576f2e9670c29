//! Sending profiles to Pyroscope's ingest API, one request per profile.

use super::config::{Api, Compression, PyroscopeConfig};
use bytes::Bytes;
use http_body_util::Full;
use std::io::Write;
use std::sync::Arc;
use tokio::task::JoinHandle;

use crate::delivery::Queue;
use crate::delivery::{Batch, Outcome};
use crate::exporters::{Delivery, Sink};
use crate::exporters::{ExportError, Sent};
use crate::net::http_client::ClientError;
use crate::net::http_client::{self, HttpClient};
use crate::signal::Profiles;

pub struct Pyroscope {
    sink: Arc<PyroscopeSink>,
}

impl Pyroscope {
    pub fn new(config: &PyroscopeConfig) -> Result<Self, ClientError> {
        let (client, authorization) =
            http_client::authorized(&config.http.tls, &config.http.credentials)?;
        let sink = PyroscopeSink {
            client,
            authorization,
            url: config.url(),
            config: config.clone(),
            warned_cumulative: Default::default(),
        };
        Ok(Self {
            sink: Arc::new(sink),
        })
    }

    /// Starts `num_consumers` senders on `queue`.
    pub fn spawn(self, queue: Arc<Queue<Profiles>>, delivery: Delivery) -> Vec<JoinHandle<()>> {
        let delivery = Arc::new(delivery.with_retry(self.sink.config.http.retry.clone()));
        (0..self.sink.config.http.queue.num_consumers)
            .map(|_| {
                let (queue, sink, delivery) = (queue.clone(), self.sink.clone(), delivery.clone());
                tokio::spawn(async move {
                    while let Some(batch) = queue.pop().await {
                        if !send_batch(&sink, &delivery, batch).await {
                            return;
                        }
                    }
                })
            })
            .collect()
    }
}

/// Sends one queued batch as one or more requests. Returns false once the
/// shutdown deadline has aborted sending.
pub(super) async fn send_batch(
    sink: &Arc<PyroscopeSink>,
    delivery: &Delivery,
    batch: Batch<Profiles>,
) -> bool {
    let mut parts = plan(batch, &sink.config, delivery).into_iter();
    while let Some(part) = parts.next() {
        let body = match sink.config.api {
            Api::Push => super::encode::push_request(&part.data.profiles),
            // The query is built per attempt; the body is the profile itself.
            Api::Ingest => Bytes::new(),
        };
        // Profiles scraped from Go come gzip'd: compressing them again costs
        // CPU for a few bytes, so only a request carrying plain profiles is
        // compressed.
        let compress = part
            .data
            .profiles
            .iter()
            .any(|p| !crate::pprof::is_gzip(&p.pprof));
        let request = Request {
            sink: sink.clone(),
            body,
            compress,
        };
        if !delivery.deliver(&request, part).await {
            for left in parts {
                delivery.abandon(left);
            }
            return false;
        }
    }
    true
}

/// Cuts a batch into the requests it will be sent as, after dropping the
/// profiles Pyroscope would refuse (their reason counted).
pub(super) fn plan(
    batch: Batch<Profiles>,
    config: &PyroscopeConfig,
    delivery: &Delivery,
) -> Vec<Batch<Profiles>> {
    let ingest = config.api == Api::Ingest;
    let max = config.max_request_size;
    let mut refused: Vec<(&'static str, u64)> = Vec::new();
    let mut parts = batch.map_parts(|data| {
        let mut rejected = Profiles::default();
        let mut parts: Vec<Profiles> = Vec::new();
        let mut size = 0;
        for profile in data.profiles {
            let check = super::encode::check_labels(&profile.labels).and_then(|()| {
                if ingest {
                    super::encode::ingest_query(&profile).map(|_| ())
                } else {
                    Ok(())
                }
            });
            if let Err(reason) = check {
                match refused.iter_mut().find(|(r, _)| *r == reason) {
                    Some((_, n)) => *n += 1,
                    None => refused.push((reason, 1)),
                }
                rejected.profiles.push(profile);
                continue;
            }
            let len = profile.pprof.len() + profile.labels.heap_size() + 64;
            let start_new = match parts.last() {
                None => true,
                Some(last) => ingest || size + len > max && !last.profiles.is_empty(),
            };
            if start_new {
                parts.push(Profiles::default());
                size = 0;
            }
            size += len;
            if let Some(last) = parts.last_mut() {
                last.profiles.push(profile);
            }
        }
        parts.push(rejected);
        parts
    });
    let rejected = parts.pop();
    for (reason, count) in refused {
        tracing::warn!(exporter = %delivery.id, reason, profiles = count, "dropping profiles Pyroscope would refuse");
        delivery.count_dropped(reason, count);
    }
    if let Some(rejected) = rejected
        && rejected.items() > 0
    {
        rejected.drop_with(Outcome::Dropped);
    }
    parts
}

/// One request: every attempt posts the same body.
pub(super) struct Request {
    sink: Arc<PyroscopeSink>,
    body: Bytes,
    /// Whether `compression` applies: not when every profile is gzip'd already.
    compress: bool,
}

impl Sink<Profiles> for Request {
    async fn send(&self, batch: &Batch<Profiles>) -> Result<Sent, ExportError> {
        let tenant = batch.tenancy.tenant.as_ref();
        match self.sink.config.api {
            Api::Push => {
                self.sink
                    .push(self.body.clone(), self.compress, tenant)
                    .await
            }
            Api::Ingest => {
                let mut result = Ok(Sent::default());
                // `plan` puts exactly one profile in an ingest request.
                for profile in &batch.data.profiles {
                    result = self.sink.ingest(profile, tenant).await;
                }
                result
            }
        }
    }
}

/// Posts requests to Pyroscope.
pub(super) struct PyroscopeSink {
    client: HttpClient,
    config: PyroscopeConfig,
    url: String,
    authorization: crate::net::auth::Authorization,
    /// Whether the warning about cumulative profiles over `/ingest` was given.
    warned_cumulative: std::sync::atomic::AtomicBool,
}

impl PyroscopeSink {
    /// `tenant`: the batch's, from a tenant processor; else `tenant_id`.
    fn request(
        &self,
        url: &str,
        content_type: &str,
        tenant: Option<&http::HeaderValue>,
    ) -> http::request::Builder {
        crate::exporters::post_request(
            url,
            content_type,
            &self.config.http.headers,
            tenant.or(self.config.http.tenant_id.as_ref()),
            self.authorization.current().as_ref(),
        )
    }

    async fn post(
        &self,
        request: http::request::Builder,
        body: Bytes,
        compress: bool,
    ) -> Result<Sent, ExportError> {
        let (request, body) = match self.config.compression {
            Compression::Gzip if compress => (
                request.header(http::header::CONTENT_ENCODING, "gzip"),
                gzip(&body),
            ),
            _ => (request, body),
        };
        let request = request
            .body(Full::new(body))
            .map_err(|e| ExportError::permanent("encode", format!("building the request: {e}")))?;
        let answer =
            crate::exporters::http::send(&self.client, request, self.config.http.timeout).await?;
        classify(answer.status, answer.retry_after(), &answer.text())
    }

    /// A connect unary call: `Content-Type: application/proto`,
    /// `Connect-Protocol-Version: 1`, compression in `Content-Encoding`.
    async fn push(
        &self,
        body: Bytes,
        compress: bool,
        tenant: Option<&http::HeaderValue>,
    ) -> Result<Sent, ExportError> {
        let request = self
            .request(&self.url, "application/proto", tenant)
            .header("Connect-Protocol-Version", "1");
        self.post(request, body, compress).await
    }

    async fn ingest(
        &self,
        profile: &crate::signal::profiles::Profile,
        tenant: Option<&http::HeaderValue>,
    ) -> Result<Sent, ExportError> {
        let query = super::encode::ingest_query(profile).map_err(|reason| {
            ExportError::permanent(reason, "labels cannot be written as an ingest key")
        })?;
        let url = format!("{}?{query}", self.url);
        let cumulative = matches!(
            profile.labels.get("__name__"),
            Some("memory" | "mutex" | "block")
        ) && profile.labels.get("__delta__") != Some("false");
        if cumulative
            && !self
                .warned_cumulative
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                endpoint = %self.url,
                "api = \"ingest\" sends cumulative profiles (Go's memory, mutex and block totals) as they are: /ingest does not subtract consecutive ones. Scrape them with delta = true, or use api = \"push\""
            );
        }
        let (content_type, body) = super::encode::ingest_form(profile);
        let request = self.request(&url, &content_type, tenant);
        // `/ingest` reads the form as sent: no Content-Encoding.
        self.post(request, body, false).await
    }
}

pub(super) fn gzip(body: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 2),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// What a Pyroscope answer means. Connect errors carry a JSON body
/// `{"code": "...", "message": "..."}` with an HTTP status derived from the
/// code; the status decides, the code names the reason.
pub(super) fn classify(
    status: http::StatusCode,
    retry_after: Option<std::time::Duration>,
    text: &str,
) -> Result<Sent, ExportError> {
    if status.is_success() {
        return Ok(Sent::default());
    }
    let code = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_string));
    let message = format!("HTTP {}: {text}", status.as_u16());
    Err(match status.as_u16() {
        429 => ExportError::retryable("rate_limited", message).after(retry_after),
        500..=599 => ExportError::retryable("http_5xx", message).after(retry_after),
        _ => {
            let reason = match code.as_deref() {
                Some("invalid_argument") => "invalid_argument",
                Some("unauthenticated") => "unauthenticated",
                Some("permission_denied") => "permission_denied",
                Some("not_found") | Some("unimplemented") => "not_found",
                _ if status == http::StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
                _ => "http_4xx",
            };
            ExportError::permanent(reason, message)
        }
    })
}
