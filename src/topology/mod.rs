//! Building and running a config: exporters first, then pipelines, then
//! receivers; stopping in the reverse order so that everything accepted is
//! drained into the exporters before they are flushed.

mod pipeline;

use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::ComponentId;
use crate::delivery::{Admitter, MemoryLimiter, PipelineInputs, QueueType};
use crate::exporters::RunningExporter;
use crate::for_signal;
use crate::k8s::PodCaches;
use crate::k8s::cluster::ClusterCaches;
use crate::k8s::leader::LeaderSlot;
use crate::net::server::Servers;
use crate::plan::{Config, PipelineConfig};
use crate::processors::Processors;
use crate::receivers::{self, Inputs, RunningReceiver};
use crate::signal::{Fields, PerSignal, SignalFamily};
use crate::telemetry::Telemetry;
use pipeline::Pipeline;

/// Batches a pipeline's input channel holds before receivers wait.
const PIPELINE_CHANNEL: usize = 16;

/// How long a start waits for the pod cache's first list, so that the first
/// records are enriched; past it, ferro starts anyway.
const INITIAL_POD_SYNC: Duration = Duration::from_secs(5);

/// How long receivers get to finish in-flight requests when stopping.
const RECEIVER_GRACE: Duration = Duration::from_secs(5);

/// The pipelines each receiver feeds, by signal, while a topology is wired.
struct Wiring;

impl SignalFamily for Wiring {
    type Of<T> = BTreeMap<ComponentId, PipelineInputs<T>>;
}

/// The pipelines receiver `id` feeds, taken out of the wiring, each signal's
/// with the receiver's patience when they are full.
fn inputs_of(wiring: &mut PerSignal<Wiring>, id: &ComponentId, wait: Duration) -> Inputs {
    fn take<T: Fields>(
        wiring: &mut PerSignal<Wiring>,
        id: &ComponentId,
        wait: Duration,
    ) -> Option<PipelineInputs<T>> {
        T::pick_mut(wiring)
            .remove(id)
            .map(|inputs| inputs.waiting(wait))
    }
    PerSignal {
        traces: take(wiring, id, wait),
        metrics: take(wiring, id, wait),
        logs: take(wiring, id, wait),
        profiles: take(wiring, id, wait),
    }
}

/// Starts one pipeline of signal `T`: its channel, its task, and its place in
/// the wiring of each of its receivers.
fn wire<T: Fields>(
    pipeline: &PipelineConfig,
    processors: &mut Processors,
    telemetry: &Telemetry,
    exporters: &BTreeMap<ComponentId, RunningExporter>,
    wiring: &mut PerSignal<Wiring>,
    close: CancellationToken,
) -> JoinHandle<()> {
    let (tx, rx) = mpsc::channel(PIPELINE_CHANNEL);
    let exporter_inputs = pipeline
        .exporters
        .iter()
        .filter_map(|id| {
            exporters
                .get(id)
                .and_then(|e| e.outbox::<T>().map(|outbox| outbox.input(id)))
        })
        .collect();
    let task = Pipeline::new(
        pipeline.name.clone(),
        rx,
        &pipeline.stages,
        processors,
        telemetry,
        exporter_inputs,
        close,
    );
    let admission: Vec<Arc<dyn Admitter<T>>> = task
        .before
        .iter()
        .chain(&task.after)
        .filter_map(|p| p.admission().map(|l| l.clone() as Arc<dyn Admitter<T>>))
        .collect();
    let reads_org_id = task
        .before
        .iter()
        .chain(&task.after)
        .any(|p| p.reads_org_id());
    for receiver in &pipeline.receivers {
        T::pick_mut(wiring)
            .entry(receiver.clone())
            .or_insert_with(PipelineInputs::default)
            .add(tx.clone(), &admission, reads_org_id);
    }
    tokio::spawn(task.run())
}

/// What outlives a topology, so that a reload keeps it: the pod cache (warm,
/// no new list against the API server), the leader election (no Lease
/// given up and taken again) and the receivers' servers (no connection
/// refused or closed while the topology is replaced).
pub struct ProcessResources {
    pub pods: PodCaches,
    /// The cluster's monitors and Services, when a receiver follows monitors.
    pub cluster: ClusterCaches,
    pub leader: LeaderSlot,
    pub servers: Servers,
}

impl ProcessResources {
    pub fn new(servers: Servers) -> Self {
        Self {
            pods: PodCaches::default(),
            cluster: ClusterCaches::default(),
            leader: LeaderSlot::default(),
            servers,
        }
    }
}

