//! The pod cache: one node-scoped list-and-watch of pods
//! (`GET /api/v1/pods?fieldSelector=spec.nodeName=NODE&watch=1`) through
//! kube-rs' watcher, kept as trimmed [`PodInfo`]s indexed by uid, IP and
//! namespace/name.
//!
//! The watcher resumes a broken watch from the last resourceVersion it saw
//! and lists afresh when the API server answers `410 Gone`; a relist
//! replaces the cache's contents only once complete, so lookups keep
//! working throughout. While the API server is away, errors are counted,
//! retried with jittered exponential backoff, and the cache keeps serving
//! what it has.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::KubernetesConfig;
use super::pod::PodInfo;
use crate::telemetry::{CauseLabels, Telemetry};

/// Pods the cache holds at most. A node runs 110 by default and rarely more
/// than a few hundred; past this, pods are counted and left out rather than
/// letting a misbehaving API answer grow the agent.
pub const MAX_PODS: usize = 4096;

/// First and longest wait between retries while the API server fails.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Why the pod cache could not be started.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error(
        "no Kubernetes API config: not in a cluster and no kubeconfig ({0}); set [kubernetes] api_server to use a URL"
    )]
    NoConfig(String),
    #[error("cannot build the Kubernetes API client: {0}")]
    Client(String),
}

/// The pods of this node, shared by every processor and discovery source in
/// the process. Cloning is cheap; all clones see the same cache.
#[derive(Clone)]
pub struct PodCache {
    inner: Arc<Inner>,
}

struct Inner {
    config: KubernetesConfig,
    store: RwLock<Store>,
    /// Bumped on every change a discovery source must see.
    changes: watch::Sender<u64>,
    synced: watch::Sender<bool>,
    stop: CancellationToken,
    telemetry: Arc<Telemetry>,
}

impl PodCache {
    /// Connects (explicit `api_server`, else in-cluster config, else
    /// kubeconfig) and starts the watch in the background.
    pub async fn start(
        config: KubernetesConfig,
        telemetry: &Arc<Telemetry>,
    ) -> Result<PodCache, K8sError> {
        let mut kube_config = match &config.api_server {
            Some(uri) => kube::Config::new(uri.clone()),
            None => kube::Config::infer()
                .await
                .map_err(|e| K8sError::NoConfig(e.to_string()))?,
        };
        // The client's own retry of 429/503/504 (up to 15 times, waits
        // growing to minutes) would hide an outage from the error counter
        // and from the log; the watch loop retries, counts and backs off.
        kube_config.default_retry = false;
        let client =
            kube::Client::try_from(kube_config).map_err(|e| K8sError::Client(e.to_string()))?;
        let cache = Self::empty(config, telemetry);
        // All namespaces, but one node: the field selector is what keeps a
        // DaemonSet from watching the whole cluster.
        let api: kube::Api<Pod> = kube::Api::all(client);
        tokio::spawn(run(cache.inner.clone(), api));
        tracing::info!(
            node = %cache.inner.config.node_name,
            "pod cache started: watching the pods of this node"
        );
        Ok(cache)
    }

    /// A cache with no watch behind it (filled by [`PodCache::apply`]).
    pub fn empty(config: KubernetesConfig, telemetry: &Arc<Telemetry>) -> PodCache {
        PodCache {
            inner: Arc::new(Inner {
                config,
                store: RwLock::new(Store::default()),
                changes: watch::Sender::new(0),
                synced: watch::Sender::new(false),
                stop: CancellationToken::new(),
                telemetry: telemetry.clone(),
            }),
        }
    }

    pub fn config(&self) -> &KubernetesConfig {
        &self.inner.config
    }

    pub fn by_uid(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.read().by_uid.get(uid).cloned()
    }

    /// The pod that has `ip` (never a host-network pod: those share the
    /// node's address).
    pub fn by_ip(&self, ip: IpAddr) -> Option<Arc<PodInfo>> {
        let store = self.read();
        store
            .by_ip
            .get(&ip)
            .and_then(|uid| store.by_uid.get(uid))
            .cloned()
    }

    pub fn by_name(&self, namespace: &str, name: &str) -> Option<Arc<PodInfo>> {
        let store = self.read();
        store
            .by_name
            .get(namespace)
            .and_then(|names| names.get(name))
            .and_then(|uid| store.by_uid.get(uid))
            .cloned()
    }

    /// Every cached pod, ordered by namespace and name.
    pub fn pods(&self) -> Vec<Arc<PodInfo>> {
        let mut pods: Vec<Arc<PodInfo>> = self.read().by_uid.values().cloned().collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        pods
    }

