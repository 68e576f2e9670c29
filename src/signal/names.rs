//! The rules for label and metric names, written once: Prometheus' legacy
//! rule (which Loki's label parser applies too), Pyroscope's variant with
//! dots, and the normalization that turns an OTLP attribute key into a
//! label name (Prometheus' and Loki's OTLP translators share it).

use std::borrow::Cow;

/// A label name by Prometheus' legacy rule, which Loki also applies:
/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A metric name by Prometheus' rule: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// A label name Pyroscope takes: Prometheus' rule plus dots,
/// `[a-zA-Z_][a-zA-Z0-9_.]*`, since Pyroscope's own SDKs send
/// `otel.scope.name`, `process.runtime.name` and the like.
pub fn is_dotted_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Whose translation of OTLP attribute keys to label names applies; they
/// differ only on a key that is nothing but underscores already (`__`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelNamer {
    /// Prometheus' OTLP receiver: refuses it.
    Prometheus,
    /// Loki's OTLP endpoint: keeps a key that is a valid name as it is.
    Loki,
}

/// The label name of an OTLP attribute key (otlptranslator's `LabelNamer`):
/// characters other than ASCII letters and digits become `_`, a leading
/// digit gets `key_` before it and a single leading `_` gets `key` (`__`
/// names are reserved ones and stay). Borrowed when the key is its own name
/// already; `None` for an empty key or one that becomes nothing but
/// underscores, which both refuse.
pub fn normalize_label_name(key: &str, namer: LabelNamer) -> Option<Cow<'_, str>> {
    let first = *key.as_bytes().first()?;
    let valid_chars = key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let single_underscore = key.starts_with('_') && !key.starts_with("__");
    let refused_as_is = namer == LabelNamer::Prometheus && key.bytes().all(|b| b == b'_');
    if valid_chars && !first.is_ascii_digit() && !single_underscore && !refused_as_is {
        return Some(Cow::Borrowed(key));
    }
    let mut name: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.as_bytes()[0].is_ascii_digit() {
        name.insert_str(0, "key_");
    } else if name.starts_with('_') && !name.starts_with("__") {
        name.insert_str(0, "key");
    }
    if name.bytes().all(|b| b == b'_') {
        return None;
    }
    Some(Cow::Owned(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_their_rules() {
        assert!(is_label_name("_a9") && !is_label_name("9a") && !is_label_name("a.b"));
        assert!(!is_label_name("") && !is_label_name("a:b"));
        assert!(is_metric_name("a:b_c") && is_metric_name(":a") && !is_metric_name("a-b"));
        assert!(is_dotted_label_name("otel.scope.name") && !is_dotted_label_name(".a"));
    }

    #[test]
    fn attribute_keys_become_label_names() {
        let name = |key| normalize_label_name(key, LabelNamer::Prometheus);
        assert!(matches!(name("service_name"), Some(Cow::Borrowed(_))));
        assert_eq!(name("k8s.pod.name").unwrap(), "k8s_pod_name");
        assert_eq!(name("1st").unwrap(), "key_1st");
        assert_eq!(name("_x").unwrap(), "key_x");
        assert_eq!(name("__x").unwrap(), "__x");
        assert_eq!(name("é").unwrap(), "key_");
        assert_eq!(name("..."), None);
        assert_eq!(name("__"), None);
        assert_eq!(name(""), None);
        let loki = |key| normalize_label_name(key, LabelNamer::Loki);
        assert_eq!(loki("__").unwrap(), "__");
        assert_eq!(loki(".."), None);
    }
}
