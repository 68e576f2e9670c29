//! One leader per cluster, on a `coordination.k8s.io/v1` Lease, with
//! client-go's leader election semantics
//! (<https://pkg.go.dev/k8s.io/client-go/tools/leaderelection>): the work
//! that belongs to no node (Kubernetes events, targets that are not pods)
//! is done by whichever agent holds the Lease.
//!
//! - A candidate reads the Lease every `retry_period` (with up to 20 %
//!   jitter). It takes the Lease when there is none, when its holder is
//!   empty (released), or when the record has not changed for the
//!   record's `leaseDurationSeconds` **as measured on this agent's clock
//!   since it last saw the record change** (client-go's `observedTime`: no
//!   two clocks are compared). Taking it writes the holder, the acquire
//!   and renew times and one more transition, conditional on the
//!   resourceVersion read: of two candidates, one update wins and the
//!   other gets `409 Conflict` and tries again later.
//! - The holder renews every `retry_period`. If no renewal has succeeded
//!   for `renew_deadline` (shorter than `lease_duration`), it stops leading
//!   before any other agent can consider the Lease expired: two agents
//!   never lead at once, even while the API server is unreachable. (This
//!   is measured from the start of the last successful renewal, a little
//!   stricter than client-go.)
//! - A graceful stop releases the Lease (empty holder, a 1 s duration, as
//!   client-go's `ReleaseOnCancel`), so another agent takes over at its
//!   next try instead of after a lease duration.
//!
//! Whether this agent leads is a [`watch`] channel; leader-only work
//! starts when it turns true and stops when it turns false.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;

use crate::telemetry::{LeaseLabels, LeaseReasonLabels, Telemetry};

/// A checked `[kubernetes.leader]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderConfig {
    pub lease_name: String,
    /// `None`: the namespace ferro's service account is in.
    pub lease_namespace: Option<String>,
    /// Who holds the Lease: the pod's name, else the node's.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// The Lease's holder record, as the elector reads and writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub holder: String,
    pub lease_duration_seconds: i32,
    pub acquire_time: Option<Timestamp>,
    pub renew_time: Option<Timestamp>,
    pub transitions: i32,
}

/// Why a read or write of the Lease failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// 409: someone else wrote first (or created it first).
    #[error("conflict: the lease was written by another agent first")]
    Conflict,
    #[error("{0}")]
    Api(String),
}

/// Where the Lease lives: the API server, or a fake in tests.
pub trait LeaseStore: Send + Sync + 'static {
    /// The record and its resourceVersion; `None` if there is no Lease.
    fn get(&self) -> impl Future<Output = Result<Option<(Record, String)>, StoreError>> + Send;
    /// Creates the Lease; its resourceVersion.
    fn create(&self, record: &Record) -> impl Future<Output = Result<String, StoreError>> + Send;
    /// Replaces the record if the Lease is still at `version`; the new one.
    fn update(
        &self,
        record: &Record,
        version: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// The Lease on the API server.
pub struct KubeLeases {
    api: kube::Api<Lease>,
    name: String,
}

impl KubeLeases {
    pub fn new(client: kube::Client, config: &LeaderConfig) -> Self {
        let api = match &config.lease_namespace {
            Some(namespace) => kube::Api::namespaced(client, namespace),
            None => kube::Api::default_namespaced(client),
        };
        Self {
            api,
            name: config.lease_name.clone(),
        }
    }

    fn lease(&self, record: &Record, version: Option<&str>) -> Lease {
        let micro = |t: Option<Timestamp>| t.map(MicroTime);
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version: version.map(str::to_string),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(record.holder.clone()),
                lease_duration_seconds: Some(record.lease_duration_seconds),
                acquire_time: micro(record.acquire_time),
                renew_time: micro(record.renew_time),
                lease_transitions: Some(record.transitions),
                ..Default::default()
            }),
        }
    }
}

fn store_error(e: kube::Error) -> StoreError {
    match e {
        kube::Error::Api(status) if status.code == 409 => StoreError::Conflict,
        e => StoreError::Api(e.to_string()),
    }
}

