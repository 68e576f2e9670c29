//! The kubernetes_events receiver at work.
//!
//! While it ships (this agent leads, or the receiver is not
//! `leader_only`), one task per watch (all namespaces, or each namespace
//! configured) lists the events and then watches them from the list's
//! resourceVersion, resuming a broken watch from the last one seen and
//! listing afresh after `410 Gone`. A resourceVersion saved by an earlier
//! run resumes the watch without a list.
//!
//! Every new or changed event is checked against what was shipped
//! ([`Shipped`]: its uid with its count) and, if it is new, becomes a line
//! in the batch being filled. A batch's acknowledgement records its events
//! and the watches' resourceVersions as shipped; that state is written
//! each second to a file under `data_dir` and to a ConfigMap, and read
//! back from both when shipping starts, so a restart or another leader
//! goes on where this one stopped.
//!
//! A leader that stops leading stops reading and sends nothing more: what
//! it had not sent is the next leader's (not in the state), and what it
//! had sent is recorded if acknowledged within [`ACK_DRAIN`].

use futures_util::StreamExt;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ApiResource, DynamicObject, ListParams, WatchEvent, WatchParams};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::config::{Format, KubernetesEventsConfig};
use super::line::{EventFields, event_time_us};
use super::state::{Shipped, Skip};
use super::store::{StateStore, StoreError, write_state};
use crate::config::ComponentId;
use crate::delivery::{Acked, InFlight, MemoryLimiter, PipelineInputs};
use crate::receivers::acks::AckCounters;
use crate::receivers::log_batch::LogBatch;
use crate::signal::logs::Entry;
use crate::signal::{Labels, LabelsBuilder, Logs, Signal};
use crate::telemetry::Telemetry;

/// Batches sent and not yet acknowledged.
const MAX_IN_FLIGHT: usize = 16;
/// Events in one batch at most.
const MAX_BATCH: usize = 500;
/// How long a batch that is not full waits for more events.
const LINGER: Duration = Duration::from_millis(200);
/// How often the acknowledged state is written to the file.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often at most it is written to the ConfigMap (and when shipping
/// stops): each write is a new object version in etcd, watched by every
/// ConfigMap watcher of the cluster.
const STORE_EVERY: Duration = Duration::from_secs(10);
/// How long a receiver that stops shipping waits for what it is owed.
pub const ACK_DRAIN: Duration = Duration::from_secs(3);
/// Events read from a list per request.
const PAGE: u32 = 500;
/// Retries of a failing request: the first wait, and the longest.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often a failing state write is warned about.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The receiver's counters, resolved once.
#[derive(Clone)]
pub struct Counters {
    received: Counter,
    skipped_shipped: Counter,
    skipped_horizon: Counter,
    malformed: Counter,
    no_object: Counter,
    relist_start: Counter,
    relist_expired: Counter,
    list_errors: Counter,
    watch_errors: Counter,
    state_read_errors: Counter,
    state_write_errors: Counter,
    state_conflicts: Counter,
    acks: Arc<AckCounters>,
    acknowledged_timestamp: Gauge<f64, AtomicU64>,
    shipping: Gauge,
    remembered: Gauge,
}

impl Counters {
    pub fn new(telemetry: &Telemetry, id: &ComponentId) -> Self {
        let labels = Telemetry::labels("receiver", id, Signal::Logs);
        let k = &telemetry.kubernetes_events;
        let skipped = |reason| Telemetry::reason_counter(&k.skipped, &labels, reason);
        let relist = |reason| Telemetry::reason_counter(&k.relists, &labels, reason);
        let api = |reason| Telemetry::reason_counter(&k.api_errors, &labels, reason);
        Self {
            received: Telemetry::counter(&k.received, &labels),
            skipped_shipped: skipped("shipped"),
            skipped_horizon: skipped("before_horizon"),
            malformed: skipped("malformed"),
            no_object: skipped("no_object"),
            relist_start: relist("start"),
            relist_expired: relist("expired"),
            list_errors: api("list"),
            watch_errors: api("watch"),
            state_read_errors: api("state_read"),
            state_write_errors: api("state_write"),
            state_conflicts: api("state_conflict"),
            acks: Arc::new(AckCounters::new(telemetry, &labels, &k.acknowledged)),
            acknowledged_timestamp: k.acknowledged_timestamp.get_or_create(&labels).clone(),
            shipping: k.shipping.get_or_create(&labels).clone(),
            remembered: k.remembered.get_or_create(&labels).clone(),
        }
    }
}

