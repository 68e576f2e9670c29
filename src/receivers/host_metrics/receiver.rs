//! The host metrics receiver at work: one task that runs the collectors
//! every `collection_interval` and sends what they wrote.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::collectors::{self, Files};
use super::config::{Collector, HostMetricsConfig};
use super::page::Catalog;
use crate::config::ComponentId;
use crate::delivery::{Batch, MemoryLimiter, PipelineInputs};
use crate::receivers::{Inputs, RunningReceiver};
use crate::signal::{Metrics, Signal, SignalData};
use crate::telemetry::{CollectorLabels, Telemetry};

pub async fn start(
    id: &ComponentId,
    config: &HostMetricsConfig,
    inputs: Inputs,
    limiter: Arc<MemoryLimiter>,
    telemetry: &Arc<Telemetry>,
) -> std::io::Result<RunningReceiver> {
    let stop = CancellationToken::new();
    let Some(inputs) = inputs.metrics else {
        return Ok(RunningReceiver::new(id.clone(), stop, Vec::new()));
    };
    let task = tokio::spawn(collect(
        id.clone(),
        config.clone(),
        inputs,
        limiter,
        telemetry.clone(),
        stop.clone(),
    ));
    tracing::info!(receiver = %id, collectors = config.collectors.len(), interval = ?config.collection_interval, "host metrics receiver started");
    Ok(RunningReceiver::new(id.clone(), stop, vec![task]))
}

async fn collect(
    id: ComponentId,
    config: HostMetricsConfig,
    inputs: PipelineInputs<Metrics>,
    limiter: Arc<MemoryLimiter>,
    telemetry: Arc<Telemetry>,
    stop: CancellationToken,
) {
    let labels = Telemetry::labels("receiver", &id, Signal::Metrics);
    let accepted = Telemetry::counter(&telemetry.accepted, &labels);
    let refused =
        Telemetry::reason_counter(&telemetry.refused, &labels, "pipeline_full_or_memory_limit");
    let took = telemetry
        .host_metrics
        .collection_seconds
        .get_or_create(&labels)
        .clone();
    let errors = |collector: &'static str| {
        telemetry
            .host_metrics
            .errors
            .get_or_create(&CollectorLabels {
                component: id.to_string(),
                collector,
            })
            .clone()
    };
    let error_counters: Vec<_> = config
        .collectors
        .iter()
        .map(|c| (*c, errors(c.name())))
        .collect();
    let mut collection = Collection::new(&config);
    let mut tick = tokio::time::interval(config.collection_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Collectors that failed last time, so a lasting failure is logged once.
    let mut failing = Vec::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let started = Instant::now();
        let (metrics, failed) = collection.run(&config);
        took.set(started.elapsed().as_secs_f64());
        for (collector, error) in &failed {
            if let Some((_, counter)) = error_counters.iter().find(|(c, _)| c == collector) {
                counter.inc();
            }
            if !failing.contains(collector) {
                tracing::warn!(receiver = %id, collector = collector.name(), %error, "a host metrics collector failed; the others go on");
            }
        }
        failing = failed.into_iter().map(|(c, _)| c).collect();
        let items = metrics.item_count() as u64;
        let bytes = metrics.encoded_len();
        let Some(ticket) = limiter.try_acquire(bytes) else {
            refused.inc_by(items);
            continue;
        };
        let send = inputs.send(Batch::with_size(metrics, bytes, ticket));
        tokio::select! {
            sent = send => {
                let counter = if sent.is_ok() { &accepted } else { &refused };
                counter.inc_by(items);
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// What one host metrics receiver keeps between collections: the label
/// sets of its series and the buffer files are read into.
pub struct Collection {
    catalog: Catalog,
    files: Files,
}

impl Collection {
    pub fn new(config: &HostMetricsConfig) -> Self {
        Self {
            catalog: Catalog::new(&config.job, &config.instance),
            files: Files::default(),
        }
    }

    /// Runs every collector of `config` once: the metrics, and the
    /// collectors that failed with why.
    pub fn run(
        &mut self,
        config: &HostMetricsConfig,
    ) -> (Metrics, Vec<(Collector, std::io::Error)>) {
        let mut page = self.catalog.page(now_ms());
        let failed = collectors::run(config, &mut page, &mut self.files);
        (page.finish(), failed)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How long a collection may wait for room in a full pipeline before its
/// samples are dropped and counted (the next collection is afresh).
pub const PIPELINE_WAIT: Duration = Duration::from_secs(5);
