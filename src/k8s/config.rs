use serde::Deserialize;

use super::leader::LeaderConfig;
use crate::config::{FieldError, HumanDuration, Validate};

/// `[kubernetes]` as written: how the process-wide pod cache reaches the
/// API server.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RawKubernetesConfig {
    /// The node whose pods are watched, normally `"${NODE_NAME}"` from the
    /// downward API: a DaemonSet watches only its own node's pods.
    node_name: Option<String>,
    /// The API server's URL, used without credentials instead of the
    /// in-cluster config or kubeconfig (a local test server, `kubectl proxy`).
    api_server: Option<String>,
    /// One leader per cluster on a Lease, for the work that belongs to no node.
    leader: Option<RawLeaderConfig>,
}

/// `[kubernetes.leader]` as written: client-go's leader election settings.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RawLeaderConfig {
    /// The Lease's name.
    lease_name: Option<String>,
    /// The Lease's namespace; by default the one ferro's service account is in.
    lease_namespace: Option<String>,
    /// Who holds the Lease: `"${POD_NAME}"` from the downward API; by default the node's name.
    identity: Option<String>,
    /// How long a Lease not renewed stays another agent's.
    lease_duration: Option<HumanDuration>,
    /// How long a leader keeps trying to renew before it stops leading.
    renew_deadline: Option<HumanDuration>,
    /// How often candidates try to take the Lease and the leader renews it.
    retry_period: Option<HumanDuration>,
}

/// A checked `[kubernetes]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesConfig {
    pub node_name: String,
    pub api_server: Option<http::Uri>,
    /// Whether namespaces are watched too, and which of their labels and
    /// annotations are kept: set from the `k8s_attributes` processors that
    /// copy namespace metadata, never written.
    pub namespaces: Option<NamespaceKeys>,
    /// Whether this node's Node object is watched (for `role = "node"`
    /// discovery): set from the receivers that discover it, never written.
    pub watch_node: bool,
    /// `[kubernetes.leader]`, if this agent takes part in leader election.
    pub leader: Option<LeaderConfig>,
}

impl KubernetesConfig {
    /// This config without `[kubernetes.leader]`: what the pod cache runs on.
    pub fn without_leader(&self) -> KubernetesConfig {
        KubernetesConfig {
            leader: None,
            ..self.clone()
        }
    }
}

/// The namespace labels and annotations some processor copies: all the
/// namespace cache keeps of a namespace, besides its name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceKeys {
    pub labels: std::collections::BTreeSet<String>,
    pub annotations: std::collections::BTreeSet<String>,
}

impl Validate for RawKubernetesConfig {
    type Valid = KubernetesConfig;

    fn validate(self) -> Result<KubernetesConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let node_name = self.node_name.unwrap_or_default();
        if node_name.is_empty() {
            errors.push(FieldError::new(
                "node_name",
                "must name this node (node_name = \"${NODE_NAME}\", with NODE_NAME from the downward API's spec.nodeName): ferro never watches the pods of the whole cluster",
            ));
        }
        let api_server = match self.api_server {
            None => None,
            Some(url) => match url.parse::<http::Uri>() {
                Ok(uri)
                    if matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.host().is_some() =>
                {
                    Some(uri)
                }
                _ => {
                    errors.push(FieldError::new(
                        "api_server",
                        format!("`{url}` is not an http:// or https:// URL"),
                    ));
                    None
                }
            },
        };
        let leader = self.leader.map(|raw| raw.check(&node_name, &mut errors));
        if errors.is_empty() {
            Ok(KubernetesConfig {
                node_name,
                api_server,
                namespaces: None,
                watch_node: false,
                leader,
            })
        } else {
            Err(errors)
        }
    }
}

/// A Kubernetes object name (a DNS subdomain: lower-case letters, digits,
/// `-` and `.`, starting and ending alphanumeric, at most 253).
/// A Kubernetes object name (a DNS subdomain: RFC 1123).
pub fn is_object_name(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.starts_with(alnum)
        && name.ends_with(alnum)
        && name.chars().all(|c| alnum(c) || c == '-' || c == '.')
}

/// A namespace name (a DNS label: RFC 1123, at most 63 characters).
pub fn is_namespace_name(name: &str) -> bool {
    is_object_name(name) && !name.contains('.') && name.len() <= 63
}

impl RawLeaderConfig {
    fn check(self, node_name: &str, errors: &mut Vec<FieldError>) -> LeaderConfig {
        let lease_name = self.lease_name.unwrap_or_else(|| "ferro-leader".into());
        if !is_object_name(&lease_name) {
            errors.push(FieldError::new(
                "leader.lease_name",
                format!("`{lease_name}` is not a Kubernetes object name (lower-case letters, digits, - and .)"),
            ));
        }
        if let Some(namespace) = &self.lease_namespace
            && !is_namespace_name(namespace)
        {
            errors.push(FieldError::new(
                "leader.lease_namespace",
                format!("`{namespace}` is not a namespace name (lower-case letters, digits and -, at most 63)"),
            ));
        }
        // The node's name alone would be shared by two agents of one node
        // (a rollout with maxSurge), and both would "hold" the Lease: a
        // suffix drawn once per process (as client-go adds a UUID) keeps
        // them apart and stays the same across reloads.
        let identity = self
            .identity
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| format!("{node_name}_{}", process_suffix()));
        let get = |d: Option<HumanDuration>, default: u64| {
            d.map_or(std::time::Duration::from_secs(default), |d| d.get())
        };
        // client-go's defaults, and its rules between them.
        let lease_duration = get(self.lease_duration, 15);
        let renew_deadline = get(self.renew_deadline, 10);
        let retry_period = get(self.retry_period, 2);
        if retry_period < std::time::Duration::from_millis(100) {
            errors.push(FieldError::new(
                "leader.retry_period",
                "must be at least 100ms",
            ));
        }
        if lease_duration > std::time::Duration::from_secs(86_400) {
            errors.push(FieldError::new(
                "leader.lease_duration",
                "must be at most 24h",
            ));
        }
        if lease_duration.as_millis() % 1000 != 0 {
            errors.push(FieldError::new(
                "leader.lease_duration",
                "must be whole seconds (the Lease holds seconds)",
            ));
        }
        if renew_deadline >= lease_duration {
            errors.push(FieldError::new(
                "leader.renew_deadline",
                "must be shorter than lease_duration: a leader stops before others may take over",
            ));
        }
        if renew_deadline.as_secs_f64() <= 1.2 * retry_period.as_secs_f64() {
            errors.push(FieldError::new(
                "leader.retry_period",
                "must be less than renew_deadline / 1.2: a leader tries to renew more than once before it gives up",
            ));
        }
        LeaderConfig {
            lease_name,
            lease_namespace: self.lease_namespace,
            identity,
            lease_duration,
            renew_deadline,
            retry_period,
        }
    }
}

/// Eight hex digits drawn once per process.
fn process_suffix() -> &'static str {
    static SUFFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SUFFIX.get_or_init(|| format!("{:08x}", fastrand::u32(..)))
}
