use super::*;

const NODE_EXPORTER: &[u8] = include_bytes!("../../../tests/fixtures/prom/node_exporter.txt");
const PROMETHEUS: &[u8] = include_bytes!("../../../tests/fixtures/prom/prometheus.txt");
const PYTHON_CLIENT: &[u8] = include_bytes!("../../../tests/fixtures/prom/python_client.txt");
const PYTHON_CLIENT_OM: &[u8] =
    include_bytes!("../../../tests/fixtures/prom/python_client_openmetrics.txt");
const HANDWRITTEN_TEXT004: &[u8] =
    include_bytes!("../../../tests/fixtures/prom/handwritten_text004.txt");
const HANDWRITTEN_OM: &[u8] =
    include_bytes!("../../../tests/fixtures/prom/handwritten_openmetrics.txt");

/// An entry with everything owned, to compare and to keep past `next`.
#[derive(Debug, Clone, PartialEq)]
enum Owned {
    Help(String, String),
    Type(String, MetricType),
    Unit(String, String),
    Sample(OwnedSample),
}

type OwnedLabels = Vec<(String, String)>;

#[derive(Debug, Clone)]
struct OwnedSample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
    exemplar: Option<(OwnedLabels, f64, Option<i64>)>,
}

/// NaN equals NaN here: a test that expects NaN should see NaN.
impl PartialEq for OwnedSample {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
        self.name == other.name
            && self.labels == other.labels
            && same(self.value, other.value)
            && self.timestamp_ms == other.timestamp_ms
            && match (&self.exemplar, &other.exemplar) {
                (Some((l1, v1, t1)), Some((l2, v2, t2))) => l1 == l2 && same(*v1, *v2) && t1 == t2,
                (None, None) => true,
                _ => false,
            }
    }
}

