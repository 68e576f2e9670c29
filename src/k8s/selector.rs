//! Kubernetes label selectors, checked once and matched against an
//! object's labels as the API server matches them
//! (<https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors>):
//! a `metav1.LabelSelector` (`matchLabels` and `matchExpressions` with
//! `In`, `NotIn`, `Exists`, `DoesNotExist`, all ANDed), or a Service's
//! `spec.selector` map.
//!
//! What selects what is how ServiceMonitors and PodMonitors choose their
//! Services, pods and namespaces, and how a Service chooses its pods: the
//! monitors resolve their targets against this node's pod cache with it.
//!
//! Two empty cases differ, as in Kubernetes: an empty `LabelSelector`
//! (`{}`) selects everything, while a Service without a selector selects
//! no pods (its endpoints are managed by hand).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, BTreeSet};

/// One requirement on one label.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    /// The label has this value.
    Equals(String, String),
    /// The label exists and has one of the values.
    In(String, BTreeSet<String>),
    /// The label does not exist, or has none of the values.
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Equals(key, value) => labels.get(key) == Some(value),
            Self::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Self::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Self::Exists(key) => labels.contains_key(key),
            Self::DoesNotExist(key) => !labels.contains_key(key),
        }
    }
}

/// A checked selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
    /// A Service without a selector: nothing matches.
    nothing: bool,
}

/// Why a selector is not one the API server would accept.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error(
        "`{0}` is not a label key (an optional DNS prefix and `/`, then at most 63 of letters, digits, `-`, `_`, `.`)"
    )]
    Key(String),
    #[error(
        "`{value}` is not a label value (at most 63 of letters, digits, `-`, `_`, `.`) for `{key}`"
    )]
    Value { key: String, value: String },
    #[error("operator `{0}` is not one of In, NotIn, Exists, DoesNotExist")]
    Operator(String),
    #[error("`{key}` {operator} needs at least one value")]
    NoValues { key: String, operator: String },
    #[error("`{key}` {operator} takes no values")]
    UnwantedValues { key: String, operator: String },
}

impl Selector {
    /// Selects every object.
    pub fn everything() -> Selector {
        Selector {
            requirements: Vec::new(),
            nothing: false,
        }
    }

    /// A `metav1.LabelSelector` as the API gives it.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            check_key(key)?;
            check_value(key, value)?;
            requirements.push(Requirement::Equals(key.clone(), value.clone()));
        }
        for expression in selector.match_expressions.iter().flatten() {
            let key = &expression.key;
            check_key(key)?;
            let values: BTreeSet<String> = expression.values.iter().flatten().cloned().collect();
            for value in &values {
                check_value(key, value)?;
            }
            let operator = expression.operator.as_str();
            if !matches!(operator, "In" | "NotIn" | "Exists" | "DoesNotExist") {
                return Err(SelectorError::Operator(operator.into()));
            }
            let needs_values = matches!(operator, "In" | "NotIn");
            if needs_values && values.is_empty() {
                return Err(SelectorError::NoValues {
                    key: key.clone(),
                    operator: operator.into(),
                });
            }
            if !needs_values && !values.is_empty() {
                return Err(SelectorError::UnwantedValues {
                    key: key.clone(),
                    operator: operator.into(),
                });
            }
            requirements.push(match operator {
                "In" => Requirement::In(key.clone(), values),
                "NotIn" => Requirement::NotIn(key.clone(), values),
                "Exists" => Requirement::Exists(key.clone()),
                _ => Requirement::DoesNotExist(key.clone()),
            });
        }
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// A Service's `spec.selector`: every pair must match; none (or an
    /// empty map) selects no pods.
    pub fn from_service_selector(
        selector: Option<&BTreeMap<String, String>>,
    ) -> Result<Selector, SelectorError> {
        let Some(map) = selector.filter(|m| !m.is_empty()) else {
            return Ok(Selector {
                requirements: Vec::new(),
                nothing: true,
            });
        };
        let mut requirements = Vec::with_capacity(map.len());
        for (key, value) in map {
            check_key(key)?;
            check_value(key, value)?;
            requirements.push(Requirement::Equals(key.clone(), value.clone()));
        }
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether it selects every object (an empty `LabelSelector`).
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain of at most 253
/// characters, the name at most 63 characters of alphanumerics, `-`, `_`
/// and `.`, beginning and ending alphanumeric.
fn check_key(key: &str) -> Result<(), SelectorError> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    if prefix_ok && !name.is_empty() && is_name(name) {
        Ok(())
    } else {
        Err(SelectorError::Key(key.into()))
    }
}

