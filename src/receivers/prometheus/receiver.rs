//! The scrape receiver at work: one loop per target, kept in step with
//! discovery.

use super::config::{KubernetesSdConfig, PrometheusConfig, ScrapeConfig};
use crate::scrape::StaticConfig;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

use super::monitors;
use super::scrape::{Job, Sender};
use crate::config::ComponentId;
use crate::delivery::MemoryLimiter;
use crate::k8s::cluster::ClusterObjects;
use crate::k8s::monitor::MonitorKind;
use crate::k8s::{PodCache, PodInfo, discovery};
use crate::receivers::{Inputs, ReceiverConfig, RunningReceiver};
use crate::scrape::Target;
use crate::scrape::{PodGroups, Sources, reconcile};
use crate::signal::Signal;
use crate::telemetry::Telemetry;

/// What the receiver reads of Kubernetes, when the config has it.
pub struct Cluster {
    /// This node's pods.
    pub pods: Option<PodCache>,
    /// The cluster's monitors and Services, when the receiver has `monitors`.
    pub objects: Option<ClusterObjects>,
    /// Whether this agent leads (`[kubernetes.leader]`).
    pub leading: Option<tokio::sync::watch::Receiver<bool>>,
    /// Where the TLS files of monitors are written (under `data_dir`).
    pub tls_dir: std::path::PathBuf,
}

pub async fn start(
    id: &ComponentId,
    config: &PrometheusConfig,
    inputs: Inputs,
    limiter: Arc<MemoryLimiter>,
    telemetry: &Arc<Telemetry>,
    kubernetes: Cluster,
) -> std::io::Result<RunningReceiver> {
    let Cluster {
        pods,
        objects: cluster,
        leading,
        tls_dir,
    } = kubernetes;
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let Some(inputs) = inputs.metrics else {
        return Ok(RunningReceiver::new(id.clone(), stop, tasks));
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
        telemetry: telemetry.clone(),
        labels,
    });
    // Every job is built before any starts: a receiver that fails to
    // start leaves no scrape loop running.
    let jobs = config
        .scrape_configs
        .iter()
        .map(|c| Job::new(c.clone(), &c.job.tls, &c.job.credentials).map(Arc::new))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut successors = Vec::new();
    for job in jobs {
        let next = Arc::new(OnceLock::new());
        successors.push((job.config.job.job_name.clone(), next.clone()));
        tasks.push(tokio::spawn(manage(
            job,
            sender.clone(),
            pods.clone(),
            None,
            Stops {
                receiver: stop.clone(),
                next,
            },
        )));
    }
    if !config.monitors.is_empty() {
        // The plan asks for [kubernetes] with monitors: both are there.
        let (Some(cluster), Some(pods)) = (cluster, pods.clone()) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "monitors need [kubernetes]",
            ));
        };
        tasks.push(tokio::spawn(monitors::manage(monitors::Manager {
            id: id.clone(),
            configs: config.monitors.clone(),
            cluster,
            leading,
            pods,
            sender: sender.clone(),
            telemetry: telemetry.clone(),
            tls_dir,
            stop: stop.clone(),
        })));
    }
    tracing::info!(receiver = %id, jobs = config.scrape_configs.len(), "Prometheus scrape receiver started");
    let hook = move |next: Option<&ReceiverConfig>| {
        for (job, slot) in &successors {
            let next_job = match next {
                Some(ReceiverConfig::Prometheus(c)) => {
                    c.scrape_configs.iter().find(|s| s.job.job_name == *job)
                }
                _ => None,
            };
            // What the next job will scrape, found as it will find it.
            let targets = next_job
                .map(|config| {
                    let groups = sources(config, pods.clone(), None).groups_now();
                    super::targets::targets(config, &groups)
                        .into_iter()
                        .collect()
                })
                .unwrap_or_default();
            let _ = slot.set(targets);
        }
    };
    // A target that goes away ends its series with staleness markers as
    // its loop stops.
    Ok(RunningReceiver::new(id.clone(), stop, tasks)
        .with_reload_hook(Box::new(hook))
        .sending_as_it_stops())
}