fn version_of(lease: &Lease) -> String {
    lease.metadata.resource_version.clone().unwrap_or_default()
}

impl LeaseStore for KubeLeases {
    async fn get(&self) -> Result<Option<(Record, String)>, StoreError> {
        let Some(lease) = self.api.get_opt(&self.name).await.map_err(store_error)? else {
            return Ok(None);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = Record {
            holder: spec.holder_identity.unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
            acquire_time: spec.acquire_time.map(|t| t.0),
            renew_time: spec.renew_time.map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
        };
        Ok(Some((record, version_of(&lease))))
    }

    async fn create(&self, record: &Record) -> Result<String, StoreError> {
        let lease = self.lease(record, None);
        let created = self
            .api
            .create(&kube::api::PostParams::default(), &lease)
            .await
            .map_err(store_error)?;
        Ok(version_of(&created))
    }

    async fn update(&self, record: &Record, version: &str) -> Result<String, StoreError> {
        let lease = self.lease(record, Some(version));
        let replaced = self
            .api
            .replace(&self.name, &kube::api::PostParams::default(), &lease)
            .await
            .map_err(store_error)?;
        Ok(version_of(&replaced))
    }
}

/// The running election: whether this agent leads, and how to stop.
pub struct Leader {
    leading: watch::Receiver<bool>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    config: LeaderConfig,
}

impl Leader {
    /// Starts campaigning for the Lease in `store`.
    pub fn start<S: LeaseStore>(
        store: S,
        config: LeaderConfig,
        telemetry: &Arc<Telemetry>,
    ) -> Self {
        let (tx, leading) = watch::channel(false);
        let stop = CancellationToken::new();
        let elector = Elector::new(store, config.clone(), tx, telemetry);
        tracing::info!(lease = %elector.lease, identity = %config.identity, "leader election started");
        let task = tokio::spawn(elector.run(stop.clone()));
        Self {
            leading,
            stop,
            task,
            config,
        }
    }

    pub fn config(&self) -> &LeaderConfig {
        &self.config
    }

    /// Whether this agent leads, now and as it changes.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Stops campaigning; a leader stops leading, then releases the Lease
    /// (waiting at most `renew_deadline` for the API server).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// What one try at the Lease found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// This agent holds it.
    Held,
    /// Another agent's hold has not expired.
    Taken,
    /// The API server could not be asked, or another write came first.
    Failed,
}

struct Elector<S> {
    store: S,
    config: LeaderConfig,
    /// `namespace/name`, for logs and metrics.
    lease: String,
    /// The record last read or written, and when it was first seen as it
    /// is (this agent's clock).
    observed: Option<Record>,
    observed_at: Instant,
    version: Option<String>,
    leading: watch::Sender<bool>,
    metrics: Metrics,
}

struct Metrics {
    leader: prometheus_client::metrics::gauge::Gauge,
    acquired: prometheus_client::metrics::counter::Counter,
    lost: prometheus_client::metrics::counter::Counter,
    released: prometheus_client::metrics::counter::Counter,
    conflicts: prometheus_client::metrics::counter::Counter,
    api_errors: prometheus_client::metrics::counter::Counter,
    timeouts: prometheus_client::metrics::counter::Counter,
}

impl Metrics {
    fn new(telemetry: &Telemetry, lease: &str) -> Self {
        let k = &telemetry.k8s;
        // One statement each: a family's lookup guard lives to the end of
        // its statement, and a second lookup in the same family would wait
        // for it.
        let of = |family: &prometheus_client::metrics::family::Family<
            LeaseReasonLabels,
            prometheus_client::metrics::counter::Counter,
        >,
                  reason: &'static str| {
            family
                .get_or_create(&LeaseReasonLabels {
                    lease: lease.to_string(),
                    reason,
                })
                .clone()
        };
        let leader = k
            .leader
            .get_or_create(&LeaseLabels {
                lease: lease.to_string(),
            })
            .clone();
        let acquired = of(&k.leader_transitions, "acquired");
        let lost = of(&k.leader_transitions, "lost");
        let released = of(&k.leader_transitions, "released");
        let conflicts = of(&k.lease_errors, "conflict");
        let api_errors = of(&k.lease_errors, "api_error");
        let timeouts = of(&k.lease_errors, "timeout");
        Self {
            leader,
            acquired,
            lost,
            released,
            conflicts,
            api_errors,
            timeouts,
        }
    }
}