/// A started config.
pub struct Topology {
    pub config: Config,
    exporters: BTreeMap<ComponentId, RunningExporter>,
    pipelines: Vec<JoinHandle<()>>,
    close_pipelines: CancellationToken,
    receivers: Vec<RunningReceiver>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("exporter {0}: {1}")]
    Exporter(ComponentId, crate::exporters::ExporterStartError),
    #[error("receiver {0}: {1}")]
    Receiver(ComponentId, std::io::Error),
    #[error("kubernetes: {0}")]
    Kubernetes(crate::k8s::K8sError),
}

impl Topology {
    /// Starts `config`. Exporters in `keep` (from a previous topology, with the
    /// same config) are taken over with their queues instead of started anew,
    /// and receivers listen on the sockets `listeners` holds for their
    /// addresses.
    pub async fn start(
        config: Config,
        telemetry: &Arc<Telemetry>,
        limiter: &Arc<MemoryLimiter>,
        resources: &ProcessResources,
        mut keep: BTreeMap<ComponentId, RunningExporter>,
    ) -> Result<Topology, (StartError, BTreeMap<ComponentId, RunningExporter>)> {
        let ProcessResources {
            pods: caches,
            cluster,
            leader,
            servers,
        } = resources;
        limiter.set_limit(config.memory_limit.as_usize());

        // 0. The pod cache, before anything that reads it; it outlives
        // this topology, so a reload keeps it warm.
        let pods = match caches.get(config.kubernetes.as_ref(), telemetry).await {
            Ok(pods) => pods,
            Err(e) => return Err((StartError::Kubernetes(e), keep)),
        };
        if let Some(cache) = &pods
            && !cache.is_synced()
            && !cache.wait_synced(INITIAL_POD_SYNC).await
        {
            tracing::warn!(
                waited_ms = INITIAL_POD_SYNC.as_millis() as u64,
                "the pod cache has no list of this node's pods yet; starting anyway (records are enriched once it has)"
            );
        }

        // The cluster's monitors and Services, when a receiver follows
        // monitors; kept across reloads too.
        let follows_monitors = config.receivers.values().any(|r| r.follows_monitors());
        let cluster = match cluster
            .get(config.kubernetes.as_ref(), follows_monitors, telemetry)
            .await
        {
            Ok(cluster) => cluster,
            Err(e) => return Err((StartError::Kubernetes(e), keep)),
        };

        // The leader election, when [kubernetes.leader] asks for one; it
        // outlives this topology too.
        let leading = match leader.get(config.kubernetes.as_ref(), telemetry).await {
            Ok(leading) => leading,
            Err(e) => return Err((StartError::Kubernetes(e), keep)),
        };

        // 1. Exporters.
        let mut exporters = BTreeMap::new();
        for (id, exporter_config) in &config.exporters {
            if let Some(running) = keep.remove(id) {
                exporters.insert(id.clone(), running);
                continue;
            }
            match RunningExporter::start(id, exporter_config, &config.data_dir, telemetry) {
                Ok(running) => {
                    exporters.insert(id.clone(), running);
                }
                Err(e) => {
                    // Hand back what was kept; stop what was started here.
                    let deadline = Instant::now() + config.shutdown_timeout.get();
                    for (id, running) in exporters {
                        if keep.contains_key(&id) {
                            continue;
                        }
                        running.shutdown(deadline).await;
                    }
                    return Err((StartError::Exporter(id.clone(), e), keep));
                }
            }
        }
        // Kept exporters the new config no longer has: flush and stop them.
        for (_, running) in std::mem::take(&mut keep) {
            let deadline = Instant::now() + config.shutdown_timeout.get();
            tokio::spawn(running.shutdown(deadline));
        }

        // 2. Pipelines.
        let close_pipelines = CancellationToken::new();
        let mut pipelines = Vec::new();
        let mut wiring = PerSignal::<Wiring>::default();
        let mut processors = Processors::new(pods.clone());
        for pipeline in &config.pipelines {
            let close = close_pipelines.clone();
            let task = for_signal!(pipeline.signal, T => wire::<T>(
                pipeline,
                &mut processors,
                telemetry,
                &exporters,
                &mut wiring,
                close,
            ));
            pipelines.push(task);
        }

        let mut topology = Topology {
            config: config.clone(),
            exporters,
            pipelines,
            close_pipelines,
            receivers: Vec::new(),
        };

        // 3. Receivers.
        servers.begin();
        let context = receivers::Context {
            limiter,
            telemetry,
            pods: pods.as_ref(),
            leading: leading.as_ref(),
            servers,
            data_dir: &config.data_dir,
            kubernetes: config.kubernetes.as_ref(),
            cluster: cluster.as_ref(),
        };
        for (id, receiver_config) in &config.receivers {
            let inputs = inputs_of(&mut wiring, id, receiver_config.pipeline_wait());
            let started = receiver_config.start(id, inputs, &context).await;
            match started {
                Ok(running) => topology.receivers.push(running),
                Err(e) => {
                    let kept = topology.stop_keeping_exporters(&config).await;
                    return Err((StartError::Receiver(id.clone(), e), kept));
                }
            }
        }
        drop(wiring);
        servers.close_unclaimed();
        Ok(topology)
    }

