//! One target's scrape loop: fetch, parse, label, relabel, send; synthetic
//! series; staleness markers.
//!
//! Memory per target stays small: samples stream from the parser into
//! batches of at most [`CHUNK_SAMPLES`] and out to the pipelines. Staleness
//! keeps only a set of 64-bit series hashes and the previous body,
//! snappy-compressed; the labels of series that disappeared are recovered by
//! parsing that body again, which is only needed when something disappeared.

use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

use super::config::ScrapeConfig;
use crate::delivery::PipelineInputs;
use crate::delivery::{Batch, MemoryLimiter, Ticket};
use crate::prom::parse::{Entry, Format, MetricType as ParsedType, Parser};
use crate::prom::relabel;
use crate::scrape::Target;
use crate::scrape::{FetchError, TargetHealth};
use crate::signal::metrics::{Exemplar, Metadata, MetricType, Series, stale_nan};
use crate::signal::{Labels, LabelsBuilder, Metrics};
use crate::telemetry::{ComponentLabels, Telemetry};

/// Samples per batch handed to the pipelines while a scrape streams.
pub const CHUNK_SAMPLES: usize = 5000;

const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// What every target of one scrape config shares.
pub type Job = crate::scrape::Job<ScrapeConfig>;

/// Where a scrape's data goes and what it counts.
pub struct Sender {
    pub inputs: PipelineInputs<Metrics>,
    pub limiter: Arc<MemoryLimiter>,
    pub accepted: prometheus_client::metrics::counter::Counter,
    pub refused: prometheus_client::metrics::counter::Counter,
    pub telemetry: Arc<Telemetry>,
    /// The receiver's labels, for its targets' figures.
    pub labels: ComponentLabels,
}

/// Why a scrape failed: the `up = 0` reason that is logged and counted.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{0}")]
    Parse(String),
    #[error("sample_limit exceeded ({0} samples)")]
    SampleLimit(usize),
    #[error("label_limit or label length limit exceeded by {0}")]
    LabelLimit(String),
    #[error("scrape timed out after {0:?}")]
    Timeout(Duration),
    #[error("target_limit exceeded (the job has more than {0} targets)")]
    TargetLimit(usize),
}

impl ScrapeError {
    /// The reason label, as Prometheus tells scrape failures apart.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Fetch(e) => e.reason(),
            Self::Parse(_) => "parse_error",
            Self::SampleLimit(_) => "sample_limit",
            Self::LabelLimit(_) => "label_limit",
            Self::Timeout(_) => "timeout",
            Self::TargetLimit(_) => "target_limit",
        }
    }
}

struct State {
    /// Hashes of the series the last successful scrape produced, sorted: 8
    /// bytes a series, where a hash set would take more than twice that.
    previous: Vec<u64>,
    /// The last successful body, snappy-compressed, its format, and the
    /// ticket that holds its memory against the limit.
    previous_body: Option<(Vec<u8>, Format, Ticket)>,
    health: TargetHealth,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Scrapes `target` every interval until `stop`. A target that went away
/// (`stop` while the receiver runs on), or that the next config does not
/// scrape (its job gone, or the target no longer among the job's), has its
/// series marked stale, as Prometheus does; when the receiver merely stops
/// (a reload that keeps the target, a shutdown) they are not, as
/// Prometheus does not either: the next config, or the restarted agent,
/// goes on scraping them, and markers would cut every series short in the
/// meantime.
pub async fn run(
    job: Arc<Job>,
    target: Target,
    sender: Arc<Sender>,
    stop: CancellationToken,
    stops: super::Stops,
) {
    let interval = job.config.job.scrape_interval;
    // Spread targets over the interval by a hash of their identity, as
    // Prometheus does, so that a hundred targets are not scraped at once.
    let interval_ms = interval.as_millis().max(1) as u64;
    let offset = Duration::from_millis(target.labels.hash64() % interval_ms);
    let mut next = tokio::time::Instant::now() + offset;
    let mut state = State {
        previous: Vec::new(),
        previous_body: None,
        health: TargetHealth::new(
            &sender.telemetry,
            sender.labels.clone(),
            &job.config.job.job_name,
            &target.url,
        ),
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.cancelled() => {
                if stops.receiver.is_cancelled() {
                    match stops.next.get() {
                        // A shutdown: the restarted agent goes on.
                        None => return,
                        // A reload that keeps this target.
                        Some(next) if next.contains(&target) => return,
                        Some(_) => {}
                    }
                }
                // The target is gone: its series end now, as in Prometheus.
                let gone = std::mem::take(&mut state.previous);
                stale_markers(&job, &target, &mut state, &gone, now_ms(), &sender, true).await;
                return;
            }
        }
        next += interval;
        let now = tokio::time::Instant::now();
        if next < now {
            // A scrape overran its interval: skip the missed slots.
            next = now + interval;
        }
        scrape_once(&job, &target, &mut state, &sender).await;
    }
}

