//! Configuration checks: defaults, Prometheus' `Config.Validate` rules and
//! where errors are reported.

use super::*;

#[test]
fn target_label_templates() {
    // TestTargetLabelLegacyValidity.
    let cases = [
        ("-label", false),
        ("label", true),
        ("label${1}", true),
        ("${1}label", true),
        ("${1}", true),
        ("${", false),
        ("$", false),
        ("${}", false),
        ("foo${", false),
        ("$1", true),
        ("asd$2asd", true),
        ("-foo${1}bar-", false),
        ("bar.foo${1}bar", false),
        ("_${1}_", true),
        ("foo${bar}foo", true),
    ];
    for (template, valid) in cases {
        assert_eq!(LABEL_TEMPLATE.is_match(template), valid, "{template:?}");
    }
}

#[test]
fn defaults() {
    let config = RawRelabelConfig {
        target_label: Some("t".into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    assert!(config.source_labels.is_empty());
    assert_eq!(config.separator, ";");
    match config.action {
        Action::Replace {
            regex,
            target_label,
            replacement,
        } => {
            assert_eq!(regex.as_str(), "^(?s:(.*))$");
            assert_eq!(target_label, "t");
            assert_eq!(replacement, "$1");
        }
        other => panic!("default action is replace, got {other:?}"),
    }
}

/// The fields of the errors validating one `[[rule]]` reports.
fn error_fields(toml_text: &str) -> Vec<String> {
    let raw: Rules = toml::from_str(toml_text).unwrap();
    let [config] = <[RawRelabelConfig; 1]>::try_from(raw.rule).unwrap();
    match config.validate() {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| e.field).collect(),
    }
}

#[test]
fn validation_follows_prometheus() {
    let cases: &[(&str, &[&str])] = &[
        ("action = 'nope'", &["action"]),
        ("action = ''", &["action"]),
        ("action = 'replace'", &["target_label"]),
        ("action = 'lowercase'", &["target_label"]),
        ("action = 'uppercase'", &["target_label"]),
        ("action = 'keepequal'", &["target_label"]),
        ("action = 'hashmod'\ntarget_label = 't'", &["modulus"]),
        (
            "action = 'hashmod'\ntarget_label = 't'\nmodulus = 0",
            &["modulus"],
        ),
        ("action = 'hashmod'", &["modulus", "target_label"]),
        (
            "action = 'hashmod'\ntarget_label = '${1}'\nmodulus = 2",
            &["target_label"],
        ),
        ("action = 'hashmod'\ntarget_label = 't'\nmodulus = 2", &[]),
        ("regex = '('\ntarget_label = 't'", &["regex"]),
        (
            "source_labels = ['ok', 'not-ok']\ntarget_label = 't'",
            &["source_labels.1"],
        ),
        // replace: a label name, or one with $ references.
        ("target_label = '${1}'", &[]),
        ("target_label = 'a_$1_b'", &[]),
        ("target_label = '0${3}'", &["target_label"]),
        ("target_label = '-${3}'", &["target_label"]),
        ("target_label = 'a-b'", &["target_label"]),
        ("target_label = 'a.b'", &["target_label"]),
        // lowercase/uppercase/keepequal/dropequal: a plain label name.
        (
            "action = 'lowercase'\ntarget_label = '${3}'",
            &["target_label"],
        ),
        (
            "action = 'uppercase'\ntarget_label = 'x'\nreplacement = 'y'",
            &["replacement"],
        ),
        (
            "action = 'uppercase'\ntarget_label = 'x'\nreplacement = '$1'",
            &[],
        ),
        (
            "action = 'lowercase'\ntarget_label = 'x'\nregex = 'a'\nmodulus = 3",
            &[],
        ),
        // keepequal/dropequal: source_labels and target_label only.
        (
            "action = 'dropequal'\ntarget_label = 'x'\nsource_labels = ['y']",
            &[],
        ),
        (
            "action = 'keepequal'\ntarget_label = 'x'\nregex = '(.*)'",
            &["regex"],
        ),
        (
            "action = 'keepequal'\ntarget_label = 'x'\nseparator = ';'",
            &[],
        ),
        (
            "action = 'dropequal'\ntarget_label = 'x'\nseparator = ','\nmodulus = 2\nreplacement = 'r'",
            &["modulus", "separator", "replacement"],
        ),
        // labelmap: the replacement must make a label name.
        ("action = 'labelmap'\nregex = '__meta_(.+)'", &[]),
        (
            "action = 'labelmap'\nregex = '__meta_kubernetes_pod_label_(strimzi_io_.+)'",
            &[],
        ),
        (
            "action = 'labelmap'\nreplacement = 'a-$1'",
            &["replacement"],
        ),
        ("action = 'labelmap'\nreplacement = ''", &["replacement"]),
        // labeldrop/labelkeep: regex only.
        ("action = 'labeldrop'\nregex = 'tmp_.*'", &[]),
        (
            "action = 'labelkeep'\nsource_labels = []",
            &["source_labels"],
        ),
        (
            "action = 'labeldrop'\ntarget_label = 't'\nmodulus = 1\nseparator = ','\nreplacement = 'x'",
            &["target_label", "modulus", "separator", "replacement"],
        ),
        (
            "action = 'labeldrop'\nseparator = ';'\nreplacement = '$1'",
            &[],
        ),
        // keep and drop accept anything else, as in Prometheus.
        ("action = 'keep'\ntarget_label = '-'\nmodulus = 3", &[]),
    ];
    for (fields, expected) in cases {
        let got = error_fields(&format!("[[rule]]\n{fields}"));
        assert_eq!(got, *expected, "for:\n{fields}");
    }
}

#[test]
fn validate_all_places_errors_under_the_list() {
    let raw: Rules = toml::from_str(
        r#"
        [[rule]]
        target_label = "ok"

        [[rule]]
        regex = "("
        action = "hashmod"
        target_label = "t"
    "#,
    )
    .unwrap();
    let errors = validate_all(raw.rule, "relabel_configs").unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["relabel_configs.1.regex", "relabel_configs.1.modulus"]
    );
}

#[test]
fn negative_modulus_is_a_type_error() {
    let parsed: Result<Rules, _> = toml::from_str("[[rule]]\nmodulus = -1");
    assert!(parsed.is_err());
}
