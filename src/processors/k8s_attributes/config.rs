use serde::Deserialize;
use std::collections::BTreeMap;

use crate::config::{FieldError, Validate};
use crate::signal::names::is_label_name;

/// `[processors.k8s_attributes.NAME]` as written.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RawK8sAttributesConfig {
    /// `api` (the node's pod cache, fed by the API server) or `env` (a
    /// sidecar's own pod, from downward-API variables: no API access).
    source: Option<String>,
    /// How a record's pod is found, tried in order.
    associate: Option<Vec<String>>,
    /// Pod labels to copy, by key (`"app.kubernetes.io/name"`) or as
    /// `{ key = "…", name = "…" }` to choose the attribute/label name.
    pod_labels: Vec<RawCopy>,
    /// Pod annotations to copy, written like `pod_labels`.
    pod_annotations: Vec<RawCopy>,
    /// Labels of the pod's namespace to copy, written like `pod_labels`
    /// (the pod cache then watches namespaces too).
    namespace_labels: Vec<RawCopy>,
    /// Annotations of the pod's namespace to copy, written like `pod_labels`.
    namespace_annotations: Vec<RawCopy>,
    /// Attribute names on traces (OpenTelemetry conventions), per field;
    /// `""` leaves the field out.
    otel_names: BTreeMap<String, String>,
    /// Label names on metrics, logs and profiles, per field; `""` leaves
    /// the field out.
    label_names: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCopy {
    Key(String),
    Named { key: String, name: String },
}

/// Where the pod metadata comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The process's pod cache.
    Api,
    /// `POD_NAME`, `POD_NAMESPACE`, `POD_UID`, `NODE_NAME`, `CONTAINER_NAME`
    /// in ferro's own environment: ferro runs beside the application.
    Env,
}

/// One way of finding a record's pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Association {
    /// `k8s.pod.uid` / the `pod_uid` label.
    PodUid,
    /// `k8s.namespace.name` + `k8s.pod.name` / the `namespace` + `pod`
    /// labels (pod log files, relabelled scrape targets).
    NamespacePod,
    /// `k8s.pod.ip` / the `pod_ip` label.
    PodIp,
    /// The host of the `instance` label (a scrape target's address).
    Instance,
    /// The address of the OTLP client that sent the data.
    Peer,
}

impl Association {
    const ALL: &[(&str, Association)] = &[
        ("pod_uid", Self::PodUid),
        ("namespace_pod", Self::NamespacePod),
        ("pod_ip", Self::PodIp),
        ("instance", Self::Instance),
        ("peer", Self::Peer),
    ];
}

/// What is added, each with its name per naming.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Namespace,
    Pod,
    PodUid,
    Container,
    Node,
    OwnerKind,
    OwnerName,
}

impl Field {
    pub const ALL: [Field; 7] = [
        Self::Namespace,
        Self::Pod,
        Self::PodUid,
        Self::Container,
        Self::Node,
        Self::OwnerKind,
        Self::OwnerName,
    ];

    fn key(self) -> &'static str {
        match self {
            Self::Namespace => "namespace",
            Self::Pod => "pod",
            Self::PodUid => "pod_uid",
            Self::Container => "container",
            Self::Node => "node",
            Self::OwnerKind => "owner_kind",
            Self::OwnerName => "owner_name",
        }
    }

    /// OpenTelemetry semantic conventions; the owner is
    /// `k8s.deployment.name`, `k8s.statefulset.name`, … by its kind.
    fn otel(self) -> &'static str {
        match self {
            Self::Namespace => "k8s.namespace.name",
            Self::Pod => "k8s.pod.name",
            Self::PodUid => "k8s.pod.uid",
            Self::Container => "k8s.container.name",
            Self::Node => "k8s.node.name",
            Self::OwnerKind => "",
            Self::OwnerName => "k8s.{kind}.name",
        }
    }

    /// Prometheus/Loki names. `pod_uid` is left out by default: the pod
    /// log receiver adds it itself where wanted, and on series it would
    /// only add a label that changes with every restart.
    fn label(self) -> &'static str {
        match self {
            Self::Namespace => "namespace",
            Self::Pod => "pod",
            Self::PodUid => "",
            Self::Container => "container",
            Self::Node => "node",
            Self::OwnerKind => "owner_kind",
            Self::OwnerName => "owner_name",
        }
    }
}

