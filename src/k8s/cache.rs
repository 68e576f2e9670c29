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
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::runtime::watcher;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::{KubernetesConfig, NamespaceKeys};
use super::namespace::NamespaceInfo;
use super::node::NodeInfo;
use super::pod::PodInfo;
use crate::telemetry::{CauseLabels, K8sFamilies, Telemetry};

/// Pods the cache holds at most. A node runs 110 by default and rarely more
/// than a few hundred; past this, pods are counted and left out rather than
/// letting a misbehaving API answer grow the agent.
pub const MAX_PODS: usize = 4096;

/// Namespaces the cache holds at most, when it watches them: clusters with
/// more are rare, and the cap keeps one from growing every agent.
pub const MAX_NAMESPACES: usize = 16384;

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

/// A client of the API server `config` names (explicit `api_server`, else
/// the in-cluster config, else kubeconfig).
pub async fn client(config: &KubernetesConfig) -> Result<kube::Client, K8sError> {
    let mut kube_config = match &config.api_server {
        Some(uri) => kube::Config::new(uri.clone()),
        None => kube::Config::infer()
            .await
            .map_err(|e| K8sError::NoConfig(e.to_string()))?,
    };
    // The client's own retry of 429/503/504 (up to 15 times, waits growing
    // to minutes) would hide an outage from the error counters and from the
    // log; the watch loops and the leader election retry, count and back off.
    kube_config.default_retry = false;
    kube::Client::try_from(kube_config).map_err(|e| K8sError::Client(e.to_string()))
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
    /// Empty unless `config.namespaces` is set.
    namespaces: RwLock<Namespaces>,
    /// This node, when `config.watch_node` is set and the watch has it.
    node: RwLock<NodeSlot>,
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
        let client = client(&config).await?;
        let cache = Self::empty(config, telemetry);
        // All namespaces, but one node: the field selector is what keeps a
        // DaemonSet from watching the whole cluster.
        let api: kube::Api<Pod> = kube::Api::all(client.clone());
        tokio::spawn(run(cache.inner.clone(), api));
        if cache.inner.config.watch_node {
            let api: kube::Api<Node> = kube::Api::all(client.clone());
            tokio::spawn(run_node(cache.inner.clone(), api));
        }
        if cache.inner.config.namespaces.is_some() {
            let api: kube::Api<Namespace> = kube::Api::all(client);
            tokio::spawn(run_namespaces(cache.inner.clone(), api));
        }
        tracing::info!(
            node = %cache.inner.config.node_name,
            "pod cache started: watching the pods of this node"
        );
        Ok(cache)
    }

    /// A cache with no watch behind it (filled by [`PodCache::apply`]).
    pub fn empty(config: KubernetesConfig, telemetry: &Arc<Telemetry>) -> PodCache {
        let namespaces = Namespaces {
            wanted: config.namespaces.clone().unwrap_or_default(),
            listed: config.namespaces.is_none(),
            ..Default::default()
        };
        PodCache {
            inner: Arc::new(Inner {
                config,
                store: RwLock::new(Store::default()),
                namespaces: RwLock::new(namespaces),
                node: RwLock::new(NodeSlot::default()),
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

    /// The namespace `name`, if namespaces are watched and it exists.
    pub fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        self.namespaces().by_name.get(name).cloned()
    }

    pub fn namespace_count(&self) -> usize {
        self.namespaces().by_name.len()
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

    /// Whether a complete list of the node's pods has arrived. (Namespaces,
    /// when watched, are not waited for: a forbidden namespace watch must
    /// not hold up a start; see [`Self::namespaces_synced`].)
    pub fn is_synced(&self) -> bool {
        *self.inner.synced.borrow()
    }

    /// Whether namespaces are not watched, or a complete list of them has
    /// arrived.
    pub fn namespaces_synced(&self) -> bool {
        self.namespaces().listed
    }

    /// Waits up to `timeout` for the first complete list of pods.
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

    /// Applies one event of the pod watch.
    pub fn apply(&self, event: watcher::Event<Pod>, relist: &mut Relist) {
        let t = &self.inner.telemetry.k8s;
        let changed = {
            let mut store = self.inner.store.write().unwrap_or_else(|e| e.into_inner());
            let changed = apply_event(&mut *store, event, relist, t);
            t.pods_cached.set(store.by_uid.len() as i64);
            t.cache_bytes.set(store.bytes as i64);
            changed
        };
        if changed {
            if !*self.inner.synced.borrow() {
                self.inner.synced.send_replace(true);
                t.synced.set(1);
            }
            self.inner.changes.send_modify(|v| *v += 1);
        }
    }

    /// This node, once the node watch has it.
    pub fn node(&self) -> Option<Arc<NodeInfo>> {
        self.inner
            .node
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Applies one event of the node watch (this node only).
    pub fn apply_node(&self, event: watcher::Event<Node>, relist: &mut Relist) {
        let t = &self.inner.telemetry.k8s;
        let changed = {
            let mut slot = self.inner.node.write().unwrap_or_else(|e| e.into_inner());
            apply_event(&mut *slot, event, relist, t)
        };
        if changed {
            self.inner.changes.send_modify(|v| *v += 1);
        }
    }

    /// Applies one event of the namespace watch.
    pub fn apply_namespace(&self, event: watcher::Event<Namespace>, relist: &mut Relist) {
        let t = &self.inner.telemetry.k8s;
        let mut store = self
            .inner
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner());
        store.listed |= matches!(event, watcher::Event::InitDone);
        apply_event(&mut *store, event, relist, t);
        t.namespaces_cached.set(store.by_name.len() as i64);
        t.namespace_bytes.set(store.bytes as i64);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.inner.store.read().unwrap_or_else(|e| e.into_inner())
    }

    fn namespaces(&self) -> std::sync::RwLockReadGuard<'_, Namespaces> {
        self.inner
            .namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// A store one watch's objects go into, by key (a pod's uid, a
/// namespace's name).
pub(super) trait Keyed<K> {
    /// Takes or replaces `object`: its key, or `None` if it was not taken
    /// (incomplete, or the store is full; counted).
    fn upsert(&mut self, object: &K, t: &K8sFamilies) -> Option<Arc<str>>;
    fn key_of(object: &K) -> Option<&str>;
    fn keys(&self) -> Vec<Arc<str>>;
    fn remove(&mut self, key: &str);
}

/// Applies one watch event to `store`: a (re)list replaces the contents
/// only once complete, so lookups keep working throughout. Whether what
/// the store holds may have changed.
pub(super) fn apply_event<K, S: Keyed<K>>(
    store: &mut S,
    event: watcher::Event<K>,
    relist: &mut Relist,
    t: &K8sFamilies,
) -> bool {
    match event {
        watcher::Event::Init => {
            if relist.lists > 0 {
                t.relists.inc();
            }
            relist.lists += 1;
            relist.seen = Some(HashSet::new());
            false
        }
        watcher::Event::InitApply(object) => {
            if let Some(key) = store.upsert(&object, t)
                && let Some(seen) = &mut relist.seen
            {
                seen.insert(key);
            }
            false
        }
        watcher::Event::InitDone => {
            // Whatever the new list did not name is gone.
            if let Some(seen) = relist.seen.take() {
                for key in store.keys() {
                    if !seen.contains(&key) {
                        store.remove(&key);
                    }
                }
            }
            true
        }
        watcher::Event::Apply(object) => {
            store.upsert(&object, t);
            true
        }
        watcher::Event::Delete(object) => {
            if let Some(key) = S::key_of(&object) {
                store.remove(key);
            }
            true
        }
    }
}

impl Keyed<Pod> for Store {
    fn upsert(&mut self, pod: &Pod, t: &K8sFamilies) -> Option<Arc<str>> {
        let mut skipped = 0;
        let not_cached = |reason| {
            t.pods_not_cached
                .get_or_create(&CauseLabels { reason })
                .inc()
        };
        let info = match PodInfo::from_pod(pod, &mut skipped) {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "pod not cached");
                not_cached("incomplete");
                return None;
            }
        };
        t.annotations_skipped.inc_by(skipped);
        let uid = info.uid.clone();
        if !self.insert(info) {
            not_cached("cache_full");
            return None;
        }
        Some(uid)
    }

    fn key_of(pod: &Pod) -> Option<&str> {
        pod.metadata.uid.as_deref()
    }

    fn keys(&self) -> Vec<Arc<str>> {
        self.by_uid.keys().cloned().collect()
    }

    fn remove(&mut self, uid: &str) {
        Store::remove(self, uid)
    }
}

/// The one node a node watch follows.
#[derive(Default)]
struct NodeSlot(Option<Arc<NodeInfo>>);

impl Keyed<Node> for NodeSlot {
    fn upsert(&mut self, node: &Node, _: &K8sFamilies) -> Option<Arc<str>> {
        let info = NodeInfo::from_node(node)?;
        let name = info.name.clone();
        self.0 = Some(Arc::new(info));
        Some(name)
    }

    fn key_of(node: &Node) -> Option<&str> {
        node.metadata.name.as_deref()
    }

    fn keys(&self) -> Vec<Arc<str>> {
        self.0.iter().map(|n| n.name.clone()).collect()
    }

    fn remove(&mut self, _: &str) {
        self.0 = None;
    }
}

impl Keyed<Namespace> for Namespaces {
    fn upsert(&mut self, namespace: &Namespace, t: &K8sFamilies) -> Option<Arc<str>> {
        let mut skipped = 0;
        let info = match NamespaceInfo::from_namespace(namespace, &self.wanted, &mut skipped) {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "namespace not cached");
                return None;
            }
        };
        t.annotations_skipped.inc_by(skipped);
        let name = info.name.clone();
        if !self.insert(info) {
            t.namespaces_not_cached.inc();
            return None;
        }
        Some(name)
    }

    fn key_of(namespace: &Namespace) -> Option<&str> {
        namespace.metadata.name.as_deref()
    }

    fn keys(&self) -> Vec<Arc<str>> {
        self.by_name.keys().cloned().collect()
    }

    fn remove(&mut self, name: &str) {
        Namespaces::remove(self, name)
    }
}