async fn scrape_once(job: &Job, target: &Target, state: &mut State, sender: &Sender) {
    let started = Instant::now();
    let timestamp = now_ms();
    let result = if job
        .over_target_limit
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        Err(ScrapeError::TargetLimit(job.config.target_limit))
    } else {
        let fetched = fetch(job, target, &sender.limiter);
        match tokio::time::timeout(job.config.job.scrape_timeout, fetched).await {
            Ok(result) => result,
            Err(_) => Err(ScrapeError::Timeout(job.config.job.scrape_timeout)),
        }
    };
    let mut out = Out::new(sender, job.config.sample_limit > 0);
    let outcome = match result {
        Ok((body, format, ticket)) => {
            match ingest(job, target, &body, format, timestamp, &mut out).await {
                Ok(counts) => Ok((counts, body, format, ticket)),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    let (up, scraped, post_relabel, added) = match outcome {
        Ok(((scraped, post_relabel, current), body, format, mut ticket)) => {
            let added = current
                .iter()
                .filter(|h| state.previous.binary_search(h).is_err())
                .count();
            let gone: Vec<u64> = state
                .previous
                .iter()
                .copied()
                .filter(|h| current.binary_search(h).is_err())
                .collect();
            out.finish().await;
            stale_markers(job, target, state, &gone, timestamp, sender, false).await;
            state.previous = current;
            let compressed = snap::raw::Encoder::new()
                .compress_vec(&body)
                .unwrap_or_default();
            // The body's ticket now holds the compressed copy kept.
            ticket.try_resize(compressed.len());
            state.previous_body = Some((compressed, format, ticket));
            state.health.succeeded(started.elapsed());
            (1.0, scraped, post_relabel, added)
        }
        Err(error) => {
            state
                .health
                .failed(error.reason(), &error, started.elapsed());
            out.discard();
            let gone = std::mem::take(&mut state.previous);
            stale_markers(job, target, state, &gone, timestamp, sender, false).await;
            state.previous_body = None;
            (0.0, 0, 0, 0)
        }
    };
    let duration = started.elapsed().as_secs_f64();
    let synthetic = [
        ("up", up),
        ("scrape_duration_seconds", duration),
        ("scrape_samples_scraped", scraped as f64),
        ("scrape_samples_post_metric_relabeling", post_relabel as f64),
        ("scrape_series_added", added as f64),
    ];
    let mut series = Vec::with_capacity(synthetic.len());
    for (name, value) in synthetic {
        series.push(Series::sample(
            with_name(&target.labels, name),
            value,
            timestamp,
        ));
    }
    send(sender, Metrics::new(series)).await;
}

fn with_name(labels: &Labels, name: &str) -> Labels {
    let mut builder = labels.to_builder();
    builder.set("__name__", name);
    builder.labels()
}

async fn fetch(
    job: &Job,
    target: &Target,
    limiter: &Arc<MemoryLimiter>,
) -> Result<(Bytes, Format, Ticket), ScrapeError> {
    let mut request = http::Request::get(target.url.as_str())
        .header(http::header::ACCEPT, ACCEPT)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", job.config.job.scrape_timeout.as_secs_f64()),
        );
    if job.config.enable_compression {
        request = request.header(http::header::ACCEPT_ENCODING, "gzip");
    }
    let (headers, body, ticket) = job
        .get(
            request,
            &target.url,
            job.config.job.body_size_limit,
            limiter,
        )
        .await?;
    let format = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map_or(Format::Text004, Format::from_content_type);
    Ok((body, format, ticket))
}

/// Parses a body into series and streams them out: returns samples scraped,
/// samples kept after `metric_relabel_configs`, and the sorted hashes of the
/// series kept.
async fn ingest(
    job: &Job,
    target: &Target,
    body: &[u8],
    format: Format,
    timestamp: i64,
    out: &mut Out<'_>,
) -> Result<(usize, usize, Vec<u64>), ScrapeError> {
    let config = &job.config;
    // A page is taken whole or not at all, as in Prometheus: a syntax check
    // first (the parser runs at millions of samples a second), so that a page
    // broken halfway fails its scrape before any of it is handed on.
    let mut check = Parser::new(body, format);
    while let Some(entry) = check.next() {
        entry.map_err(|e| ScrapeError::Parse(e.to_string()))?;
    }
    let mut parser = Parser::new(body, format);
    let mut builder = LabelsBuilder::new();
    let mut seen = Vec::new();
    let (mut scraped, mut kept) = (0usize, 0usize);
    while let Some(entry) = parser.next() {
        let entry = entry.map_err(|e| ScrapeError::Parse(e.to_string()))?;
        let sample = match entry {
            Entry::Sample(sample) => sample,
            Entry::Type { family, kind } => {
                out.metadata(family).kind = metric_type(kind);
                continue;
            }
            Entry::Help { family, text } => {
                out.metadata(family).help = text.into_owned();
                continue;
            }
            Entry::Unit { family, unit } => {
                out.metadata(family).unit = unit.to_string();
                continue;
            }
        };
        scraped += 1;
        target_labels(
            &mut builder,
            &target.labels,
            sample.name,
            sample.labels.iter().map(|(n, v)| (*n, v.as_ref())),
            config.honor_labels,
        );
        // A rule may drop the series, or leave it with no labels at all,
        // which Prometheus' scrape loop drops too.
        if !relabel::process(&mut builder, &config.metric_relabel_configs) || builder.is_empty() {
            continue;
        }
        check_label_limits(config, &builder)?;
        kept += 1;
        if config.sample_limit > 0 && kept > config.sample_limit {
            return Err(ScrapeError::SampleLimit(config.sample_limit));
        }
        let labels = builder.labels();
        seen.push(labels.hash64());
        let at = match (config.honor_timestamps, sample.timestamp_ms) {
            (true, Some(ts)) => ts,
            _ => timestamp,
        };
        let mut series = Series::sample(labels, sample.value, at);
        if let Some(exemplar) = &sample.exemplar {
            series.exemplars.push(Exemplar {
                labels: Labels::from_pairs(exemplar.labels.iter().map(|(n, v)| (*n, v.as_ref()))),
                value: exemplar.value,
                timestamp_ms: exemplar.timestamp_ms.unwrap_or(at),
            });
        }
        out.push(series).await;
    }
    seen.sort_unstable();
    seen.dedup();
    seen.shrink_to_fit();
    Ok((scraped, kept, seen))
}

/// Sets `builder` to a scraped sample's labels merged with its target's:
/// with `honor_labels` the scraped value wins; otherwise the target's does
/// and the scraped one is kept as `exported_NAME`, as Prometheus does.
fn target_labels<'a>(
    builder: &mut LabelsBuilder,
    target: &Labels,
    name: &str,
    scraped: impl Iterator<Item = (&'a str, &'a str)>,
    honor_labels: bool,
) {
    builder.clear();
    for (n, v) in target.iter() {
        builder.set(n, v);
    }
    for (n, v) in scraped {
        match (target.get(n), honor_labels) {
            (Some(_), false) => {
                // Keep renaming while the exported_ name is taken too.
                let mut exported = format!("exported_{n}");
                while target.get(&exported).is_some() {
                    exported = format!("exported_{exported}");
                }
                builder.set(&exported, v);
            }
            _ => builder.set(n, v),
        }
    }
    builder.set("__name__", name);
}