/// A pod label or annotation to copy and the names it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    pub key: String,
    pub otel: String,
    pub label: String,
}

/// A checked `k8s_attributes` config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sAttributesConfig {
    pub source: Source,
    pub associate: Vec<Association>,
    pub pod_labels: Vec<Copy>,
    pub pod_annotations: Vec<Copy>,
    pub namespace_labels: Vec<Copy>,
    pub namespace_annotations: Vec<Copy>,
    /// Per field (in [`Field::ALL`] order): the OTel name, `None` if left out.
    /// `{kind}` stands for the owner's kind in lower case.
    pub otel_names: Vec<(Field, String)>,
    pub label_names: Vec<(Field, String)>,
}

impl K8sAttributesConfig {
    /// Whether it finds pods by the sending client's address: it must then
    /// run before a `batch` stage, which mixes clients.
    pub fn uses_peer(&self) -> bool {
        self.source == Source::Api && self.associate.contains(&Association::Peer)
    }

    /// Whether it copies namespace metadata: the pod cache must then watch
    /// namespaces (and ferro may list and watch them).
    pub fn uses_namespaces(&self) -> bool {
        !self.namespace_labels.is_empty() || !self.namespace_annotations.is_empty()
    }
}

impl Default for K8sAttributesConfig {
    fn default() -> Self {
        RawK8sAttributesConfig::default()
            .validate()
            .expect("the defaults are valid")
    }
}

impl Validate for RawK8sAttributesConfig {
    type Valid = K8sAttributesConfig;