    pub fn len(&self) -> usize {
        self.read().by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes whenever the set of pods or a pod changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Whether a complete list of the node's pods has arrived.
    pub fn is_synced(&self) -> bool {
        *self.inner.synced.borrow()
    }

    /// Waits up to `timeout` for the first complete list.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut synced = self.inner.synced.subscribe();
        tokio::time::timeout(timeout, synced.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops the watch; lookups keep answering from what is cached.
    pub fn stop(&self) {
        self.inner.stop.cancel();
    }

    /// Applies one watch event to the cache.
    pub fn apply(&self, event: watcher::Event<Pod>, relist: &mut Relist) {
        let t = &self.inner.telemetry.k8s;
        let mut changed = false;
        {
            let mut store = self.inner.store.write().unwrap_or_else(|e| e.into_inner());
            match event {
                watcher::Event::Init => {
                    if relist.lists > 0 {
                        t.relists.inc();
                    }
                    relist.lists += 1;
                    relist.seen = Some(HashSet::new());
                }
                watcher::Event::InitApply(pod) => {
                    if let Some(uid) = self.upsert(&mut store, &pod)
                        && let Some(seen) = &mut relist.seen
                    {
                        seen.insert(uid);
                    }
                }
                watcher::Event::InitDone => {
                    // Whatever the new list did not name is gone.
                    if let Some(seen) = relist.seen.take() {
                        let gone: Vec<Arc<str>> = store
                            .by_uid
                            .keys()
                            .filter(|uid| !seen.contains(*uid))
                            .cloned()
                            .collect();
                        for uid in gone {
                            store.remove(&uid);
                        }
                    }
                    changed = true;
                }
                watcher::Event::Apply(pod) => {
                    self.upsert(&mut store, &pod);
                    changed = true;
                }
                watcher::Event::Delete(pod) => {
                    if let Some(uid) = pod.metadata.uid.as_deref() {
                        store.remove(uid);
                    }
                    changed = true;
                }
            }
            t.pods_cached.set(store.by_uid.len() as i64);
            t.cache_bytes.set(store.bytes as i64);
        }
        if changed {
            if !*self.inner.synced.borrow() {
                self.inner.synced.send_replace(true);
                t.synced.set(1);
            }
            self.inner.changes.send_modify(|v| *v += 1);
        }
    }

    fn upsert(&self, store: &mut Store, pod: &Pod) -> Option<Arc<str>> {
        let t = &self.inner.telemetry.k8s;
        let mut skipped = 0;
        let info = match PodInfo::from_pod(pod, &mut skipped) {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "pod not cached");
                t.pods_not_cached
                    .get_or_create(&CauseLabels {
                        reason: "incomplete",
                    })
                    .inc();
                return None;
            }
        };
        t.annotations_skipped.inc_by(skipped);
        let uid = info.uid.clone();
        if !store.insert(info) {
            t.pods_not_cached
                .get_or_create(&CauseLabels {
                    reason: "cache_full",
                })
                .inc();
            return None;
        }
        Some(uid)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.inner.store.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Progress of a (re)list: which pods it named so far.
#[derive(Default)]
pub struct Relist {
    lists: u64,
    seen: Option<HashSet<Arc<str>>>,
}

/// The cached pods and their indexes.
#[derive(Default)]
struct Store {
    by_uid: HashMap<Arc<str>, Arc<PodInfo>>,
    /// Pod IP to uid, for pods not on the host network.
    by_ip: HashMap<IpAddr, Arc<str>>,
    /// Namespace, then name, to uid.
    by_name: HashMap<Arc<str>, HashMap<Arc<str>, Arc<str>>>,
    bytes: usize,
}

impl Store {
    /// Inserts or replaces a pod; `false` when the cache is full.
    fn insert(&mut self, pod: PodInfo) -> bool {
        let old = self.by_uid.get(&pod.uid).cloned();
        if old.is_none() && self.by_uid.len() >= MAX_PODS {
            return false;
        }
        if let Some(old) = &old {
            if old.as_ref() == &pod {
                return true;
            }
            self.unindex(old);
        }
        let pod = Arc::new(pod);
        self.bytes += pod.heap_bytes();
        self.by_uid.insert(pod.uid.clone(), pod.clone());
        self.by_name
            .entry(pod.namespace.clone())
            .or_default()
            .insert(pod.name.clone(), pod.uid.clone());
        for ip in old.iter().flat_map(|o| o.ips()).chain(pod.ips()) {
            self.reindex_ip(ip);
        }
        true
    }

    fn remove(&mut self, uid: &str) {
        let Some(old) = self.by_uid.remove(uid) else {
            return;
        };
        self.unindex(&old);
        for ip in old.ips() {
            self.reindex_ip(ip);
        }
    }

    /// Takes `pod` out of the name index and the byte count.
    fn unindex(&mut self, pod: &PodInfo) {
        self.bytes = self.bytes.saturating_sub(pod.heap_bytes());
        if let Some(names) = self.by_name.get_mut(&pod.namespace) {
            if names.get(&pod.name).is_some_and(|uid| *uid == pod.uid) {
                names.remove(&pod.name);
            }
            if names.is_empty() {
                self.by_name.remove(&pod.namespace);
            }
        }
    }

    /// Points `ip` at the pod that has it now. Two pods can briefly share
    /// an IP (a finished pod whose address was handed to a new one): the one
    /// still running wins.
    fn reindex_ip(&mut self, ip: IpAddr) {
        let best = self
            .by_uid
            .values()
            .filter(|p| !p.host_network && p.ips().any(|own| own == ip))
            .min_by_key(|p| (p.terminated(), p.uid.clone()))
            .map(|p| p.uid.clone());
        match best {
            Some(uid) => {
                self.by_ip.insert(ip, uid);
            }
            None => {
                self.by_ip.remove(&ip);
            }
        }
    }
}

/// The watch loop: events into the cache, errors counted and backed off.
async fn run(inner: Arc<Inner>, api: kube::Api<Pod>) {
    let cache = PodCache {
        inner: inner.clone(),
    };
    let config = watcher::Config::default()
        .fields(&format!("spec.nodeName={}", inner.config.node_name))
        // Lists are served from the API server's watch cache instead of
        // etcd: a thousand agents relisting at once stay cheap.
        .any_semantic();
    let mut stream = std::pin::pin!(watcher(api, config));
    let mut relist = Relist::default();
    let mut backoff = BACKOFF_MIN;
    let mut failing = false;
    loop {
        let next = tokio::select! {
            _ = inner.stop.cancelled() => return,
            next = stream.next() => next,
        };
        match next {
            None => return,
            Some(Ok(event)) => {
                if failing {
                    tracing::info!(pods = cache.len(), "pod watch is back");
                    failing = false;
                }
                backoff = BACKOFF_MIN;
                cache.apply(event, &mut relist);
            }
            Some(Err(error)) => {
                let reason = error_reason(&error);
                inner
                    .telemetry
                    .k8s
                    .api_errors
                    .get_or_create(&CauseLabels { reason })
                    .inc();
                if reason == "gone" {
                    // The watcher lists afresh at once: that is the remedy.
                    tracing::info!("pod watch expired (410 Gone); listing again");
                    continue;
                }
                if !failing {
                    tracing::warn!(
                        %error,
                        reason,
                        cached_pods = cache.len(),
                        "Kubernetes API request failed; serving cached pods and retrying"
                    );
                    failing = true;
                } else {
                    tracing::debug!(%error, reason, "Kubernetes API request failed again");
                }
                let wait = jitter(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tokio::select! {
                    _ = inner.stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Between half and all of `d`, so that agents restarted together do not
/// retry together.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// A short, bounded name for what went wrong, for the error counter.
fn error_reason(error: &watcher::Error) -> &'static str {
    let status_reason = |code: u16| match code {
        410 => "gone",
        401 => "unauthorized",
        403 => "forbidden",
        429 => "throttled",
        500..=599 => "server_error",
        _ => "api_error",
    };
    match error {
        watcher::Error::WatchError(status) => status_reason(status.code),
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => match e {
            kube::Error::Api(status) => status_reason(status.code),
            _ => "unreachable",
        },
        watcher::Error::NoResourceVersion => "no_resource_version",
    }
}

/// The process's pod caches: at most one, shared by every topology, kept
/// across config reloads as long as `[kubernetes]` does not change.
#[derive(Default)]
pub struct PodCaches(tokio::sync::Mutex<Option<PodCache>>);

impl PodCaches {
    /// The cache for `config`, started on first use (or when `config`
    /// changed); `None` stops a running cache that is no longer wanted.
    pub async fn get(
        &self,
        config: Option<&KubernetesConfig>,
        telemetry: &Arc<Telemetry>,
    ) -> Result<Option<PodCache>, K8sError> {
        let mut slot = self.0.lock().await;
        if let Some(cache) = slot.as_ref()
            && Some(cache.config()) == config
        {
            return Ok(Some(cache.clone()));
        }
        if let Some(old) = slot.take() {
            old.stop();
        }
        let Some(config) = config else {
            return Ok(None);
        };
        let cache = PodCache::start(config.clone(), telemetry).await?;
        *slot = Some(cache.clone());
        Ok(Some(cache))
    }
}
