//! Where a scrape job finds its targets, as Prometheus' `scrape_config` names
//! it: `static_configs`, `file_sd_configs`, and `kubernetes_sd_configs`
//! (the pods of this node only).

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::config::{FieldError, HumanDuration};

/// A target group: addresses and the labels they share.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Target groups read from JSON or YAML files, re-read when they change.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct FileSdConfig {
    /// Paths; the last element may contain a `*` glob.
    pub files: Vec<String>,
    pub refresh_interval: Option<HumanDuration>,
}

/// Targets from the pods of this node, as Prometheus' `kubernetes_sd_configs`
/// names it; the pods come from the process's pod cache. Shared by the
/// scrape receivers (`prometheus`, `pprof`), which read the prefix their own way.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetesSdConfig {
    /// `pod` (the pods of this node), or `node` (this node itself, for the
    /// scrape receiver): ferro watches nothing cluster-wide.
    role: String,
    /// The annotation prefix by which pods ask to be scraped
    /// (`PREFIX/scrape: "true"`, `PREFIX/port`, `PREFIX/path`,
    /// `PREFIX/scheme`); `""` takes every container port of every pod, as
    /// Prometheus does, for `relabel_configs` to choose.
    annotations: Option<String>,
}

impl RawKubernetesSdConfig {
    /// Whether this is `role = "node"`: this node, not its pods.
    pub fn is_node(&self) -> bool {
        self.role == "node"
    }

    /// The annotation prefix pods ask with (`default` when not set), or
    /// `None` for every container port of every pod; an error at `at` for
    /// a role other than `pod`.
    pub fn check(&self, at: String, default: &str, errors: &mut Vec<FieldError>) -> Option<String> {
        if self.role != "pod" {
            errors.push(FieldError::new(
                format!("{at}.role"),
                format!(
                    "`{}` is not supported here: only role = \"pod\" (the prometheus receiver also takes \"node\"): ferro watches its own node and its pods, nothing cluster-wide",
                    self.role
                ),
            ));
        }
        let prefix = self.annotations.as_deref().unwrap_or(default);
        (!prefix.is_empty()).then(|| prefix.to_string())
    }
}
