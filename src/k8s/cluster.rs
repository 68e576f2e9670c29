//! The cluster-wide objects a node's agent reads for ServiceMonitors and
//! PodMonitors: the monitors themselves and Services (all namespaces; few
//! and small), each one list-and-watch through kube-rs' watcher (resume by
//! resourceVersion, relist on `410 Gone`, backoff on errors, counted as the
//! pod cache counts them). The pods behind them are this node's, from the
//! pod cache: nothing here grows with the cluster's pods.
//!
//! One per process ([`ClusterCaches`]), started when a Prometheus receiver
//! has `monitors`, kept across reloads.

use k8s_openapi::api::core::v1::Service;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::cache::{Keyed, Relist, apply_event, follow};
use super::monitor::{Monitor, MonitorKind};
use super::service::ServiceInfo;
use super::{K8sError, KubernetesConfig};
use crate::telemetry::{K8sFamilies, Telemetry};

/// Services kept at most: past this, more are counted and left out.
pub const MAX_SERVICES: usize = 20_000;
/// Monitors of each kind kept at most.
pub const MAX_MONITORS: usize = 5_000;

/// A monitor as read: usable, or why not (logged and counted by the
/// receivers that would use it).
#[derive(Clone, Debug)]
pub struct MonitorEntry {
    /// `namespace/name`.
    pub key: String,
    pub resource_version: String,
    pub monitor: Result<Arc<Monitor>, String>,
}

struct Objects<T> {
    by_uid: BTreeMap<Arc<str>, T>,
}

impl<T> Default for Objects<T> {
    fn default() -> Self {
        Self {
            by_uid: BTreeMap::new(),
        }
    }
}

struct Inner {
    services: RwLock<Objects<Arc<ServiceInfo>>>,
    monitors: [RwLock<Objects<MonitorEntry>>; 2],
    /// Bumped when a Service changed.
    service_changes: watch::Sender<u64>,
    /// Bumped when a monitor changed.
    monitor_changes: watch::Sender<u64>,
    stop: CancellationToken,
    config: KubernetesConfig,
}

/// The monitors and Services of the cluster. Cloning is cheap.
#[derive(Clone)]
pub struct ClusterObjects {
    inner: Arc<Inner>,
}

fn slot(kind: MonitorKind) -> usize {
    match kind {
        MonitorKind::ServiceMonitor => 0,
        MonitorKind::PodMonitor => 1,
    }
}

impl ClusterObjects {
    pub async fn start(
        config: KubernetesConfig,
        telemetry: &Arc<Telemetry>,
    ) -> Result<ClusterObjects, K8sError> {
        let client = super::cache::client(&config).await?;
        let objects = Self::empty(config);
        let services: kube::Api<Service> = kube::Api::all(client.clone());
        tokio::spawn(run_services(objects.clone(), services, telemetry.clone()));
        for kind in [MonitorKind::ServiceMonitor, MonitorKind::PodMonitor] {
            let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", kind.as_str());
            let resource = ApiResource::from_gvk_with_plural(&gvk, kind.plural());
            let api: kube::Api<DynamicObject> = kube::Api::all_with(client.clone(), &resource);
            tokio::spawn(run_monitors(objects.clone(), kind, api, telemetry.clone()));
        }
        tracing::info!("watching ServiceMonitors, PodMonitors and Services");
        Ok(objects)
    }

    /// Objects with no watch behind them (filled by the `apply_*` methods).
    pub fn empty(config: KubernetesConfig) -> ClusterObjects {
        ClusterObjects {
            inner: Arc::new(Inner {
                services: RwLock::default(),
                monitors: [RwLock::default(), RwLock::default()],
                service_changes: watch::Sender::new(0),
                monitor_changes: watch::Sender::new(0),
                stop: CancellationToken::new(),
                config,
            }),
        }
    }

    pub fn config(&self) -> &KubernetesConfig {
        &self.inner.config
    }

    /// Every Service, by namespace and name.
    pub fn services(&self) -> Vec<Arc<ServiceInfo>> {
        let mut out: Vec<Arc<ServiceInfo>> = read(&self.inner.services)
            .by_uid
            .values()
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out
    }