    /// Where each receiver listens: `(receiver, protocol, address)`.
    pub fn listen_addrs(&self) -> Vec<(ComponentId, &'static str, SocketAddr)> {
        self.receivers
            .iter()
            .flat_map(|r| {
                r.addrs()
                    .into_iter()
                    .map(|(proto, addr)| (r.id.clone(), proto, addr))
            })
            .collect()
    }

    /// Stops receivers and drains pipelines into the exporter queues, by
    /// `deadline`, then runs `then` (a shutdown's flush of the exporters).
    ///
    /// Receivers get what is left of [`RECEIVER_GRACE`] for their requests
    /// in flight, and those whose tasks send as they stop (staleness
    /// markers) for those tasks; pipelines then hand what they hold to the
    /// exporter queues without waiting for room; meanwhile the other
    /// receivers' tasks finish (a log tailer records the acknowledgements
    /// the flush brings). A pipeline not done by the deadline (a slow
    /// processor on a large backlog) goes on by itself and counts what finds
    /// its exporters closed as dropped for `shutdown`.
    async fn stop_inputs(&mut self, deadline: Instant, then: impl Future<Output = ()>) {
        let grace = deadline
            .saturating_duration_since(Instant::now())
            .min(RECEIVER_GRACE);
        let (sending, receivers): (Vec<_>, Vec<_>) = std::mem::take(&mut self.receivers)
            .into_iter()
            .partition(|r| r.sends_as_it_stops());
        join_all(
            sending
                .iter()
                .chain(&receivers)
                .map(|r| r.stop_taking(grace)),
        )
        .await;
        let sent = Instant::now() + grace;
        join_all(sending.into_iter().map(|r| r.finish(sent))).await;
        self.close_pipelines.cancel();
        let pipelines = join_all(self.pipelines.drain(..));
        let drain = async {
            if tokio::time::timeout_at(deadline, pipelines).await.is_err() {
                tracing::warn!("pipelines did not drain by the shutdown deadline");
            }
            then.await;
        };
        let finish = join_all(receivers.into_iter().map(|r| r.finish(deadline)));
        tokio::join!(drain, finish);
    }

    /// The whole orderly stop, within the shutdown timeout: receivers,
    /// pipelines, then exporters flushed until the deadline; what is still
    /// queued then is dropped, counted for `shutdown`, and reported to its
    /// senders as interrupted.
    pub async fn shutdown(mut self) {
        let deadline = Instant::now() + self.config.shutdown_timeout.get();
        let exporters = std::mem::take(&mut self.exporters);
        let flush = async move {
            join_all(exporters.into_values().map(|e| e.shutdown(deadline))).await;
        };
        self.stop_inputs(deadline, flush).await;
    }

    /// Stops inputs and hands back the exporters whose config `next` keeps
    /// unchanged; the rest are flushed and stopped in the background.
    async fn stop_keeping_exporters(
        &mut self,
        next: &Config,
    ) -> BTreeMap<ComponentId, RunningExporter> {
        let deadline = Instant::now() + self.config.shutdown_timeout.get();
        self.stop_inputs(deadline, async {}).await;
        let mut kept = BTreeMap::new();
        for (id, exporter) in std::mem::take(&mut self.exporters) {
            if next.exporters.get(&id) == Some(&exporter.config) {
                kept.insert(id, exporter);
            } else if exporter.config.queue().kind == QueueType::Disk {
                // Its successor opens the same directory: the queue must be
                // closed first (what it could not send stays on disk for it).
                exporter.shutdown(deadline).await;
            } else {
                tokio::spawn(exporter.shutdown(deadline));
            }
        }
        kept
    }

    /// Replaces this topology with one for `next`, keeping the queues of
    /// exporters whose config did not change. If `next` cannot start (a port
    /// in use), the old config is started again and the error returned.
    pub async fn reload(
        mut self,
        next: Config,
        telemetry: &Arc<Telemetry>,
        limiter: &Arc<MemoryLimiter>,
        resources: &ProcessResources,
    ) -> Result<(Topology, Option<StartError>), StartError> {
        let old = self.config.clone();
        for receiver in &self.receivers {
            receiver.before_reload(next.receivers.get(&receiver.id));
        }
        let kept = self.stop_keeping_exporters(&next).await;
        match Topology::start(next, telemetry, limiter, resources, kept).await {
            Ok(topology) => Ok((topology, None)),
            Err((error, kept)) => {
                tracing::error!(%error, "the new config could not start; restoring the previous one");
                match Topology::start(old, telemetry, limiter, resources, kept).await {
                    Ok(topology) => Ok((topology, Some(error))),
                    Err((again, _)) => Err(again),
                }
            }
        }
    }
}