fn owned_labels(labels: &[Label<'_>]) -> OwnedLabels {
    labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

impl From<Entry<'_>> for Owned {
    fn from(entry: Entry<'_>) -> Self {
        match entry {
            Entry::Help { family, text } => Owned::Help(family.into(), text.into()),
            Entry::Type { family, kind } => Owned::Type(family.into(), kind),
            Entry::Unit { family, unit } => Owned::Unit(family.into(), unit.into()),
            Entry::Sample(s) => Owned::Sample(OwnedSample {
                name: s.name.into(),
                labels: owned_labels(s.labels),
                value: s.value,
                timestamp_ms: s.timestamp_ms,
                exemplar: s
                    .exemplar
                    .map(|e| (owned_labels(e.labels), e.value, e.timestamp_ms)),
            }),
        }
    }
}

fn parse(body: &[u8], format: Format) -> Result<Vec<Owned>, ParseError> {
    let mut parser = Parser::new(body, format);
    let mut out = Vec::new();
    while let Some(entry) = parser.next() {
        out.push(entry?.into());
    }
    Ok(out)
}

fn samples(body: &[u8], format: Format) -> Vec<OwnedSample> {
    parse(body, format)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Owned::Sample(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn error(body: &[u8], format: Format) -> ParseError {
    match parse(body, format) {
        Err(e) => e,
        Ok(entries) => panic!("{:?} parsed: {entries:?}", String::from_utf8_lossy(body)),
    }
}

fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> OwnedSample {
    OwnedSample {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        value,
        timestamp_ms: None,
        exemplar: None,
    }
}

impl OwnedSample {
    fn at(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    fn with_exemplar(mut self, labels: &[(&str, &str)], value: f64, ts: Option<i64>) -> Self {
        let labels = labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self.exemplar = Some((labels, value, ts));
        self
    }
}

#[test]
fn format_from_content_type() {
    let om = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    assert_eq!(Format::from_content_type(om), Format::OpenMetrics);
    assert_eq!(
        Format::from_content_type("Application/OpenMetrics-Text;version=0.0.1"),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::from_content_type("text/plain; version=0.0.4; charset=utf-8"),
        Format::Text004
    );
    assert_eq!(Format::from_content_type(""), Format::Text004);
    assert_eq!(Format::from_content_type("text/html"), Format::Text004);
}

#[test]
fn text004_page_in_full() {
    let body = b"# HELP up Whether the target is up.\n\
                 # TYPE up gauge\n\
                 up{job=\"node\",instance=\"a:9100\"} 1 1700000000000\n\
                 # TYPE things untyped\n\
                 things 2.5e3\n";
    assert_eq!(
        parse(body, Format::Text004).unwrap(),
        vec![
            Owned::Help("up".into(), "Whether the target is up.".into()),
            Owned::Type("up".into(), MetricType::Gauge),
            Owned::Sample(
                sample("up", &[("job", "node"), ("instance", "a:9100")], 1.0).at(1_700_000_000_000)
            ),
            Owned::Type("things".into(), MetricType::Unknown),
            Owned::Sample(sample("things", &[], 2500.0)),
        ]
    );
}

#[test]
fn text004_handwritten_edge_cases() {
    let entries = parse(HANDWRITTEN_TEXT004, Format::Text004).unwrap();
    let help = entries.iter().find_map(|e| match e {
        Owned::Help(f, t) if f == "http_requests_total" => Some(t.clone()),
        _ => None,
    });
    assert_eq!(
        help.as_deref(),
        Some(
            "The total number of HTTP requests.\nSecond line with a \\ backslash and \\\"kept\\\" quotes."
        ),
        "0.0.4 help unescapes only \\\\ and \\n"
    );
    let types: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            Owned::Type(f, k) => Some((f.as_str(), *k)),
            _ => None,
        })
        .collect();
    assert_eq!(
        types,
        [
            ("http_requests_total", MetricType::Counter),
            ("msdos_file_access_time_seconds", MetricType::Unknown),
            ("my.dotted.metric", MetricType::Gauge),
            ("rpc_duration_seconds", MetricType::Summary),
        ]
    );
    let got = samples(HANDWRITTEN_TEXT004, Format::Text004);
    let want = [
        sample(
            "http_requests_total",
            &[("method", "post"), ("code", "200")],
            1027.0,
        )
        .at(1395066363000),
        sample(
            "http_requests_total",
            &[("method", "post"), ("code", "400")],
            3.0,
        )
        .at(1395066363000),
        sample(
            "http_requests_total",
            &[("method", "get"), ("code", "200")],
            4000.0,
        ),
        sample(
            "msdos_file_access_time_seconds",
            &[
                ("path", "C:\\DIR\\FILE.TXT"),
                ("error", "Cannot find file:\n\"FILE.TXT\""),
            ],
            1.458255915e9,
        ),
        sample("metric_without_timestamp_and_labels", &[], 12.47),
        sample(
            "something_weird",
            &[("problem", "division by zero")],
            f64::INFINITY,
        )
        .at(-3982045),
        sample("nan_and_inf", &[("a", "1")], f64::NAN),
        sample("nan_and_inf", &[("a", "2")], f64::NEG_INFINITY),
        sample("nan_and_inf", &[("a", "3")], f64::INFINITY),
        sample("empty_labels", &[], 0.0),
        sample("brace_then_value", &[("a", "b")], 5.0),
        sample("colon:metric:name_total", &[], 1.0),
        sample(
            "my.dotted.metric",
            &[("label.with.dots", "v"), ("plain", "w")],
            1.0,
        ),
        sample("my.dotted.metric", &[("plain", "w")], 2.0),
        sample("unicode_value", &[("city", "Zürich ☃")], 1.0),
        sample("rpc_duration_seconds", &[("quantile", "0.01")], 3102.0),
        sample("rpc_duration_seconds", &[("quantile", "0.99")], 76656.0),
        sample("rpc_duration_seconds_sum", &[], 1.7560473e+07),
        sample("rpc_duration_seconds_count", &[], 2693.0),
        sample("last_line_without_newline", &[], 42.0),
    ];
    assert_eq!(got, want);
}

#[test]
fn label_values_are_borrowed_unless_escaped() {
    let body = br#"m{plain="abc",escaped="a\"b\\c\nd",odd="C:\Program Files\x"} 1"#;
    let mut parser = Parser::new(body, Format::Text004);
    let Some(Ok(Entry::Sample(s))) = parser.next() else {
        panic!("no sample")
    };
    assert!(matches!(s.labels[0].1, Cow::Borrowed("abc")));
    assert!(matches!(&s.labels[1].1, Cow::Owned(v) if v == "a\"b\\c\nd"));
    // Unknown escapes stay as written, as in Prometheus and OpenMetrics' ABNF.
    assert_eq!(s.labels[2].1, "C:\\Program Files\\x");
}

#[test]
fn help_text_escapes_by_format() {
    let text004 = parse(b"# HELP m a\\\\b\\nc\\\"d\\t\n", Format::Text004).unwrap();
    assert_eq!(text004, [Owned::Help("m".into(), "a\\b\nc\\\"d\\t".into())]);
    let om = parse(b"# HELP m a\\\\b\\nc\\\"d\\t\n# EOF\n", Format::OpenMetrics).unwrap();
    assert_eq!(om, [Owned::Help("m".into(), "a\\b\nc\"d\\t".into())]);
    let mut parser = Parser::new(b"# HELP m no escapes\n", Format::Text004);
    assert!(matches!(
        parser.next(),
        Some(Ok(Entry::Help {
            text: Cow::Borrowed("no escapes"),
            ..
        }))
    ));
}

#[test]
fn values_in_go_float_syntax() {
    for (text, want) in [
        ("0", 0.0),
        ("-0", -0.0),
        ("42", 42.0),
        ("007", 7.0),
        ("123456789012345", 123456789012345.0),
        ("12345678901234567890", 12345678901234567890.0),
        ("-1.5", -1.5),
        ("+1.5", 1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("1E-3", 0.001),
        ("1.7560473e+07", 1.7560473e+07),
        ("+Inf", f64::INFINITY),
        ("Inf", f64::INFINITY),
        ("-Inf", f64::NEG_INFINITY),
        ("inf", f64::INFINITY),
        ("+Infinity", f64::INFINITY),
    ] {
        let body = format!("m {text}\n");
        let got = samples(body.as_bytes(), Format::Text004)[0].value;
        assert_eq!(got.to_bits(), want.to_bits(), "{text}");
    }
    for text in ["NaN", "nan"] {
        let body = format!("m {text}\n");
        assert!(samples(body.as_bytes(), Format::Text004)[0].value.is_nan());
    }
    for text in ["0x10", "1_000", "1e", "--1", "one", "1.2.3", "1,5", "Infx"] {
        let body = format!("m {text}\n");
        let e = error(body.as_bytes(), Format::Text004);
        assert!(e.message.contains("invalid value"), "{text}: {e}");
    }
}

#[test]
fn openmetrics_timestamps_are_exact_milliseconds() {
    for (text, want) in [
        ("1520879607.789", 1520879607789),
        ("1520879607", 1520879607000),
        ("1520879607.7890009", 1520879607789),
        ("1604676851.123456789123456789", 1604676851123),
        ("0.0009", 0),
        ("-1.5", -1500),
        ("-0.0005", 0),
        ("+2.5", 2500),
        ("1.520879607789e9", 1520879607789),
        ("1.520879607789E+09", 1520879607789),
        ("15208796077890e-4", 1520879607789),
        ("0e99999999", 0),
        ("1e-99999999", 0),
        ("5.", 5000),
        (".5", 500),
        ("9223372036854775.807", i64::MAX),
        ("-9223372036854775.807", -i64::MAX),
    ] {
        let body = format!("m 1 {text}\n# EOF\n");
        let got = samples(body.as_bytes(), Format::OpenMetrics)[0].timestamp_ms;
        assert_eq!(got, Some(want), "{text}");
    }
    for text in [
        "NaN",
        "+Inf",
        "-Inf",
        "1e",
        "1e-",
        "1e+",
        "e5",
        ".",
        "-",
        "1.2.3",
        "0x10",
        "9223372036854775.808",
        "1e16",
        "99999999999999999999999",
    ] {
        let body = format!("m 1 {text}\n# EOF\n");
        let e = error(body.as_bytes(), Format::OpenMetrics);
        assert!(e.message.contains("invalid timestamp"), "{text}: {e}");
    }
}

#[test]
fn text004_timestamps_are_integer_milliseconds() {
    let got = samples(
        b"a 1 -5\nb 1 +7\nc 1 9223372036854775807\n",
        Format::Text004,
    );
    let stamps: Vec<_> = got.iter().map(|s| s.timestamp_ms).collect();
    assert_eq!(stamps, [Some(-5), Some(7), Some(i64::MAX)]);
    for text in ["1.5", "1e3", "NaN", "9223372036854775808"] {
        let body = format!("m 1 {text}\n");
        let e = error(body.as_bytes(), Format::Text004);
        assert!(e.message.contains("invalid timestamp"), "{text}: {e}");
    }
}

#[test]
fn openmetrics_handwritten_page() {
    let entries = parse(HANDWRITTEN_OM, Format::OpenMetrics).unwrap();
    assert!(entries.contains(&Owned::Unit(
        "acme_http_router_request_seconds".into(),
        "seconds".into()
    )));
    assert!(entries.contains(&Owned::Help(
        "foo".into(),
        "A counter with \"quotes\", a \\ backslash and a\nnewline, escaped: \"".into()
    )));
    assert!(entries.contains(&Owned::Help("temperature_celsius".into(), "".into())));
    let types: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            Owned::Type(_, k) => Some(*k),
            _ => None,
        })
        .collect();
    use MetricType::*;
    assert_eq!(
        types,
        [
            Summary,
            Counter,
            Histogram,
            GaugeHistogram,
            Info,
            StateSet,
            Gauge,
            Unknown
        ]
    );
    let got = samples(HANDWRITTEN_OM, Format::OpenMetrics);
    assert_eq!(got.len(), 26);
    assert_eq!(
        got[4],
        sample("foo_total", &[], 17.0)
            .at(1520879607789)
            .with_exemplar(&[("trace_id", "KOO5S4vxi0o")], 0.67, Some(1520879602700))
    );
    assert_eq!(got[5], sample("foo_created", &[], 1520430000.123));
    assert_eq!(
        got[7],
        sample("latency_seconds_bucket", &[("le", "0.1")], 8.0).with_exemplar(&[], 0.054, None)
    );
    assert_eq!(
        got[8].exemplar.as_ref().unwrap().0,
        [
            ("trace_id".to_string(), "oHg5SJYRHA0".to_string()),
            ("span_id".to_string(), "a1".to_string())
        ]
    );
    assert_eq!(
        got[22],
        sample(
            "temperature_celsius",
            &[("room", "Ü-Raum \"Nord\"\\Süd")],
            -3.5
        )
        .at(1520879607000)
    );
    assert_eq!(
        got[23],
        sample("temperature_celsius", &[("room", "lab")], f64::INFINITY).at(1520879607789)
    );
    assert_eq!(got[24], sample("legacy", &[], f64::NEG_INFINITY).at(-1500));
    assert_eq!(got[25], sample("legacy", &[("a", "b")], 1000.0));
}

#[test]
fn openmetrics_from_the_python_client() {
    let got = samples(PYTHON_CLIENT_OM, Format::OpenMetrics);
    let first = &got[0];
    assert_eq!(first.name, "http_requests_total");
    assert_eq!(
        first.exemplar,
        Some((
            vec![(
                "trace_id".to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736".to_string()
            )],
            1027.0,
            Some(1795441587830)
        ))
    );
    let exemplars = got.iter().filter(|s| s.exemplar.is_some()).count();
    assert_eq!(exemplars, 6);
    let created = got.iter().filter(|s| s.name.ends_with("_created")).count();
    assert_eq!(created, 5);
    let entries = parse(PYTHON_CLIENT_OM, Format::OpenMetrics).unwrap();
    assert!(entries.contains(&Owned::Help(
        "http_request_duration_seconds".into(),
        "Latency of \"all\" requests,\nin seconds \\ buckets.".into()
    )));
    assert!(entries.contains(&Owned::Unit("request_payload_bytes".into(), "bytes".into())));
    assert!(entries.contains(&Owned::Type("task_state".into(), MetricType::StateSet)));
    assert!(entries.contains(&Owned::Type("build".into(), MetricType::Info)));
}

/// What a line-by-line reading without a real parser makes of a sample
/// line: name, label count, value and the tokens after it. Good enough for
/// the fixtures, whose label values hold no `}` and no ` # `.
fn naive_sample(line: &str) -> (&str, usize, f64, Vec<&str>) {
    let (line, _exemplar) = line.split_once(" # ").unwrap_or((line, ""));
    let name_end = line.find(['{', ' ']).unwrap();
    let after_labels = line.rfind('}').map_or(name_end, |i| i + 1);
    let mut tokens = line[after_labels..].split_whitespace();
    let value = match tokens.next().unwrap() {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap(),
    };
    let labels = line[name_end..after_labels].matches("=\"").count();
    (&line[..name_end], labels, value, tokens.collect())
}

#[test]
fn real_pages_agree_with_a_naive_reading() {
    for (body, format) in [
        (NODE_EXPORTER, Format::Text004),
        (PROMETHEUS, Format::Text004),
        (PYTHON_CLIENT, Format::Text004),
        (PYTHON_CLIENT_OM, Format::OpenMetrics),
    ] {
        let text = std::str::from_utf8(body).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let got = samples(body, format);
        assert_eq!(got.len(), lines.len());
        assert!(got.len() > 40);
        for (sample, line) in got.iter().zip(&lines) {
            let (name, labels, value, rest) = naive_sample(line);
            assert_eq!(sample.name, name, "{line}");
            assert_eq!(sample.labels.len(), labels, "{line}");
            assert!(
                sample.value == value || (sample.value.is_nan() && value.is_nan()),
                "{line}"
            );
            assert_eq!(sample.timestamp_ms.is_some(), !rest.is_empty(), "{line}");
        }
        let entries = parse(body, format).unwrap();
        let helps = entries
            .iter()
            .filter(|e| matches!(e, Owned::Help(..)))
            .count();
        let types = entries
            .iter()
            .filter(|e| matches!(e, Owned::Type(..)))
            .count();
        assert_eq!(helps, text.matches("# HELP ").count());
        assert_eq!(types, text.matches("# TYPE ").count());
    }
}

#[test]
fn zero_copy_on_real_pages() {
    // Node exporter's label values hold no escapes: nothing is copied.
    let mut parser = Parser::new(NODE_EXPORTER, Format::Text004);
    while let Some(entry) = parser.next() {
        if let Entry::Sample(s) = entry.unwrap() {
            for (_, value) in s.labels {
                assert!(matches!(value, Cow::Borrowed(_)));
            }
        }
    }
}

#[test]
fn quoted_names() {
    let body = b"# HELP \"my.metric\" Dots.\n\
                 # TYPE \"my.metric\" counter\n\
                 # UNIT \"my.metric_seconds\" seconds\n\
                 {\"my.metric\",\"my.label\"=\"x\",le=\"1\"} 1 # {\"trace.id\"=\"t\"} 2\n\
                 # EOF\n";
    assert_eq!(
        parse(body, Format::OpenMetrics).unwrap(),
        [
            Owned::Help("my.metric".into(), "Dots.".into()),
            Owned::Type("my.metric".into(), MetricType::Counter),
            Owned::Unit("my.metric_seconds".into(), "seconds".into()),
            Owned::Sample(
                sample("my.metric", &[("my.label", "x"), ("le", "1")], 1.0).with_exemplar(
                    &[("trace.id", "t")],
                    2.0,
                    None
                )
            ),
        ]
    );
    for (body, message) in [
        (
            &b"{\"a\\\"b\"} 1\n"[..],
            "escape sequences in a quoted name",
        ),
        (b"{\"\"} 1\n", "empty quoted name"),
        (b"{\"a\", \"b\"} 1\n", "metric name given twice"),
        (b"m{\"b\"} 1\n", "metric name given twice"),
        (b"{a=\"b\"} 1\n", "metric name missing"),
        (b"\"m\" 1\n", "quoted metric name must be inside the braces"),
        (
            b"# HELP \"a\\nb\" x\n",
            "escape sequences in a quoted metric name",
        ),
    ] {
        let e = error(body, Format::Text004);
        assert!(e.message.contains(message), "{e}");
    }
    let e = error(b"m 1 # {\"x\"} 1\n# EOF\n", Format::OpenMetrics);
    assert!(e.message.contains("cannot name a metric"), "{e}");
}

#[test]
fn duplicate_labels_are_errors() {
    let e = error(b"ok 1\nm{a=\"1\",b=\"2\",a=\"3\"} 1\n", Format::Text004);
    assert_eq!(e.line, 2);
    assert_eq!(e.message, "duplicate label name \"a\"");
    // Past the pairwise check the sorted one finds them too.
    let mut line = String::from("m{");
    for i in 0..40 {
        line.push_str(&format!("l{i}=\"v\","));
    }
    let valid = format!("{line}}} 1\n");
    assert_eq!(
        samples(valid.as_bytes(), Format::Text004)[0].labels.len(),
        40
    );
    let invalid = format!("{line}l17=\"again\"}} 1\n");
    let e = error(invalid.as_bytes(), Format::Text004);
    assert_eq!(e.message, "duplicate label name \"l17\"");
    let e = error(b"m{__name__=\"n\"} 1\n", Format::Text004);
    assert!(e.message.contains("__name__"), "{e}");
    let e = error(b"m 1 # {t=\"1\",t=\"2\"} 1\n# EOF\n", Format::OpenMetrics);
    assert_eq!(e.message, "duplicate label name \"t\"");
}

/// Malformed input, the line the error must name, and words its message
/// must hold.
const MALFORMED_TEXT004: &[(&str, usize, &str)] = &[
    ("m\n", 1, "expected a value, found end of line"),
    ("ok 1\nm{a=\"b\"}\n", 2, "expected a value"),
    ("m   \n", 1, "expected a value"),
    ("m abc\n", 1, "invalid value \"abc\" at column 3"),
    (
        "m{a=\"b\"} 1 2 3\n",
        1,
        "expected end of line after the timestamp",
    ),
    ("m 1 x\n", 1, "invalid timestamp \"x\""),
    ("m{a=\"b} 1\n", 1, "unterminated label value"),
    ("m{a=\"b\\\"} 1\n", 1, "unterminated label value"),
    ("m{a=\"b\\", 1, "unterminated label value"),
    (
        "m{a=\"b\"",
        1,
        "expected ',' or '}' after the label value, found end of line",
    ),
    ("m{a=\"b\" 1\n", 1, "expected ',' or '}'"),
    (
        "m{a=b} 1\n",
        1,
        "expected '\"' opening a label value, found 'b'",
    ),
    (
        "m{a} 1\n",
        1,
        "expected '=' after the label name, found '}'",
    ),
    ("m{,} 1\n", 1, "expected a label name, found ','"),
    ("m{a=\"1\",,} 1\n", 1, "expected a label name, found ','"),
    ("m{1a=\"b\"} 1\n", 1, "expected a label name, found '1'"),
    (
        "m{a-b=\"c\"} 1\n",
        1,
        "expected '=' after the label name, found '-'",
    ),
    (
        "m{a:b=\"c\"} 1\n",
        1,
        "expected '=' after the label name, found ':'",
    ),
    ("1m 1\n", 1, "expected a metric name, found '1'"),
    (
        "m-x 1\n",
        1,
        "expected a space or '{' after the metric name, found '-'",
    ),
    ("m.x 1\n", 1, "found '.'"),
    ("\u{0}\u{1}\n", 1, "expected a metric name, found '\\0'"),
    (
        "ok 1\n\n# x\n<!DOCTYPE html>\n",
        4,
        "expected a metric name, found '<'",
    ),
    (
        "# TYPE m counter gauge\n",
        1,
        "invalid metric type \"counter gauge\"",
    ),
    (
        "# TYPE m stateset\n",
        1,
        "0.0.4 has counter, gauge, histogram, summary and untyped",
    ),
    ("# TYPE m\n", 1, "invalid metric type \"\""),
    ("# HELP  \n", 1, "expected a metric name, found end of line"),
    (
        "# HELP m-x y\n",
        1,
        "expected a space after the metric name, found '-'",
    ),
    ("m 1\r\n", 1, "invalid value \"1\\r\""),
    ("m 1 # {a=\"b\"} 1\n", 1, "invalid timestamp \"#\""),
];

const MALFORMED_OPENMETRICS: &[(&str, usize, &str)] = &[
    ("m 1\n", 2, "missing # EOF"),
    ("m 1", 2, "missing # EOF"),
    ("", 1, "missing # EOF"),
    ("m 1\n# EOF\nm 2\n", 3, "unexpected content after # EOF"),
    ("# EOF\n\n", 2, "unexpected content after # EOF"),
    ("m 1\n\n# EOF\n", 2, "empty line"),
    ("m  1\n# EOF\n", 1, "expected a value, found ' '"),
    (" m 1\n# EOF\n", 1, "expected a metric name, found ' '"),
    (
        "m\t1\n# EOF\n",
        1,
        "expected a space before the value, found '\\t'",
    ),
    (
        "m 1 \n# EOF\n",
        1,
        "expected a timestamp, found end of line",
    ),
    (
        "m{a=\"b\"}1\n# EOF\n",
        1,
        "expected a space before the value, found '1'",
    ),
    (
        "m{a = \"b\"} 1\n# EOF\n",
        1,
        "expected '=' after the label name, found ' '",
    ),
    (
        "# a comment\n# EOF\n",
        1,
        "only # HELP, # TYPE, # UNIT and # EOF",
    ),
    ("# EOF \n", 1, "only # HELP, # TYPE, # UNIT and # EOF"),
    ("#HELP m x\n# EOF\n", 1, "only # HELP"),
    (
        "# HELP m\n# EOF\n",
        1,
        "expected a space after the metric name, found end of line",
    ),
    (
        "# TYPE m untyped\n# EOF\n",
        1,
        "invalid metric type \"untyped\"",
    ),
    (
        "# TYPE m counter \n# EOF\n",
        1,
        "invalid metric type \"counter \"",
    ),
    (
        "# UNIT m seconds\n# EOF\n",
        1,
        "unit \"seconds\" is not a suffix",
    ),
    ("# UNIT mseconds seconds\n# EOF\n", 1, "is not a suffix"),
    ("# UNIT m_seconds sec-onds\n# EOF\n", 1, "expected a unit"),
    ("m 1 NaN\n# EOF\n", 1, "invalid timestamp \"NaN\""),
    (
        "m 1 # {a=\"b\"}\n# EOF\n",
        1,
        "expected a space before the exemplar value",
    ),
    (
        "m 1 # {a=\"b\"} x\n# EOF\n",
        1,
        "invalid exemplar value \"x\"",
    ),
    (
        "m 1 # {a=\"b\"} 1 Inf\n# EOF\n",
        1,
        "invalid exemplar timestamp \"Inf\"",
    ),
    (
        "m 1 # {a=\"b\"} 1 2 3\n# EOF\n",
        1,
        "end of line after the exemplar timestamp",
    ),
    (
        "m 1 #{a=\"b\"} 1\n# EOF\n",
        1,
        "expected an exemplar starting with \"# {\"",
    ),
    ("m 1 # a=\"b\" 1\n# EOF\n", 1, "expected an exemplar"),
    ("m 1 1 1\n# EOF\n", 1, "expected an exemplar"),
    (
        "m 1 2 \n# EOF\n",
        1,
        "expected an exemplar starting with \"# {\", found end of line",
    ),
    ("m{a=\"b\\\"} 1\n# EOF\n", 1, "unterminated label value"),
];

#[test]
fn malformed_pages_name_the_line() {
    for (format, cases) in [
        (Format::Text004, MALFORMED_TEXT004),
        (Format::OpenMetrics, MALFORMED_OPENMETRICS),
    ] {
        for &(body, line, words) in cases {
            let e = error(body.as_bytes(), format);
            assert_eq!(e.line, line, "{body:?}: {e}");
            assert!(e.message.contains(words), "{body:?}: {e}");
        }
    }
}

#[test]
fn invalid_utf8_is_an_error_on_its_line() {
    let body = b"a 1\nb{l=\"\xff\"} 2\nc 3\n";
    for format in [Format::Text004, Format::OpenMetrics] {
        let mut parser = Parser::new(body, format);
        assert!(matches!(parser.next(), Some(Ok(Entry::Sample(s))) if s.name == "a"));
        let e = parser.next().unwrap().unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.message, "invalid UTF-8 at byte 6 of the line");
        assert!(parser.next().is_none());
    }
    // A multi-byte character cut short by the end of the body.
    let e = error("m{a=\"é\"} 1\n".as_bytes().split_at(6).0, Format::Text004);
    assert_eq!(
        (e.line, e.message.as_str()),
        (1, "invalid UTF-8 at byte 6 of the line")
    );
    let e = error(b"\xfe\xff\x00\x01binary", Format::Text004);
    assert_eq!(e.line, 1);
    let e = error(b"m 1\n# EOF\n\xff", Format::OpenMetrics);
    assert_eq!(
        (e.line, e.message.as_str()),
        (3, "unexpected content after # EOF")
    );
}

