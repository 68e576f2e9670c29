//! The top-level settings other than the component sections, and the
//! `[kubernetes]` checks that depend on what the components need.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::document::Document;
use crate::config::{ByteSize, ComponentId, FieldError, HumanDuration, Validate};
use crate::k8s::{KubernetesConfig, NamespaceKeys, PodCacheUse, RawKubernetesConfig};
use crate::processors::ProcessorConfig;
use crate::receivers::ReceiverConfig;
use crate::telemetry::{LogConfig, TelemetryConfig};

#[derive(Deserialize)]
pub(super) struct RawGlobals {
    data_dir: Option<PathBuf>,
    memory_limit: Option<ByteSize>,
    shutdown_timeout: Option<HumanDuration>,
    #[serde(default)]
    telemetry: TelemetryConfig,
    #[serde(default)]
    log: LogConfig,
    kubernetes: Option<RawKubernetesConfig>,
}

pub(super) struct Globals {
    pub data_dir: PathBuf,
    pub memory_limit: ByteSize,
    pub shutdown_timeout: HumanDuration,
    pub telemetry: TelemetryConfig,
    pub log: LogConfig,
    pub kubernetes: Option<KubernetesConfig>,
}

impl Validate for RawGlobals {
    type Valid = Globals;
    fn validate(self) -> Result<Globals, Vec<FieldError>> {
        let mut errors = Vec::new();
        let memory_limit = self.memory_limit.unwrap_or(ByteSize::mib(256));
        if memory_limit.get() < 1 << 20 {
            errors.push(FieldError::new("memory_limit", "must be at least 1MiB"));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            errors.push(FieldError::new(
                "log.level",
                format!("not a log filter: {e}"),
            ));
        }
        let kubernetes = match self.kubernetes.map(Validate::validate) {
            None => None,
            Some(Ok(k)) => Some(k),
            Some(Err(found)) => {
                errors.extend(
                    found
                        .into_iter()
                        .map(|e| FieldError::new(format!("kubernetes.{}", e.field), e.message)),
                );
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Globals {
            kubernetes,
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from("/var/lib/ferro")),
            memory_limit,
            shutdown_timeout: self
                .shutdown_timeout
                .unwrap_or(HumanDuration::from_secs(10)),
            telemetry: self.telemetry,
            log: self.log,
        })
    }
}

/// The namespace labels and annotations the processors copy; `None` (no
/// namespace watch) when none does.
pub(super) fn namespace_keys(
    processors: &BTreeMap<ComponentId, ProcessorConfig>,
) -> Option<NamespaceKeys> {
    let mut keys = NamespaceKeys::default();
    for config in processors.values() {
        config.namespace_keys(&mut keys);
    }
    (!keys.labels.is_empty() || !keys.annotations.is_empty()).then_some(keys)
}

/// Components that read the pod cache need `[kubernetes]` to say which
/// node's pods to watch.
pub(super) fn check_kubernetes(
    doc: &mut Document<'_>,
    globals: &Globals,
    processors: &BTreeMap<ComponentId, ProcessorConfig>,
    receivers: &BTreeMap<ComponentId, ReceiverConfig>,
) {
    for (id, config) in receivers {
        let Some((what, needs_leader)) = config.api_use() else {
            continue;
        };
        match &globals.kubernetes {
            None => doc.push(
                format!("receivers.{id}"),
                None,
                format!("{what} needs a [kubernetes] section (node_name = \"${{NODE_NAME}}\"; api_server or the in-cluster config)"),
            ),
            Some(k) if needs_leader && k.leader.is_none() => doc.push(
                format!("receivers.{id}.leader_only"),
                None,
                format!("{what} ships only on the cluster's leader: add [kubernetes.leader], or set leader_only = false where a single agent runs it"),
            ),
            Some(_) => {}
        }
    }
    if globals.kubernetes.is_some() {
        return;
    }
    let mut report = |path: String, used: PodCacheUse| {
        let hint = "needs a [kubernetes] section with node_name = \"${NODE_NAME}\" (NODE_NAME from the downward API's spec.nodeName)";
        let message = match used.otherwise {
            Some(otherwise) => format!("{} {hint}, or {otherwise}", used.setting),
            None => format!("{} {hint}", used.setting),
        };
        doc.push(path, None, message);
    };
    for (id, config) in processors {
        if let Some(used) = config.pod_cache_use() {
            report(format!("processors.{id}"), used);
        }
    }
    for (id, config) in receivers {
        if let Some(used) = config.pod_cache_use() {
            report(format!("receivers.{id}"), used);
        }
    }
}