    /// Every monitor of `kind`, by namespace and name.
    pub fn monitors(&self, kind: MonitorKind) -> Vec<MonitorEntry> {
        let mut out: Vec<MonitorEntry> = read(&self.inner.monitors[slot(kind)])
            .by_uid
            .values()
            .cloned()
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    pub fn service_changes(&self) -> watch::Receiver<u64> {
        self.inner.service_changes.subscribe()
    }

    pub fn monitor_changes(&self) -> watch::Receiver<u64> {
        self.inner.monitor_changes.subscribe()
    }

    pub fn stop(&self) {
        self.inner.stop.cancel();
    }

    pub fn apply_service(
        &self,
        event: watcher::Event<Service>,
        relist: &mut Relist,
        t: &K8sFamilies,
    ) {
        let changed = apply_event(&mut *write(&self.inner.services), event, relist, t);
        if changed {
            self.inner.service_changes.send_modify(|n| *n += 1);
        }
    }

    pub fn apply_monitor(
        &self,
        kind: MonitorKind,
        event: watcher::Event<DynamicObject>,
        relist: &mut Relist,
        t: &K8sFamilies,
    ) {
        let mut store = write(&self.inner.monitors[slot(kind)]);
        let mut typed = Typed {
            kind,
            store: &mut store,
        };
        if apply_event(&mut typed, event, relist, t) {
            self.inner.monitor_changes.send_modify(|n| *n += 1);
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Keyed<Service> for Objects<Arc<ServiceInfo>> {
    fn upsert(&mut self, service: &Service, _: &K8sFamilies) -> Option<Arc<str>> {
        let info = ServiceInfo::from_service(service)?;
        let uid: Arc<str> = info.uid.as_str().into();
        if !self.by_uid.contains_key(&uid) && self.by_uid.len() >= MAX_SERVICES {
            return None;
        }
        self.by_uid.insert(uid.clone(), Arc::new(info));
        Some(uid)
    }

    fn key_of(service: &Service) -> Option<&str> {
        service.metadata.uid.as_deref()
    }

    fn keys(&self) -> Vec<Arc<str>> {
        self.by_uid.keys().cloned().collect()
    }

    fn remove(&mut self, key: &str) {
        self.by_uid.remove(key);
    }
}

/// The monitors of one kind, while an event is applied to them.
struct Typed<'a> {
    kind: MonitorKind,
    store: &'a mut Objects<MonitorEntry>,
}

impl Keyed<DynamicObject> for Typed<'_> {
    fn upsert(&mut self, object: &DynamicObject, _: &K8sFamilies) -> Option<Arc<str>> {
        let meta = &object.metadata;
        let uid: Arc<str> = meta.uid.as_deref()?.into();
        if !self.store.by_uid.contains_key(&uid) && self.store.by_uid.len() >= MAX_MONITORS {
            return None;
        }
        let key = format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        );
        let monitor = serde_json::to_value(object)
            .map_err(|e| e.to_string())
            .and_then(|value| Monitor::from_object(self.kind, &value).map_err(|e| e.to_string()))
            .map(Arc::new);
        let entry = MonitorEntry {
            key,
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            monitor,
        };
        self.store.by_uid.insert(uid.clone(), entry);
        Some(uid)
    }

    fn key_of(object: &DynamicObject) -> Option<&str> {
        object.metadata.uid.as_deref()
    }

    fn keys(&self) -> Vec<Arc<str>> {
        self.store.by_uid.keys().cloned().collect()
    }

    fn remove(&mut self, key: &str) {
        self.store.by_uid.remove(key);
    }
}

async fn run_services(objects: ClusterObjects, api: kube::Api<Service>, telemetry: Arc<Telemetry>) {
    let config = watcher::Config::default().any_semantic();
    let mut relist = Relist::default();
    let inner = objects.inner.clone();
    follow(
        &inner.stop,
        &telemetry,
        watcher(api, config),
        "service",
        || read(&inner.services).by_uid.len(),
        |event| objects.apply_service(event, &mut relist, &telemetry.k8s),
    )
    .await;
}

async fn run_monitors(
    objects: ClusterObjects,
    kind: MonitorKind,
    api: kube::Api<DynamicObject>,
    telemetry: Arc<Telemetry>,
) {
    let config = watcher::Config::default().any_semantic();
    let mut relist = Relist::default();
    let inner = objects.inner.clone();
    let what = match kind {
        MonitorKind::ServiceMonitor => "servicemonitor",
        MonitorKind::PodMonitor => "podmonitor",
    };
    follow(
        &inner.stop,
        &telemetry,
        watcher(api, config),
        what,
        || read(&inner.monitors[slot(kind)]).by_uid.len(),
        |event| objects.apply_monitor(kind, event, &mut relist, &telemetry.k8s),
    )
    .await;
}

/// The process's cluster object caches: at most one, shared by every
/// topology, kept across config reloads as long as `[kubernetes]` does not
/// change.
#[derive(Default)]
pub struct ClusterCaches(tokio::sync::Mutex<Option<ClusterObjects>>);

impl ClusterCaches {
    /// The objects for `config`, started on first use; `None` (and a
    /// running one stopped) when nothing wants them.
    pub async fn get(
        &self,
        config: Option<&KubernetesConfig>,
        wanted: bool,
        telemetry: &Arc<Telemetry>,
    ) -> Result<Option<ClusterObjects>, K8sError> {
        let mut slot = self.0.lock().await;
        let config = config
            .filter(|_| wanted)
            .map(KubernetesConfig::without_leader);
        if let Some(objects) = slot.as_ref()
            && Some(objects.config()) == config.as_ref()
        {
            return Ok(Some(objects.clone()));
        }
        if let Some(old) = slot.take() {
            old.stop();
        }
        let Some(config) = config else {
            return Ok(None);
        };
        let objects = ClusterObjects::start(config, telemetry).await?;
        *slot = Some(objects.clone());
        Ok(Some(objects))
    }
}
