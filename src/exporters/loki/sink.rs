//! Sending to Loki: batches routed by stream to shards, pushed per tenant,
//! with retries.

use super::config::{Encoding, LokiConfig};
use bytes::Bytes;
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::delivery::Queue;
use crate::delivery::{Batch, Outcome};
use crate::exporters::{Delivery, Sink};
use crate::exporters::{ExportError, Sent};
use crate::net::http_client::ClientError;
use crate::net::http_client::{self, HttpClient};
use crate::signal::Logs;
use crate::signal::logs::Stream;

/// A shard holds at most this many `batch_size`s waiting across its tenants;
/// past that it sends the oldest request early, so many quiet tenants cannot
/// pile up memory outside the queue.
pub(super) const PENDING_BATCHES_PER_SHARD: usize = 2;

pub struct Loki {
    config: LokiConfig,
    sink: Arc<LokiSink>,
}

impl Loki {
    pub fn new(config: &LokiConfig) -> Result<Self, ClientError> {
        let (client, authorization) =
            http_client::authorized(&config.http.tls, &config.http.credentials)?;
        let sink = LokiSink {
            client,
            authorization,
            config: config.clone(),
        };
        Ok(Self {
            config: config.clone(),
            sink: Arc::new(sink),
        })
    }

    /// Starts the shards and the router that feeds them from `queue`.
    pub fn spawn(self, queue: Arc<Queue<Logs>>, delivery: Delivery) -> Vec<JoinHandle<()>> {
        let delivery = delivery.with_retry(self.config.http.retry.clone());
        let shards = self.config.http.queue.num_consumers;
        let (senders, handles): (Vec<_>, Vec<_>) = (0..shards)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<Part>(2);
                let shard = Shard {
                    rx,
                    sink: self.sink.clone(),
                    delivery: delivery.clone(),
                    batch_size: self.config.batch_size,
                    batch_wait: self.config.batch_wait,
                    pending: Vec::new(),
                    scratch: Vec::new(),
                };
                (tx, tokio::spawn(shard.run()))
            })
            .collect();
        let router = Router {
            routing: Routing {
                tenant_label: self.config.tenant_label,
                tenant_id: self.config.http.tenant_id,
                shards,
            },
            senders,
            delivery,
        };
        vec![tokio::spawn(router.run(queue, handles))]
    }
}

/// The streams of one tenant bound for one shard.
pub(super) struct Part {
    tenant: Option<http::HeaderValue>,
    batch: Batch<Logs>,
}

/// Takes batches from the queue and hands each stream to its shard under its
/// tenant, dropping (and counting) streams Loki would refuse for their labels.
pub(super) struct Router {
    routing: Routing,
    senders: Vec<mpsc::Sender<Part>>,
    delivery: Delivery,
}

impl Router {
    async fn run(self, queue: Arc<Queue<Logs>>, shards: Vec<JoinHandle<()>>) {
        loop {
            tokio::select! {
                batch = queue.pop() => match batch {
                    Some(batch) => self.dispatch(batch).await,
                    None => break,
                },
                _ = self.delivery.abort.cancelled() => break,
            }
        }
        // Closing the channels tells the shards to send what they hold and stop.
        drop(self.senders);
        for shard in shards {
            let _ = shard.await;
        }
    }

