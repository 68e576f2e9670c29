//! The Prometheus scrape receiver: pulls `/metrics` pages from targets on an
//! interval, with Prometheus' own `scrape_config` semantics (relabelling,
//! `job`/`instance`, `honor_labels`, limits, synthetic series, staleness).
//!
//! Formats: text exposition 0.0.4 and OpenMetrics 1.0, negotiated by
//! `Accept` (<https://prometheus.io/docs/instrumenting/exposition_formats/>).
//! Targets come from `static_configs`, `file_sd_configs` and
//! `kubernetes_sd_configs` (the pods of this node, from the process's pod
//! cache), all feeding the same reconcile loop.

mod config;
pub mod scrape;
pub mod targets;

pub use config::{PrometheusConfig, RawPrometheusConfig, ScrapeConfig, StaticConfig};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Outputs, RunningReceiver};
use crate::config::ComponentId;
use crate::delivery::MemoryLimiter;
use crate::k8s::{PodCache, discovery};
use crate::net::http_client;
use crate::signal::Signal;
use crate::telemetry::Telemetry;
use scrape::{Job, Sender};
use targets::{FileSd, Target};

/// How often `file_sd` files are checked for changes.
const FILE_SD_CHECK: Duration = Duration::from_secs(5);

pub async fn start(
    id: &ComponentId,
    config: &PrometheusConfig,
    outputs: Outputs,
    limiter: Arc<MemoryLimiter>,
    telemetry: &Arc<Telemetry>,
    pods: Option<PodCache>,
) -> std::io::Result<RunningReceiver> {
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let Some(inputs) = outputs.metrics else {
        return Ok(RunningReceiver::new(id.clone(), Vec::new(), stop, tasks));
    };
    let labels = Telemetry::labels("receiver", id, Signal::Metrics);
    let sender = Arc::new(Sender {
        inputs,
        limiter,
        accepted: Telemetry::counter(&telemetry.accepted, &labels),
        refused: Telemetry::reason_counter(
            &telemetry.refused,
            &labels,
            "pipeline_full_or_memory_limit",
        ),
        failed_scrapes: Telemetry::reason_counter(
            &telemetry.rejected_requests,
            &labels,
            "scrape_failed",
        ),
    });
    for scrape_config in &config.scrape_configs {
        let client = http_client::client(&scrape_config.tls).map_err(std::io::Error::other)?;
        let authorization = scrape_config
            .credentials
            .header()
            .map_err(std::io::Error::other)?;
        let job = Arc::new(Job {
            config: scrape_config.clone(),
            client,
            authorization,
        });
        tasks.push(tokio::spawn(manage(
            job,
            sender.clone(),
            pods.clone(),
            stop.clone(),
        )));
    }
    tracing::info!(receiver = %id, jobs = config.scrape_configs.len(), "Prometheus scrape receiver started");
    Ok(RunningReceiver::new(id.clone(), Vec::new(), stop, tasks))
}

/// Keeps one scrape loop running per current target of `job`: static
/// groups, `file_sd` files (checked every few seconds) and the pods of this
/// node (on every change of the pod cache).
async fn manage(
    job: Arc<Job>,
    sender: Arc<Sender>,
    pods: Option<PodCache>,
    stop: CancellationToken,
) {
    let pods = pods.filter(|_| !job.config.kubernetes_sd_configs.is_empty());
    let mut pod_changes = pods.as_ref().map(PodCache::changes);
    let mut running: BTreeMap<Target, (CancellationToken, JoinHandle<()>)> = BTreeMap::new();
    let mut file_sd: Vec<FileSd> = job
        .config
        .file_sd_configs
        .iter()
        .map(|_| FileSd::default())
        .collect();
    let mut check = tokio::time::interval(FILE_SD_CHECK);
    let mut first = true;
    loop {
        let mut changed = first;
        tokio::select! {
            _ = check.tick() => {}
            _ = pods_changed(&mut pod_changes) => changed = true,
            _ = stop.cancelled() => break,
        }
        first = false;
        for (sd, config) in file_sd.iter_mut().zip(&job.config.file_sd_configs) {
            changed |= sd.refresh(&config.files);
        }
        if !changed {
            continue;
        }
        let mut groups = job.config.static_configs.clone();
        for sd in &file_sd {
            groups.extend(sd.groups().cloned());
        }
        if let Some(cache) = &pods {
            let cached = cache.pods();
            for sd in &job.config.kubernetes_sd_configs {
                groups.extend(
                    discovery::target_groups(&cached, sd.annotations.as_ref())
                        .into_iter()
                        .map(|g| StaticConfig {
                            targets: g.targets,
                            labels: g.labels,
                        }),
                );
            }
        }
        let wanted = targets::targets(&job.config, &groups);
        let current: Vec<Target> = running.keys().cloned().collect();
        for target in current.iter().filter(|t| !wanted.contains(t)) {
            if let Some((token, handle)) = running.remove(target) {
                token.cancel();
                let _ = handle.await;
            }
        }
        for target in wanted {
            if running.contains_key(&target) {
                continue;
            }
            let token = CancellationToken::new();
            let handle = tokio::spawn(scrape::run(
                job.clone(),
                target.clone(),
                sender.clone(),
                token.clone(),
            ));
            running.insert(target, (token, handle));
        }
        tracing::debug!(job = %job.config.job_name, targets = running.len(), "scrape targets updated");
    }
    for (token, _) in running.values() {
        token.cancel();
    }
    for (_, (_, handle)) in running {
        let _ = handle.await;
    }
}

/// Resolves when the pod cache changed; never without a cache.
async fn pods_changed(changes: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    let Some(rx) = changes else {
        return std::future::pending().await;
    };
    if rx.changed().await.is_err() {
        // The cache is gone (never while the process runs): stop asking.
        *changes = None;
        std::future::pending::<()>().await;
    }
}
