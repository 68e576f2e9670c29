//! Relabelling tests. The cases follow Prometheus'
//! `model/relabel/relabel_test.go`, written as the TOML a user would port them
//! to: `TestRelabel` in `cases`, `TestRelabelValidate` and
//! `TestTargetLabelLegacyValidity` in `validation`.

use super::*;
use crate::signal::labels::Labels;

mod cases;
mod validation;

#[derive(Deserialize)]
struct Rules {
    #[serde(default)]
    rule: Vec<RawRelabelConfig>,
}

fn rules(toml_text: &str) -> Vec<RelabelConfig> {
    let raw: Rules = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    validate_all(raw.rule, "rule").unwrap_or_else(|e| panic!("{e:?}\n{toml_text}"))
}

/// Relabels `input`; None when dropped.
fn relabel(input: &[(&str, &str)], toml_text: &str) -> Option<Labels> {
    let mut builder = Labels::from_pairs(input.iter().copied()).to_builder();
    process(&mut builder, &rules(toml_text)).then(|| builder.labels())
}

#[test]
fn hashmod_matches_prometheus() {
    // 976 and 734 are from relabel_test.go; the rest were computed with
    // Python's hashlib (an MD5 independent of ours) the way Prometheus does:
    // int.from_bytes(md5(v).digest()[8:], "big") % modulus.
    let cases: &[(&str, u64, &str)] = &[
        ("baz", 1000, "976"),
        ("foo\nbar", 1000, "734"),
        ("10.132.183.40:80", 3, "1"),
        ("", 10, "8"),
        ("a", 1, "0"),
        ("kube-system/coredns-5d78c9869d-abcde", 16, "13"),
        ("10.0.0.1:9100", u64::MAX, "5548061184049187645"),
        ("ünïcödé", 7, "0"),
    ];
    for &(value, modulus, expected) in cases {
        let config = RawRelabelConfig {
            source_labels: Some(vec!["v".into()]),
            target_label: Some("shard".into()),
            action: Some("hashmod".into()),
            modulus: Some(modulus),
            ..Default::default()
        }
        .validate()
        .unwrap();
        let mut labels = Labels::from_pairs([("v", value)]).to_builder();
        assert!(config.apply(&mut labels));
        assert_eq!(labels.get("shard"), Some(expected), "{value:?} % {modulus}");
    }
}

#[test]
fn labelmap_matches_names_as_they_were_before_the_rule() {
    // `a_x` is written by the rule from `x`; it must not be mapped again to
    // `a_a_x`, and `a_y` (there before) maps to `a_a_y`.
    let got = relabel(
        &[("x", "1"), ("a_y", "2")],
        r#"
            [[rule]]
            regex = "(.*)"
            replacement = "a_$1"
            action = "labelmap"
        "#,
    );
    let want = Labels::from_pairs([("x", "1"), ("a_x", "1"), ("a_y", "2"), ("a_a_y", "2")]);
    assert_eq!(got, Some(want));
}

#[test]
fn case_mapping_follows_go() {
    // Go maps rune by rune: no final sigma, 'İ' to 'i', 'ß' and 'ŉ' unchanged,
    // ypogegrammeni to title case.
    assert_eq!(go_to_lower("ΟΔΟΣ"), "οδοσ");
    assert_eq!(go_to_lower("İSTANBUL"), "istanbul");
    assert_eq!(go_to_lower("ÀÉÎ"), "àéî");
    assert_eq!(go_to_upper("straße"), "STRAßE");
    assert_eq!(go_to_upper("ŉ"), "ŉ");
    assert_eq!(go_to_upper("ᾳ\u{1F80}"), "ᾼ\u{1F88}");
    assert_eq!(go_to_upper("àéî"), "ÀÉÎ");
    // The action name is lower-cased the Go way too.
    assert_eq!(Kind::parse("LabelMap"), Some(Kind::LabelMap));
    assert_eq!(Kind::parse("\u{212A}eep"), Some(Kind::Keep)); // KELVIN SIGN
}

#[test]
fn config_from_toml() {
    let text = r#"
        [[relabel_configs]]
        source_labels = ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
        regex = "true"
        action = "keep"

        [[relabel_configs]]
        source_labels = ["__meta_kubernetes_namespace", "__meta_kubernetes_pod_name"]
        separator = "/"
        target_label = "instance"

        [[relabel_configs]]
        regex = "__meta_kubernetes_pod_label_(.+)"
        action = "labelmap"

        [[relabel_configs]]
        source_labels = ["__address__"]
        target_label = "__tmp_shard"
        modulus = 4
        action = "hashmod"

        [[relabel_configs]]
        regex = "__meta_.*"
        action = "labeldrop"
    "#;
    #[derive(Deserialize)]
    struct Scrape {
        relabel_configs: Vec<RawRelabelConfig>,
    }
    let raw: Scrape = toml::from_str(text).unwrap();
    assert_eq!(raw.relabel_configs[1].separator.as_deref(), Some("/"));
    let configs = validate_all(raw.relabel_configs, "relabel_configs").unwrap();
    assert_eq!(configs.len(), 5);

    let target = Labels::from_pairs([
        ("__address__", "10.0.0.7:8080"),
        ("__meta_kubernetes_namespace", "shop"),
        ("__meta_kubernetes_pod_name", "cart-7d9f"),
        ("__meta_kubernetes_pod_label_app", "cart"),
        (
            "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
            "true",
        ),
    ]);
    let mut labels = target.to_builder();
    assert!(process(&mut labels, &configs));
    let expected_shard = {
        let digest = md5::digest(b"10.0.0.7:8080");
        (u64::from_be_bytes(digest[8..].try_into().unwrap()) % 4).to_string()
    };
    assert_eq!(
        labels.labels(),
        Labels::from_pairs([
            ("__address__", "10.0.0.7:8080"),
            ("__tmp_shard", expected_shard.as_str()),
            ("app", "cart"),
            ("instance", "shop/cart-7d9f"),
        ])
    );

    let mut not_annotated = Labels::from_pairs([("__address__", "10.0.0.8:80")]).to_builder();
    assert!(!process(&mut not_annotated, &configs));
}
