use serde::Deserialize;

use crate::config::{FieldError, Validate};

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
        if errors.is_empty() {
            Ok(KubernetesConfig {
                node_name,
                api_server,
                namespaces: None,
                watch_node: false,
            })
        } else {
            Err(errors)
        }
    }
}
