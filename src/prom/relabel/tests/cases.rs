//! Prometheus' `TestRelabel`, plus cases for what it leaves implicit
//! (anchoring, defaults, separators, `$1x`).

use super::*;

struct Case {
    name: &'static str,
    input: &'static [(&'static str, &'static str)],
    rules: &'static str,
    /// None: dropped.
    output: Option<&'static [(&'static str, &'static str)]>,
}

const ABC: &[(&str, &str)] = &[("a", "foo"), ("b", "bar"), ("c", "baz")];
const PORTS: &[(&str, &str)] = &[
    ("__tmp_port", "1234"),
    ("__port1", "1234"),
    ("__port2", "5678"),
];

const CASES: &[Case] = &[
    Case {
        name: "replace with ${1}",
        input: ABC,
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = "f(.*)"
            target_label = "d"
            replacement = "ch${1}-ch${1}"
        "#,
        output: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
    },
    Case {
        name: "multiple source labels joined by the separator, rules in order",
        input: ABC,
        rules: r#"
            [[rule]]
            source_labels = ["a", "b"]
            regex = "f(.*);(.*)r"
            target_label = "a"
            replacement = "b${1}${2}m"

            [[rule]]
            source_labels = ["c", "a"]
            regex = "(b).*b(.*)ba(.*)"
            target_label = "d"
            replacement = "$1$2$2$3"
        "#,
        output: Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")]),
    },
    Case {
        name: "custom separator, missing source label is empty",
        input: ABC,
        rules: r#"
            [[rule]]
            source_labels = ["a", "missing", "c"]
            separator = "/"
            target_label = "joined"
        "#,
        output: Some(&[
            ("a", "foo"),
            ("b", "bar"),
            ("c", "baz"),
            ("joined", "foo//baz"),
        ]),
    },
    Case {
        name: "drop stops processing",
        input: &[("a", "foo")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = ".*o.*"
            action = "drop"

            [[rule]]
            source_labels = ["a"]
            regex = "f(.*)"
            target_label = "d"
            replacement = "ch$1-ch$1"
        "#,
        output: None,
    },
    Case {
        name: "drop on match",
        input: &[("a", "foo"), ("b", "bar")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = ".*o.*"
            action = "drop"
        "#,
        output: None,
    },
    Case {
        name: "group inside a longer match",
        input: &[("a", "abc")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = ".*(b).*"
            target_label = "d"
        "#,
        output: Some(&[("a", "abc"), ("d", "b")]),
    },
    Case {
        name: "drop without a match keeps",
        input: &[("a", "foo")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = "no-match"
            action = "drop"
        "#,
        output: Some(&[("a", "foo")]),
    },
    Case {
        name: "anchored: f|o does not match foo",
        input: &[("a", "foo")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = "f|o"
            action = "drop"
        "#,
        output: Some(&[("a", "foo")]),
    },
    Case {
        name: "anchored: a does not match ba",
        input: &[("x", "ba")],
        rules: r#"
            [[rule]]
            source_labels = ["x"]
            regex = "a"
            action = "keep"
        "#,
        output: None,
    },
    Case {
        name: "keep without a match drops",
        input: &[("a", "foo")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = "no-match"
            action = "keep"
        "#,
        output: None,
    },
    Case {
        name: "keep on match",
        input: &[("a", "foo")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = "f.*"
            action = "KEEP"
        "#,
        output: Some(&[("a", "foo")]),
    },
    Case {
        name: "keep with regex \"\" keeps only when the label is missing",
        input: &[("a", "foo")],
        rules: r#"
            [[rule]]
            source_labels = ["missing"]
            regex = ""
            action = "keep"
        "#,
        output: Some(&[("a", "foo")]),
    },
    Case {
        name: "no replacement without a match",
        input: &[("a", "boo")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = "f"
            target_label = "b"
            replacement = "bar"
        "#,
        output: Some(&[("a", "boo")]),
    },
    Case {
        name: "empty replacement deletes the target label",
        input: &[("a", "foo"), ("f", "baz")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = "(f).*"
            target_label = "$1"
            replacement = "$2"
        "#,
        output: Some(&[("a", "foo")]),
    },
    Case {
        name: "defaults copy a label; an empty source deletes the target",
        input: &[("a", "foo"), ("gone", "x")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            target_label = "copy"

            [[rule]]
            source_labels = ["missing"]
            target_label = "gone"
        "#,
        output: Some(&[("a", "foo"), ("copy", "foo")]),
    },
    Case {
        name: "static label without source labels",
        input: &[("a", "foo")],
        rules: r#"
            [[rule]]
            target_label = "cluster"
            replacement = "dev-us-central-0"
        "#,
        output: Some(&[("a", "foo"), ("cluster", "dev-us-central-0")]),
    },
    Case {
        name: "hashmod",
        input: ABC,
        rules: r#"
            [[rule]]
            source_labels = ["c"]
            target_label = "d"
            action = "hashmod"
            modulus = 1000
        "#,
        output: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
    },
    Case {
        name: "hashmod of a value with a newline",
        input: &[("a", "foo\nbar")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            target_label = "b"
            action = "hashmod"
            modulus = 1000
        "#,
        output: Some(&[("a", "foo\nbar"), ("b", "734")]),
    },
    Case {
        name: "labelmap",
        input: &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
        rules: r#"
            [[rule]]
            regex = "(b.*)"
            replacement = "bar_${1}"
            action = "labelmap"
        "#,
        output: Some(&[
            ("a", "foo"),
            ("b1", "bar"),
            ("b2", "baz"),
            ("bar_b1", "bar"),
            ("bar_b2", "baz"),
        ]),
    },
    Case {
        name: "labelmap of meta labels",
        input: &[
            ("a", "foo"),
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
        ],
        rules: r#"
            [[rule]]
            regex = "__meta_(my.*)"
            replacement = "${1}"
            action = "labelmap"
        "#,
        output: Some(&[
            ("a", "foo"),
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
            ("my_bar", "aaa"),
            ("my_baz", "bbb"),
        ]),
    },
    Case {
        name: "labelmap of Kubernetes pod labels, default replacement",
        input: &[
            ("__meta_kubernetes_pod_label_app", "api"),
            ("__meta_kubernetes_pod_label_team_name", "core"),
            ("__meta_kubernetes_pod_labelpresent_app", "true"),
            ("job", "pods"),
        ],
        rules: r#"
            [[rule]]
            regex = "__meta_kubernetes_pod_label_(.+)"
            action = "labelmap"
        "#,
        output: Some(&[
            ("__meta_kubernetes_pod_label_app", "api"),
            ("__meta_kubernetes_pod_label_team_name", "core"),
            ("__meta_kubernetes_pod_labelpresent_app", "true"),
            ("app", "api"),
            ("job", "pods"),
            ("team_name", "core"),
        ]),
    },
    Case {
        name: "target label from the match",
        input: &[("a", "some-name-value")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = "some-([^-]+)-([^,]+)"
            replacement = "${2}"
            target_label = "${1}"
        "#,
        output: Some(&[("a", "some-name-value"), ("name", "value")]),
    },
    Case {
        name: "replacement naming a missing group deletes the target (absent here)",
        input: &[("a", "some-name-value")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = "some-([^-]+)-([^,]+)"
            replacement = "${3}"
            target_label = "${1}"
        "#,
        output: Some(&[("a", "some-name-value")]),
    },
    Case {
        name: "target label expanding to an empty or invalid name changes nothing",
        input: &[("a", "some-name-0")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = "some-([^-]+)-([^,]+)"
            replacement = "${1}"
            target_label = "${3}"

            [[rule]]
            source_labels = ["a"]
            regex = "some-([^-]+)-([^,]+)"
            replacement = "${1}"
            target_label = "${2}"

            [[rule]]
            source_labels = ["a"]
            regex = "some-([^-]+)(-[^,]+)"
            replacement = "${1}"
            target_label = "${2}"
        "#,
        output: Some(&[("a", "some-name-0")]),
    },
    Case {
        name: "service discovery tags",
        input: &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
        rules: r#"
            [[rule]]
            source_labels = ["__meta_sd_tags"]
            regex = "(?:.+,|^)path:(/[^,]+).*"
            replacement = "${1}"
            target_label = "__metrics_path__"

            [[rule]]
            source_labels = ["__meta_sd_tags"]
            regex = "(?:.+,|^)job:([^,]+).*"
            replacement = "${1}"
            target_label = "job"

            [[rule]]
            source_labels = ["__meta_sd_tags"]
            regex = "(?:.+,|^)label:([^=]+)=([^,]+).*"
            replacement = "${2}"
            target_label = "${1}"
        "#,
        output: Some(&[
            ("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"),
            ("__metrics_path__", "/secret"),
            ("foo", "bar"),
            ("job", "some-job"),
        ]),
    },
    Case {
        name: "prometheus#12283: a dropped label can be set again",
        input: &[
            ("__meta_kubernetes_pod_container_port_name", "foo"),
            ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
        ],
        rules: r#"
            [[rule]]
            regex = "^__meta_kubernetes_pod_container_port_name$"
            action = "labeldrop"

            [[rule]]
            source_labels = ["__meta_kubernetes_pod_annotation_XXX_metrics_port"]
            regex = "(.+)"
            replacement = "metrics"
            target_label = "__meta_kubernetes_pod_container_port_name"

            [[rule]]
            source_labels = ["__meta_kubernetes_pod_container_port_name"]
            regex = "^metrics$"
            action = "keep"
        "#,
        output: Some(&[
            ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
            ("__meta_kubernetes_pod_container_port_name", "metrics"),
        ]),
    },
    Case {
        name: "labelkeep",
        input: &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
        rules: r#"
            [[rule]]
            regex = "(b.*)"
            action = "labelkeep"
        "#,
        output: Some(&[("b1", "bar"), ("b2", "baz")]),
    },
    Case {
        name: "labeldrop",
        input: &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
        rules: r#"
            [[rule]]
            regex = "(b.*)"
            action = "labeldrop"
        "#,
        output: Some(&[("a", "foo")]),
    },
    Case {
        name: "labeldrop of everything leaves an empty set, not a drop",
        input: &[("a", "foo")],
        rules: r#"
            [[rule]]
            regex = ".*"
            action = "labeldrop"
        "#,
        output: Some(&[]),
    },
    Case {
        name: "uppercase and lowercase",
        input: &[("foo", "bAr123Foo")],
        rules: r#"
            [[rule]]
            source_labels = ["foo"]
            action = "uppercase"
            target_label = "foo_uppercase"

            [[rule]]
            source_labels = ["foo"]
            action = "lowercase"
            target_label = "foo_lowercase"
        "#,
        output: Some(&[
            ("foo", "bAr123Foo"),
            ("foo_lowercase", "bar123foo"),
            ("foo_uppercase", "BAR123FOO"),
        ]),
    },
    Case {
        name: "keepequal keeps on equal values",
        input: PORTS,
        rules: r#"
            [[rule]]
            source_labels = ["__tmp_port"]
            action = "keepequal"
            target_label = "__port1"
        "#,
        output: Some(PORTS),
    },
    Case {
        name: "dropequal drops on equal values",
        input: PORTS,
        rules: r#"
            [[rule]]
            source_labels = ["__tmp_port"]
            action = "dropequal"
            target_label = "__port1"
        "#,
        output: None,
    },
    Case {
        name: "dropequal keeps on different values",
        input: PORTS,
        rules: r#"
            [[rule]]
            source_labels = ["__tmp_port"]
            action = "dropequal"
            target_label = "__port2"
        "#,
        output: Some(PORTS),
    },
    Case {
        name: "keepequal drops on different values",
        input: PORTS,
        rules: r#"
            [[rule]]
            source_labels = ["__tmp_port"]
            action = "keepequal"
            target_label = "__port2"
        "#,
        output: None,
    },
    Case {
        name: "keepequal: a missing target equals an empty source",
        input: &[("a", "x")],
        rules: r#"
            [[rule]]
            source_labels = ["missing"]
            action = "keepequal"
            target_label = "also_missing"
        "#,
        output: Some(&[("a", "x")]),
    },
    Case {
        name: ". matches a newline",
        input: &[("a", "line1\nline2"), ("b", "bar"), ("c", "baz")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = "line1.*line2"
            target_label = "d"
            replacement = "match${1}"
        "#,
        output: Some(&[
            ("a", "line1\nline2"),
            ("b", "bar"),
            ("c", "baz"),
            ("d", "match"),
        ]),
    },
    Case {
        name: "named groups, braced and bare",
        input: &[("a", "line1\nline2")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = "(line1).*(?<second>line2)"
            target_label = "label1_${1}"
            replacement = "val_${second}"

            [[rule]]
            source_labels = ["a"]
            regex = "(line1).*(?P<second>line2)"
            target_label = "label2_$1"
            replacement = "val_$second"
        "#,
        output: Some(&[
            ("a", "line1\nline2"),
            ("label1_line1", "val_line2"),
            ("label2_line1", "val_line2"),
        ]),
    },
    Case {
        name: "$1x is the group named 1x, not group 1 then x",
        input: &[("a", "foo")],
        rules: r#"
            [[rule]]
            source_labels = ["a"]
            regex = "(f)oo"
            target_label = "d"
            replacement = "[$1x][${1}x]"
        "#,
        output: Some(&[("a", "foo"), ("d", "[][fx]")]),
    },
    Case {
        name: "type and unit labels",
        input: &[("__name__", "http_requests_total")],
        rules: r#"
            [[rule]]
            source_labels = ["__name__"]
            regex = ".*_total$"
            target_label = "__type__"
            replacement = "counter"
        "#,
        output: Some(&[("__name__", "http_requests_total"), ("__type__", "counter")]),
    },
    Case {
        name: "Kubernetes address rewrite with \\d",
        input: &[
            ("__address__", "10.132.183.40:80"),
            (
                "__meta_kubernetes_pod_annotation_prometheus_io_port",
                "9102",
            ),
        ],
        rules: r#"
            [[rule]]
            source_labels = ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"]
            regex = '(.+?)(\:\d+)?;(\d+)'
            replacement = "$1:$3"
            target_label = "__address__"
        "#,
        output: Some(&[
            ("__address__", "10.132.183.40:9102"),
            (
                "__meta_kubernetes_pod_annotation_prometheus_io_port",
                "9102",
            ),
        ]),
    },
];

#[test]
fn relabel_cases() {
    for case in CASES {
        let got = relabel(case.input, case.rules);
        let want = case
            .output
            .map(|pairs| Labels::from_pairs(pairs.iter().copied()));
        assert_eq!(got, want, "case {:?}", case.name);
    }
}