impl<S: LeaseStore> Elector<S> {
    fn new(
        store: S,
        config: LeaderConfig,
        leading: watch::Sender<bool>,
        telemetry: &Telemetry,
    ) -> Self {
        let lease = format!(
            "{}/{}",
            config.lease_namespace.as_deref().unwrap_or("(own)"),
            config.lease_name
        );
        Self {
            metrics: Metrics::new(telemetry, &lease),
            store,
            config,
            lease,
            observed: None,
            observed_at: Instant::now(),
            version: None,
            leading,
        }
    }

    async fn run(mut self, stop: CancellationToken) {
        let mut first = true;
        let mut won_at;
        loop {
            // A candidate: tries now, then every retry_period.
            loop {
                if !first {
                    let wait = jittered(self.config.retry_period);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                first = false;
                // The renewal deadline counts from before the winning
                // write: others count the lease from when they see it.
                won_at = Instant::now();
                let attempt = self.attempt(self.config.renew_deadline);
                let outcome = tokio::select! {
                    _ = stop.cancelled() => return,
                    outcome = attempt => outcome,
                };
                if outcome == Attempt::Held {
                    break;
                }
            }
            self.set_leading(true);
            self.metrics.acquired.inc();
            tracing::info!(lease = %self.lease, identity = %self.config.identity, "leading");
            // The leader: renews every retry_period, until it cannot for
            // renew_deadline, or it stops.
            let mut renewed = won_at;
            loop {
                let deadline = renewed + self.config.renew_deadline;
                let wake = (Instant::now() + self.config.retry_period).min(deadline);
                tokio::select! {
                    _ = stop.cancelled() => {
                        self.set_leading(false);
                        self.release().await;
                        return;
                    }
                    _ = tokio::time::sleep_until(wake) => {}
                }
                let started = Instant::now();
                if started >= deadline {
                    break;
                }
                match self.attempt(deadline - started).await {
                    Attempt::Held => renewed = started,
                    // Someone else holds it (the Lease was deleted and
                    // taken, or written by hand): stop now, not at the deadline.
                    Attempt::Taken => break,
                    Attempt::Failed => {}
                }
            }
            self.set_leading(false);
            self.metrics.lost.inc();
            tracing::warn!(lease = %self.lease, renew_deadline = ?self.config.renew_deadline, "could not renew the lease in time; leader-only work stopped");
        }
    }

    fn set_leading(&self, leading: bool) {
        self.metrics.leader.set(i64::from(leading));
        self.leading.send_replace(leading);
    }

    /// One try to take or renew the Lease, within `limit`.
    async fn attempt(&mut self, limit: Duration) -> Attempt {
        match tokio::time::timeout(limit, self.try_acquire_or_renew()).await {
            Ok(Ok(true)) => Attempt::Held,
            Ok(Ok(false)) => Attempt::Taken,
            Ok(Err(StoreError::Conflict)) => {
                self.metrics.conflicts.inc();
                tracing::debug!(lease = %self.lease, "lease conflict; trying again");
                Attempt::Failed
            }
            Ok(Err(StoreError::Api(e))) => {
                self.metrics.api_errors.inc();
                tracing::warn!(lease = %self.lease, error = %e, "cannot read or write the lease");
                Attempt::Failed
            }
            Err(_) => {
                self.metrics.timeouts.inc();
                tracing::warn!(lease = %self.lease, waited = ?limit, "the API server did not answer about the lease in time");
                Attempt::Failed
            }
        }
    }

    /// client-go's `tryAcquireOrRenew`: true if this agent holds the Lease
    /// afterwards, false if another agent's unexpired hold stands.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, StoreError> {
        let now = Timestamp::now();
        let duration_s =
            i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some((old, version)) = self.store.get().await? else {
            let record = Record {
                holder: self.config.identity.clone(),
                lease_duration_seconds: duration_s,
                acquire_time: Some(now),
                renew_time: Some(now),
                transitions: 0,
            };
            let version = self.store.create(&record).await?;
            self.observe(record, version);
            return Ok(true);
        };
        if self.observed.as_ref() != Some(&old) {
            self.observed = Some(old.clone());
            self.observed_at = Instant::now();
        }
        self.version = Some(version.clone());
        let mine = old.holder == self.config.identity;
        let expires = self.observed_at
            + Duration::from_secs(u64::try_from(old.lease_duration_seconds).unwrap_or(0));
        if !old.holder.is_empty() && !mine && Instant::now() < expires {
            return Ok(false);
        }
        let record = Record {
            holder: self.config.identity.clone(),
            lease_duration_seconds: duration_s,
            acquire_time: if mine { old.acquire_time } else { Some(now) },
            renew_time: Some(now),
            transitions: if mine {
                old.transitions
            } else {
                old.transitions.saturating_add(1)
            },
        };
        let version = self.store.update(&record, &version).await?;
        self.observe(record, version);
        Ok(true)
    }

