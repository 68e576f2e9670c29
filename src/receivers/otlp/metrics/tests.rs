//! The conversion against Prometheus' own expectations: name and unit tables
//! from `otlptranslator`'s `metric_namer_test.go`, `unit_namer_test.go` and
//! `label_namer_test.go` (with Prometheus' default options), and exact series
//! for each metric type.

use std::collections::BTreeMap;

use ferro_proto::prometheus::{BucketSpan, Histogram, histogram};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::metrics::v1::{
    self as otlp, AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, SummaryDataPoint,
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;

use super::names::{NameType, format_float, label_name, metric_name, unit_name};
use super::*;
use crate::receivers::otlp::values::value_string;
use crate::signal::metrics::{STALE_NAN_BITS, is_stale_nan};

const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;
const DELTA: i32 = AggregationTemporality::Delta as i32;
/// 2023-11-14T22:13:20.123456789Z.
const T: u64 = 1_700_000_000_123_456_789;
const T_MS: i64 = 1_700_000_000_123;

// ---- names ----

#[test]
fn metric_names_follow_prometheus() {
    use NameType::*;
    #[rustfmt::skip]
    let cases: &[(&str, &str, NameType, Option<&str>)] = &[
        // metric_namer_test.go, UTF8Allowed=false, WithMetricSuffixes=true.
        ("requests", "", MonotonicCounter, Some("requests_total")),
        ("cpu_usage", "1", Gauge, Some("cpu_usage_ratio")),
        ("items", "1", MonotonicCounter, Some("items_total")),
        ("response_time", "ms", Gauge, Some("response_time_milliseconds")),
        ("memory_usage", "By", Gauge, Some("memory_usage_bytes")),
        ("requests", "1/s", Gauge, Some("requests_per_second")),
        ("throughput", "By/s", Gauge, Some("throughput_bytes_per_second")),
        ("custom_metric", "custom_unit", Gauge, Some("custom_metric_custom_unit")),
        ("custom_metric", "{custom}", Gauge, Some("custom_metric")),
        ("custom_metric", "By/{custom}", Gauge, Some("custom_metric_bytes")),
        ("requests_total", "", MonotonicCounter, Some("requests_total")),
        ("cpu_usage_ratio", "1", Gauge, Some("cpu_usage_ratio")),
        ("response_time_seconds", "s", Gauge, Some("response_time_seconds")),
        ("metric__with__multiple__underscores", "unit__multiple__underscores", Gauge, Some("metric_with_multiple_underscores_unit_multiple_underscores")),
        ("custom_metric", "unit@with#special/chars", Gauge, Some("custom_metric_unit_with_special_per_chars")),
        ("@#$%", "", Gauge, None),
        ("request_duration", "s", Histogram, Some("request_duration_seconds")),
        ("request_size", "By", ExponentialHistogram, Some("request_size_bytes")),
        ("response_time", "ms", Summary, Some("response_time_milliseconds")),
        ("active_connections", "", NonMonotonicCounter, Some("active_connections")),
        ("unknown_metric", "", Gauge, Some("unknown_metric")),
        ("uptime", "d", Gauge, Some("uptime_days")),
        ("duration", "h", Gauge, Some("duration_hours")),
        ("timeout", "min", Gauge, Some("timeout_minutes")),
        ("latency", "us", Gauge, Some("latency_microseconds")),
        ("latency", "ns", Gauge, Some("latency_nanoseconds")),
        ("metric@with#special$chars", "", Gauge, Some("metric_with_special_chars")),
        ("metric@@##$$name", "", Gauge, Some("metric_name")),
        // The doc examples.
        ("http.server.duration", "s", Histogram, Some("http_server_duration_seconds")),
        ("requests.count", "1", MonotonicCounter, Some("requests_count_total")),
        ("memory.usage", "By", Gauge, Some("memory_usage_bytes")),
        // Leading digits, empty names.
        ("123_requests", "", MonotonicCounter, Some("_123_requests_total")),
        ("", "", Gauge, None),
        ("...", "s", Gauge, Some("seconds")),
        // collector-contrib normalize_name_test.go cases.
        ("system.filesystem.usage", "By", Gauge, Some("system_filesystem_usage_bytes")),
        ("system.network.dropped", "{packets}", Gauge, Some("system_network_dropped")),
        ("system.network.dropped", "packets", Gauge, Some("system_network_dropped_packets")),
        ("system.cpu.utilization", "1", Gauge, Some("system_cpu_utilization_ratio")),
        ("hello_you", "", MonotonicCounter, Some("hello_you_total")),
        ("cpu", "%", Gauge, Some("cpu_percent")),
        // `_total`/`_ratio` move to the end; only gauges get `_ratio`.
        ("total.requests", "", MonotonicCounter, Some("requests_total")),
        ("active", "1", NonMonotonicCounter, Some("active")),
        ("ratio.of.things", "1", Gauge, Some("of_things_ratio")),
        ("requests", "1/s", MonotonicCounter, Some("requests_per_second_total")),
        // Units: blanks trimmed; a denominator of only invalid characters
        // dropped (and `_ratio` is for unit `1` exactly); a unit word is
        // only skipped as a whole token, so a `per_second` already in the
        // name is added again (Go does this too).
        ("latency", " s ", Gauge, Some("latency_seconds")),
        ("x", "1/%%", Gauge, Some("x")),
        ("throughput_per_second", "1/s", Gauge, Some("throughput_per_second_per_second")),
        ("seconds.total", "s", MonotonicCounter, Some("seconds_total")),
    ];
    for (name, unit, kind, want) in cases {
        assert_eq!(
            metric_name(name, unit, *kind).as_deref(),
            *want,
            "{name:?} unit {unit:?} as {kind:?}"
        );
    }
}

#[test]
fn unit_names_follow_prometheus() {
    // unit_namer_test.go, UTF8Allowed=false.
    let cases = [
        ("", ""),
        ("   ", ""),
        ("s", "seconds"),
        ("ms", "milliseconds"),
        ("us", "microseconds"),
        ("ns", "nanoseconds"),
        ("min", "minutes"),
        ("h", "hours"),
        ("d", "days"),
        ("By", "bytes"),
        ("KiBy", "kibibytes"),
        ("MiBy", "mebibytes"),
        ("GiBy", "gibibytes"),
        ("TiBy", "tibibytes"),
        ("KBy", "kilobytes"),
        ("MBy", "megabytes"),
        ("GBy", "gigabytes"),
        ("TBy", "terabytes"),
        ("m", "meters"),
        ("V", "volts"),
        ("A", "amperes"),
        ("J", "joules"),
        ("W", "watts"),
        ("g", "grams"),
        ("Cel", "celsius"),
        ("Hz", "hertz"),
        ("%", "percent"),
        ("1", ""),
        ("1/s", "per_second"),
        ("1/m", "per_minute"),
        ("1/h", "per_hour"),
        ("1/d", "per_day"),
        ("1/w", "per_week"),
        ("1/mo", "per_month"),
        ("1/y", "per_year"),
        ("By/s", "bytes_per_second"),
        ("KBy/s", "kilobytes_per_second"),
        ("MBy/h", "megabytes_per_hour"),
        ("requests/m", "requests_per_minute"),
        ("W/h", "watts_per_hour"),
        ("custom_unit", "custom_unit"),
        ("1/custom", "per_custom"),
        ("custom/custom", "custom_per_custom"),
        ("{custom}", ""),
        ("By/{custom}", "bytes"),
        ("{custom}/s", "per_second"),
        ("{custom}/{invalid}", ""),
        ("custom@unit#with$chars", "custom_unit_with_chars"),
        ("By/custom@per#unit", "bytes_per_custom_per_unit"),
        ("unit@@##$$name", "unit_name"),
        (
            "unit__with__multiple__underscores",
            "unit_with_multiple_underscores",
        ),
        ("@#$%", ""),
        ("/", ""),
        ("By/", "bytes"),
        ("seconds/", "seconds"),
        ("/s", "per_second"),
        ("_custom_unit", "custom_unit"),
        ("custom_unit_", "custom_unit"),
        ("By/_custom__unit_", "bytes_per_custom_unit"),
    ];
    for (unit, want) in cases {
        assert_eq!(unit_name(unit), want, "unit {unit:?}");
    }
}

#[test]
fn label_names_follow_prometheus() {
    // label_namer_test.go with Prometheus' defaults: underscore sanitization
    // on, multiple underscores preserved.
    #[rustfmt::skip]
    let cases = [
        ("label:with:colons", Some("label_with_colons")),
        ("LabelWithCapitalLetters", Some("LabelWithCapitalLetters")),
        ("label!with&special$chars)", Some("label_with_special_chars_")),
        ("label_with_foreign_characters_字符", Some("label_with_foreign_characters___")),
        ("label.with.dots", Some("label_with_dots")),
        ("123label", Some("key_123label")),
        ("_label_starting_with_underscore", Some("key_label_starting_with_underscore")),
        ("__label_starting_with_2underscores", Some("__label_starting_with_2underscores")),
        ("label__with__double__underscores", Some("label__with__double__underscores")),
        ("__reserved__label__name__", Some("__reserved__label__name__")),
        ("trailing_underscores___", Some("trailing_underscores___")),
        ("regular label", Some("regular_label")),
        ("http.method", Some("http_method")),
        ("job", Some("job")),
        // Refused: empty, or nothing but underscores.
        ("", None),
        ("__", None),
        ("ようこそ", None),
    ];
    for (key, want) in cases {
        assert_eq!(label_name(key).as_deref(), want, "key {key:?}");
    }
}

#[test]
fn floats_are_formatted_like_go() {
    let cases = [
        (0.5, "0.5"),
        (1.0, "1"),
        (100.0, "100"),
        (0.1 + 0.2, "0.30000000000000004"),
        (2.5e-5, "0.000025"),
        (1e-7, "0.0000001"),
        (1e21, "1000000000000000000000"),
        (-3.25, "-3.25"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (f64::NAN, "NaN"),
    ];
    for (value, want) in cases {
        assert_eq!(format_float(value), want);
    }
}

#[test]
fn attribute_values_are_written_like_pcommon() {
    let any = |value: any_value::Value| AnyValue { value: Some(value) };
    use any_value::Value::*;
    let cases = [
        (StringValue("a b".into()), "a b"),
        (BoolValue(true), "true"),
        (IntValue(-42), "-42"),
        (DoubleValue(1.5), "1.5"),
        (DoubleValue(100.0), "100"),
        (DoubleValue(1e21), "1e+21"),
        (DoubleValue(1.5e-7), "1.5e-7"),
        (DoubleValue(f64::NAN), "json: unsupported value: NaN"),
        (BytesValue(vec![0xde, 0xad, 0xbe, 0xef]), "3q2+7w=="),
        (
            ArrayValue(otlp_array(vec![
                any(IntValue(1)),
                any(StringValue("a<b\"\n".into())),
                any(BoolValue(false)),
                AnyValue { value: None },
                any(DoubleValue(0.25)),
            ])),
            r#"[1,"a\u003cb\"\n",false,null,0.25]"#,
        ),
        (
            KvlistValue(KeyValueList {
                values: vec![kv_int("b", 2), kv("a", "x"), kv_int("b", 3)],
            }),
            r#"{"a":"x","b":3}"#,
        ),
        // Go's JSON encoder refuses NaN, and pcommon then gives "".
        (ArrayValue(otlp_array(vec![any(DoubleValue(f64::NAN))])), ""),
    ];
    for (value, want) in cases {
        assert_eq!(value_string(Some(&any(value.clone()))), want, "{value:?}");
    }
    assert_eq!(value_string(None), "");
}

// ---- request builders ----

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

fn otlp_array(values: Vec<AnyValue>) -> ArrayValue {
    ArrayValue { values }
}

fn service() -> Vec<KeyValue> {
    vec![
        kv("service.name", "checkout"),
        kv("service.namespace", "shop"),
        kv("service.instance.id", "i-1"),
    ]
}

fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(OtlpResource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.to_string(),
        description: format!("{name} help"),
        unit: unit.to_string(),
        data: Some(data),
        ..Default::default()
    }
}

fn number(
    value: number_data_point::Value,
    attributes: Vec<KeyValue>,
    time: u64,
) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: time,
        value: Some(value),
        ..Default::default()
    }
}

