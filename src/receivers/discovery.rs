//! Scrape target discovery shared by the scrape receivers (`prometheus`,
//! `pprof`): target groups from `static_configs` and `file_sd_configs`,
//! turned into targets by the receiver's own rules (relabelling included)
//! and reconciled into one running scrape loop per target.
//!
//! Kubernetes pod discovery is one more [`Sources`] member: it yields target
//! groups whose labels carry the pod's `__meta_kubernetes_*` facts, and the
//! same reconcile loop starts and stops loops as pods come and go.

use std::collections::BTreeMap;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::receivers::prometheus::targets::FileSd;
use crate::receivers::prometheus::{FileSdConfig, StaticConfig};

/// How often `file_sd` files are checked for changes.
const FILE_SD_CHECK: Duration = Duration::from_secs(5);

/// Where one scrape job's target groups come from.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub static_groups: Vec<StaticConfig>,
    pub file_sd: Vec<FileSdConfig>,
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
    let mut first = true;
    loop {
        tokio::select! {
            _ = check.tick() => {}
            _ = stop.cancelled() => break,
        }
        let mut changed = first;
        first = false;
        for (sd, config) in file_sd.iter_mut().zip(&sources.file_sd) {
            changed |= sd.refresh(&config.files);
        }
        if !changed {
            continue;
        }
        let mut groups = sources.static_groups.clone();
        for sd in &file_sd {
            groups.extend(sd.groups().cloned());
        }
        let wanted = resolve(&groups);
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