/// What a watch task tells the shipper.
#[derive(Debug)]
enum Update {
    /// A new or changed event; `version` is its resourceVersion when it
    /// came from a watch (a list's items move nothing until its end).
    Event {
        key: usize,
        version: Option<String>,
        event: Box<Event>,
    },
    Deleted {
        key: usize,
        version: String,
        uid: String,
    },
    /// Everything up to `version` was told (a list's end, a bookmark, an
    /// object that could not be read).
    Progress { key: usize, version: String },
}

/// What a batch's acknowledgement makes safe to record.
#[derive(Debug, Default)]
struct Progress {
    versions: Vec<(usize, String)>,
    shipped: Vec<(String, i32, i64)>,
    newest_us: i64,
}

/// The batch being filled, and what its acknowledgement will record.
#[derive(Default)]
struct Pending {
    batch: LogBatch,
    progress: Progress,
}

/// How a time of shipping ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The receiver is stopping.
    Stopped,
    /// This agent no longer leads.
    Lost,
}

pub struct Shipper<S> {
    pub id: ComponentId,
    pub config: KubernetesEventsConfig,
    pub inputs: PipelineInputs<Logs>,
    pub limiter: Arc<MemoryLimiter>,
    pub counters: Counters,
    pub client: kube::Client,
    /// The ConfigMap, if the state is kept in the cluster too.
    pub store: Option<S>,
    pub file: PathBuf,
    /// What was acknowledged: what the file and the ConfigMap get.
    pub acked: Shipped,
    pub leading: Option<watch::Receiver<bool>>,
    pub stop: CancellationToken,
}

/// The shipper's working state during one time of shipping.
struct Session {
    keys: Vec<String>,
    /// What was shipped or is on its way: what is checked.
    working: Shipped,
    pending: Pending,
    in_flight: InFlight<Progress>,
    /// The ConfigMap's resourceVersion as last read or written; `None`
    /// if there is none yet.
    store_version: Option<String>,
    store_usable: bool,
    /// The file, and the ConfigMap, are behind the acknowledged state.
    dirty: bool,
    store_dirty: bool,
    store_written: Option<Instant>,
    failing_since: Option<Instant>,
    /// The labels of each stream, by namespace and kind.
    labels: HashMap<(String, String), Labels>,
}

impl<S: StateStore> Shipper<S> {
    pub async fn run(mut self) {
        loop {
            if !self.wait_to_lead().await {
                break;
            }
            self.counters.shipping.set(1);
            tracing::info!(receiver = %self.id, "shipping Kubernetes events");
            let ended = self.ship().await;
            self.counters.shipping.set(0);
            if ended == Ended::Stopped {
                break;
            }
            tracing::info!(receiver = %self.id, "no longer leading: stopped shipping Kubernetes events");
        }
        tracing::info!(receiver = %self.id, "kubernetes_events receiver stopped");
    }

    /// Waits until this agent leads (at once if the receiver is not
    /// leader-only); false if the receiver stopped first.
    async fn wait_to_lead(&mut self) -> bool {
        let Some(leading) = self.leading.as_mut() else {
            return !self.stop.is_cancelled();
        };
        tokio::select! {
            _ = self.stop.cancelled() => false,
            led = leading.wait_for(|leads| *leads) => led.is_ok(),
        }
    }