/// A label value: empty, or what a key's name may be.
fn check_value(key: &str, value: &str) -> Result<(), SelectorError> {
    if value.is_empty() || is_name(value) {
        Ok(())
    } else {
        Err(SelectorError::Value {
            key: key.into(),
            value: value.into(),
        })
    }
}

fn is_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn selector(
        match_labels: &[(&str, &str)],
        expressions: Vec<LabelSelectorRequirement>,
    ) -> Result<Selector, SelectorError> {
        Selector::from_label_selector(&LabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!expressions.is_empty()).then_some(expressions),
        })
    }

    #[test]
    fn match_labels_and_every_operator_are_anded() {
        let s = selector(
            &[("app.kubernetes.io/name", "ingress-nginx")],
            vec![
                expression("tier", "In", &["frontend", "edge"]),
                expression("env", "NotIn", &["dev"]),
                expression("release", "Exists", &[]),
                expression("canary", "DoesNotExist", &[]),
            ],
        )
        .unwrap();
        let base = [
            ("app.kubernetes.io/name", "ingress-nginx"),
            ("tier", "edge"),
            ("release", "r1"),
        ];
        assert!(s.matches(&labels(&base)));
        assert!(s.matches(&labels(&[&base[..], &[("env", "prod")]].concat())));
        for (why, bad) in [
            ("env in NotIn", [&base[..], &[("env", "dev")]].concat()),
            ("canary exists", [&base[..], &[("canary", "true")]].concat()),
            (
                "tier not in In",
                vec![base[0], ("tier", "backend"), base[2]],
            ),
            ("no tier", vec![base[0], base[2]]),
            ("no release", vec![base[0], base[1]]),
            (
                "other app",
                vec![("app.kubernetes.io/name", "x"), base[1], base[2]],
            ),
        ] {
            assert!(!s.matches(&labels(&bad)), "{why}");
        }
    }

    #[test]
    fn an_empty_label_selector_selects_everything_and_a_service_without_one_nothing() {
        let all = selector(&[], vec![]).unwrap();
        assert!(all.is_everything());
        assert!(all.matches(&labels(&[])));
        assert!(all.matches(&labels(&[("a", "b")])));
        let none = Selector::from_service_selector(None).unwrap();
        assert!(!none.matches(&labels(&[])));
        let empty = Selector::from_service_selector(Some(&BTreeMap::new())).unwrap();
        assert!(!empty.matches(&labels(&[("a", "b")])));
        let service = Selector::from_service_selector(Some(&labels(&[("app", "web")]))).unwrap();
        assert!(service.matches(&labels(&[("app", "web"), ("pod-template-hash", "x")])));
        assert!(!service.matches(&labels(&[("app", "api")])));
    }

    #[test]
    fn what_the_api_server_would_refuse_is_an_error() {
        let cases = [
            (
                selector(&[], vec![expression("tier", "In", &[])]),
                SelectorError::NoValues {
                    key: "tier".into(),
                    operator: "In".into(),
                },
            ),
            (
                selector(&[], vec![expression("tier", "Exists", &["x"])]),
                SelectorError::UnwantedValues {
                    key: "tier".into(),
                    operator: "Exists".into(),
                },
            ),
            (
                selector(&[], vec![expression("tier", "Matches", &["x"])]),
                SelectorError::Operator("Matches".into()),
            ),
            (
                selector(&[("bad key", "x")], vec![]),
                SelectorError::Key("bad key".into()),
            ),
            (
                selector(&[("Example.com/app", "x")], vec![]),
                SelectorError::Key("Example.com/app".into()),
            ),
            (
                selector(&[("app", "-x")], vec![]),
                SelectorError::Value {
                    key: "app".into(),
                    value: "-x".into(),
                },
            ),
            (
                selector(&[("app", &"v".repeat(64))], vec![]),
                SelectorError::Value {
                    key: "app".into(),
                    value: "v".repeat(64),
                },
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, Err(want));
        }
        assert!(selector(&[("example.com/app", "")], vec![]).is_ok());
    }
}
