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
use crate::delivery::{Admitter, Batch, MemoryLimiter, PipelineInputs};
use crate::exporters::RunningExporter;
use crate::exporters::runner::Lane;
use crate::k8s::PodCaches;
use crate::net::server::Servers;
use crate::plan::{Config, PipelineConfig};
use crate::processors::Built;
use crate::processors::tenant::TenantLimiter;
use crate::receivers::{self, Outputs, ReceiverConfig, RunningReceiver};
use crate::signal::{Fields, Logs, Metrics, Profiles, Signal, Traces};
use crate::telemetry::Telemetry;
use pipeline::Pipeline;

/// Batches a pipeline's input channel holds before receivers wait.
const PIPELINE_CHANNEL: usize = 16;

/// How long a start waits for the pod cache's first list, so that the first
/// records are enriched; past it, ferro starts anyway.
const INITIAL_POD_SYNC: Duration = Duration::from_secs(5);

/// How long receivers get to finish in-flight requests when stopping.
const RECEIVER_GRACE: Duration = Duration::from_secs(5);

/// Pipeline inputs per receiver, per signal, while a topology is wired.
#[derive(Default)]
struct Wiring {
    traces: BTreeMap<ComponentId, Inputs<Traces>>,
    metrics: BTreeMap<ComponentId, Inputs<Metrics>>,
    logs: BTreeMap<ComponentId, Inputs<Logs>>,
    profiles: BTreeMap<ComponentId, Inputs<Profiles>>,
}

/// One receiver's pipelines of one signal: their channels, and the tenant
/// limiters it must ask before accepting a push.
struct Inputs<T> {
    senders: Vec<mpsc::Sender<Batch<T>>>,
    admission: Vec<Arc<TenantLimiter>>,
    /// Whether a processor of these pipelines reads `X-Scope-OrgID`.
    reads_org_id: bool,
}

impl<T> Default for Inputs<T> {
    fn default() -> Self {
        Self {
            senders: Vec::new(),
            admission: Vec::new(),
            reads_org_id: false,
        }
    }
}

impl<T: Fields> Inputs<T> {
    fn into_pipeline_inputs(self, wait: Duration) -> PipelineInputs<T> {
        let admission = self
            .admission
            .into_iter()
            .map(|limiter| limiter as Arc<dyn Admitter<T>>)
            .collect();
        PipelineInputs::new(self.senders, wait)
            .with_admission(admission)
            .reading_org_id(self.reads_org_id)
    }
}

impl Wiring {
    /// What receiver `id` feeds, taking its senders out of the wiring.
    fn outputs(&mut self, id: &ComponentId, wait: Duration) -> Outputs {
        Outputs {
            traces: self
                .traces
                .remove(id)
                .map(|inputs| inputs.into_pipeline_inputs(wait)),
            metrics: self
                .metrics
                .remove(id)
                .map(|inputs| inputs.into_pipeline_inputs(wait)),
            logs: self
                .logs
                .remove(id)
                .map(|inputs| inputs.into_pipeline_inputs(wait)),
            profiles: self
                .profiles
                .remove(id)
                .map(|inputs| inputs.into_pipeline_inputs(wait)),
        }
    }
}

/// Starts one pipeline of signal `T`: its channel, its task, and its place in
/// the wiring of each of its receivers.
fn wire<T: Fields>(
    pipeline: &PipelineConfig,
    built: &mut Built,
    telemetry: &Telemetry,
    exporters: &BTreeMap<ComponentId, RunningExporter>,
    lane: impl Fn(&RunningExporter) -> Option<&Lane<T>>,
    inputs: &mut BTreeMap<ComponentId, Inputs<T>>,
    close: CancellationToken,
) -> JoinHandle<()> {
    let (tx, rx) = mpsc::channel(PIPELINE_CHANNEL);
    let exporter_inputs = pipeline
        .exporters
        .iter()
        .filter_map(|id| {
            exporters
                .get(id)
                .and_then(|e| lane(e).map(|lane| lane.input(id)))
        })
        .collect();
    let task = Pipeline::new(
        pipeline.name.clone(),
        rx,
        &pipeline.stages,
        built,
        telemetry,
        exporter_inputs,
        close,
    );
    let admission: Vec<Arc<TenantLimiter>> = task
        .before
        .iter()
        .chain(&task.after)
        .filter_map(|p| p.admission().cloned())
        .collect();
    let reads_org_id = task
        .before
        .iter()
        .chain(&task.after)
        .any(|p| p.reads_org_id());
    for receiver in &pipeline.receivers {
        let inputs = inputs.entry(receiver.clone()).or_default();
        inputs.senders.push(tx.clone());
        inputs.reads_org_id |= reads_org_id;
        // A limiter shared by two pipelines of one receiver is asked once:
        // asked twice, it would refuse its own first charge.
        for limiter in &admission {
            if !inputs.admission.iter().any(|l| Arc::ptr_eq(l, limiter)) {
                inputs.admission.push(limiter.clone());
            }
        }
    }
    tokio::spawn(task.run())
}