fn check_label_limits(config: &ScrapeConfig, builder: &LabelsBuilder) -> Result<(), ScrapeError> {
    if config.label_limit > 0 && builder.len() > config.label_limit {
        return Err(ScrapeError::LabelLimit(format!(
            "{} labels (label_limit {})",
            builder.len(),
            config.label_limit
        )));
    }
    for (name, value) in builder.iter() {
        if config.label_name_length_limit > 0 && name.len() > config.label_name_length_limit {
            return Err(ScrapeError::LabelLimit(format!("label name `{name}`")));
        }
        if config.label_value_length_limit > 0 && value.len() > config.label_value_length_limit {
            return Err(ScrapeError::LabelLimit(format!(
                "the value of label `{name}`"
            )));
        }
    }
    Ok(())
}

fn metric_type(kind: ParsedType) -> MetricType {
    match kind {
        ParsedType::Counter => MetricType::Counter,
        ParsedType::Gauge => MetricType::Gauge,
        ParsedType::Histogram => MetricType::Histogram,
        ParsedType::GaugeHistogram => MetricType::GaugeHistogram,
        ParsedType::Summary => MetricType::Summary,
        ParsedType::Info => MetricType::Info,
        ParsedType::StateSet => MetricType::StateSet,
        ParsedType::Unknown => MetricType::Unknown,
    }
}