/// The cached namespaces, by name, and their approximate heap bytes.
#[derive(Default)]
struct Namespaces {
    /// The labels and annotations kept: those some processor copies.
    wanted: NamespaceKeys,
    /// A complete list arrived (from the start, when namespaces are not
    /// watched).
    listed: bool,
    by_name: HashMap<Arc<str>, Arc<NamespaceInfo>>,
    bytes: usize,
}

impl Namespaces {
    /// Inserts or replaces a namespace; `false` when the cache is full.
    fn insert(&mut self, ns: NamespaceInfo) -> bool {
        let old = self.by_name.get(&ns.name);
        if old.is_none() && self.by_name.len() >= MAX_NAMESPACES {
            return false;
        }
        let old_bytes = old.map_or(0, |o| o.heap_bytes());
        self.bytes = self.bytes.saturating_sub(old_bytes) + ns.heap_bytes();
        self.by_name.insert(ns.name.clone(), Arc::new(ns));
        true
    }

    fn remove(&mut self, name: &str) {
        if let Some(old) = self.by_name.remove(name) {
            self.bytes = self.bytes.saturating_sub(old.heap_bytes());
        }
    }
}

/// Progress of a (re)list: which pods (uids) or namespaces (names) it named
/// so far.
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

/// The pod watch: this node's pods into the cache.
async fn run(inner: Arc<Inner>, api: kube::Api<Pod>) {
    let cache = PodCache {
        inner: inner.clone(),
    };
    let config = watcher::Config::default()
        .fields(&format!("spec.nodeName={}", inner.config.node_name))
        // Lists are served from the API server's watch cache instead of
        // etcd: a thousand agents relisting at once stay cheap.
        .any_semantic();
    let mut relist = Relist::default();
    follow(
        &inner.stop,
        &inner.telemetry,
        watcher(api, config),
        "pod",
        || cache.len(),
        |event| cache.apply(event, &mut relist),
    )
    .await;
}

