//! Scrape target discovery shared by the scrape receivers (`prometheus`,
//! `pprof`): target groups from `static_configs`, `file_sd_configs` and the
//! pods of this node (the process's pod cache), turned into targets by the
//! receiver's own rules (relabelling included) and reconciled into one
//! running scrape loop per target.
//!
//! Each receiver says how pods become target groups ([`PodGroups`]): the
//! groups carry the pod's `__meta_kubernetes_*` facts, and the reconcile
//! loop runs again on every change of the cache, starting and stopping loops
//! as pods come and go.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{FileSd, FileSdConfig, StaticConfig};
use crate::k8s::{PodCache, PodInfo};

/// How a receiver turns the pods of this node into target groups.
pub type PodGroups = Arc<dyn Fn(&[Arc<PodInfo>]) -> Vec<StaticConfig> + Send + Sync>;

/// How often `file_sd` files are checked for changes.
const FILE_SD_CHECK: Duration = Duration::from_secs(5);

/// Where one scrape job's target groups come from.
#[derive(Clone, Default)]
pub struct Sources {
    pub static_groups: Vec<StaticConfig>,
    pub file_sd: Vec<FileSdConfig>,
    /// The pod cache and how its pods become groups, for Kubernetes discovery.
    pub pods: Option<(PodCache, PodGroups)>,
    /// Changes of what else `pods`' groups read (the cluster's Services and
    /// the leader's EndpointSlices, for a ServiceMonitor's job).
    pub also_changes: Vec<tokio::sync::watch::Receiver<u64>>,
}

impl Sources {
    /// The groups these sources give now, `file_sd` files as `file_sd`
    /// last read them.
    fn groups(&self, file_sd: &[FileSd]) -> Vec<StaticConfig> {
        let mut groups = self.static_groups.clone();
        for sd in file_sd {
            groups.extend(sd.groups().cloned());
        }
        if let Some((cache, pod_groups)) = &self.pods {
            groups.extend(pod_groups(&cache.pods()));
        }
        groups
    }

    /// The groups these sources give now, `file_sd` files read afresh: what
    /// a job about to start would find.
    pub fn groups_now(&self) -> Vec<StaticConfig> {
        let file_sd: Vec<FileSd> = self
            .file_sd
            .iter()
            .map(|config| {
                let mut sd = FileSd::default();
                sd.refresh(&config.files);
                sd
            })
            .collect();
        self.groups(&file_sd)
    }
}

/// Keeps one loop running per current target: `resolve` turns the groups
/// into targets, `spawn` starts a target's loop, which must end when its
/// token is cancelled. Targets that disappear are stopped (and awaited)
/// before new ones start; everything stops with `stop`.
pub async fn reconcile<T, R, S>(
    job: &str,
    sources: Sources,
    resolve: R,
    spawn: S,
    stop: CancellationToken,
) where
    T: Ord + Clone,
    R: Fn(&[StaticConfig]) -> Vec<T>,
    S: Fn(T, CancellationToken) -> JoinHandle<()>,
{
    let mut running: BTreeMap<T, (CancellationToken, JoinHandle<()>)> = BTreeMap::new();
    let mut file_sd: Vec<FileSd> = sources.file_sd.iter().map(|_| FileSd::default()).collect();
    let mut check = tokio::time::interval(FILE_SD_CHECK);
    let mut pod_changes = sources.pods.as_ref().map(|(cache, _)| cache.changes());
    let mut also_changes: Vec<_> = sources.also_changes.iter().cloned().map(Some).collect();
    let mut first = true;
    loop {
        let mut changed = first;
        tokio::select! {
            _ = check.tick() => {}
            _ = pods_changed(&mut pod_changes) => changed = true,
            _ = any_changed(&mut also_changes) => changed = true,
            _ = stop.cancelled() => break,
        }
        first = false;
        for (sd, config) in file_sd.iter_mut().zip(&sources.file_sd) {
            changed |= sd.refresh(&config.files);
        }
        if !changed {
            continue;
        }
        let wanted = resolve(&sources.groups(&file_sd));
        let current: Vec<T> = running.keys().cloned().collect();
        for target in current.iter().filter(|t| !wanted.contains(t)) {
            if let Some((token, handle)) = running.remove(target) {
                token.cancel();
                let _ = handle.await;
            }
        }
        for target in wanted {
            if running.contains_key(&target) {
                continue;
            }
            let token = CancellationToken::new();
            let handle = spawn(target.clone(), token.clone());
            running.insert(target, (token, handle));
        }
        tracing::debug!(job, targets = running.len(), "scrape targets updated");
    }
    for (token, _) in running.values() {
        token.cancel();
    }
    for (_, (_, handle)) in running {
        let _ = handle.await;
    }
}

/// Resolves when one of `changes` changed; never without one.
async fn any_changed(changes: &mut [Option<tokio::sync::watch::Receiver<u64>>]) {
    if changes.is_empty() {
        return std::future::pending().await;
    }
    let waits = changes.iter_mut().map(|c| Box::pin(pods_changed(c)));
    futures_util::future::select_all(waits).await;
}

/// Resolves when the pod cache (or what `changes` follows) changed; never
/// without one.
async fn pods_changed(changes: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    let Some(rx) = changes else {
        return std::future::pending().await;
    };
    if rx.changed().await.is_err() {
        // The cache is gone (never while the process runs): stop asking.
        *changes = None;
        std::future::pending::<()>().await;
    }
}