/// Why a job's target loops stop, besides their own target going away.
#[derive(Clone)]
pub struct Stops {
    /// The receiver stops (a reload, a shutdown).
    pub receiver: CancellationToken,
    /// The targets this job has in the next config (none if the next
    /// config has no such job), set by a reload before `receiver`: a target
    /// not among them ends its series as it stops. Unset at a shutdown.
    pub next: Arc<OnceLock<BTreeSet<Target>>>,
}

/// Where `config`'s target groups come from: its static groups, its
/// `file_sd` files and, with `kubernetes_sd_configs`, the pods of this
/// node; for a monitor's job, the monitor's pods (and Services) instead.
pub(super) fn sources(
    config: &ScrapeConfig,
    pods: Option<PodCache>,
    cluster: Option<monitors::World>,
) -> Sources {
    if let (Some(source), Some(pods), Some(world)) = (&config.monitor, &pods, &cluster) {
        let monitor = source.monitor.clone();
        let world = world.clone();
        let mut also_changes = Vec::new();
        if monitor.kind == MonitorKind::ServiceMonitor {
            also_changes.push(world.cluster.service_changes());
            also_changes.extend(world.slices.as_ref().map(|s| s.changes()));
        }
        let groups = move |cached: &[Arc<PodInfo>]| {
            if monitor.kind == MonitorKind::PodMonitor {
                return monitors::targets::groups(&monitor, &[], cached);
            }
            let services = world.cluster.services();
            let mut groups = monitors::targets::groups(&monitor, &services, cached);
            if let Some(slices) = &world.slices {
                let slices = slices.slices();
                groups.extend(monitors::targets::leader_groups(
                    &monitor, &services, &slices,
                ));
            }
            groups
        };
        return Sources {
            pods: Some((pods.clone(), Arc::new(groups))),
            also_changes,
            ..Sources::default()
        };
    }
    let sd_configs = config.kubernetes_sd_configs.clone();
    let pods = pods
        .filter(|_| !sd_configs.is_empty())
        .map(|cache| -> (PodCache, PodGroups) {
            let node = cache.clone();
            let groups = move |cached: &[Arc<PodInfo>]| {
                sd_configs
                    .iter()
                    .flat_map(|sd| match sd {
                        KubernetesSdConfig::Pods { annotations } => {
                            discovery::target_groups(cached, annotations.as_ref())
                        }
                        KubernetesSdConfig::Node => node
                            .node()
                            .and_then(|n| n.target_group())
                            .into_iter()
                            .collect(),
                    })
                    .map(|g| StaticConfig {
                        targets: g.targets,
                        labels: g.labels,
                    })
                    .collect()
            };
            (cache, Arc::new(groups))
        });
    Sources {
        static_groups: config.job.static_configs.clone(),
        file_sd: config.job.file_sd_configs.clone(),
        pods,
        also_changes: Vec::new(),
    }
}

/// Keeps one scrape loop running per current target of `job`: static
/// groups, `file_sd` files and, with `kubernetes_sd_configs`, the pods of
/// this node (on every change of the pod cache).
pub(super) async fn manage(
    job: Arc<Job>,
    sender: Arc<Sender>,
    pods: Option<PodCache>,
    cluster: Option<monitors::World>,
    stops: Stops,
) {
    let sources = sources(&job.config, pods, cluster);
    let spawn = |target, token| {
        tokio::spawn(super::scrape::run(
            job.clone(),
            target,
            sender.clone(),
            token,
            stops.clone(),
        ))
    };
    let resolve = |groups: &[StaticConfig]| {
        let targets = super::targets::targets(&job.config, groups);
        let limit = job.config.target_limit;
        let over = limit > 0 && targets.len() > limit;
        let was = job
            .over_target_limit
            .swap(over, std::sync::atomic::Ordering::Relaxed);
        if over && !was {
            tracing::warn!(job = %job.config.job.job_name, targets = targets.len(), limit, "the job has more targets than its target_limit: none is scraped until it has no more");
        }
        targets
    };
    reconcile(
        &job.config.job.job_name,
        sources,
        resolve,
        spawn,
        stops.receiver.clone(),
    )
    .await;
}