/// Writes a staleness marker for each series in `gone`, recovering their
/// labels from the previous body. With `all`, the target's synthetic series
/// end too (the target disappeared).
async fn stale_markers(
    job: &Job,
    target: &Target,
    state: &mut State,
    gone: &[u64],
    timestamp: i64,
    sender: &Sender,
    all: bool,
) {
    let mut series = Vec::new();
    if !gone.is_empty()
        && let Some((compressed, format, _)) = &state.previous_body
        && let Ok(body) = snap::raw::Decoder::new().decompress_vec(compressed)
    {
        let mut parser = Parser::new(&body, *format);
        let mut builder = LabelsBuilder::new();
        let mut found = std::collections::HashSet::new();
        while let Some(Ok(entry)) = parser.next() {
            let Entry::Sample(sample) = entry else {
                continue;
            };
            target_labels(
                &mut builder,
                &target.labels,
                sample.name,
                sample.labels.iter().map(|(n, v)| (*n, v.as_ref())),
                job.config.honor_labels,
            );
            if !relabel::process(&mut builder, &job.config.metric_relabel_configs) {
                continue;
            }
            let labels = builder.labels();
            let hash = labels.hash64();
            if gone.binary_search(&hash).is_ok() && found.insert(hash) {
                series.push(Series::sample(labels, stale_nan(), timestamp));
            }
        }
    }
    if all {
        for name in [
            "up",
            "scrape_duration_seconds",
            "scrape_samples_scraped",
            "scrape_samples_post_metric_relabeling",
            "scrape_series_added",
        ] {
            series.push(Series::sample(
                with_name(&target.labels, name),
                stale_nan(),
                timestamp,
            ));
        }
        state.previous_body = None;
    }
    for chunk in series.chunks(CHUNK_SAMPLES) {
        send(sender, Metrics::new(chunk.to_vec())).await;
    }
}

