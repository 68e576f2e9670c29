//! Sending remote-write requests: series sharded by hash so that each
//! series' samples stay in order, the number of shards following the load.

use super::config::{ProtocolVersion, RemoteWriteConfig};
use bytes::Bytes;
use http_body_util::Full;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::delivery::Batch;
use crate::delivery::Queue;
use crate::exporters::{Delivery, Sink};
use crate::exporters::{ExportError, Sent};
use crate::net::http_client::ClientError;
use crate::net::http_client::{self, HttpClient};
use crate::signal::metrics::Metadata;
use crate::signal::{Metrics, SignalData};

/// Families whose metadata is remembered for sending, at most.
pub(super) const MAX_METADATA_FAMILIES: usize = 100_000;
/// How often the shard count is reconsidered.
pub(super) const RESHARD_INTERVAL: Duration = Duration::from_secs(10);

pub struct RemoteWrite {
    config: RemoteWriteConfig,
    sink: Arc<RemoteWriteSink>,
}

impl RemoteWrite {
    pub fn new(config: &RemoteWriteConfig) -> Result<Self, ClientError> {
        let (client, authorization) =
            http_client::authorized(&config.http.tls, &config.http.credentials)?;
        let sink = RemoteWriteSink {
            client,
            config: config.clone(),
            authorization,
            metadata: Mutex::new(HashMap::new()),
        };
        Ok(Self {
            config: config.clone(),
            sink: Arc::new(sink),
        })
    }

    /// Starts the coordinator that takes batches from `queue` and feeds the shards.
    pub fn spawn(self, queue: Arc<Queue<Metrics>>, delivery: Delivery) -> Vec<JoinHandle<()>> {
        let delivery = delivery.with_retry(self.config.http.retry.clone());
        vec![tokio::spawn(coordinate(
            self.config,
            self.sink,
            queue,
            delivery,
        ))]
    }
}

/// Takes batches from the queue, remembers their metadata, and hands each
/// series to its shard; reshards when the backlog calls for it.
pub(super) async fn coordinate(
    config: RemoteWriteConfig,
    sink: Arc<RemoteWriteSink>,
    queue: Arc<Queue<Metrics>>,
    delivery: Delivery,
) {
    let mut shards = config.min_shards;
    let mut idle_ticks = 0;
    let mut metadata_tick = tokio::time::interval(config.metadata.send_interval.get());
    metadata_tick.tick().await;
    loop {
        let (senders, handles): (Vec<_>, Vec<_>) = (0..shards)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<Batch<Metrics>>(2);
                let shard = Shard {
                    rx,
                    sink: sink.clone(),
                    delivery: delivery.clone(),
                    config: config.clone(),
                };
                (tx, tokio::spawn(shard.run()))
            })
            .unzip();
        let mut reshard = tokio::time::interval(RESHARD_INTERVAL);
        reshard.tick().await;
        let next = loop {
            tokio::select! {
                batch = queue.pop() => match batch {
                    Some(batch) => dispatch(batch, &senders, &sink, &delivery).await,
                    None => break None,
                },
                _ = reshard.tick() => {
                    let backlog = queue.len_items();
                    let capacity = config.http.queue.max_items;
                    let wanted = if backlog > capacity / 4 && shards < config.max_shards {
                        idle_ticks = 0;
                        (shards * 2).min(config.max_shards)
                    } else if backlog == 0 && shards > config.min_shards {
                        idle_ticks += 1;
                        if idle_ticks >= 3 { (shards / 2).max(config.min_shards) } else { shards }
                    } else {
                        idle_ticks = 0;
                        shards
                    };
                    if wanted != shards {
                        tracing::info!(exporter = %delivery.id, from = shards, to = wanted, backlog, "resharding");
                        break Some(wanted);
                    }
                },
                _ = metadata_tick.tick(), if config.metadata.send && config.protocol_version == ProtocolVersion::V1 => {
                    sink.send_metadata(&delivery).await;
                },
                _ = delivery.abort.cancelled() => break None,
            }
        };
        // Old shards finish what they hold before new ones start: per-series
        // order is kept across a reshard.
        drop(senders);
        for handle in handles {
            let _ = handle.await;
        }
        match next {
            Some(wanted) => {
                shards = wanted;
                idle_ticks = 0;
            }
            None => return,
        }
    }
}