    /// Splits a batch by (shard, tenant) and hands each part over, waiting
    /// while a shard is busy: that wait is what holds the queue back.
    async fn dispatch(&self, batch: Batch<Logs>) {
        let mut keys = Vec::new();
        let mut refused: Vec<(&'static str, usize)> = Vec::new();
        let tenant = batch.tenancy.tenant.clone();
        let mut parts = batch.map_parts(|logs| {
            let (parts, rejected) =
                self.routing
                    .split(logs, tenant.as_ref(), &mut keys, &mut refused);
            parts.into_iter().chain([rejected]).collect()
        });
        let rejected = parts.pop().expect("map_parts keeps the rejected part");
        for (reason, entries) in refused {
            tracing::warn!(exporter = %self.delivery.id, reason, entries, "dropping log streams Loki would refuse");
            self.delivery.count_dropped(reason, entries as u64);
        }
        if rejected.items() > 0 {
            rejected.drop_with(Outcome::Dropped);
        }
        for ((shard, tenant), mut batch) in keys.into_iter().zip(parts) {
            // The part's tenant is the one it is sent under, whatever
            // decided it: the shard merges parts of one tenant only.
            batch.tenancy.tenant = tenant.clone();
            if let Err(mpsc::error::SendError(part)) =
                self.senders[shard].send(Part { tenant, batch }).await
            {
                self.delivery.abandon(part.batch);
            }
        }
    }
}

/// Where each stream goes: its tenant and its shard.
pub(super) struct Routing {
    pub(super) tenant_label: Option<String>,
    pub(super) tenant_id: Option<http::HeaderValue>,
    pub(super) shards: usize,
}

impl Routing {
    /// The streams of `logs` grouped by (shard, tenant) in arrival order,
    /// plus those refused; `keys` and `refused` say which is which and why.
    /// A stream's tenant is its `tenant_label`, else the batch's (a tenant
    /// processor's), else `tenant_id`.
    pub(super) fn split(
        &self,
        logs: Logs,
        batch_tenant: Option<&http::HeaderValue>,
        keys: &mut Vec<(usize, Option<http::HeaderValue>)>,
        refused: &mut Vec<(&'static str, usize)>,
    ) -> (Vec<Logs>, Logs) {
        let mut parts: Vec<Logs> = Vec::new();
        let mut rejected = Logs::default();
        let mut refuse = |reason: &'static str, stream: Stream| {
            match refused.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, n)) => *n += stream.entries.len(),
                None => refused.push((reason, stream.entries.len())),
            }
            rejected.streams.push(stream);
        };
        for mut stream in logs.streams {
            let named = self
                .tenant_label
                .as_deref()
                .and_then(|label| Some((label, stream.labels.get(label)?)));
            let tenant = match named {
                Some((label, value)) => match super::config::valid_tenant(value) {
                    Some(tenant) => {
                        let mut labels = stream.labels.to_builder();
                        labels.remove(label);
                        stream.labels = labels.labels();
                        Some(tenant)
                    }
                    None => {
                        refuse("invalid_tenant", stream);
                        continue;
                    }
                },
                None => batch_tenant.or(self.tenant_id.as_ref()).cloned(),
            };
            if let Err(reason) = super::encode::check_labels(&stream.labels) {
                refuse(reason, stream);
                continue;
            }
            let shard = (stream.labels.hash64() % self.shards as u64) as usize;
            let key = (shard, tenant);
            match keys.iter().position(|k| *k == key) {
                Some(i) => parts[i].streams.push(stream),
                None => {
                    keys.push(key);
                    parts.push(Logs::new(vec![stream]));
                }
            }
        }
        (parts, rejected)
    }
}

/// A request filling for one tenant.
pub(super) struct Pending {
    tenant: Option<http::HeaderValue>,
    batch: Batch<Logs>,
    /// When its oldest entry arrived.
    since: Instant,
}

/// One sender: fills a request per tenant and sends one request at a time,
/// reading nothing new while a send (with its retries) is under way.
pub(super) struct Shard {
    rx: mpsc::Receiver<Part>,
    sink: Arc<LokiSink>,
    delivery: Delivery,
    batch_size: usize,
    batch_wait: Duration,
    pending: Vec<Pending>,
    scratch: Vec<u8>,
}