fn gauge(points: Vec<NumberDataPoint>) -> Data {
    Data::Gauge(otlp::Gauge {
        data_points: points,
    })
}

fn sum(points: Vec<NumberDataPoint>, monotonic: bool, temporality: i32) -> Data {
    Data::Sum(otlp::Sum {
        data_points: points,
        aggregation_temporality: temporality,
        is_monotonic: monotonic,
    })
}

fn exemplar(value: f64, trace: &str, span: &str) -> otlp::Exemplar {
    otlp::Exemplar {
        time_unix_nano: T,
        value: Some(otlp::exemplar::Value::AsDouble(value)),
        trace_id: hex::decode(trace).unwrap(),
        span_id: hex::decode(span).unwrap(),
        ..Default::default()
    }
}

/// Every sample, by series (labels in Prometheus notation).
fn samples(converted: &Converted) -> BTreeMap<String, Vec<(f64, i64)>> {
    converted
        .metrics
        .series
        .iter()
        .map(|s| {
            let samples = s
                .samples
                .iter()
                .map(|x| (x.value, x.timestamp_ms))
                .collect();
            (s.labels.to_string(), samples)
        })
        .collect()
}

fn series<'a>(converted: &'a Converted, labels: &str) -> &'a Series {
    converted
        .metrics
        .series
        .iter()
        .find(|s| s.labels.to_string() == labels)
        .unwrap_or_else(|| panic!("no series {labels} in {:#?}", samples(converted)))
}