/// The node watch, for `role = "node"` discovery: this node's Node object
/// only (a field selector on its name).
async fn run_node(inner: Arc<Inner>, api: kube::Api<Node>) {
    let cache = PodCache {
        inner: inner.clone(),
    };
    let config = watcher::Config::default()
        .fields(&format!("metadata.name={}", inner.config.node_name))
        .any_semantic();
    let mut relist = Relist::default();
    follow(
        &inner.stop,
        &inner.telemetry,
        watcher(api, config),
        "node",
        || usize::from(cache.node().is_some()),
        |event| cache.apply_node(event, &mut relist),
    )
    .await;
}

/// The namespace watch, for namespace labels and annotations: every
/// namespace (there is no node to scope them by; they are few and small).
async fn run_namespaces(inner: Arc<Inner>, api: kube::Api<Namespace>) {
    let cache = PodCache {
        inner: inner.clone(),
    };
    let config = watcher::Config::default().any_semantic();
    let mut relist = Relist::default();
    follow(
        &inner.stop,
        &inner.telemetry,
        watcher(api, config),
        "namespace",
        || cache.namespace_count(),
        |event| cache.apply_namespace(event, &mut relist),
    )
    .await;
}

/// A watch loop: events into `apply`, errors counted and backed off while
/// the cache keeps serving what it has (`cached` of them).
pub(super) async fn follow<K>(
    stop: &CancellationToken,
    telemetry: &Telemetry,
    stream: impl futures_util::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    what: &'static str,
    cached: impl Fn() -> usize,
    mut apply: impl FnMut(watcher::Event<K>),
) {
    let mut stream = std::pin::pin!(stream);
    let mut backoff = BACKOFF_MIN;
    let mut failing = false;
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            next = stream.next() => next,
        };
        match next {
            None => return,
            Some(Ok(event)) => {
                if failing {
                    tracing::info!(cached = cached(), "{what} watch is back");
                    failing = false;
                }
                backoff = BACKOFF_MIN;
                apply(event);
            }
            Some(Err(error)) => {
                let reason = error_reason(&error);
                telemetry
                    .k8s
                    .api_errors
                    .get_or_create(&CauseLabels { reason })
                    .inc();
                if reason == "gone" {
                    // The watcher lists afresh at once: that is the remedy.
                    tracing::info!("{what} watch expired (410 Gone); listing again");
                    continue;
                }
                if !failing {
                    tracing::warn!(
                        %error,
                        reason,
                        cached = cached(),
                        "Kubernetes API request for {what}s failed; serving cached {what}s and retrying"
                    );
                    if reason == "forbidden" {
                        tracing::warn!(
                            "ferro's service account may not list and watch {what}s: grant get, list and watch on them (deploy/kubernetes/ferro.yaml)"
                        );
                    }
                    failing = true;
                } else {
                    tracing::debug!(%error, reason, "Kubernetes API request for {what}s failed again");
                }
                let wait = jitter(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tokio::select! {
                    _ = stop.cancelled() => return,
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
        // The leader election is not the cache's: a change there keeps it.
        let config = config.map(KubernetesConfig::without_leader);
        let config = config.as_ref();
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