impl Shard {
    async fn run(mut self) {
        loop {
            let due = self.pending.iter().map(|p| p.since).min();
            let part = tokio::select! {
                part = self.rx.recv() => part,
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now) + self.batch_wait), if due.is_some() => {
                    if !self.send_due().await {
                        return self.drain().await;
                    }
                    continue;
                }
            };
            let sent = match part {
                Some(part) => self.add(part).await,
                None => {
                    while !self.pending.is_empty() {
                        if !self.send_oldest().await {
                            return self.drain().await;
                        }
                    }
                    return;
                }
            };
            if !sent {
                return self.drain().await;
            }
        }
    }

    /// Adds a part to its tenant's request, sending what is full. Returns
    /// false once shutdown has aborted sending.
    async fn add(&mut self, part: Part) -> bool {
        let Part { tenant, batch } = part;
        let at = self.pending.iter().position(|p| p.tenant == tenant);
        let at = match at {
            Some(i) if self.pending[i].batch.bytes + batch.bytes > self.batch_size => {
                // The request would pass batch_size: it goes first, the part
                // starts the next one.
                let full = self.pending.remove(i);
                if !self.send(full.tenant, full.batch).await {
                    return false;
                }
                self.pending.push(Pending {
                    tenant,
                    batch,
                    since: Instant::now(),
                });
                self.pending.len() - 1
            }
            Some(i) => {
                self.pending[i].batch.merge(batch);
                i
            }
            None => {
                self.pending.push(Pending {
                    tenant,
                    batch,
                    since: Instant::now(),
                });
                self.pending.len() - 1
            }
        };
        // A part bigger than batch_size is cut into requests of about batch_size.
        // Sorted first, so that each cut takes a stream's oldest entries: an
        // arrival-order cut could send a later request older entries.
        if self.pending[at].batch.bytes > self.batch_size {
            let data = &mut self.pending[at].batch.data;
            data.streams = super::encode::group(std::mem::take(&mut data.streams));
        }
        while self.pending[at].batch.bytes > self.batch_size && self.pending[at].batch.items() > 1 {
            let pending = &mut self.pending[at].batch;
            let share = self.batch_size as f64 / pending.bytes as f64;
            let n = ((pending.items() as f64 * share) as usize).max(1);
            let head = pending.split_to(n);
            let tenant = self.pending[at].tenant.clone();
            if !self.send(tenant, head).await {
                return false;
            }
        }
        if self.pending[at].batch.bytes >= self.batch_size {
            let full = self.pending.remove(at);
            if !self.send(full.tenant, full.batch).await {
                return false;
            }
        }
        let limit = self.batch_size * PENDING_BATCHES_PER_SHARD;
        while self.pending.iter().map(|p| p.batch.bytes).sum::<usize>() > limit {
            if !self.send_oldest().await {
                return false;
            }
        }
        true
    }

    /// Sends every request whose oldest entry has waited `batch_wait`.
    async fn send_due(&mut self) -> bool {
        let now = Instant::now();
        while let Some(i) = self
            .pending
            .iter()
            .position(|p| p.since + self.batch_wait <= now)
        {
            let due = self.pending.remove(i);
            if !self.send(due.tenant, due.batch).await {
                return false;
            }
        }
        true
    }

    async fn send_oldest(&mut self) -> bool {
        let Some(oldest) = (0..self.pending.len()).min_by_key(|&i| self.pending[i].since) else {
            return true;
        };
        let oldest = self.pending.remove(oldest);
        self.send(oldest.tenant, oldest.batch).await
    }

    /// Groups, encodes and delivers one request. Returns false on abort.
    async fn send(&mut self, tenant: Option<http::HeaderValue>, mut batch: Batch<Logs>) -> bool {
        if batch.items() == 0 {
            return true;
        }
        let streams = std::mem::take(&mut batch.data.streams);
        batch.data.streams = super::encode::group(streams);
        let body = match super::encode::body(
            &batch.data.streams,
            self.sink.config.encoding,
            &mut self.scratch,
        ) {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(exporter = %self.delivery.id, error = %e, "cannot encode a push request; dropping it");
                self.delivery.count_dropped("encode", batch.items() as u64);
                batch.drop_with(Outcome::Dropped);
                return true;
            }
        };
        let request = PushRequest {
            sink: self.sink.clone(),
            tenant,
            body,
        };
        self.delivery.deliver(&request, batch).await
    }

    /// After the shutdown deadline: count and release what this shard still holds.
    async fn drain(&mut self) {
        let mut left: Vec<Batch<Logs>> = self.pending.drain(..).map(|p| p.batch).collect();
        self.rx.close();
        while let Some(part) = self.rx.recv().await {
            left.push(part.batch);
        }
        for batch in left {
            self.delivery.abandon(batch);
        }
    }
}