/// Hands a batch to the pipelines, accounting memory; a full pipeline or
/// memory limit drops it and counts it (the next scrape tries again).
async fn send(sender: &Sender, metrics: Metrics) {
    use crate::signal::SignalData;
    let items = metrics.item_count() as u64;
    if items == 0 && metrics.metadata.is_empty() {
        return;
    }
    let bytes = metrics.encoded_len();
    let Some(ticket) = sender.limiter.try_acquire(bytes) else {
        sender.refused.inc_by(items);
        return;
    };
    match sender
        .inputs
        .send(Batch::with_size(metrics, bytes, ticket))
        .await
    {
        Ok(()) => {
            sender.accepted.inc_by(items);
        }
        Err(_) => {
            sender.refused.inc_by(items);
        }
    }
}

/// The batches of one scrape, streamed out in chunks as the parser goes —
/// or held until the scrape is complete when `sample_limit` may still fail it.
struct Out<'s> {
    sender: &'s Sender,
    hold: bool,
    chunk: Vec<Series>,
    held: Vec<Vec<Series>>,
    /// Metadata seen since the last batch went out; it rides with the next.
    metadata: Vec<Metadata>,
}

impl<'s> Out<'s> {
    fn new(sender: &'s Sender, hold: bool) -> Self {
        Self {
            sender,
            hold,
            chunk: Vec::new(),
            held: Vec::new(),
            metadata: Vec::new(),
        }
    }

    fn metadata(&mut self, family: &str) -> &mut Metadata {
        if let Some(i) = self.metadata.iter().position(|m| m.family == family) {
            return &mut self.metadata[i];
        }
        self.metadata.push(Metadata {
            family: family.to_string(),
            ..Default::default()
        });
        self.metadata.last_mut().unwrap()
    }

    async fn push(&mut self, series: Series) {
        self.chunk.push(series);
        if self.chunk.len() >= CHUNK_SAMPLES {
            let chunk = std::mem::take(&mut self.chunk);
            if self.hold {
                self.held.push(chunk);
            } else {
                self.send_chunk(chunk).await;
            }
        }
    }

    async fn send_chunk(&mut self, chunk: Vec<Series>) {
        let mut metrics = Metrics::new(chunk);
        metrics.metadata = std::mem::take(&mut self.metadata);
        send(self.sender, metrics).await;
    }

    /// Sends what is held and the last partial chunk.
    async fn finish(&mut self) {
        for chunk in std::mem::take(&mut self.held) {
            self.send_chunk(chunk).await;
        }
        let last = std::mem::take(&mut self.chunk);
        if !last.is_empty() || !self.metadata.is_empty() {
            self.send_chunk(last).await;
        }
    }

    fn discard(&mut self) {
        self.chunk.clear();
        self.held.clear();
        self.metadata.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(
        target: &[(&str, &str)],
        scraped: &[(&str, &str)],
        honor: bool,
    ) -> Vec<(String, String)> {
        let target = Labels::from_pairs(target.iter().copied());
        let mut builder = LabelsBuilder::new();
        target_labels(&mut builder, &target, "m", scraped.iter().copied(), honor);
        builder
            .labels()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn target_labels_win_and_scraped_ones_become_exported() {
        let got = merged(
            &[("job", "node"), ("instance", "h:1")],
            &[("job", "app"), ("path", "/")],
            false,
        );
        assert_eq!(
            got,
            pairs(&[
                ("__name__", "m"),
                ("exported_job", "app"),
                ("instance", "h:1"),
                ("job", "node"),
                ("path", "/")
            ])
        );
    }

    #[test]
    fn honor_labels_keeps_the_scraped_value() {
        let got = merged(
            &[("job", "node"), ("instance", "h:1")],
            &[("job", "app")],
            true,
        );
        assert_eq!(
            got,
            pairs(&[("__name__", "m"), ("instance", "h:1"), ("job", "app")])
        );
    }

    #[test]
    fn exported_names_do_not_collide_with_target_labels() {
        let got = merged(
            &[("job", "node"), ("exported_job", "x")],
            &[("job", "app")],
            false,
        );
        assert!(
            got.contains(&("exported_exported_job".into(), "app".into())),
            "{got:?}"
        );
        assert!(got.contains(&("exported_job".into(), "x".into())));
    }
}