    /// One time of shipping, until the receiver stops or this agent no
    /// longer leads.
    async fn ship(&mut self) -> Ended {
        let shipping = self.stop.child_token();
        // Leadership lost ends it as a stop would, and cuts a send that
        // waits for room.
        let lost = self.leading.clone().map(|mut leading| {
            let shipping = shipping.clone();
            tokio::spawn(async move {
                let _ = leading.wait_for(|leads| !*leads).await;
                shipping.cancel();
            })
        });
        let mut session = Session {
            keys: self.config.watch_keys(),
            working: Shipped::default(),
            pending: Pending::default(),
            in_flight: InFlight::default(),
            store_version: None,
            store_usable: self.store.is_some(),
            dirty: false,
            store_dirty: false,
            store_written: None,
            failing_since: None,
            labels: HashMap::new(),
        };
        if !self.read_store(&mut session, &shipping).await {
            return self.end(session, lost, &shipping).await;
        }
        self.acked.keep_versions(&session.keys);
        session.working = self.acked.clone();
        self.counters.remembered.set(session.working.len() as i64);

        let (tx, mut updates) = mpsc::channel(64);
        for (key, namespace) in session.keys.iter().enumerate() {
            let watch = Watch {
                id: self.id.clone(),
                api: events_api(&self.client, namespace),
                key,
                version: self.acked.version(namespace).map(str::to_string),
                tx: tx.clone(),
                counters: self.counters.clone(),
            };
            let shipping = shipping.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = shipping.cancelled() => {}
                    _ = watch.run() => {}
                }
            });
        }
        drop(tx);

        let mut flush = tokio::time::interval(FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut linger: Option<tokio::time::Instant> = None;
        loop {
            let room = session.in_flight.len() < MAX_IN_FLIGHT;
            tokio::select! {
                biased;
                _ = shipping.cancelled() => break,
                acked = session.in_flight.next() => self.acknowledged(&mut session, acked),
                _ = flush.tick() => self.save(&mut session, false).await,
                _ = sleep_until(linger) => {
                    linger = None;
                    if !self.send(&mut session, &shipping).await {
                        break;
                    }
                }
                update = updates.recv(), if room => {
                    let Some(update) = update else { break };
                    self.handle(&mut session, update);
                    if session.pending.batch.entries >= MAX_BATCH {
                        linger = None;
                        if !self.send(&mut session, &shipping).await {
                            break;
                        }
                    } else if linger.is_none() && session.pending.batch.entries > 0 {
                        linger = Some(tokio::time::Instant::now() + LINGER);
                    }
                }
            }
        }
        self.end(session, lost, &shipping).await
    }

    /// Ends a time of shipping: what was not sent stays for the next
    /// leader; what is owed is recorded if it comes soon; the state is
    /// written.
    async fn end(
        &mut self,
        mut session: Session,
        lost: Option<tokio::task::JoinHandle<()>>,
        shipping: &CancellationToken,
    ) -> Ended {
        shipping.cancel();
        if let Some(lost) = lost {
            lost.abort();
        }
        let deadline = tokio::time::Instant::now() + ACK_DRAIN;
        while let Some(acked) = session.in_flight.next_until(deadline).await {
            self.acknowledged(&mut session, acked);
        }
        // Written even when the API server is the reason leading ended:
        // the file at least.
        let _ = tokio::time::timeout(ACK_DRAIN, self.save(&mut session, true)).await;
        if self.stop.is_cancelled() {
            Ended::Stopped
        } else {
            Ended::Lost
        }
    }

    /// Reads the ConfigMap's state into `acked`, retrying while the API
    /// server fails; false if shipping ended first. A ConfigMap that may
    /// not be read (RBAC) or is unreadable is left aside for this time of
    /// shipping, with an error: events may then be shipped twice, never
    /// lost.
    async fn read_store(&mut self, session: &mut Session, shipping: &CancellationToken) -> bool {
        let Some(store) = &self.store else {
            return true;
        };
        let mut backoff = BACKOFF_MIN;
        loop {
            match store.get().await {
                Ok(Some((text, version))) => {
                    session.store_version = Some(version);
                    match Shipped::parse(&text) {
                        Ok(state) => self.acked.merge(&state),
                        Err(e) if text.is_empty() => {
                            tracing::debug!(receiver = %self.id, error = %e, "the state ConfigMap is empty");
                        }
                        Err(e) => {
                            self.counters.state_read_errors.inc();
                            tracing::error!(receiver = %self.id, error = %e, "the state ConfigMap cannot be read; it will be overwritten, and events already shipped by another agent may be shipped again");
                        }
                    }
                    return true;
                }
                Ok(None) => return true,
                Err(StoreError::Forbidden(e)) => {
                    self.counters.state_read_errors.inc();
                    tracing::error!(receiver = %self.id, error = %e, "ferro may not read its state ConfigMap (RBAC: configmaps get/create/update); shipping without it, so a new leader may ship events again");
                    session.store_usable = false;
                    return true;
                }
                Err(e) => {
                    self.counters.state_read_errors.inc();
                    tracing::warn!(receiver = %self.id, error = %e, "cannot read the state ConfigMap; trying again");
                    tokio::select! {
                        _ = shipping.cancelled() => return false,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn handle(&mut self, session: &mut Session, update: Update) {
        match update {
            Update::Event {
                key,
                version,
                event,
            } => {
                self.counters.received.inc();
                self.event(session, *event);
                if let Some(version) = version {
                    self.progress(session, key, version);
                }
            }
            Update::Deleted { key, version, uid } => {
                // Its uid never comes back: nothing to remember.
                session.working.forget(&uid);
                self.acked.forget(&uid);
                self.progress(session, key, version);
            }
            Update::Progress { key, version } => self.progress(session, key, version),
        }
    }

    fn event(&mut self, session: &mut Session, event: Event) {
        let uid = event.metadata.uid.clone().unwrap_or_default();
        if uid.is_empty() {
            self.counters.malformed.inc();
            return;
        }
        let fields = EventFields::of(&event);
        if fields.name.is_empty() {
            self.counters.no_object.inc();
            return;
        }
        let time_us = event_time_us(&event);
        if let Some(skip) = session.working.skip(&uid, fields.count, time_us) {
            match skip {
                Skip::Shipped => self.counters.skipped_shipped.inc(),
                Skip::BeforeHorizon => self.counters.skipped_horizon.inc(),
            };
            return;
        }
        session.working.record(&uid, fields.count, time_us);
        let namespace = event
            .regarding
            .as_ref()
            .and_then(|r| r.namespace.clone())
            .unwrap_or_default();
        let labels = session
            .labels
            .entry((namespace, fields.kind.clone()))
            .or_insert_with_key(|(namespace, kind)| {
                let mut builder = LabelsBuilder::new();
                for (name, value) in &self.config.labels {
                    builder.set(name, value);
                }
                builder.set("job", &self.config.job);
                builder.set("namespace", namespace);
                builder.set("kind", kind);
                builder.labels()
            })
            .clone();
        let line = match self.config.format {
            Format::Logfmt => fields.logfmt(),
            Format::Json => fields.json(),
        };
        let mut entry = Entry::new(time_us.saturating_mul(1000), line);
        for (name, value) in [
            ("name", &fields.name),
            ("reason", &fields.reason),
            ("type", &fields.type_),
            ("reporting_controller", &fields.reporting_controller),
        ] {
            if !value.is_empty() {
                entry.metadata.push((name.to_string(), value.clone()));
            }
        }
        session.pending.batch.push(labels, entry);
        let progress = &mut session.pending.progress;
        progress.shipped.push((uid, fields.count, time_us));
        progress.newest_us = progress.newest_us.max(time_us);
    }

    /// Everything of watch `key` up to `version` was handled: it goes with
    /// the batch being filled, or the newest in flight, or is recorded.
    fn progress(&mut self, session: &mut Session, key: usize, version: String) {
        if session.pending.batch.entries > 0 {
            set_version(&mut session.pending.progress.versions, key, version);
        } else if let Some(newest) = session.in_flight.newest_progress() {
            set_version(&mut newest.versions, key, version);
        } else if !session.in_flight.interrupted() {
            self.acked.set_version(&session.keys[key], &version);
            session.dirty = true;
        }
    }

    /// Sends the batch being filled, waiting (never dropping) while memory
    /// or the pipelines are full. False if shipping ended first.
    async fn send(&mut self, session: &mut Session, shipping: &CancellationToken) -> bool {
        let mut pending = std::mem::take(&mut session.pending);
        let Some(taken) = pending.batch.take() else {
            return true;
        };
        let entries = taken.entries;
        let acks = self.counters.acks.clone();
        let refused = move |refusal| acks.refused(refusal, entries);
        let sent =
            self.inputs
                .send_patiently(&self.limiter, taken.logs, taken.bytes, shipping, refused);
        let Some(ack) = sent.await else {
            return false;
        };
        self.counters.acks.accepted(entries);
        session.in_flight.push(ack, pending.progress, entries);
        true
    }

    /// The oldest batch's delivery ended: its events and versions are
    /// recorded as shipped (a drop too, or the same events would be
    /// dropped again by every next leader).
    fn acknowledged(&mut self, session: &mut Session, acked: Acked<Progress>) {
        self.counters.acks.acknowledged(acked.outcome, acked.items);
        let Some(progress) = acked.progress else {
            return;
        };
        for (uid, count, time_us) in &progress.shipped {
            self.acked.record(uid, *count, *time_us);
        }
        for (key, version) in &progress.versions {
            self.acked.set_version(&session.keys[*key], version);
        }
        if progress.newest_us > 0 {
            self.counters
                .acknowledged_timestamp
                .set(progress.newest_us as f64 / 1e6);
        }
        session.dirty = true;
    }

    /// Writes the acknowledged state to the file, and to the ConfigMap when
    /// [`STORE_EVERY`] has passed (or `finally`), if it changed.
    async fn save(&mut self, session: &mut Session, finally: bool) {
        if session.dirty {
            session.dirty = false;
            session.store_dirty = true;
        } else if !(finally && session.store_dirty) {
            return;
        }
        self.counters.remembered.set(session.working.len() as i64);
        let path = self.file.clone();
        let file_text = self.acked.encode();
        let written = tokio::task::spawn_blocking(move || {
            crate::delivery::checkpoint::replace(&path, file_text.as_bytes())
        })
        .await;
        let file_error = match written {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        let store_due = session.store_dirty
            && (finally
                || session
                    .store_written
                    .is_none_or(|at| at.elapsed() >= STORE_EVERY));
        let store_error = match (&self.store, session.store_usable && store_due) {
            (Some(store), true) => {
                let written = write_state(
                    store,
                    &mut self.acked,
                    &mut session.store_version,
                    &self.counters.state_conflicts,
                )
                .await;
                session.store_written = Some(Instant::now());
                match written {
                    Ok(()) => {
                        session.store_dirty = false;
                        None
                    }
                    Err(e) => {
                        self.counters.state_write_errors.inc();
                        Some(e)
                    }
                }
            }
            _ => None,
        };
        match (file_error, store_error) {
            (None, None) => {
                if session.failing_since.take().is_some() {
                    tracing::info!(receiver = %self.id, "the events state is written again");
                }
            }
            (file, store) => {
                // Tried again at the next tick.
                session.dirty = true;
                let warned = session.failing_since.filter(|at| at.elapsed() < WARN_EVERY);
                if warned.is_none() {
                    tracing::warn!(receiver = %self.id, file = %self.file.display(), file_error = ?file, configmap_error = ?store, "cannot write the events state; trying again every second (until it is written, a restart or a new leader may ship events again)");
                }
                session.failing_since = Some(warned.unwrap_or_else(Instant::now));
            }
        }
    }
}

fn set_version(versions: &mut Vec<(usize, String)>, key: usize, version: String) {
    match versions.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = version,
        None => versions.push((key, version)),
    }
}

/// `events.k8s.io/v1` events of every namespace (`*`) or of one, read as
/// plain objects: an event that does not decode is skipped alone, not the
/// list it is in.
fn events_api(client: &kube::Client, namespace: &str) -> kube::Api<DynamicObject> {
    let resource = ApiResource::erase::<Event>(&());
    match namespace {
        "*" => kube::Api::all_with(client.clone(), &resource),
        namespace => kube::Api::namespaced_with(client.clone(), namespace, &resource),
    }
}

/// One list-and-watch.
struct Watch {
    id: ComponentId,
    api: kube::Api<DynamicObject>,
    key: usize,
    /// Where the watch resumes; `None`: list first.
    version: Option<String>,
    tx: mpsc::Sender<Update>,
    counters: Counters,
}

/// Why a list or a watch ended.
enum Break {
    /// The shipper is gone.
    Closed,
    /// The resourceVersion is too old: list afresh.
    Expired,
    /// A failed request, to be tried again after a wait.
    Failed,
    /// The watch ended normally (its timeout): watch again at once.
    Ended,
}

impl Watch {
    async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        if self.version.is_none() {
            self.counters.relist_start.inc();
        }
        loop {
            let began = tokio::time::Instant::now();
            let watching = self.version.is_some();
            let result = match self.version.clone() {
                None => self.list().await,
                Some(version) => self.watch(version).await,
            };
            match result {
                Break::Closed => return,
                Break::Expired => {
                    self.counters.relist_expired.inc();
                    tracing::info!(receiver = %self.id, "the events' resourceVersion is too old (410 Gone); listing them afresh");
                    self.version = None;
                    backoff = BACKOFF_MIN;
                }
                // A watch that ends as soon as it starts (a proxy cutting
                // it) is not asked for again at once.
                Break::Ended if watching && began.elapsed() < BACKOFF_MIN => {
                    tokio::time::sleep(jitter(BACKOFF_MIN)).await;
                }
                Break::Ended => backoff = BACKOFF_MIN,
                Break::Failed => {
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    async fn tell(&self, update: Update) -> Result<(), Break> {
        self.tx.send(update).await.map_err(|_| Break::Closed)
    }

    /// Lists every event, page by page, then says the list's version.
    async fn list(&mut self) -> Break {
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let page = match self.api.list(&params).await {
                Ok(page) => page,
                Err(kube::Error::Api(status)) if status.code == 410 => return Break::Expired,
                Err(e) => {
                    self.counters.list_errors.inc();
                    tracing::warn!(receiver = %self.id, error = %e, "cannot list the events; trying again");
                    return Break::Failed;
                }
            };
            for object in page.items {
                if let Err(stop) = self.object(object, false).await {
                    return stop;
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => {
                    let version = page.metadata.resource_version.unwrap_or_default();
                    if version.is_empty() {
                        self.counters.list_errors.inc();
                        tracing::warn!(receiver = %self.id, "the events list has no resourceVersion; listing again");
                        return Break::Failed;
                    }
                    self.version = Some(version.clone());
                    return match self
                        .tell(Update::Progress {
                            key: self.key,
                            version,
                        })
                        .await
                    {
                        Ok(()) => Break::Ended,
                        Err(stop) => stop,
                    };
                }
            }
        }
    }

    /// Watches from `version` until the watch ends.
    async fn watch(&mut self, version: String) -> Break {
        let params = WatchParams::default().timeout(290);
        let stream = match self.api.watch(&params, &version).await {
            Ok(stream) => stream,
            Err(kube::Error::Api(status)) if status.code == 410 => return Break::Expired,
            Err(e) => {
                self.counters.watch_errors.inc();
                tracing::warn!(receiver = %self.id, error = %e, "cannot watch the events; trying again");
                return Break::Failed;
            }
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            let told = match item {
                Ok(WatchEvent::Added(object) | WatchEvent::Modified(object)) => {
                    self.object(object, true).await
                }
                Ok(WatchEvent::Deleted(object)) => {
                    let version = object.metadata.resource_version.unwrap_or_default();
                    let uid = object.metadata.uid.unwrap_or_default();
                    self.version = Some(version.clone());
                    self.tell(Update::Deleted {
                        key: self.key,
                        version,
                        uid,
                    })
                    .await
                }
                Ok(WatchEvent::Bookmark(mark)) => {
                    let version = mark.metadata.resource_version;
                    self.version = Some(version.clone());
                    self.tell(Update::Progress {
                        key: self.key,
                        version,
                    })
                    .await
                }
                Ok(WatchEvent::Error(status)) if status.code == 410 => return Break::Expired,
                Ok(WatchEvent::Error(status)) => {
                    self.counters.watch_errors.inc();
                    tracing::warn!(receiver = %self.id, code = status.code, error = %status.message, "the events watch ended with an error; watching again");
                    return Break::Failed;
                }
                Err(kube::Error::SerdeError(e)) => {
                    // One object that does not decode: counted, skipped.
                    self.counters.malformed.inc();
                    tracing::warn!(receiver = %self.id, error = %e, "an event in the watch cannot be read; skipping it");
                    Ok(())
                }
                Err(e) => {
                    self.counters.watch_errors.inc();
                    tracing::warn!(receiver = %self.id, error = %e, "the events watch broke; watching again");
                    return Break::Failed;
                }
            };
            if let Err(stop) = told {
                return stop;
            }
        }
        Break::Ended
    }

    /// Tells of one object of a list or a watch (`watched`: its version
    /// moves the watch on).
    async fn object(&mut self, object: DynamicObject, watched: bool) -> Result<(), Break> {
        let version = object.metadata.resource_version.clone();
        if watched && let Some(version) = &version {
            self.version = Some(version.clone());
        }
        let version = version.filter(|_| watched);
        match decode(object) {
            Ok(event) => {
                self.tell(Update::Event {
                    key: self.key,
                    version,
                    event: Box::new(event),
                })
                .await
            }
            Err(e) => {
                self.counters.malformed.inc();
                tracing::warn!(receiver = %self.id, error = %e, "an object is not an events.k8s.io/v1 Event; skipping it");
                match version {
                    Some(version) => {
                        self.tell(Update::Progress {
                            key: self.key,
                            version,
                        })
                        .await
                    }
                    None => Ok(()),
                }
            }
        }
    }
}

/// An event from a plain object.
fn decode(object: DynamicObject) -> Result<Event, serde_json::Error> {
    let mut value = object.data;
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("metadata".into(), serde_json::to_value(object.metadata)?);
    }
    serde_json::from_value(value)
}

/// `wait` stretched by up to a fifth, so that agents that failed together
/// do not all retry together.
fn jitter(wait: Duration) -> Duration {
    wait.mul_f64(1.0 + 0.2 * fastrand::f64())
}

/// Sleeps until `deadline`; forever if there is none.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
