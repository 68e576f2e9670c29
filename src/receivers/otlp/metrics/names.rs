//! Metric, unit and label names as Prometheus' OTLP receiver builds them with
//! its default translation strategy, `UnderscoreEscapingWithSuffixes`.
//!
//! The rules are those of `prometheus/otlptranslator` (`metric_namer.go`,
//! `unit_namer.go`, `label_namer.go`), which implement the OTel spec's
//! [OTLP metric points to Prometheus](https://github.com/open-telemetry/opentelemetry-specification/blob/v1.38.0/specification/compatibility/prometheus_and_openmetrics.md#otlp-metric-points-to-prometheus),
//! with Prometheus' default label options (`label_name_underscore_sanitization`
//! and `label_name_preserve_multiple_underscores` both on).
//!
//! The rules have quirks (a unit suffix is only skipped when it is a whole
//! `_`-separated token of the name; `_total` is moved to the end, not added
//! twice); they are kept as they are, since a series must get the same name
//! whether Prometheus or ferro converted it.

use crate::signal::names::{LabelNamer, normalize_label_name};

/// What the namer needs to know about a metric's kind: only gauges get
/// `_ratio` and only monotonic counters get `_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameType {
    Gauge,
    MonotonicCounter,
    NonMonotonicCounter,
    Histogram,
    ExponentialHistogram,
    Summary,
}

/// UCUM units (as OTel writes them) and their Prometheus base-unit words.
/// `1` (dimensionless) maps to nothing; gauges get `_ratio` for it instead.
const UNITS: &[(&str, &str)] = &[
    // Time
    ("d", "days"),
    ("h", "hours"),
    ("min", "minutes"),
    ("s", "seconds"),
    ("ms", "milliseconds"),
    ("us", "microseconds"),
    ("ns", "nanoseconds"),
    // Bytes
    ("By", "bytes"),
    ("KiBy", "kibibytes"),
    ("MiBy", "mebibytes"),
    ("GiBy", "gibibytes"),
    ("TiBy", "tibibytes"),
    ("KBy", "kilobytes"),
    ("MBy", "megabytes"),
    ("GBy", "gigabytes"),
    ("TBy", "terabytes"),
    // SI
    ("m", "meters"),
    ("V", "volts"),
    ("A", "amperes"),
    ("J", "joules"),
    ("W", "watts"),
    ("g", "grams"),
    // Misc
    ("Cel", "celsius"),
    ("Hz", "hertz"),
    ("1", ""),
    ("%", "percent"),
];

/// The denominator of `X/Y` units, singular: `By/s` is `bytes_per_second`.
const PER_UNITS: &[(&str, &str)] = &[
    ("s", "second"),
    ("m", "minute"),
    ("h", "hour"),
    ("d", "day"),
    ("w", "week"),
    ("mo", "month"),
    ("y", "year"),
];

fn lookup<'a>(table: &[(&str, &'a str)], key: &'a str) -> &'a str {
    table
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(key, |(_, v)| *v)
}

/// Characters a metric name token may hold. `_` is not one: it separates
/// tokens, which is how runs of underscores collapse into one.
fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// The Prometheus name of an OTLP metric, without the `_bucket`/`_sum`/
/// `_count` series suffixes. `None` when nothing valid is left (an empty name,
/// or one of only invalid characters): Prometheus drops such metrics.
pub(crate) fn metric_name(name: &str, unit: &str, kind: NameType) -> Option<String> {
    let mut tokens: Vec<&str> = name
        .split(|c| !is_metric_char(c))
        .filter(|token| !token.is_empty())
        .collect();

    let (main_unit, per_unit) = unit_suffixes(unit);
    let main_unit = clean_up_unit(&main_unit);
    let per_unit = clean_up_unit(&per_unit);
    let (main_unit, per_unit) = unit_tokens(&tokens, &main_unit, &per_unit);
    tokens.extend([main_unit, per_unit].into_iter().filter(|t| !t.is_empty()));

    // `_total` and `_ratio` go last, wherever the name already had them.
    if kind == NameType::MonotonicCounter {
        tokens.retain(|t| *t != "total");
        tokens.push("total");
    }
    if unit == "1" && kind == NameType::Gauge {
        tokens.retain(|t| *t != "ratio");
        tokens.push("ratio");
    }

    let mut normalized = tokens.join("_");
    if normalized.starts_with(|c: char| c.is_ascii_digit()) {
        normalized.insert(0, '_');
    }
    // Prometheus refuses what normalization emptied or left as underscores.
    let only_underscores = normalized.bytes().all(|b| b == b'_');
    if normalized.is_empty() || (normalized != name && only_underscores) {
        return None;
    }
    Some(normalized)
}