/// What outlives a topology, so that a reload keeps it: the pod cache (warm,
/// no new list against the API server) and the receivers' servers (no
/// connection refused or closed while the topology is replaced).
pub struct Lasting {
    pub pods: PodCaches,
    pub servers: Servers,
}

impl Lasting {
    pub fn new(servers: Servers) -> Self {
        Self {
            pods: PodCaches::default(),
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
    Exporter(ComponentId, String),
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
        lasting: &Lasting,
        mut keep: BTreeMap<ComponentId, RunningExporter>,
    ) -> Result<Topology, (StartError, BTreeMap<ComponentId, RunningExporter>)> {
        let Lasting {
            pods: caches,
            servers,
        } = lasting;
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

        // 1. Exporters.
        let mut exporters = BTreeMap::new();
        for (id, exporter_config) in &config.exporters {
            if let Some(running) = keep.remove(id) {
                exporters.insert(id.clone(), running);
                continue;
            }
            match RunningExporter::start(id, exporter_config, telemetry) {
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
        let mut wiring = Wiring::default();
        let mut built = Built::new(pods.clone());
        for pipeline in &config.pipelines {
            let close = close_pipelines.clone();
            match pipeline.signal {
                Signal::Traces => {
                    let task = wire(
                        pipeline,
                        &mut built,
                        telemetry,
                        &exporters,
                        |e| e.traces.as_ref(),
                        &mut wiring.traces,
                        close,
                    );
                    pipelines.push(task);
                }
                Signal::Metrics => {
                    let task = wire(
                        pipeline,
                        &mut built,
                        telemetry,
                        &exporters,
                        |e| e.metrics.as_ref(),
                        &mut wiring.metrics,
                        close,
                    );
                    pipelines.push(task);
                }
                Signal::Logs => {
                    let task = wire(
                        pipeline,
                        &mut built,
                        telemetry,
                        &exporters,
                        |e| e.logs.as_ref(),
                        &mut wiring.logs,
                        close,
                    );
                    pipelines.push(task);
                }
                Signal::Profiles => {
                    let task = wire(
                        pipeline,
                        &mut built,
                        telemetry,
                        &exporters,
                        |e| e.profiles.as_ref(),
                        &mut wiring.profiles,
                        close,
                    );
                    pipelines.push(task);
                }
            }
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
        for (id, receiver_config) in &config.receivers {
            let started = match receiver_config {
                ReceiverConfig::Otlp(c) => {
                    let outputs = wiring.outputs(id, c.pipeline_wait);
                    receivers::otlp::start(id, c, outputs, limiter.clone(), telemetry, servers)
                        .await
                }
                ReceiverConfig::Prometheus(c) => {
                    // A scrape that finds the pipeline full waits, then skips
                    // the rest of its data and counts it: the next interval
                    // scrapes afresh.
                    let outputs = wiring.outputs(id, Duration::from_secs(5));
                    receivers::prometheus::start(
                        id,
                        c,
                        outputs,
                        limiter.clone(),
                        telemetry,
                        pods.clone(),
                    )
                    .await
                }
                ReceiverConfig::Pprof(c) => {
                    let outputs = wiring.outputs(id, c.pipeline_wait);
                    receivers::pprof::start(
                        id,
                        c,
                        outputs,
                        limiter.clone(),
                        telemetry,
                        pods.clone(),
                        servers,
                    )
                    .await
                }
                ReceiverConfig::PodLogs(c) => {
                    // A tailer offered no room waits and offers the same
                    // batch again: the file is its buffer.
                    let outputs = wiring.outputs(id, Duration::from_secs(1));
                    receivers::pod_logs::start(
                        id,
                        c,
                        outputs,
                        limiter.clone(),
                        telemetry,
                        &config.data_dir,
                    )
                    .await
                }
            };
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
        lasting: &Lasting,
    ) -> Result<(Topology, Option<StartError>), StartError> {
        let old = self.config.clone();
        for receiver in &self.receivers {
            receiver.before_reload(next.receivers.get(&receiver.id));
        }
        let kept = self.stop_keeping_exporters(&next).await;
        match Topology::start(next, telemetry, limiter, lasting, kept).await {
            Ok(topology) => Ok((topology, None)),
            Err((error, kept)) => {
                tracing::error!(%error, "the new config could not start; restoring the previous one");
                match Topology::start(old, telemetry, limiter, lasting, kept).await {
                    Ok(topology) => Ok((topology, Some(error))),
                    Err((again, _)) => Err(again),
                }
            }
        }
    }
}