/// One encoded request for one tenant: every attempt posts the same body.
pub(super) struct PushRequest {
    sink: Arc<LokiSink>,
    tenant: Option<http::HeaderValue>,
    body: Bytes,
}

impl Sink<Logs> for PushRequest {
    async fn send(&self, batch: &Batch<Logs>) -> Result<Sent, ExportError> {
        self.sink
            .post(
                self.body.clone(),
                self.tenant.as_ref(),
                batch.items() as u64,
            )
            .await
    }
}

/// Posts push requests.
pub(super) struct LokiSink {
    client: HttpClient,
    config: LokiConfig,
    authorization: crate::net::auth::Authorization,
}

impl LokiSink {
    async fn post(
        &self,
        body: Bytes,
        tenant: Option<&http::HeaderValue>,
        entries: u64,
    ) -> Result<Sent, ExportError> {
        let content_type = match self.config.encoding {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        };
        let request = crate::exporters::post_request(
            self.config.http.endpoint.clone(),
            content_type,
            &self.config.http.headers,
            tenant,
            self.authorization.current().as_ref(),
        )
        .body(Full::new(body))
        .map_err(|e| ExportError::permanent("encode", format!("building the request: {e}")))?;
        let answer =
            crate::exporters::http::send(&self.client, request, self.config.http.timeout).await?;
        classify(answer.status, &answer.headers, &answer.body, entries)
    }
}

/// What a Loki answer means for the request.
///
/// Loki writes the valid entries of a request and answers 400 with the last
/// error when some were invalid (its distributor and ingester both do), so a
/// 400 is never retried: the rest is already stored, and the refused part
/// would be refused again. The reason is read from Loki's message
/// (`pkg/validation/validate.go`, `pkg/chunkenc`).
pub(super) fn classify(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
    entries: u64,
) -> Result<Sent, ExportError> {
    let message = String::from_utf8_lossy(&body[..body.len().min(1024)])
        .trim()
        .to_string();
    let lower = message.to_ascii_lowercase();
    if status.is_success() {
        // `block_ingestion_until` answers a 2xx (260 by default) and stores
        // nothing: not an error to retry, but not a delivery either.
        if lower.contains("ingestion blocked") {
            return Ok(Sent {
                rejected_items: entries,
                rejected_message: message,
            });
        }
        return Ok(Sent::default());
    }
    let retry_after = crate::exporters::http::retry_after(headers, std::time::SystemTime::now());
    let text = format!("HTTP {}: {message}", status.as_u16());
    Err(match status.as_u16() {
        429 => ExportError::retryable("rate_limited", text).after(retry_after),
        500..=599 => ExportError::retryable("http_5xx", text).after(retry_after),
        _ => ExportError::permanent(reason_of(&lower), text),
    })
}

/// Loki's reason for refusing entries, from its (lowercased) message.
pub(super) fn reason_of(message: &str) -> &'static str {
    const REASONS: &[(&str, &str)] = &[
        ("entry out of order", "out_of_order"),
        ("too far behind", "too_old"),
        ("timestamp too old", "too_old"),
        ("timestamp too new", "too_new"),
        ("max entry size", "line_too_long"),
        ("rate limit", "rate_limited"),
        ("error parsing labels", "invalid_labels"),
        ("at least one label pair", "invalid_labels"),
        ("label name", "invalid_labels"),
        ("label value", "invalid_labels"),
        ("missing required labels", "invalid_labels"),
        ("structured metadata", "structured_metadata"),
        ("stream limit", "stream_limit"),
        ("request body too large", "request_too_large"),
    ];
    REASONS
        .iter()
        .find(|(needle, _)| message.contains(needle))
        .map_or("http_4xx", |(_, reason)| reason)
}