    fn validate(self) -> Result<K8sAttributesConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let source = match self.source.as_deref() {
            None | Some("api") => Source::Api,
            Some("env") => Source::Env,
            Some(other) => {
                errors.push(FieldError::new(
                    "source",
                    format!("`{other}` is not a source (use \"api\" or \"env\")"),
                ));
                Source::Api
            }
        };
        let associate = match self.associate {
            None => Association::ALL.iter().map(|(_, a)| *a).collect(),
            Some(names) => {
                let mut out = Vec::new();
                for name in &names {
                    match Association::ALL.iter().find(|(n, _)| n == name) {
                        Some((_, a)) if !out.contains(a) => out.push(*a),
                        Some(_) => errors.push(FieldError::new(
                            "associate",
                            format!("`{name}` is listed twice"),
                        )),
                        None => errors.push(FieldError::new(
                            "associate",
                            format!(
                                "`{name}` is not an association (use {})",
                                Association::ALL
                                    .iter()
                                    .map(|(n, _)| *n)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )),
                    }
                }
                if out.is_empty() && source == Source::Api && errors.is_empty() {
                    errors.push(FieldError::new(
                        "associate",
                        "list at least one way to find a record's pod",
                    ));
                }
                out
            }
        };
        if source == Source::Env {
            for (field, empty) in [
                ("pod_labels", self.pod_labels.is_empty()),
                ("pod_annotations", self.pod_annotations.is_empty()),
                ("namespace_labels", self.namespace_labels.is_empty()),
                (
                    "namespace_annotations",
                    self.namespace_annotations.is_empty(),
                ),
            ] {
                if !empty {
                    errors.push(FieldError::new(
                        field,
                        "labels and annotations need source = \"api\": the downward API's variables do not carry them",
                    ));
                }
            }
        }
        let copies =
            |raw: Vec<RawCopy>, otel_prefix: &str, field: &str, errors: &mut Vec<FieldError>| {
                let mut out = Vec::new();
                for copy in raw {
                    let (key, name) = match copy {
                        RawCopy::Key(key) => (key, None),
                        RawCopy::Named { key, name } => (key, Some(name)),
                    };
                    if key.is_empty() || name.as_deref() == Some("") {
                        errors.push(FieldError::new(field, "keys and names must not be empty"));
                        continue;
                    }
                    out.push(Copy {
                        otel: name
                            .clone()
                            .unwrap_or_else(|| format!("{otel_prefix}{key}")),
                        label: name
                            .map(|n| crate::k8s::discovery::sanitize(&n))
                            .unwrap_or_else(|| crate::k8s::discovery::sanitize(&key)),
                        key,
                    });
                }
                out
            };
        let pod_labels = copies(self.pod_labels, "k8s.pod.label.", "pod_labels", &mut errors);
        let pod_annotations = copies(
            self.pod_annotations,
            "k8s.pod.annotation.",
            "pod_annotations",
            &mut errors,
        );
        let namespace_labels = copies(
            self.namespace_labels,
            "k8s.namespace.label.",
            "namespace_labels",
            &mut errors,
        );
        let namespace_annotations = copies(
            self.namespace_annotations,
            "k8s.namespace.annotation.",
            "namespace_annotations",
            &mut errors,
        );
        let names = |overrides: BTreeMap<String, String>,
                     default: fn(Field) -> &'static str,
                     at: &str,
                     errors: &mut Vec<FieldError>| {
            for key in overrides.keys() {
                if !Field::ALL.iter().any(|f| f.key() == key) {
                    errors.push(FieldError::new(
                        format!("{at}.{key}"),
                        format!(
                            "not a field (they are: {})",
                            Field::ALL.map(Field::key).join(", ")
                        ),
                    ));
                }
            }
            Field::ALL
                .iter()
                .filter_map(|f| {
                    let name = overrides
                        .get(f.key())
                        .cloned()
                        .unwrap_or_else(|| default(*f).to_string());
                    (!name.is_empty()).then_some((*f, name))
                })
                .collect::<Vec<_>>()
        };
        let otel_names = names(self.otel_names, Field::otel, "otel_names", &mut errors);
        let label_names = names(self.label_names, Field::label, "label_names", &mut errors);
        for (field, name) in &label_names {
            if !is_label_name(name) {
                errors.push(FieldError::new(
                    format!("label_names.{}", field.key()),
                    format!("`{name}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                ));
            }
        }
        // Two values under one name would overwrite each other: a copy may
        // not take a field's name, nor another copy's.
        let mut seen: std::collections::BTreeSet<(&str, String)> = label_names
            .iter()
            .map(|(_, name)| ("label", name.clone()))
            .chain(otel_names.iter().map(|(_, name)| ("otel", name.clone())))
            .collect();
        for (field, copy) in [
            ("pod_labels", &pod_labels),
            ("pod_annotations", &pod_annotations),
            ("namespace_labels", &namespace_labels),
            ("namespace_annotations", &namespace_annotations),
        ]
        .iter()
        .flat_map(|(field, copies)| copies.iter().map(move |c| (*field, c)))
        {
            for (naming, name) in [("label", &copy.label), ("otel", &copy.otel)] {
                if !seen.insert((naming, name.clone())) {
                    errors.push(FieldError::new(
                        field,
                        format!(
                            "`{}` would be written as `{name}`, a name a field or another copy has: give it another ({{ key = \"{}\", name = \"…\" }})",
                            copy.key, copy.key
                        ),
                    ));
                    break;
                }
            }
        }
        if errors.is_empty() {
            Ok(K8sAttributesConfig {
                source,
                associate,
                pod_labels,
                pod_annotations,
                namespace_labels,
                namespace_annotations,
                otel_names,
                label_names,
            })
        } else {
            Err(errors)
        }
    }
}