#[test]
fn nothing_follows_an_error() {
    let mut parser = Parser::new(b"a 1\nb x\nc 3\n", Format::Text004);
    assert!(parser.next().unwrap().is_ok());
    assert_eq!(parser.next().unwrap().unwrap_err().line, 2);
    assert_eq!(parser.line(), 2);
    assert!(parser.next().is_none());
    assert!(parser.next().is_none());
}

#[test]
fn empty_and_comment_only_bodies() {
    assert_eq!(parse(b"", Format::Text004).unwrap(), []);
    assert_eq!(
        parse(b"\n\n  \n# only a comment", Format::Text004).unwrap(),
        []
    );
    assert_eq!(parse(b"# EOF\n", Format::OpenMetrics).unwrap(), []);
    assert_eq!(parse(b"# EOF", Format::OpenMetrics).unwrap(), []);
}

#[test]
fn ten_megabyte_lines() {
    let big = "x".repeat(10 << 20);
    // A huge label value is fine, and still borrowed.
    let body = format!("m{{a=\"{big}\"}} 1\n");
    let mut parser = Parser::new(body.as_bytes(), Format::Text004);
    let Some(Ok(Entry::Sample(s))) = parser.next() else {
        panic!("no sample")
    };
    assert!(matches!(&s.labels[0].1, Cow::Borrowed(v) if v.len() == big.len()));
    // A huge name with no value, and a huge unterminated value.
    assert_eq!(error(big.as_bytes(), Format::Text004).line, 1);
    let body = format!("m{{a=\"{big}");
    assert!(
        error(body.as_bytes(), Format::Text004)
            .message
            .contains("unterminated")
    );
    // Many labels: the duplicate check must not be quadratic.
    let mut body = String::from("m{");
    for i in 0..500_000 {
        body.push_str(&format!("l{i}=\"\","));
    }
    let valid = format!("{body}}} 1\n");
    assert_eq!(
        samples(valid.as_bytes(), Format::Text004)[0].labels.len(),
        500_000
    );
    let invalid = format!("{body}l7=\"\"}} 1\n");
    assert!(
        error(invalid.as_bytes(), Format::Text004)
            .message
            .contains("l7")
    );
}

