//! The pprof receiver at work: its scrape loops and its push listener, and
//! what they share on the way to the pipelines.

use super::config::PprofConfig;
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use super::push::Rejection;
use super::scrape::Job;
use crate::config::ComponentId;
use crate::delivery::{Batch, MemoryLimiter, Ticket};
use crate::delivery::{PipelineInputs, Refusal};
use crate::k8s::{PodCache, PodInfo};
use crate::net::body::BodyRules;
use crate::net::server::{Protocol, Servers};
use crate::receivers::{Inputs, RunningReceiver};
use crate::scrape::StaticConfig;
use crate::scrape::{PodGroups, Sources, reconcile};
use crate::signal::{Profiles, Signal, SignalData};
use crate::telemetry::{ComponentLabels, Telemetry};
use http::HeaderValue;

/// What the scrape loops and the push server of one receiver share.
pub struct Shared {
    pub id: ComponentId,
    pub(super) inputs: PipelineInputs<Profiles>,
    pub(super) limiter: Arc<MemoryLimiter>,
    pub(super) telemetry: Arc<Telemetry>,
    pub(super) labels: ComponentLabels,
    pub(super) accepted: Counter,
    /// Largest profile (and push request), decompressed.
    pub max_profile_size: usize,
    /// How push request bodies must arrive.
    pub(super) body: BodyRules,
}

impl Shared {
    /// Counts profiles dropped for `reason`.
    pub(super) fn drop_profiles(&self, reason: &'static str, n: u64) {
        Telemetry::reason_counter(&self.telemetry.dropped, &self.labels, reason).inc_by(n);
    }

    /// Counts a push request that produced no profile.
    fn reject_request(&self, reason: &'static str) {
        Telemetry::reason_counter(&self.telemetry.rejected_requests, &self.labels, reason).inc();
    }

    /// Counts a refused push and passes the rejection on.
    pub(super) fn rejected(&self, rejection: Rejection) -> Rejection {
        let reason = match &rejection {
            Rejection::Invalid { reason, .. } => reason,
            Rejection::Refused(r) => r.reason(),
        };
        self.reject_request(reason);
        rejection
    }

    /// The tenant a push names in `X-Scope-OrgID`, where a tenant
    /// processor of its pipelines reads it; ignored otherwise.
    pub(super) fn org_id(
        &self,
        header: Option<&HeaderValue>,
    ) -> Result<Option<HeaderValue>, Rejection> {
        if !self.inputs.reads_org_id() {
            return Ok(None);
        }
        Ok(crate::receivers::tenancy::org_id(
            header.map(|v| v.as_bytes()),
        )?)
    }

    /// Hands scraped profiles to the pipelines, counting a refusal. A
    /// scrape names no tenant and is not put to the tenant limiters that
    /// refuse: there is no sender to retry.
    pub(super) async fn hand_on(
        &self,
        profiles: Profiles,
        mut ticket: Ticket,
    ) -> Result<(), Refusal> {
        let bytes = profiles.encoded_len();
        // The ticket that held the body now holds the profiles.
        if !ticket.try_resize(bytes) {
            self.count_refused(Refusal::MemoryLimit, profiles.item_count() as u64);
            return Err(Refusal::MemoryLimit);
        }
        if profiles.item_count() == 0 {
            return Ok(());
        }
        self.send(Batch::with_size(profiles, bytes, ticket), false)
            .await
    }

    /// Hands pushed profiles to the pipelines under a reservation already
    /// made, with the tenant the request named (`X-Scope-OrgID`), for
    /// `[processors.tenant] source = "header"`. As for OTLP pushes, the
    /// tenant limiters that refuse are asked first.
    pub(super) async fn hand_on_pushed(
        &self,
        profiles: Profiles,
        ticket: Ticket,
        org_id: Option<HeaderValue>,
    ) -> Result<(), Refusal> {
        if profiles.item_count() == 0 {
            return Ok(());
        }
        let bytes = profiles.encoded_len();
        let mut batch = Batch::with_size(profiles, bytes, ticket);
        batch.tenancy.org_id = org_id;
        self.send(batch, true).await
    }

