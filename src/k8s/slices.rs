//! The EndpointSlices of the Services that ServiceMonitors select, read by
//! the leader alone, for the targets that are not pods (the API server,
//! external endpoints, nodes): pods are scraped by their own node's agent
//! from the pod cache, so only the endpoints without a Pod behind them are
//! kept.
//!
//! One watch, narrowed by label to the selected Services
//! (`kubernetes.io/service-name in (...)`), started while this agent leads
//! and restarted when the set of Services changes.

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::cache::{Keyed, Relist, apply_event, follow};
use super::{K8sError, KubernetesConfig};
use crate::telemetry::{K8sFamilies, Telemetry};

/// An endpoint that is not a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherEndpoint {
    pub addresses: Vec<String>,
    pub ready: bool,
    /// The object behind it, if any (`Node`, …), and its name.
    pub target: Option<(String, String)>,
    pub node_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlicePort {
    pub name: String,
    pub port: u16,
    pub protocol: String,
}

/// What is kept of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    pub namespace: String,
    pub service: String,
    pub ports: Vec<SlicePort>,
    pub endpoints: Vec<OtherEndpoint>,
}

impl SliceInfo {
    fn from_slice(slice: &EndpointSlice) -> Option<SliceInfo> {
        let meta = &slice.metadata;
        let service = meta
            .labels
            .as_ref()?
            .get("kubernetes.io/service-name")?
            .clone();
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(SlicePort {
                    name: p.name.clone().unwrap_or_default(),
                    port: u16::try_from(p.port?).ok()?,
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                })
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .filter(|e| e.target_ref.as_ref().and_then(|t| t.kind.as_deref()) != Some("Pod"))
            .map(|e| OtherEndpoint {
                addresses: e.addresses.clone(),
                ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
                target: e
                    .target_ref
                    .as_ref()
                    .and_then(|t| Some((t.kind.clone()?, t.name.clone().unwrap_or_default()))),
                node_name: e.node_name.clone(),
            })
            .collect();
        Some(SliceInfo {
            namespace: meta.namespace.clone()?,
            service,
            ports,
            endpoints,
        })
    }
}

#[derive(Default)]
struct Store {
    by_uid: BTreeMap<Arc<str>, Arc<SliceInfo>>,
}

impl Keyed<EndpointSlice> for Store {
    fn upsert(&mut self, slice: &EndpointSlice, _: &K8sFamilies) -> Option<Arc<str>> {
        let uid: Arc<str> = slice.metadata.uid.as_deref()?.into();
        let info = SliceInfo::from_slice(slice)?;
        self.by_uid.insert(uid.clone(), Arc::new(info));
        Some(uid)
    }

    fn key_of(slice: &EndpointSlice) -> Option<&str> {
        slice.metadata.uid.as_deref()
    }

    fn keys(&self) -> Vec<Arc<str>> {
        self.by_uid.keys().cloned().collect()
    }

    fn remove(&mut self, key: &str) {
        self.by_uid.remove(key);
    }
}

struct Inner {
    client: kube::Client,
    telemetry: Arc<Telemetry>,
    store: RwLock<Store>,
    changes: watch::Sender<u64>,
    /// The Service names watched, and the watch's stop.
    watching: Mutex<Option<(BTreeSet<String>, CancellationToken)>>,
}

/// The leader's EndpointSlices. Cloning is cheap.
#[derive(Clone)]
pub struct EndpointSlices {
    inner: Arc<Inner>,
}

impl EndpointSlices {
    pub async fn new(
        config: &KubernetesConfig,
        telemetry: &Arc<Telemetry>,
    ) -> Result<EndpointSlices, K8sError> {
        Ok(EndpointSlices {
            inner: Arc::new(Inner {
                client: super::cache::client(config).await?,
                telemetry: telemetry.clone(),
                store: RwLock::default(),
                changes: watch::Sender::new(0),
                watching: Mutex::new(None),
            }),
        })
    }

    /// Watches the slices of the Services named `services` (any
    /// namespace); none: stops watching and forgets what it had.
    pub fn follow(&self, services: BTreeSet<String>) {
        let mut watching = self
            .inner
            .watching
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if watching.as_ref().map(|(names, _)| names) == Some(&services) {
            return;
        }
        if let Some((_, stop)) = watching.take() {
            stop.cancel();
        }
        if services.is_empty() {
            // Not leading (or nothing monitored): forget the slices.
            self.inner
                .store
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .by_uid
                .clear();
            self.inner.changes.send_modify(|n| *n += 1);
            return;
        }
        // Another set of Services: the new watch's list replaces what is
        // kept once it is complete, so the targets that stay do not blink.
        let stop = CancellationToken::new();
        let names: Vec<&str> = services.iter().map(String::as_str).collect();
        let selector = format!("kubernetes.io/service-name in ({})", names.join(","));
        tracing::info!(services = ?names, "watching the EndpointSlices of the monitored Services, for their endpoints that are not pods");
        tokio::spawn(run(self.clone(), selector, stop.clone()));
        *watching = Some((services, stop));
    }

    pub fn slices(&self) -> Vec<Arc<SliceInfo>> {
        self.inner
            .store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_uid
            .values()
            .cloned()
            .collect()
    }

    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }
}

async fn run(slices: EndpointSlices, selector: String, stop: CancellationToken) {
    let api: kube::Api<EndpointSlice> = kube::Api::all(slices.inner.client.clone());
    let config = watcher::Config::default().labels(&selector).any_semantic();
    let mut relist = Relist::default();
    let inner = slices.inner.clone();
    follow(
        &stop,
        &inner.telemetry,
        watcher(api, config),
        "endpointslice",
        || slices.slices().len(),
        |event| {
            if stop.is_cancelled() {
                return;
            }
            let mut store = inner.store.write().unwrap_or_else(|e| e.into_inner());
            // Slices of Services no longer followed are kept until the new
            // list is complete, then dropped (`InitDone`).
            if apply_event(&mut *store, event, &mut relist, &inner.telemetry.k8s) {
                inner.changes.send_modify(|n| *n += 1);
            }
        },
    )
    .await;
}