    fn observe(&mut self, record: Record, version: String) {
        self.observed = Some(record);
        self.observed_at = Instant::now();
        self.version = Some(version);
    }

    /// Gives the Lease up: an empty holder for one second, so that the
    /// next candidate takes it at its next try.
    async fn release(&mut self) {
        let (Some(observed), Some(version)) = (self.observed.clone(), self.version.clone()) else {
            return;
        };
        if observed.holder != self.config.identity {
            return;
        }
        let now = Timestamp::now();
        let record = Record {
            holder: String::new(),
            lease_duration_seconds: 1,
            acquire_time: Some(now),
            renew_time: Some(now),
            transitions: observed.transitions,
        };
        let released = tokio::time::timeout(
            self.config.renew_deadline,
            self.store.update(&record, &version),
        )
        .await;
        match released {
            Ok(Ok(_)) => {
                self.metrics.released.inc();
                tracing::info!(lease = %self.lease, "lease released");
            }
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.lease, error = %e, "could not release the lease; another agent takes it once it expires")
            }
            Err(_) => {
                tracing::warn!(lease = %self.lease, "could not release the lease in time; another agent takes it once it expires")
            }
        }
    }
}

/// The process's leader election, kept across config reloads (restarted
/// only when `[kubernetes.leader]` changes).
#[derive(Default)]
pub struct LeaderSlot(tokio::sync::Mutex<Option<Leader>>);

impl LeaderSlot {
    /// The election `config` asks for, started on first use or when it
    /// changed; stopped (and the Lease released) when no longer asked for.
    /// Whether this agent leads, as it changes.
    pub async fn get(
        &self,
        config: Option<&super::KubernetesConfig>,
        telemetry: &Arc<Telemetry>,
    ) -> Result<Option<watch::Receiver<bool>>, super::K8sError> {
        let mut slot = self.0.lock().await;
        let wanted = config.and_then(|c| c.leader.as_ref());
        if let Some(leader) = slot.as_ref()
            && Some(leader.config()) == wanted
        {
            return Ok(Some(leader.subscribe()));
        }
        if let Some(old) = slot.take() {
            old.stop().await;
        }
        let (Some(config), Some(leader_config)) = (config, wanted) else {
            return Ok(None);
        };
        let client = super::cache::client(config).await?;
        let leader = Leader::start(
            KubeLeases::new(client, leader_config),
            leader_config.clone(),
            telemetry,
        );
        let leading = leader.subscribe();
        *slot = Some(leader);
        Ok(Some(leading))
    }

    /// Stops the election; a leader releases the Lease.
    pub async fn stop(&self) {
        if let Some(leader) = self.0.lock().await.take() {
            leader.stop().await;
        }
    }
}

/// `period` plus up to 20 % (client-go's jitter factor 1.2), so that
/// candidates started together do not ask together.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 + 0.2 * fastrand::f64())
}

#[cfg(test)]
mod tests;