    /// Hands a batch on, a push (`pushed`) through the tenant admission.
    async fn send(&self, batch: Batch<Profiles>, pushed: bool) -> Result<(), Refusal> {
        let items = batch.items() as u64;
        let sent = if pushed {
            self.inputs.admit_and_send(batch).await
        } else {
            self.inputs.send(batch).await
        };
        match sent {
            Ok(()) => {
                self.accepted.inc_by(items);
                Ok(())
            }
            Err(refusal) => {
                self.count_refused(refusal, items);
                Err(refusal)
            }
        }
    }

    fn count_refused(&self, refusal: Refusal, items: u64) {
        Telemetry::reason_counter(&self.telemetry.refused, &self.labels, refusal.reason())
            .inc_by(items);
    }
}

/// Starts the scrape jobs and, with `listen`, the push server; `pods` is
/// the process's pod cache, for jobs with `kubernetes_sd_configs`.
pub async fn start(
    id: &ComponentId,
    config: &PprofConfig,
    inputs: Inputs,
    limiter: Arc<MemoryLimiter>,
    telemetry: &Arc<Telemetry>,
    pods: Option<PodCache>,
    servers: &Servers,
) -> std::io::Result<RunningReceiver> {
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut listening = Vec::new();
    let Some(inputs) = inputs.profiles else {
        return Ok(RunningReceiver::new(id.clone(), stop, tasks));
    };
    let labels = Telemetry::labels("receiver", id, Signal::Profiles);
    let shared = Arc::new(Shared {
        id: id.clone(),
        inputs,
        limiter,
        telemetry: telemetry.clone(),
        accepted: Telemetry::counter(&telemetry.accepted, &labels),
        labels,
        max_profile_size: config.max_profile_size,
        body: config.server.body,
    });
    // Everything that can fail comes before anything is started: a
    // receiver that fails to start leaves nothing running.
    let jobs = config
        .scrape_configs
        .iter()
        .map(|c| Job::new(c.clone(), &c.job.tls, &c.job.credentials).map(Arc::new))
        .collect::<std::io::Result<Vec<_>>>()?;
    if let Some(addr) = config.listen {
        let routes = super::push::routes(shared.clone());
        let attached = servers
            .attach(
                addr,
                Protocol::Http,
                config.server.limits,
                &id.to_string(),
                routes,
            )
            .await?;
        tracing::info!(receiver = %id, protocol = "http", addr = %attached.local_addr(), "pprof receiver listening");
        listening.push(("http", attached));
    }
    for job in jobs {
        tasks.push(tokio::spawn(manage(
            job,
            shared.clone(),
            pods.clone(),
            stop.clone(),
        )));
    }
    tracing::info!(receiver = %id, jobs = config.scrape_configs.len(), "pprof receiver started");
    Ok(RunningReceiver::new(id.clone(), stop, tasks).listening(listening))
}

/// Keeps one scrape loop running per target and profile type of `job`:
/// static groups, `file_sd` files and, with `kubernetes_sd_configs`, the
/// pods of this node (on every change of the pod cache).
pub(super) async fn manage(
    job: Arc<Job>,
    shared: Arc<Shared>,
    pods: Option<PodCache>,
    stop: CancellationToken,
) {
    let sd_configs = job.config.kubernetes_sd_configs.clone();
    let pods = pods
        .filter(|_| !sd_configs.is_empty())
        .map(|cache| -> (PodCache, PodGroups) {
            let groups =
                move |cached: &[Arc<PodInfo>]| super::kubernetes::pod_groups(&sd_configs, cached);
            (cache, Arc::new(groups))
        });
    let sources = Sources {
        static_groups: job.config.job.static_configs.clone(),
        file_sd: job.config.job.file_sd_configs.clone(),
        pods,
        also_changes: Vec::new(),
    };
    let spawn = |target, token| {
        tokio::spawn(super::scrape::run(
            job.clone(),
            target,
            shared.clone(),
            token,
        ))
    };
    let resolve = |groups: &[StaticConfig]| super::scrape::targets(&job.config, groups);
    reconcile(&job.config.job.job_name, sources, resolve, spawn, stop).await;
}