/// Which unit words still need adding: a word already present as a token of
/// the name is not added again (`request_duration_seconds` with unit `s`
/// stays as it is).
fn unit_tokens<'a>(tokens: &[&str], main_unit: &'a str, per_unit: &'a str) -> (&'a str, &'a str) {
    let mut main_unit = if tokens.contains(&main_unit) {
        ""
    } else {
        main_unit
    };
    let per_unit = if per_unit == "per_" {
        // The denominator was all invalid characters.
        ""
    } else {
        let per_unit = per_unit.strip_suffix('_').unwrap_or(per_unit);
        if tokens.contains(&per_unit) {
            ""
        } else {
            per_unit
        }
    };
    if !per_unit.is_empty() {
        main_unit = main_unit.strip_suffix('_').unwrap_or(main_unit);
    }
    (main_unit, per_unit)
}

/// The unit words of an OTLP unit, before character clean-up: (`bytes`,
/// `per_second`) for `By/s`. Annotations in braces (`{request}`) say nothing
/// about the unit and are dropped; unknown units are kept as they are.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main_otel = parts.next().unwrap_or("").trim();
    let main_unit = if !main_otel.is_empty() && !main_otel.contains(['{', '}']) {
        lookup(UNITS, main_otel).to_string()
    } else {
        String::new()
    };
    let mut per_unit = String::new();
    if let Some(per_raw) = parts.next().filter(|p| !p.is_empty()) {
        let per_otel = per_raw.trim();
        if !per_otel.is_empty() && !per_otel.contains(['{', '}']) {
            let word = lookup(PER_UNITS, per_otel);
            if !word.is_empty() {
                per_unit = format!("per_{word}");
            }
        }
    }
    (main_unit, per_unit)
}

/// Invalid characters to `_`, runs of `_` to one, one leading `_` dropped.
fn clean_up_unit(unit: &str) -> String {
    let mut cleaned = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_metric_char(c) { c } else { '_' };
        if c == '_' && cleaned.ends_with('_') {
            continue;
        }
        cleaned.push(c);
    }
    match cleaned.strip_prefix('_') {
        Some(rest) => rest.to_string(),
        None => cleaned,
    }
}

/// The unit as metric metadata carries it: `By/s` is `bytes_per_second`,
/// `1` and `{request}` are empty.
pub(crate) fn unit_name(unit: &str) -> String {
    let (main_unit, per_unit) = unit_suffixes(unit);
    let main_unit = clean_up_unit(&main_unit);
    let per_unit = clean_up_unit(&per_unit);
    let joined = match (main_unit.is_empty(), per_unit.is_empty()) {
        (false, false) => format!("{main_unit}_{per_unit}"),
        (false, true) => main_unit,
        _ => per_unit,
    };
    let trimmed = joined.strip_prefix('_').unwrap_or(&joined);
    let trimmed = trimmed.strip_suffix('_').unwrap_or(trimmed);
    trimmed.to_string()
}

/// The Prometheus label name of an OTLP attribute key (see
/// [`normalize_label_name`]).
pub(crate) fn label_name(key: &str) -> Option<String> {
    normalize_label_name(key, LabelNamer::Prometheus).map(|name| name.into_owned())
}

/// A float as Prometheus writes `le` and `quantile` values: Go's
/// `strconv.FormatFloat(v, 'f', -1, 64)` (shortest digits that read back
/// exactly, never an exponent), with `+Inf`/`-Inf`/`NaN` spelled Go's way.
pub(crate) fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's `Display` for f64 is also shortest-round-trip, positional.
        format!("{value}")
    }
}