fn expected(pairs: &[(&str, f64)]) -> BTreeMap<String, Vec<(f64, i64)>> {
    pairs
        .iter()
        .map(|(labels, value)| (labels.to_string(), vec![(*value, T_MS)]))
        .collect()
}

// ---- metric types ----

#[test]
fn gauge_becomes_a_gauge_with_job_and_instance() {
    let converted = convert(request(
        service(),
        vec![metric(
            "memory.usage",
            "By",
            gauge(vec![number(
                number_data_point::Value::AsInt(42),
                vec![kv("host.name", "a")],
                T,
            )]),
        )],
    ));
    assert_eq!(converted.rejected_points, 0);
    assert!(converted.rejections.is_empty());
    assert_eq!(converted.error_message, "");
    assert_eq!(
        samples(&converted),
        expected(&[(
            r#"{__name__="memory_usage_bytes", host_name="a", instance="i-1", job="shop/checkout"}"#,
            42.0
        )])
    );
    assert_eq!(
        converted.metrics.metadata,
        vec![Metadata {
            family: "memory_usage_bytes".into(),
            kind: MetricType::Gauge,
            help: "memory.usage help".into(),
            unit: "bytes".into(),
        }]
    );
}

#[test]
fn gauge_of_unit_one_is_a_ratio_and_job_without_namespace_is_the_name() {
    let converted = convert(request(
        vec![kv("service.name", "api")],
        vec![metric(
            "cpu.utilization",
            "1",
            gauge(vec![number(
                number_data_point::Value::AsDouble(0.25),
                vec![],
                T,
            )]),
        )],
    ));
    assert_eq!(
        samples(&converted),
        expected(&[(r#"{__name__="cpu_utilization_ratio", job="api"}"#, 0.25)])
    );
    // Dimensionless: no unit in the metadata either.
    assert_eq!(converted.metrics.metadata[0].unit, "");
}

#[test]
fn monotonic_cumulative_sum_becomes_a_counter_with_exemplars() {
    let mut point = number(
        number_data_point::Value::AsInt(7),
        vec![kv("http.route", "/cart")],
        T,
    );
    point.exemplars = vec![
        exemplar(1.5, "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"),
        // All-zero ids are no ids; attributes ride along when short.
        otlp::Exemplar {
            filtered_attributes: vec![kv("user", "u1")],
            value: Some(otlp::exemplar::Value::AsInt(2)),
            time_unix_nano: T,
            trace_id: vec![0; 16],
            span_id: vec![],
        },
        // Attributes past 128 characters are dropped, the ids kept.
        otlp::Exemplar {
            filtered_attributes: vec![kv("long", &"x".repeat(100))],
            ..exemplar(3.0, "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
        },
        // No value: no exemplar.
        otlp::Exemplar {
            value: None,
            ..exemplar(4.0, "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
        },
    ];
    let converted = convert(request(
        service(),
        vec![metric(
            "http.server.requests",
            "{request}",
            sum(vec![point], true, CUMULATIVE),
        )],
    ));
    let labels = r#"{__name__="http_server_requests_total", http_route="/cart", instance="i-1", job="shop/checkout"}"#;
    assert_eq!(samples(&converted), expected(&[(labels, 7.0)]));
    let ids = Labels::from_pairs([
        ("trace_id", "5b8efff798038103d269b633813fc60c"),
        ("span_id", "eee19b7ec3c1b174"),
    ]);
    assert_eq!(
        series(&converted, labels).exemplars,
        vec![
            Exemplar {
                labels: ids.clone(),
                value: 1.5,
                timestamp_ms: T_MS,
            },
            Exemplar {
                labels: Labels::from_pairs([("user", "u1")]),
                value: 2.0,
                timestamp_ms: T_MS,
            },
            Exemplar {
                labels: ids,
                value: 3.0,
                timestamp_ms: T_MS,
            },
        ]
    );
    assert_eq!(
        converted.metrics.metadata,
        vec![Metadata {
            family: "http_server_requests_total".into(),
            kind: MetricType::Counter,
            help: "http.server.requests help".into(),
            unit: String::new(),
        }]
    );
}

#[test]
fn non_monotonic_sum_becomes_a_gauge_without_total() {
    let converted = convert(request(
        vec![kv("service.name", "api")],
        vec![metric(
            "queue.size",
            "{item}",
            sum(
                vec![number(number_data_point::Value::AsInt(-3), vec![], T)],
                false,
                CUMULATIVE,
            ),
        )],
    ));
    assert_eq!(
        samples(&converted),
        expected(&[(r#"{__name__="queue_size", job="api"}"#, -3.0)])
    );
    assert_eq!(converted.metrics.metadata[0].kind, MetricType::Gauge);
}

fn histogram_point() -> HistogramDataPoint {
    HistogramDataPoint {
        attributes: vec![kv("http.route", "/")],
        time_unix_nano: T,
        count: 10,
        sum: Some(12.5),
        bucket_counts: vec![1, 2, 3, 4],
        explicit_bounds: vec![0.5, 1.0, 2.5],
        ..Default::default()
    }
}

fn histogram(points: Vec<HistogramDataPoint>, temporality: i32) -> Data {
    Data::Histogram(otlp::Histogram {
        data_points: points,
        aggregation_temporality: temporality,
    })
}

#[test]
fn histogram_becomes_cumulative_buckets_sum_and_count() {
    let mut point = histogram_point();
    point.exemplars = vec![
        exemplar(0.7, "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"),
        exemplar(
            100.0,
            "5b8efff798038103d269b633813fc60d",
            "eee19b7ec3c1b175",
        ),
        exemplar(0.5, "5b8efff798038103d269b633813fc60e", "eee19b7ec3c1b176"),
    ];
    let converted = convert(request(
        vec![kv("service.name", "api")],
        vec![metric(
            "http.server.duration",
            "s",
            histogram(vec![point], CUMULATIVE),
        )],
    ));
    let name = "http_server_duration_seconds";
    let bucket =
        |le: &str| format!(r#"{{__name__="{name}_bucket", http_route="/", job="api", le="{le}"}}"#);
    let want: BTreeMap<_, _> = [
        (
            format!(r#"{{__name__="{name}_sum", http_route="/", job="api"}}"#),
            12.5,
        ),
        (
            format!(r#"{{__name__="{name}_count", http_route="/", job="api"}}"#),
            10.0,
        ),
        (bucket("0.5"), 1.0),
        (bucket("1"), 3.0),
        (bucket("2.5"), 6.0),
        (bucket("+Inf"), 10.0),
    ]
    .into_iter()
    .map(|(labels, value)| (labels, vec![(value, T_MS)]))
    .collect();
    assert_eq!(samples(&converted), want);

    // Each exemplar sits in the lowest bucket that holds it.
    let exemplar_values = |le: &str| -> Vec<f64> {
        series(&converted, &bucket(le))
            .exemplars
            .iter()
            .map(|e| e.value)
            .collect()
    };
    assert_eq!(exemplar_values("0.5"), vec![0.5]);
    assert_eq!(exemplar_values("1"), vec![0.7]);
    assert_eq!(exemplar_values("2.5"), Vec::<f64>::new());
    assert_eq!(exemplar_values("+Inf"), vec![100.0]);

    assert_eq!(
        converted.metrics.metadata,
        vec![Metadata {
            family: name.into(),
            kind: MetricType::Histogram,
            help: "http.server.duration help".into(),
            unit: "seconds".into(),
        }]
    );
}

#[test]
fn histogram_without_sum_or_buckets() {
    let point = HistogramDataPoint {
        time_unix_nano: T,
        count: 4,
        sum: None,
        ..Default::default()
    };
    let converted = convert(request(
        vec![kv("service.instance.id", "i-9")],
        vec![metric("h", "", histogram(vec![point], CUMULATIVE))],
    ));
    assert_eq!(
        samples(&converted),
        expected(&[
            (r#"{__name__="h_count", instance="i-9"}"#, 4.0),
            (r#"{__name__="h_bucket", instance="i-9", le="+Inf"}"#, 4.0),
        ])
    );
}

#[test]
fn malformed_histograms_are_rejected_as_invalid() {
    let mismatch = HistogramDataPoint {
        bucket_counts: vec![1, 2],
        ..histogram_point()
    };
    let unordered = HistogramDataPoint {
        explicit_bounds: vec![1.0, 0.5, 2.5],
        ..histogram_point()
    };
    let nan = HistogramDataPoint {
        explicit_bounds: vec![0.5, f64::NAN, 2.5],
        ..histogram_point()
    };
    let converted = convert(request(
        service(),
        vec![metric(
            "h",
            "",
            histogram(
                vec![mismatch, histogram_point(), unordered, nan],
                CUMULATIVE,
            ),
        )],
    ));
    assert_eq!(converted.rejected_points, 3);
    assert_eq!(converted.rejections, vec![(REASON_INVALID, 3)]);
    assert!(
        converted
            .error_message
            .contains("histogram has 2 bucket counts for 3 explicit bounds"),
        "{}",
        converted.error_message
    );
    // The good point is there.
    assert_eq!(converted.metrics.series.len(), 6);
}

#[test]
fn summary_becomes_quantiles_sum_and_count() {
    let point = SummaryDataPoint {
        attributes: vec![kv("op", "get")],
        time_unix_nano: T,
        count: 20,
        sum: 3.5,
        quantile_values: vec![
            ValueAtQuantile {
                quantile: 0.5,
                value: 0.1,
            },
            ValueAtQuantile {
                quantile: 0.99,
                value: 0.9,
            },
            ValueAtQuantile {
                quantile: 1.0,
                value: 1.2,
            },
        ],
        ..Default::default()
    };
    let converted = convert(request(
        vec![kv("service.name", "api")],
        vec![metric(
            "rpc.duration",
            "ms",
            Data::Summary(otlp::Summary {
                data_points: vec![point],
            }),
        )],
    ));
    let name = "rpc_duration_milliseconds";
    assert_eq!(
        samples(&converted),
        expected(&[
            (
                &format!(r#"{{__name__="{name}_sum", job="api", op="get"}}"#),
                3.5
            ),
            (
                &format!(r#"{{__name__="{name}_count", job="api", op="get"}}"#),
                20.0
            ),
            (
                &format!(r#"{{__name__="{name}", job="api", op="get", quantile="0.5"}}"#),
                0.1
            ),
            (
                &format!(r#"{{__name__="{name}", job="api", op="get", quantile="0.99"}}"#),
                0.9
            ),
            (
                &format!(r#"{{__name__="{name}", job="api", op="get", quantile="1"}}"#),
                1.2
            ),
        ])
    );
    assert_eq!(converted.metrics.metadata[0].kind, MetricType::Summary);
    assert_eq!(converted.metrics.metadata[0].family, name);
}

// ---- exponential histograms ----

fn exponential(points: Vec<ExponentialHistogramDataPoint>, temporality: i32) -> Data {
    Data::ExponentialHistogram(otlp::ExponentialHistogram {
        data_points: points,
        aggregation_temporality: temporality,
    })
}

fn buckets(offset: i32, counts: &[u64]) -> Option<Buckets> {
    Some(Buckets {
        offset,
        bucket_counts: counts.to_vec(),
    })
}

fn span(offset: i32, length: u32) -> BucketSpan {
    BucketSpan { offset, length }
}

fn convert_exponential(point: ExponentialHistogramDataPoint) -> Converted {
    convert(request(
        vec![kv("service.name", "api")],
        vec![metric(
            "rpc.latency",
            "s",
            exponential(vec![point], CUMULATIVE),
        )],
    ))
}

fn native_of(converted: &Converted) -> &Histogram {
    let series = series(converted, r#"{__name__="rpc_latency_seconds", job="api"}"#);
    assert!(series.samples.is_empty());
    &series.histograms[0]
}

#[test]
fn exponential_histogram_becomes_a_native_histogram() {
    let converted = convert_exponential(ExponentialHistogramDataPoint {
        time_unix_nano: T,
        scale: 3,
        count: 8,
        sum: Some(10.0),
        zero_count: 1,
        // OTLP indexes -1..=4 are Prometheus indexes 0..=5; the run of
        // three empty buckets (Prometheus 2..=4) starts a new span.
        positive: buckets(-1, &[2, 1, 0, 0, 0, 3]),
        negative: buckets(0, &[1]),
        exemplars: vec![exemplar(
            0.3,
            "5b8efff798038103d269b633813fc60c",
            "eee19b7ec3c1b174",
        )],
        ..Default::default()
    });
    assert_eq!(converted.rejected_points, 0, "{}", converted.error_message);
    let h = native_of(&converted);
    assert_eq!(h.schema, 3);
    assert_eq!(h.count, Some(histogram::Count::CountInt(8)));
    assert_eq!(h.sum, 10.0);
    assert_eq!(h.zero_count, Some(histogram::ZeroCount::ZeroCountInt(1)));
    assert_eq!(h.zero_threshold, 1e-128);
    // Buckets 0 and 1 (counts 2, 1), then 3 empty, then bucket 5 (count 3).
    assert_eq!(h.positive_spans, vec![span(0, 2), span(3, 1)]);
    assert_eq!(h.positive_deltas, vec![2, -1, 2]);
    assert_eq!(h.negative_spans, vec![span(1, 1)]);
    assert_eq!(h.negative_deltas, vec![1]);
    assert_eq!(h.reset_hint, histogram::ResetHint::Unknown as i32);
    assert_eq!(h.timestamp, T_MS);
    assert!(h.positive_counts.is_empty() && h.custom_values.is_empty());
    let series = series(&converted, r#"{__name__="rpc_latency_seconds", job="api"}"#);
    assert_eq!(series.exemplars.len(), 1);
    assert_eq!(converted.metrics.metadata[0].kind, MetricType::Histogram);
}

#[test]
fn exponential_histogram_small_gaps_are_zero_buckets() {
    let converted = convert_exponential(ExponentialHistogramDataPoint {
        time_unix_nano: T,
        scale: 0,
        count: 6,
        // Leading empty buckets, a gap of two, a trailing empty bucket.
        positive: buckets(0, &[0, 1, 0, 0, 2, 3, 0]),
        zero_threshold: 0.001,
        ..Default::default()
    });
    let h = native_of(&converted);
    // Prometheus' layout keeps the first span at the first OTLP bucket and
    // writes the empty ones as zeros.
    assert_eq!(h.positive_spans, vec![span(1, 7)]);
    assert_eq!(h.positive_deltas, vec![0, 1, -1, 0, 2, 1, -3]);
    // The point's own zero threshold is kept.
    assert_eq!(h.zero_threshold, 0.001);
    assert_eq!(h.sum, 0.0);
}

#[test]
fn exponential_histogram_scales_above_8_are_downscaled() {
    let converted = convert_exponential(ExponentialHistogramDataPoint {
        time_unix_nano: T,
        scale: 10,
        count: 9,
        sum: Some(1.0),
        // Scale 10 → 8 merges each 4 buckets: OTLP 2..=3 → 1, 4..=7 → 2.
        positive: buckets(2, &[1, 1, 1, 1, 1, 1]),
        // Negative indexes floor: -3..=-1 → -1 → Prometheus 0.
        negative: buckets(-3, &[1, 1, 1]),
        ..Default::default()
    });
    assert_eq!(converted.rejected_points, 0, "{}", converted.error_message);
    let h = native_of(&converted);
    assert_eq!(h.schema, 8);
    assert_eq!(h.positive_spans, vec![span(1, 2)]);
    assert_eq!(h.positive_deltas, vec![2, 2]);
    assert_eq!(h.negative_spans, vec![span(0, 1)]);
    assert_eq!(h.negative_deltas, vec![3]);

    // Scale 20 → 8 merges 4096 buckets: widely spread buckets collapse.
    let converted = convert_exponential(ExponentialHistogramDataPoint {
        time_unix_nano: T,
        scale: 20,
        count: 3,
        positive: buckets(4095, &[1, 2]),
        ..Default::default()
    });
    let h = native_of(&converted);
    // OTLP 4095 → 0 → Prometheus 1; OTLP 4096 → 1 → Prometheus 2.
    assert_eq!(h.positive_spans, vec![span(1, 2)]);
    assert_eq!(h.positive_deltas, vec![1, 1]);
}

#[test]
fn exponential_histograms_prometheus_cannot_store_are_invalid() {
    let too_coarse = ExponentialHistogramDataPoint {
        scale: -5,
        count: 1,
        zero_count: 1,
        ..Default::default()
    };
    let wrong_count = ExponentialHistogramDataPoint {
        count: 5,
        positive: buckets(0, &[1, 2]),
        ..Default::default()
    };
    let out_of_range = ExponentialHistogramDataPoint {
        count: 2,
        positive: buckets(i32::MAX, &[1, 1]),
        ..Default::default()
    };
    let fine = ExponentialHistogramDataPoint {
        count: 3,
        positive: buckets(0, &[1, 2]),
        ..Default::default()
    };
    let converted = convert(request(
        vec![kv("service.name", "api")],
        vec![metric(
            "e",
            "",
            exponential(
                vec![too_coarse, wrong_count, out_of_range, fine],
                CUMULATIVE,
            ),
        )],
    ));
    assert_eq!(converted.rejected_points, 3);
    assert_eq!(converted.rejections, vec![(REASON_INVALID, 3)]);
    assert!(converted.error_message.contains("scale -5"));
    assert!(
        converted
            .error_message
            .contains("buckets hold 3 observations but its count is 5")
    );
    assert_eq!(converted.metrics.series[0].histograms.len(), 1);
}

// ---- temporality, staleness, resources ----

#[test]
fn delta_temporality_is_rejected_and_counted() {
    let points = |n: usize| {
        (0..n)
            .map(|i| number(number_data_point::Value::AsInt(i as i64), vec![], T))
            .collect::<Vec<_>>()
    };
    let converted = convert(request(
        service(),
        vec![
            metric("delta.sum", "", sum(points(3), true, DELTA)),
            metric(
                "delta.histogram",
                "",
                histogram(vec![histogram_point(), histogram_point()], DELTA),
            ),
            metric(
                "delta.exponential",
                "",
                exponential(vec![ExponentialHistogramDataPoint::default()], DELTA),
            ),
            metric("unspecified.sum", "", sum(points(1), true, 0)),
            metric("fine", "", sum(points(1), true, CUMULATIVE)),
        ],
    ));
    assert_eq!(converted.rejected_points, 7);
    assert_eq!(
        converted.rejections,
        vec![(REASON_DELTA, 6), (REASON_INVALID, 1)]
    );
    assert_eq!(
        converted.error_message,
        "7 data points rejected: \
         metric \"delta.sum\": DELTA temporality is not supported, only CUMULATIVE (3 points); \
         metric \"delta.histogram\": DELTA temporality is not supported, only CUMULATIVE (2 points); \
         metric \"delta.exponential\": DELTA temporality is not supported, only CUMULATIVE (1 point); \
         metric \"unspecified.sum\": aggregation temporality 0 is not CUMULATIVE (1 point)"
    );
    assert_eq!(converted.metrics.series.len(), 1);
    assert_eq!(converted.metrics.metadata.len(), 1);
}

#[test]
fn no_recorded_value_is_a_staleness_marker() {
    let stale_number = NumberDataPoint {
        time_unix_nano: T,
        flags: 1,
        value: None,
        ..Default::default()
    };
    let stale_histogram = HistogramDataPoint {
        flags: 1,
        ..histogram_point()
    };
    let stale_summary = SummaryDataPoint {
        time_unix_nano: T,
        flags: 1,
        count: 1,
        sum: 1.0,
        quantile_values: vec![ValueAtQuantile {
            quantile: 0.5,
            value: 1.0,
        }],
        ..Default::default()
    };
    let stale_exponential = ExponentialHistogramDataPoint {
        time_unix_nano: T,
        flags: 1,
        count: 2,
        sum: Some(1.0),
        positive: buckets(0, &[2]),
        ..Default::default()
    };
    let converted = convert(request(
        vec![kv("service.name", "api")],
        vec![
            metric("g", "", gauge(vec![stale_number.clone()])),
            metric("c", "", sum(vec![stale_number], true, CUMULATIVE)),
            metric("h", "", histogram(vec![stale_histogram], CUMULATIVE)),
            metric(
                "s",
                "",
                Data::Summary(otlp::Summary {
                    data_points: vec![stale_summary],
                }),
            ),
            metric("e", "", exponential(vec![stale_exponential], CUMULATIVE)),
        ],
    ));
    assert_eq!(converted.rejected_points, 0, "{}", converted.error_message);
    let mut float_series = 0;
    for series in &converted.metrics.series {
        for sample in &series.samples {
            float_series += 1;
            assert!(is_stale_nan(sample.value), "{} not stale", series.labels);
            assert_eq!(sample.timestamp_ms, T_MS);
        }
    }
    // g, c_total, 6 histogram series, 3 summary series.
    assert_eq!(float_series, 11);
    let h = &series(&converted, r#"{__name__="e", job="api"}"#).histograms[0];
    assert!(is_stale_nan(h.sum));
    assert_eq!(h.count, Some(histogram::Count::CountInt(STALE_NAN_BITS)));
}

#[test]
fn target_info_carries_the_other_resource_attributes() {
    let resource = vec![
        kv("service.name", "api"),
        kv("service.instance.id", "i-1"),
        kv("k8s.pod.name", "api-7d9"),
        kv("cloud.region", "eu-west-1"),
    ];
    let later = T + 5_000_000_000;
    let converted = convert(request(
        resource,
        vec![
            metric(
                "a",
                "",
                gauge(vec![
                    number(number_data_point::Value::AsInt(1), vec![], T),
                    number(number_data_point::Value::AsInt(2), vec![], later),
                ]),
            ),
            // Rejected points count for the timestamp too.
            metric(
                "b",
                "",
                sum(
                    vec![number(
                        number_data_point::Value::AsInt(1),
                        vec![],
                        later + 1_000_000,
                    )],
                    true,
                    DELTA,
                ),
            ),
        ],
    ));
    let target = r#"{__name__="target_info", cloud_region="eu-west-1", instance="i-1", job="api", k8s_pod_name="api-7d9"}"#;
    assert_eq!(
        samples(&converted)[target],
        vec![(1.0, (later / 1_000_000) as i64 + 1)]
    );
    // Data point series carry job and instance only.
    assert_eq!(
        samples(&converted)[r#"{__name__="a", instance="i-1", job="api"}"#],
        vec![(1.0, T_MS), (2.0, T_MS + 5_000)]
    );
    assert!(converted.metrics.metadata.contains(&Metadata {
        family: "target_info".into(),
        kind: MetricType::Gauge,
        help: "Target metadata".into(),
        unit: String::new(),
    }));
}

#[test]
fn target_info_needs_other_attributes_and_an_identity() {
    let point = || gauge(vec![number(number_data_point::Value::AsInt(1), vec![], T)]);
    // Only the identifying attributes: nothing to add.
    let converted = convert(request(service(), vec![metric("a", "", point())]));
    assert_eq!(converted.metrics.series.len(), 1);
    // Other attributes but neither job nor instance: nothing to join on.
    let converted = convert(request(
        vec![kv("host.name", "h")],
        vec![metric("a", "", point())],
    ));
    assert_eq!(
        samples(&converted).keys().collect::<Vec<_>>(),
        vec![r#"{__name__="a"}"#]
    );
    // No data points: no timestamp to give it.
    let converted = convert(request(
        vec![kv("service.name", "api"), kv("host.name", "h")],
        vec![metric("a", "", gauge(vec![]))],
    ));
    assert!(converted.metrics.series.is_empty());
}

#[test]
fn colliding_attribute_names_join_their_values() {
    let converted = convert(request(
        vec![],
        vec![metric(
            "a",
            "",
            gauge(vec![number(
                number_data_point::Value::AsInt(1),
                // Sorted by key first: "a.b" < "a_b".
                vec![
                    kv("a_b", "2"),
                    kv("a.b", "1"),
                    kv_int("9lives", 9),
                    kv("le", "x"),
                ],
                T,
            )]),
        )],
    ));
    assert_eq!(
        samples(&converted).keys().collect::<Vec<_>>(),
        vec![r#"{__name__="a", a_b="1;2", key_9lives="9", le="x"}"#]
    );
}

#[test]
fn points_of_one_series_share_it_oldest_first() {
    let converted = convert(request(
        vec![kv("service.name", "api")],
        vec![metric(
            "a",
            "",
            gauge(vec![
                number(
                    number_data_point::Value::AsInt(2),
                    vec![],
                    T + 1_000_000_000,
                ),
                number(number_data_point::Value::AsInt(1), vec![], T),
            ]),
        )],
    ));
    assert_eq!(
        samples(&converted),
        BTreeMap::from([(
            r#"{__name__="a", job="api"}"#.to_string(),
            vec![(1.0, T_MS), (2.0, T_MS + 1_000)]
        )])
    );
}

#[test]
fn invalid_names_values_and_keys_are_rejected() {
    let converted = convert(request(
        vec![kv("service.name", "api")],
        vec![
            metric(
                "ようこそ",
                "",
                gauge(vec![
                    number(number_data_point::Value::AsInt(1), vec![], T);
                    2
                ]),
            ),
            metric(
                "",
                "",
                gauge(vec![number(number_data_point::Value::AsInt(1), vec![], T)]),
            ),
            metric(
                "no.value",
                "",
                gauge(vec![NumberDataPoint {
                    time_unix_nano: T,
                    ..Default::default()
                }]),
            ),
            metric(
                "bad.key",
                "",
                gauge(vec![number(
                    number_data_point::Value::AsInt(1),
                    vec![kv("", "v")],
                    T,
                )]),
            ),
            // No data at all: nothing to convert or count.
            Metric {
                name: "empty".into(),
                ..Default::default()
            },
        ],
    ));
    assert_eq!(converted.rejected_points, 5);
    assert_eq!(converted.rejections, vec![(REASON_INVALID, 5)]);
    assert!(converted.metrics.series.is_empty());
    assert!(converted.metrics.metadata.is_empty());
    for expected in [
        "metric \"ようこそ\": the name has no character valid in a Prometheus name (2 points)",
        "metric \"no.value\": data point has no value (1 point)",
        "metric \"bad.key\": attribute key \"\" is not a valid Prometheus label name (1 point)",
    ] {
        assert!(
            converted.error_message.contains(expected),
            "{expected} not in {}",
            converted.error_message
        );
    }
}

#[test]
fn error_message_lists_a_few_problems() {
    let metrics = (0..8)
        .map(|i| {
            metric(
                &format!("d{i}"),
                "",
                sum(
                    vec![number(number_data_point::Value::AsInt(1), vec![], T)],
                    true,
                    DELTA,
                ),
            )
        })
        .collect();
    let converted = convert(request(vec![], metrics));
    assert_eq!(converted.rejected_points, 8);
    assert!(
        converted
            .error_message
            .starts_with("8 data points rejected: metric \"d0\"")
    );
    assert!(
        converted
            .error_message
            .ends_with("; and 3 more for other reasons")
    );
}

#[test]
fn json_request_converts() {
    let body = br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},
      "scopeMetrics":[{"metrics":[{"name":"requests","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE","isMonotonic":true,
        "dataPoints":[{"asInt":"5","timeUnixNano":"1700000000123456789"}]}}]}]}]}"#;
    let converted = convert(crate::otlp::json::decode_metrics(body).unwrap());
    assert_eq!(
        samples(&converted),
        expected(&[(r#"{__name__="requests_total", job="api"}"#, 5.0)])
    );
}

/// Arbitrary requests (extreme numbers, odd names, mismatched shapes) are
/// converted or rejected, never a panic, and every point is accounted for.
#[test]
fn never_panics_on_arbitrary_input() {
    let mut rng = fastrand::Rng::with_seed(7);
    let floats = [
        0.0,
        -0.0,
        1.5,
        -2.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN_POSITIVE,
        1e-300,
    ];
    let u64s = [0, 1, 7, u64::MAX, i64::MAX as u64, (i64::MAX as u64) + 1];
    let i32s = [0, 1, -1, 8, 9, 20, -4, -5, i32::MAX, i32::MIN, i32::MAX - 3];
    let names = ["", "a", "a.b", "_", "__", "1x", "ようこそ", "x_total", "é"];
    let units = ["", "1", "s", "By/s", "{x}", "/", "%/%", "a/b/c", "{"];
    let pick_f = |rng: &mut fastrand::Rng| floats[rng.usize(..floats.len())];
    let pick_u = |rng: &mut fastrand::Rng| u64s[rng.usize(..u64s.len())];
    let pick_i = |rng: &mut fastrand::Rng| i32s[rng.usize(..i32s.len())];
    let attrs = |rng: &mut fastrand::Rng| {
        (0..rng.usize(..3))
            .map(|_| {
                kv(
                    names[rng.usize(..names.len())],
                    names[rng.usize(..names.len())],
                )
            })
            .collect::<Vec<_>>()
    };
    for _ in 0..2000 {
        let mut metrics = Vec::new();
        let mut points = 0u64;
        for _ in 0..rng.usize(..6) {
            let n = rng.usize(..3);
            points += n as u64;
            let temporality = rng.i32(0..3);
            let data = match rng.u8(..5) {
                0 => gauge(
                    (0..n)
                        .map(|_| NumberDataPoint {
                            attributes: attrs(&mut rng),
                            time_unix_nano: pick_u(&mut rng),
                            flags: rng.u32(..4),
                            value: match rng.u8(..3) {
                                0 => None,
                                1 => Some(number_data_point::Value::AsInt(rng.i64(..))),
                                _ => Some(number_data_point::Value::AsDouble(pick_f(&mut rng))),
                            },
                            ..Default::default()
                        })
                        .collect(),
                ),
                1 => sum(
                    (0..n)
                        .map(|_| {
                            number(
                                number_data_point::Value::AsDouble(pick_f(&mut rng)),
                                attrs(&mut rng),
                                pick_u(&mut rng),
                            )
                        })
                        .collect(),
                    rng.bool(),
                    temporality,
                ),
                2 => histogram(
                    (0..n)
                        .map(|_| HistogramDataPoint {
                            attributes: attrs(&mut rng),
                            count: pick_u(&mut rng),
                            sum: rng.bool().then(|| pick_f(&mut rng)),
                            bucket_counts: (0..rng.usize(..4)).map(|_| pick_u(&mut rng)).collect(),
                            explicit_bounds: (0..rng.usize(..3))
                                .map(|_| pick_f(&mut rng))
                                .collect(),
                            flags: rng.u32(..2),
                            exemplars: vec![exemplar(pick_f(&mut rng), "01", "")],
                            ..Default::default()
                        })
                        .collect(),
                    temporality,
                ),
                3 => exponential(
                    (0..n)
                        .map(|_| ExponentialHistogramDataPoint {
                            attributes: attrs(&mut rng),
                            count: pick_u(&mut rng),
                            sum: rng.bool().then(|| pick_f(&mut rng)),
                            scale: pick_i(&mut rng),
                            zero_count: pick_u(&mut rng),
                            zero_threshold: pick_f(&mut rng),
                            positive: buckets(
                                pick_i(&mut rng),
                                &(0..rng.usize(..6))
                                    .map(|_| pick_u(&mut rng))
                                    .collect::<Vec<_>>(),
                            ),
                            negative: rng.bool().then(|| Buckets {
                                offset: pick_i(&mut rng),
                                bucket_counts: vec![pick_u(&mut rng); rng.usize(..3)],
                            }),
                            flags: rng.u32(..2),
                            ..Default::default()
                        })
                        .collect(),
                    temporality,
                ),
                _ => Data::Summary(otlp::Summary {
                    data_points: (0..n)
                        .map(|_| SummaryDataPoint {
                            attributes: attrs(&mut rng),
                            count: pick_u(&mut rng),
                            sum: pick_f(&mut rng),
                            quantile_values: vec![ValueAtQuantile {
                                quantile: pick_f(&mut rng),
                                value: pick_f(&mut rng),
                            }],
                            ..Default::default()
                        })
                        .collect(),
                }),
            };
            metrics.push(metric(
                names[rng.usize(..names.len())],
                units[rng.usize(..units.len())],
                data,
            ));
        }
        let converted = convert(request(attrs(&mut rng), metrics));
        assert!(converted.rejected_points <= points);
        assert_eq!(
            converted.rejections.iter().map(|(_, n)| n).sum::<u64>(),
            converted.rejected_points
        );
        assert_eq!(
            converted.error_message.is_empty(),
            converted.rejected_points == 0
        );
    }
}
