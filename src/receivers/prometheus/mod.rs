//! The Prometheus scrape receiver: pulls `/metrics` pages from targets on an
//! interval, with Prometheus' own `scrape_config` semantics (relabelling,
//! `job`/`instance`, `honor_labels`, limits, synthetic series, staleness).
//!
//! Formats: text exposition 0.0.4 and OpenMetrics 1.0, negotiated by
//! `Accept` (<https://prometheus.io/docs/instrumenting/exposition_formats/>).
//! Targets come from `static_configs`, `file_sd_configs` and
//! `kubernetes_sd_configs` (the pods of this node, from the process's pod
//! cache), through the reconcile loop shared with the pprof receiver
//! (`receivers::discovery`).

mod config;
pub mod scrape;
pub mod targets;

pub use config::{
    FileSdConfig, PrometheusConfig, RawKubernetesSdConfig, RawPrometheusConfig, ScrapeConfig,
    StaticConfig,
};

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use super::discovery::{PodGroups, Sources, reconcile};
use super::{Outputs, RunningReceiver};
use crate::config::ComponentId;
use crate::delivery::MemoryLimiter;
use crate::k8s::{PodCache, PodInfo, discovery};
use crate::signal::Signal;
use crate::telemetry::Telemetry;
use scrape::{Job, Sender};

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
    let mut jobs = Vec::new();
    for scrape_config in &config.scrape_configs {
        let job = Arc::new(Job::new(
            scrape_config.clone(),
            &scrape_config.tls,
            &scrape_config.credentials,
        )?);
        let retired = CancellationToken::new();
        jobs.push((scrape_config.job_name.clone(), retired.clone()));
        tasks.push(tokio::spawn(manage(
            job,
            sender.clone(),
            pods.clone(),
            Stops {
                receiver: stop.clone(),
                retired,
            },
        )));
    }
    tracing::info!(receiver = %id, jobs = config.scrape_configs.len(), "Prometheus scrape receiver started");
    Ok(RunningReceiver::new(id.clone(), Vec::new(), stop, tasks).with_jobs(jobs))
}

/// Why a job's target loops stop, besides their own target going away.
#[derive(Clone)]
pub struct Stops {
    /// The receiver stops (a reload, a shutdown).
    pub receiver: CancellationToken,
    /// The next config has no such job: its series end (set before
    /// `receiver`).
    pub retired: CancellationToken,
}

/// Keeps one scrape loop running per current target of `job`: static
/// groups, `file_sd` files and, with `kubernetes_sd_configs`, the pods of
/// this node (on every change of the pod cache).
async fn manage(job: Arc<Job>, sender: Arc<Sender>, pods: Option<PodCache>, stops: Stops) {
    let sd_configs = job.config.kubernetes_sd_configs.clone();
    let pods = pods
        .filter(|_| !sd_configs.is_empty())
        .map(|cache| -> (PodCache, PodGroups) {
            let groups = move |cached: &[Arc<PodInfo>]| {
                sd_configs
                    .iter()
                    .flat_map(|sd| discovery::target_groups(cached, sd.annotations.as_ref()))
                    .map(|g| StaticConfig {
                        targets: g.targets,
                        labels: g.labels,
                    })
                    .collect()
            };
            (cache, Arc::new(groups))
        });
    let sources = Sources {
        static_groups: job.config.static_configs.clone(),
        file_sd: job.config.file_sd_configs.clone(),
        pods,
    };
    let spawn = |target, token| {
        tokio::spawn(scrape::run(
            job.clone(),
            target,
            sender.clone(),
            token,
            stops.clone(),
        ))
    };
    let resolve = |groups: &[StaticConfig]| targets::targets(&job.config, groups);
    reconcile(
        &job.config.job_name,
        sources,
        resolve,
        spawn,
        stops.receiver.clone(),
    )
    .await;
}