/// Splits a batch by shard and hands each part over, waiting while a shard is busy.
pub(super) async fn dispatch(
    batch: Batch<Metrics>,
    senders: &[mpsc::Sender<Batch<Metrics>>],
    sink: &RemoteWriteSink,
    delivery: &Delivery,
) {
    sink.remember_metadata(&batch.data.metadata);
    let mut batch = batch;
    if let Some(max_age) = sink.config.max_sample_age {
        let too_old = drop_older_than(&mut batch.data, max_age);
        if too_old > 0 {
            delivery.count_dropped("too_old", too_old);
        }
    }
    let n = senders.len();
    let parts = batch.map_parts(|metrics| {
        let mut parts: Vec<Metrics> = (0..n).map(|_| Metrics::default()).collect();
        for series in metrics.series {
            parts[(series.labels.hash64() % n as u64) as usize]
                .series
                .push(series);
        }
        parts
    });
    for (part, sender) in parts.into_iter().zip(senders) {
        if part.items() == 0 {
            continue;
        }
        if let Err(mpsc::error::SendError(part)) = sender.send(part).await {
            delivery.abandon(part);
        }
    }
}

/// Removes the samples, histograms and exemplars older than `max_age`,
/// and the series left empty; returns the samples and histograms removed.
pub(super) fn drop_older_than(metrics: &mut Metrics, max_age: Duration) -> u64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let oldest = now_ms.saturating_sub(max_age.as_millis() as i64);
    let before = metrics.item_count();
    for series in &mut metrics.series {
        series.samples.retain(|s| s.timestamp_ms >= oldest);
        series.histograms.retain(|h| h.timestamp >= oldest);
        series.exemplars.retain(|e| e.timestamp_ms >= oldest);
    }
    metrics
        .series
        .retain(|s| !s.samples.is_empty() || !s.histograms.is_empty());
    (before - metrics.item_count()) as u64
}

/// One sender: fills a request up to `max_samples_per_send` or until
/// `batch_send_deadline`, sends it with retries, and only then takes more.
pub(super) struct Shard {
    rx: mpsc::Receiver<Batch<Metrics>>,
    sink: Arc<RemoteWriteSink>,
    delivery: Delivery,
    config: RemoteWriteConfig,
}

