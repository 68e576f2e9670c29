use serde::Deserialize;
use std::collections::BTreeMap;

use crate::config::{FieldError, Validate};
use crate::k8s::{is_namespace_name, is_object_name};
use crate::signal::names::is_label_name;

/// `[receivers.kubernetes_events.NAME]` as written.
#[derive(Deserialize)]
pub struct RawKubernetesEventsConfig {
    /// Only the events of these namespaces (one watch each); all when empty.
    #[serde(default)]
    namespaces: Vec<String>,
    /// `logfmt` (Alloy's default) or `json`.
    format: Option<String>,
    /// The `job` label of every stream.
    job: Option<String>,
    /// Labels added to every stream of this receiver.
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Ship only while this agent leads (`[kubernetes.leader]`).
    leader_only: Option<bool>,
    /// The ConfigMap that keeps what was shipped for the next leader; `""` for none.
    state_configmap: Option<String>,
    /// The ConfigMap's namespace; by default the Lease's, else the service account's.
    state_namespace: Option<String>,
}

/// How an event is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Logfmt,
    Json,
}

/// A checked `[receivers.kubernetes_events.NAME]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesEventsConfig {
    pub namespaces: Vec<String>,
    pub format: Format,
    pub job: String,
    pub labels: BTreeMap<String, String>,
    pub leader_only: bool,
    /// `None`: the state is kept only under `data_dir`.
    pub state_configmap: Option<String>,
    pub state_namespace: Option<String>,
}

/// Labels the receiver sets itself.
const OWN_LABELS: [&str; 3] = ["namespace", "job", "kind"];

impl Validate for RawKubernetesEventsConfig {
    type Valid = KubernetesEventsConfig;

    fn validate(self) -> Result<KubernetesEventsConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut namespaces = Vec::new();
        for (i, namespace) in self.namespaces.into_iter().enumerate() {
            if !is_namespace_name(&namespace) {
                errors.push(FieldError::new(
                    format!("namespaces.{i}"),
                    format!("`{namespace}` is not a namespace name (lower-case letters, digits and -, at most 63)"),
                ));
            } else if namespaces.contains(&namespace) {
                errors.push(FieldError::new(
                    format!("namespaces.{i}"),
                    format!("`{namespace}` is listed twice"),
                ));
            } else {
                namespaces.push(namespace);
            }
        }
        let format = match self.format.as_deref() {
            None | Some("logfmt") => Format::Logfmt,
            Some("json") => Format::Json,
            Some(other) => {
                errors.push(FieldError::new(
                    "format",
                    format!("`{other}` is not a format; use `logfmt` or `json`"),
                ));
                Format::Logfmt
            }
        };
        let job = self
            .job
            .unwrap_or_else(|| "loki.source.kubernetes_events".into());
        if job.is_empty() {
            errors.push(FieldError::new("job", "must not be empty"));
        }
        for name in self.labels.keys() {
            if !is_label_name(name) {
                errors.push(FieldError::new(
                    format!("labels.{name}"),
                    "not a label name (letters, digits and _, not starting with a digit)",
                ));
            } else if OWN_LABELS.contains(&name.as_str()) {
                errors.push(FieldError::new(
                    format!("labels.{name}"),
                    format!("`{name}` is set by the receiver from each event"),
                ));
            }
        }
        let state_configmap = match self.state_configmap {
            Some(name) if name.is_empty() => None,
            Some(name) => {
                if !is_object_name(&name) {
                    errors.push(FieldError::new(
                        "state_configmap",
                        format!("`{name}` is not a Kubernetes object name (lower-case letters, digits, - and .)"),
                    ));
                }
                Some(name)
            }
            // Filled in with the receiver's name by `with_name`.
            None => Some(String::new()),
        };
        if let Some(namespace) = &self.state_namespace
            && !is_namespace_name(namespace)
        {
            errors.push(FieldError::new(
                "state_namespace",
                format!("`{namespace}` is not a namespace name (lower-case letters, digits and -, at most 63)"),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(KubernetesEventsConfig {
            namespaces,
            format,
            job,
            labels: self.labels,
            leader_only: self.leader_only.unwrap_or(true),
            state_configmap,
            state_namespace: self.state_namespace,
        })
    }
}

impl KubernetesEventsConfig {
    /// The default ConfigMap name for receiver `name`:
    /// `ferro-events-<name>`, with `_` as `-` (a receiver name may hold
    /// what an object name may not; such a name asks for an explicit
    /// `state_configmap`).
    pub fn configmap_for(&self, name: &str) -> Option<String> {
        match self.state_configmap.as_deref() {
            None => None,
            Some("") => Some(format!("ferro-events-{}", name.replace('_', "-"))),
            Some(explicit) => Some(explicit.to_string()),
        }
    }

    /// The watches: `*` for all namespaces, else one per namespace.
    pub fn watch_keys(&self) -> Vec<String> {
        if self.namespaces.is_empty() {
            vec!["*".to_string()]
        } else {
            self.namespaces.clone()
        }
    }
}