/// A page with a bit of everything, small enough to mutate many times.
fn mutation_seed_pages() -> Vec<(Vec<u8>, Format)> {
    let text004: Vec<u8> = HANDWRITTEN_TEXT004.to_vec();
    let om: Vec<u8> = HANDWRITTEN_OM.to_vec();
    vec![(text004, Format::Text004), (om, Format::OpenMetrics)]
}

fn mutate(rng: &mut fastrand::Rng, page: &mut Vec<u8>) {
    const INTERESTING: &[u8] = b"{}\",=\\ #\n\t.:_-+eE0123456789\r\0";
    for _ in 0..rng.usize(1..=4) {
        if page.is_empty() {
            page.push(rng.u8(..));
            continue;
        }
        let at = rng.usize(..page.len());
        match rng.u8(..7) {
            0 => page[at] = rng.u8(..),
            1 => page[at] = INTERESTING[rng.usize(..INTERESTING.len())],
            2 => page.insert(at, INTERESTING[rng.usize(..INTERESTING.len())]),
            3 => {
                let end = (at + rng.usize(..64)).min(page.len());
                page.drain(at..end);
            }
            4 => page.truncate(at),
            5 => {
                let end = (at + rng.usize(..64)).min(page.len());
                let copy = page[at..end].to_vec();
                let to = rng.usize(..=page.len());
                page.splice(to..to, copy);
            }
            _ => {
                // A multi-byte character, possibly cut by a later mutation.
                let c = ['é', '☃', '𝄞', '\u{feff}'][rng.usize(..4)];
                let mut buf = [0; 4];
                let bytes = c.encode_utf8(&mut buf).as_bytes().to_vec();
                page.splice(at..at, bytes);
            }
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let seeds = mutation_seed_pages();
    let mut errors = 0;
    for round in 0..10_000u64 {
        let (page, format) = &seeds[(round % 2) as usize];
        let mut rng = fastrand::Rng::with_seed(round);
        let mut page = page.clone();
        mutate(&mut rng, &mut page);
        let outcome = std::panic::catch_unwind(|| {
            let lines = page.split(|&b| b == b'\n').count();
            let mut parser = Parser::new(&page, *format);
            let mut calls = 0;
            let mut failed = false;
            while let Some(entry) = parser.next() {
                calls += 1;
                assert!(calls <= lines + 1, "more entries than lines");
                assert!(!failed, "an entry after an error");
                if let Err(e) = entry {
                    assert!(
                        e.line >= 1 && e.line <= lines + 1,
                        "line {} of {lines}",
                        e.line
                    );
                    failed = true;
                }
            }
            failed
        });
        match outcome {
            Ok(failed) => errors += usize::from(failed),
            Err(_) => panic!(
                "round {round} ({format:?}) panicked on {:?}",
                String::from_utf8_lossy(&page)
            ),
        }
    }
    // Most mutations should break a page; if none did, they reached nothing.
    assert!(
        errors > 5_000,
        "only {errors} of 10000 mutated pages failed"
    );
}
