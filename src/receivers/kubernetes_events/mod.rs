//! `receivers.kubernetes_events`: the cluster's Kubernetes events
//! (`events.k8s.io/v1`) as log lines, shipped by the leader
//! (`[kubernetes.leader]`) so that each event is shipped once per cluster.
//!
//! - [`config`]: the `receivers.kubernetes_events.NAME` table.
//! - [`line`]: one event as one line, in Alloy's
//!   `loki.source.kubernetes_events` format (logfmt or JSON).
//! - [`state`]: what was shipped (event uids with their counts, the
//!   watches' resourceVersions), bounded, mergeable, in a text form.
//! - [`store`]: the ConfigMap that carries that state to the next leader.
//! - [`receiver`]: the list-and-watch, the batches, the acknowledgements.

pub mod config;
pub mod line;
pub mod receiver;
pub mod state;
pub mod store;

pub use config::{KubernetesEventsConfig, RawKubernetesEventsConfig};

use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::config::ComponentId;
use crate::delivery::MemoryLimiter;
use crate::k8s::KubernetesConfig;
use crate::receivers::{Inputs, RunningReceiver};
use crate::telemetry::Telemetry;

/// What the receiver needs of the process besides its config.
pub struct Start<'a> {
    pub kubernetes: Option<&'a KubernetesConfig>,
    pub leading: Option<&'a tokio::sync::watch::Receiver<bool>>,
    pub data_dir: &'a Path,
}

pub async fn start(
    id: &ComponentId,
    config: &KubernetesEventsConfig,
    inputs: Inputs,
    limiter: Arc<MemoryLimiter>,
    telemetry: &Arc<Telemetry>,
    cx: Start<'_>,
) -> std::io::Result<RunningReceiver> {
    let stop = CancellationToken::new();
    let Some(inputs) = inputs.logs else {
        return Ok(RunningReceiver::new(id.clone(), stop, Vec::new()));
    };
    let invalid = |message: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, message);
    // The plan checks both; a receiver started without them would ship
    // nothing, or ship on every node.
    let kubernetes = cx
        .kubernetes
        .ok_or_else(|| invalid("needs a [kubernetes] section"))?;
    let leading = match (config.leader_only, cx.leading) {
        (true, None) => return Err(invalid("leader_only needs [kubernetes.leader]")),
        (true, Some(leading)) => Some(leading.clone()),
        (false, _) => None,
    };
    let client = crate::k8s::cache::client(kubernetes)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let file = state::state_path(cx.data_dir, &id.name);
    let saved = crate::delivery::checkpoint::open(
        &file,
        "kubernetes events state",
        id,
        state::Shipped::load,
    )?;
    let namespace = config.state_namespace.as_deref().or_else(|| {
        kubernetes
            .leader
            .as_ref()
            .and_then(|l| l.lease_namespace.as_deref())
    });
    let store = config
        .configmap_for(&id.name)
        .map(|name| store::KubeConfigMap::new(client.clone(), namespace, &name));
    let shipper = receiver::Shipper {
        id: id.clone(),
        config: config.clone(),
        inputs,
        limiter,
        counters: receiver::Counters::new(telemetry, id),
        client,
        store,
        file,
        acked: saved.unwrap_or_default(),
        leading,
        stop: stop.clone(),
    };
    tracing::info!(receiver = %id, namespaces = ?config.watch_keys(), leader_only = config.leader_only, "kubernetes_events receiver started");
    let task = tokio::spawn(shipper.run());
    Ok(RunningReceiver::new(id.clone(), stop, vec![task]))
}

#[cfg(test)]
mod tests;