impl Shard {
    async fn run(mut self) {
        let max = self.config.max_samples_per_send;
        // A batch of another tenant that ended the previous request: it
        // starts the next one, since one request goes to one tenant.
        let mut next: Option<Batch<Metrics>> = None;
        loop {
            let mut pending = match next.take() {
                Some(batch) => batch,
                None => match self.rx.recv().await {
                    Some(batch) => batch,
                    None => return,
                },
            };
            let deadline = tokio::time::Instant::now() + self.config.batch_send_deadline;
            let mut open = true;
            while open && pending.items() < max {
                tokio::select! {
                    more = self.rx.recv() => match more {
                        Some(more) if pending.same_tenant(&more) => pending.merge(more),
                        Some(more) => {
                            next = Some(more);
                            break;
                        }
                        None => open = false,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            while pending.items() > max {
                let request = pending.split_to(max);
                if !self.delivery.deliver(&*self.sink, request).await {
                    return self.drain([Some(pending), next]).await;
                }
            }
            if !self.delivery.deliver(&*self.sink, pending).await {
                return self.drain([next, None]).await;
            }
            if !open && next.is_none() {
                return;
            }
        }
    }

    /// After the shutdown deadline: count and release what this shard still holds.
    async fn drain(&mut self, pending: [Option<Batch<Metrics>>; 2]) {
        let mut left: Vec<_> = pending.into_iter().flatten().collect();
        self.rx.close();
        while let Some(batch) = self.rx.recv().await {
            left.push(batch);
        }
        for batch in left {
            self.delivery.abandon(batch);
        }
    }
}

/// Encodes and posts one request.
pub(super) struct RemoteWriteSink {
    client: HttpClient,
    config: RemoteWriteConfig,
    authorization: crate::net::auth::Authorization,
    metadata: Mutex<HashMap<String, Metadata>>,
}

impl RemoteWriteSink {
    fn remember_metadata(&self, metadata: &[Metadata]) {
        if metadata.is_empty() || !self.config.metadata.send {
            return;
        }
        let mut known = self.metadata.lock().unwrap();
        for m in metadata {
            if known.len() < MAX_METADATA_FAMILIES || known.contains_key(&m.family) {
                known.insert(m.family.clone(), m.clone());
            }
        }
    }

    /// Remote-write 1.0 carries metadata in requests of its own; one attempt
    /// per interval is enough since the next interval sends it again.
    async fn send_metadata(&self, delivery: &Delivery) {
        let metadata: Vec<Metadata> = self.metadata.lock().unwrap().values().cloned().collect();
        if metadata.is_empty() {
            return;
        }
        let body = super::encode::write_request_v1(&[], &metadata);
        if let Err(e) = self.post(body, 0, None).await {
            tracing::debug!(exporter = %delivery.id, error = %e.message, "sending metadata failed; it is sent again next interval");
        }
    }

    async fn post(
        &self,
        body: Vec<u8>,
        points: u64,
        tenant: Option<&http::HeaderValue>,
    ) -> Result<Sent, ExportError> {
        let compressed = Bytes::from(super::encode::snappy(&body));
        let (content_type, version) = match self.config.protocol_version {
            ProtocolVersion::V1 => ("application/x-protobuf", "0.1.0"),
            ProtocolVersion::V2 => (
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                "2.0.0",
            ),
        };
        let request = crate::exporters::post_request(
            self.config.http.endpoint.clone(),
            content_type,
            &self.config.http.headers,
            tenant,
            self.authorization.current().as_ref(),
        )
        .header(http::header::CONTENT_ENCODING, "snappy")
        .header("X-Prometheus-Remote-Write-Version", version)
        .body(Full::new(compressed))
        .map_err(|e| ExportError::permanent("encode", format!("building the request: {e}")))?;
        let answer =
            crate::exporters::http::send(&self.client, request, self.config.http.timeout).await?;
        classify(
            answer.status,
            &answer.headers,
            &answer.body,
            points,
            self.config.protocol_version,
        )
    }
}

impl Sink<Metrics> for RemoteWriteSink {
    async fn send(&self, batch: &Batch<Metrics>) -> Result<Sent, ExportError> {
        let body = match self.config.protocol_version {
            ProtocolVersion::V1 => super::encode::write_request_v1(&batch.data.series, &[]),
            ProtocolVersion::V2 => {
                let metadata = if self.config.metadata.send {
                    self.metadata.lock().unwrap().clone()
                } else {
                    HashMap::new()
                };
                super::encode::write_request_v2(&batch.data.series, &metadata)
            }
        };
        self.post(body, batch.items() as u64, batch.tenancy.tenant.as_ref())
            .await
    }
}

/// What a remote-write answer means for the batch.
pub(super) fn classify(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
    points: u64,
    version: ProtocolVersion,
) -> Result<Sent, ExportError> {
    let message = String::from_utf8_lossy(&body[..body.len().min(1024)])
        .trim()
        .to_string();
    if status.is_success() {
        // 2.0 receivers say how much they wrote; anything short was rejected.
        let written = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        if version == ProtocolVersion::V2
            && let (Some(samples), histograms) = (
                written("X-Prometheus-Remote-Write-Samples-Written"),
                written("X-Prometheus-Remote-Write-Histograms-Written").unwrap_or(0),
            )
            && samples + histograms < points
        {
            return Ok(Sent {
                rejected_items: points - samples - histograms,
                rejected_message: message,
            });
        }
        return Ok(Sent::default());
    }
    let retry_after = crate::exporters::http::retry_after(headers, std::time::SystemTime::now());
    let text = format!("HTTP {}: {message}", status.as_u16());
    let lower = message.to_ascii_lowercase();
    Err(match status.as_u16() {
        429 => ExportError::retryable("http_429", text).after(retry_after),
        500..=599 => ExportError::retryable("http_5xx", text).after(retry_after),
        415 if version == ProtocolVersion::V2 => ExportError::permanent(
            "unsupported_protocol",
            format!(
                "{text} (the endpoint does not take remote-write 2.0; set protocol_version = \"1.0\")"
            ),
        ),
        _ if lower.contains("out of order") => ExportError::permanent("out_of_order", text),
        _ if lower.contains("duplicate sample") => ExportError::permanent("duplicate", text),
        _ if lower.contains("out of bounds") || lower.contains("too old") => {
            ExportError::permanent("too_old", text)
        }
        _ => ExportError::permanent("http_4xx", text),
    })
}
