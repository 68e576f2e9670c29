//! OTLP/JSON: protobuf's JSON mapping with OTLP's deviations.
//!
//! - trace and span ids are hex strings, not base64;
//! - enums may be written as names (`"SPAN_KIND_SERVER"`,
//!   `"AGGREGATION_TEMPORALITY_CUMULATIVE"`, `"SEVERITY_NUMBER_INFO"`) or
//!   numbers;
//! - 64-bit integers may be strings or numbers;
//! - doubles may be numbers or strings (`"1.5"`, `"NaN"`, `"Infinity"`,
//!   `"-Infinity"`);
//! - field names are lowerCamelCase; unknown fields are ignored.
//!
//! The message types' serde derives (opentelemetry-proto `with-serde`) cover
//! ids and integers; enum names are turned into numbers here first, and so
//! are doubles written as strings (metrics and logs, where NaN and infinities
//! are real values).
//!
//! Spec: <https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>.

use std::collections::HashSet;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, ExponentialHistogram, Gauge, Histogram, Sum, Summary,
    exemplar, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use serde::Deserialize;
use serde_json::{Number, Value};

/// Why a body is not an OTLP/JSON request: the message a client gets with
/// its 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(pub String);

/// Decodes an OTLP/JSON traces request.
pub fn decode_traces(body: &[u8]) -> Result<ExportTraceServiceRequest, JsonError> {
    decode_traces_text(body).map_err(JsonError)
}

fn decode_traces_text(body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    normalize_enums(&mut value, None, trace_enum)?;
    serde_json::from_value(value).map_err(|e| format!("invalid OTLP/JSON traces request: {e}"))
}

/// Decodes an OTLP/JSON metrics request.
pub fn decode_metrics(body: &[u8]) -> Result<ExportMetricsServiceRequest, JsonError> {
    decode_metrics_text(body).map_err(JsonError)
}

fn decode_metrics_text(body: &[u8]) -> Result<ExportMetricsServiceRequest, String> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    normalize_enums(&mut value, None, metrics_enum)?;
    let specials = SpecialDoubles::replace(&mut value);
    let mut request = ExportMetricsServiceRequest::deserialize(&value)
        .map_err(|e| format!("invalid OTLP/JSON metrics request: {e}"))?;
    check_metric_data(&value, &request)?;
    if let Some(specials) = specials {
        specials.restore(&mut request);
    }
    Ok(request)
}

/// Decodes an OTLP/JSON logs request.
pub fn decode_logs(body: &[u8]) -> Result<ExportLogsServiceRequest, JsonError> {
    decode_logs_text(body).map_err(JsonError)
}

fn decode_logs_text(body: &[u8]) -> Result<ExportLogsServiceRequest, String> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    normalize_enums(&mut value, None, logs_enum)?;
    let specials = SpecialDoubles::replace(&mut value);
    let mut request = ExportLogsServiceRequest::deserialize(&value)
        .map_err(|e| format!("invalid OTLP/JSON logs request: {e}"))?;
    if let Some(specials) = specials {
        specials.restore_logs(&mut request);
    }
    Ok(request)
}

/// The metric kinds, as JSON keys of a metric.
const METRIC_DATA_FIELDS: &[&str] = &[
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
];

/// Finds metrics whose data did not decode.
///
/// A metric's data is a oneof, which the derives read with serde's `flatten`:
/// an error anywhere inside (a bad timestamp, a bad bucket count) does not
/// fail the request but leaves the metric without data, which would then be
/// dropped without a word. Such a metric makes the request invalid instead,
/// with the error decoding its data on its own gives.
fn check_metric_data(value: &Value, request: &ExportMetricsServiceRequest) -> Result<(), String> {
    fn array<'v>(value: &'v Value, key: &str) -> &'v [Value] {
        value
            .get(key)
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
    let json_metrics = array(value, "resourceMetrics")
        .iter()
        .flat_map(|rm| array(rm, "scopeMetrics"))
        .flat_map(|sm| array(sm, "metrics"));
    let metrics = request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics);
    for (json, metric) in json_metrics.zip(metrics) {
        if metric.data.is_some() {
            continue;
        }
        let Some((key, data)) = METRIC_DATA_FIELDS
            .iter()
            .find_map(|key| json.get(*key).map(|data| (*key, data)))
        else {
            continue;
        };
        let error = match key {
            "gauge" => Gauge::deserialize(data).err(),
            "sum" => Sum::deserialize(data).err(),
            "histogram" => Histogram::deserialize(data).err(),
            "exponentialHistogram" => ExponentialHistogram::deserialize(data).err(),
            _ => Summary::deserialize(data).err(),
        };
        let reason = error.map_or_else(|| "not an object".to_string(), |e| e.to_string());
        return Err(format!(
            "invalid OTLP/JSON metrics request: metric {:?}: invalid `{key}`: {reason}",
            metric.name
        ));
    }
    Ok(())
}

/// The number of an enum written by name, if `key` (under `parent_key`) is
/// an enum field: `Some(None)` for a name the enum does not have.
type EnumRule = fn(parent_key: Option<&str>, key: &str, name: &str) -> Option<Option<i32>>;

fn trace_enum(parent_key: Option<&str>, key: &str, name: &str) -> Option<Option<i32>> {
    match (parent_key, key) {
        (_, "kind") => Some(SpanKind::from_str_name(name).map(|k| k as i32)),
        (Some("status"), "code") => Some(StatusCode::from_str_name(name).map(|c| c as i32)),
        _ => None,
    }
}

/// Metrics have one enum field. (`kind` is not a metrics field, so the traces
/// rule for it must not apply here.)
fn metrics_enum(_parent_key: Option<&str>, key: &str, name: &str) -> Option<Option<i32>> {
    match key {
        "aggregationTemporality" => {
            Some(AggregationTemporality::from_str_name(name).map(|t| t as i32))
        }
        _ => None,
    }
}

/// Logs have one enum field. (A log attribute named `severityNumber` is a
/// `key` value, not a field, so it is left alone.)
fn logs_enum(_parent_key: Option<&str>, key: &str, name: &str) -> Option<Option<i32>> {
    match key {
        "severityNumber" => Some(SeverityNumber::from_str_name(name).map(|n| n as i32)),
        _ => None,
    }
}

/// Rewrites enum names to their numbers, wherever `rule` says a field is an enum.
fn normalize_enums(
    value: &mut Value,
    parent_key: Option<&str>,
    rule: EnumRule,
) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if let Value::String(name) = child {
                    match rule(parent_key, key, name) {
                        Some(Some(n)) => *child = Value::from(n),
                        Some(None) => {
                            return Err(format!("`{key}` has an unknown enum value {name:?}"));
                        }
                        None => {}
                    }
                } else {
                    normalize_enums(child, Some(key.as_str()), rule)?;
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                normalize_enums(item, parent_key, rule)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The double fields of the metrics messages (and of attribute values, which
/// are the only doubles in logs; the logs messages have no field of these
/// names other than `value`, which is always an object there).
/// `sum` and `value` are also message fields, but never strings there.
const DOUBLE_FIELDS: &[&str] = &[
    "asDouble",
    "doubleValue",
    "sum",
    "min",
    "max",
    "zeroThreshold",
    "quantile",
    "value",
];
/// The repeated double field.
const DOUBLE_LIST_FIELD: &str = "explicitBounds";

/// Calls `visit` on every value in a double field position.
fn visit_doubles(value: &mut Value, visit: &mut impl FnMut(&mut Value)) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if DOUBLE_FIELDS.contains(&key.as_str()) && !child.is_object() {
                    visit(child);
                } else if key == DOUBLE_LIST_FIELD
                    && let Value::Array(items) = child
                {
                    items.iter_mut().for_each(&mut *visit);
                } else {
                    visit_doubles(child, visit);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                visit_doubles(item, visit);
            }
        }
        _ => {}
    }
}

/// NaN and the infinities written as strings.
///
/// The message types' derives read plain numbers only, and a JSON number
/// cannot be NaN, so each of the three is stood in for by a finite number
/// that appears nowhere else in the request, and put back after decoding.
struct SpecialDoubles {
    /// (stand-in, real value) for NaN, +Inf, -Inf.
    stand_ins: [(f64, f64); 3],
}

impl SpecialDoubles {
    /// Turns doubles written as numeric strings into numbers, and special
    /// ones into stand-ins; `None` if there were no special ones.
    fn replace(value: &mut Value) -> Option<SpecialDoubles> {
        let mut specials = 0;
        visit_doubles(value, &mut |v| {
            if let Value::String(s) = v {
                match s.as_str() {
                    "NaN" | "Infinity" | "-Infinity" => specials += 1,
                    text => {
                        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
                            *v = Value::Number(n);
                        }
                    }
                }
            }
        });
        if specials == 0 {
            return None;
        }
        let mut used = HashSet::new();
        collect_numbers(value, &mut used);
        let mut candidates = (0u64..)
            .map(|k| f64::from_bits(f64::MAX.to_bits() - k))
            .filter(|c| !used.contains(&c.to_bits()));
        let mut stand_in = || candidates.next().unwrap_or(f64::MAX);
        let stand_ins = [
            (stand_in(), f64::NAN),
            (stand_in(), f64::INFINITY),
            (stand_in(), f64::NEG_INFINITY),
        ];
        visit_doubles(value, &mut |v| {
            let real = match v.as_str() {
                Some("NaN") => stand_ins[0].0,
                Some("Infinity") => stand_ins[1].0,
                Some("-Infinity") => stand_ins[2].0,
                _ => return,
            };
            if let Some(n) = Number::from_f64(real) {
                *v = Value::Number(n);
            }
        });
        Some(SpecialDoubles { stand_ins })
    }

    fn fix(&self, value: &mut f64) {
        if let Some((_, real)) = self
            .stand_ins
            .iter()
            .find(|(stand_in, _)| stand_in.to_bits() == value.to_bits())
        {
            *value = *real;
        }
    }

    fn fix_option(&self, value: &mut Option<f64>) {
        if let Some(v) = value {
            self.fix(v);
        }
    }

    fn fix_attributes(&self, attributes: &mut [KeyValue]) {
        for kv in attributes {
            if let Some(value) = &mut kv.value {
                self.fix_any(value);
            }
        }
    }

    fn fix_any(&self, value: &mut AnyValue) {
        match &mut value.value {
            Some(any_value::Value::DoubleValue(d)) => self.fix(d),
            Some(any_value::Value::ArrayValue(array)) => {
                array.values.iter_mut().for_each(|v| self.fix_any(v));
            }
            Some(any_value::Value::KvlistValue(list)) => self.fix_attributes(&mut list.values),
            _ => {}
        }
    }

    fn fix_exemplars(&self, exemplars: &mut [Exemplar]) {
        for e in exemplars {
            self.fix_attributes(&mut e.filtered_attributes);
            if let Some(exemplar::Value::AsDouble(v)) = &mut e.value {
                self.fix(v);
            }
        }
    }

    /// Puts the special values back wherever a stand-in was decoded.
    fn restore(&self, request: &mut ExportMetricsServiceRequest) {
        for rm in &mut request.resource_metrics {
            if let Some(resource) = &mut rm.resource {
                self.fix_attributes(&mut resource.attributes);
            }
            for sm in &mut rm.scope_metrics {
                if let Some(scope) = &mut sm.scope {
                    self.fix_attributes(&mut scope.attributes);
                }
                for metric in &mut sm.metrics {
                    self.fix_attributes(&mut metric.metadata);
                    match &mut metric.data {
                        Some(Data::Gauge(g)) => self.fix_number_points(&mut g.data_points),
                        Some(Data::Sum(s)) => self.fix_number_points(&mut s.data_points),
                        Some(Data::Histogram(h)) => {
                            for p in &mut h.data_points {
                                self.fix_attributes(&mut p.attributes);
                                self.fix_exemplars(&mut p.exemplars);
                                self.fix_option(&mut p.sum);
                                self.fix_option(&mut p.min);
                                self.fix_option(&mut p.max);
                                p.explicit_bounds.iter_mut().for_each(|b| self.fix(b));
                            }
                        }
                        Some(Data::ExponentialHistogram(h)) => {
                            for p in &mut h.data_points {
                                self.fix_attributes(&mut p.attributes);
                                self.fix_exemplars(&mut p.exemplars);
                                self.fix_option(&mut p.sum);
                                self.fix_option(&mut p.min);
                                self.fix_option(&mut p.max);
                                self.fix(&mut p.zero_threshold);
                            }
                        }
                        Some(Data::Summary(s)) => {
                            for p in &mut s.data_points {
                                self.fix_attributes(&mut p.attributes);
                                self.fix(&mut p.sum);
                                for q in &mut p.quantile_values {
                                    self.fix(&mut q.quantile);
                                    self.fix(&mut q.value);
                                }
                            }
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// Puts the special values back in attributes and bodies.
    fn restore_logs(&self, request: &mut ExportLogsServiceRequest) {
        for rl in &mut request.resource_logs {
            if let Some(resource) = &mut rl.resource {
                self.fix_attributes(&mut resource.attributes);
            }
            for sl in &mut rl.scope_logs {
                if let Some(scope) = &mut sl.scope {
                    self.fix_attributes(&mut scope.attributes);
                }
                for record in &mut sl.log_records {
                    self.fix_attributes(&mut record.attributes);
                    if let Some(body) = &mut record.body {
                        self.fix_any(body);
                    }
                }
            }
        }
    }

    fn fix_number_points(
        &self,
        points: &mut [opentelemetry_proto::tonic::metrics::v1::NumberDataPoint],
    ) {
        for p in points {
            self.fix_attributes(&mut p.attributes);
            self.fix_exemplars(&mut p.exemplars);
            if let Some(number_data_point::Value::AsDouble(v)) = &mut p.value {
                self.fix(v);
            }
        }
    }
}

/// The bit patterns of every number in the document, as doubles.
fn collect_numbers(value: &Value, used: &mut HashSet<u64>) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                used.insert(f.to_bits());
            }
        }
        Value::Object(map) => map.values().for_each(|v| collect_numbers(v, used)),
        Value::Array(items) => items.iter().for_each(|v| collect_numbers(v, used)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_spec_rules() {
        let body = br#"{
          "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
            "scopeSpans": [{
              "scope": {"name": "lib", "version": "1.0"},
              "spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": "eee19b7ec3c1b174",
                "parentSpanId": "eee19b7ec3c1b173",
                "name": "GET /cart",
                "kind": "SPAN_KIND_SERVER",
                "startTimeUnixNano": "1544712660000000000",
                "endTimeUnixNano": 1544712661000000000,
                "attributes": [
                  {"key": "http.status_code", "value": {"intValue": "200"}},
                  {"key": "retries", "value": {"intValue": 3}}
                ],
                "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
                "unknownField": {"ignored": true}
              }, {
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": "eee19b7ec3c1b175",
                "name": "numeric enums",
                "kind": 3,
                "status": {"code": 1}
              }]
            }]
          }]
        }"#;
        let request = decode_traces(body).unwrap();
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        let span = &spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(hex::encode(&span.parent_span_id), "eee19b7ec3c1b173");
        assert_eq!(span.kind, SpanKind::Server as i32);
        assert_eq!(span.start_time_unix_nano, 1544712660000000000);
        assert_eq!(span.end_time_unix_nano, 1544712661000000000);
        assert_eq!(span.status.as_ref().unwrap().code, StatusCode::Error as i32);
        let value = span.attributes[0]
            .value
            .as_ref()
            .unwrap()
            .value
            .as_ref()
            .unwrap();
        assert_eq!(value, &any_value::Value::IntValue(200));
        assert_eq!(spans[1].kind, SpanKind::Client as i32);
        assert_eq!(
            spans[1].status.as_ref().unwrap().code,
            StatusCode::Ok as i32
        );
    }

    #[test]
    fn refuses_garbage_with_a_reason() {
        assert!(
            decode_traces(b"{not json")
                .unwrap_err()
                .0
                .contains("invalid JSON")
        );
        let bad_enum =
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_WRONG"}]}]}]}"#;
        assert!(
            decode_traces(bad_enum)
                .unwrap_err()
                .0
                .contains("SPAN_KIND_WRONG")
        );
        let bad_id = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#;
        assert!(decode_traces(bad_id).is_err());
    }

    #[test]
    fn decodes_metrics_with_enum_names_strings_and_hex_ids() {
        let body = br#"{
          "resourceMetrics": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
            "scopeMetrics": [{
              "scope": {"name": "lib"},
              "metrics": [{
                "name": "requests",
                "unit": "1",
                "sum": {
                  "aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
                  "isMonotonic": true,
                  "dataPoints": [{
                    "asInt": "42",
                    "timeUnixNano": "1700000000000000000",
                    "flags": 1,
                    "attributes": [{"key": "ratio", "value": {"doubleValue": "0.25"}}],
                    "exemplars": [{
                      "asDouble": 1.5,
                      "timeUnixNano": "1700000000000000000",
                      "traceId": "5b8efff798038103d269b633813fc60c",
                      "spanId": "eee19b7ec3c1b174"
                    }]
                  }]
                }
              }, {
                "name": "latency",
                "histogram": {
                  "aggregationTemporality": 2,
                  "dataPoints": [{
                    "count": "3", "sum": "1.5", "min": 0.1, "max": "Infinity",
                    "bucketCounts": ["1", 2], "explicitBounds": [0.5],
                    "timeUnixNano": 1700000000000000000
                  }]
                }
              }, {
                "name": "temperature",
                "gauge": {"dataPoints": [{"asDouble": "NaN"}, {"asDouble": "-Infinity"}, {"asDouble": "2.5"}]}
              }, {
                "name": "exponential",
                "exponentialHistogram": {
                  "aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA",
                  "dataPoints": [{
                    "scale": 2, "count": "4", "zeroCount": "1", "zeroThreshold": "1e-9",
                    "positive": {"offset": -1, "bucketCounts": ["1", "2"]}
                  }]
                }
              }, {
                "name": "quantiles",
                "summary": {"dataPoints": [{"count": "2", "sum": 1, "quantileValues": [{"quantile": 0.5, "value": "NaN"}]}]}
              }]
            }]
          }]
        }"#;
        let request = decode_metrics(body).unwrap();
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;

        let Some(Data::Sum(sum)) = &metrics[0].data else {
            panic!("not a sum: {:?}", metrics[0].data)
        };
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        assert!(sum.is_monotonic);
        let point = &sum.data_points[0];
        assert_eq!(point.value, Some(number_data_point::Value::AsInt(42)));
        assert_eq!(point.time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(point.flags, 1);
        assert_eq!(
            point.attributes[0].value.as_ref().unwrap().value,
            Some(any_value::Value::DoubleValue(0.25))
        );
        let exemplar = &point.exemplars[0];
        assert_eq!(
            hex::encode(&exemplar.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(hex::encode(&exemplar.span_id), "eee19b7ec3c1b174");
        assert_eq!(exemplar.value, Some(exemplar::Value::AsDouble(1.5)));

        let Some(Data::Histogram(histogram)) = &metrics[1].data else {
            panic!("not a histogram")
        };
        let point = &histogram.data_points[0];
        assert_eq!(
            histogram.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        assert_eq!((point.count, point.sum), (3, Some(1.5)));
        assert_eq!((point.min, point.max), (Some(0.1), Some(f64::INFINITY)));
        assert_eq!(point.bucket_counts, vec![1, 2]);
        assert_eq!(point.explicit_bounds, vec![0.5]);

        let Some(Data::Gauge(gauge)) = &metrics[2].data else {
            panic!("not a gauge")
        };
        let values: Vec<f64> = gauge
            .data_points
            .iter()
            .map(|p| match p.value {
                Some(number_data_point::Value::AsDouble(v)) => v,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert!(values[0].is_nan());
        assert_eq!(values[1..], [f64::NEG_INFINITY, 2.5]);

        let Some(Data::ExponentialHistogram(exponential)) = &metrics[3].data else {
            panic!("not an exponential histogram")
        };
        assert_eq!(
            exponential.aggregation_temporality,
            AggregationTemporality::Delta as i32
        );
        let point = &exponential.data_points[0];
        assert_eq!((point.scale, point.count, point.zero_count), (2, 4, 1));
        assert_eq!(point.zero_threshold, 1e-9);
        let positive = point.positive.as_ref().unwrap();
        assert_eq!(
            (positive.offset, &positive.bucket_counts[..]),
            (-1, &[1, 2][..])
        );

        let Some(Data::Summary(summary)) = &metrics[4].data else {
            panic!("not a summary")
        };
        let quantile = &summary.data_points[0].quantile_values[0];
        assert_eq!(quantile.quantile, 0.5);
        assert!(quantile.value.is_nan());
    }

    #[test]
    fn special_double_stand_ins_never_meet_real_values() {
        // The largest doubles are the first stand-in candidates; real values
        // equal to them must survive, and NaN must still come back.
        let body = format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"g","gauge":{{"dataPoints":[
                {{"asDouble":{max:e}}}, {{"asDouble":"NaN"}}, {{"asDouble":{next:e}}}, {{"asDouble":"Infinity"}}
            ]}}}}]}}]}}]}}"#,
            max = f64::MAX,
            next = f64::from_bits(f64::MAX.to_bits() - 1),
        );
        let request = decode_metrics(body.as_bytes()).unwrap();
        let Some(Data::Gauge(gauge)) =
            &request.resource_metrics[0].scope_metrics[0].metrics[0].data
        else {
            panic!("not a gauge")
        };
        let values: Vec<f64> = gauge
            .data_points
            .iter()
            .map(|p| match p.value {
                Some(number_data_point::Value::AsDouble(v)) => v,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        // (serde_json's float parsing is not always exact; compare with it.)
        let parsed = |text: String| serde_json::from_str::<f64>(&text).unwrap();
        assert_eq!(values[0], parsed(format!("{:e}", f64::MAX)));
        assert!(values[1].is_nan());
        let next = f64::from_bits(f64::MAX.to_bits() - 1);
        assert_eq!(values[2], parsed(format!("{next:e}")));
        assert_eq!(values[3], f64::INFINITY);
    }

    #[test]
    fn refuses_bad_metrics_with_a_reason() {
        let bad_enum = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"s","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_SOMETIMES"}}]}]}]}"#;
        assert!(
            decode_metrics(bad_enum)
                .unwrap_err()
                .0
                .contains("AGGREGATION_TEMPORALITY_SOMETIMES")
        );
        let bad_double = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"h","histogram":{"dataPoints":[{"sum":"lots"}]}}]}]}]}"#;
        let error = decode_metrics(bad_double).unwrap_err().0;
        assert!(
            error.contains(r#"metric "h": invalid `histogram`"#),
            "{error}"
        );
        let bad_time = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"timeUnixNano":"soon","asInt":1}]}}]}]}]}"#;
        let error = decode_metrics(bad_time).unwrap_err().0;
        assert!(error.contains("invalid `gauge`"), "{error}");
        // A bad value inside a oneof leaves the oneof unset (serde's flatten);
        // the converter then rejects the point for having no value.
        let bad_oneof = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"asDouble":"lots"}]}}]}]}]}"#;
        let request = decode_metrics(bad_oneof).unwrap();
        let Some(Data::Gauge(gauge)) =
            &request.resource_metrics[0].scope_metrics[0].metrics[0].data
        else {
            panic!("not a gauge")
        };
        assert_eq!(gauge.data_points[0].value, None);
        let bad_id = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"asDouble":1,"exemplars":[{"traceId":"zz"}]}]}}]}]}]}"#;
        assert!(decode_metrics(bad_id).is_err());
        assert!(
            decode_metrics(b"[1,2")
                .unwrap_err()
                .0
                .contains("invalid JSON")
        );
        // Traces enum names mean nothing in metrics.
        let traces_enum = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","sum":{"aggregationTemporality":"SPAN_KIND_SERVER"}}]}]}]}"#;
        assert!(decode_metrics(traces_enum).is_err());
    }

    #[test]
    fn decodes_logs_with_enum_names_strings_and_hex_ids() {
        let body = br#"{
          "resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
            "scopeLogs": [{
              "scope": {"name": "lib", "version": "2.0", "attributes": [{"key": "ratio", "value": {"doubleValue": "NaN"}}]},
              "logRecords": [{
                "timeUnixNano": "1700000000000000001",
                "observedTimeUnixNano": 1700000000000000002,
                "severityNumber": "SEVERITY_NUMBER_WARN2",
                "severityText": "WARN",
                "body": {"stringValue": "disk almost full"},
                "attributes": [
                  {"key": "free.bytes", "value": {"intValue": "1024"}},
                  {"key": "severityNumber", "value": {"stringValue": "not an enum"}},
                  {"key": "load", "value": {"doubleValue": "-Infinity"}}
                ],
                "droppedAttributesCount": 2,
                "flags": 1,
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": "eee19b7ec3c1b174",
                "eventName": "disk.pressure"
              }, {
                "severityNumber": 17,
                "body": {"kvlistValue": {"values": [
                  {"key": "msg", "value": {"stringValue": "boom"}},
                  {"key": "share", "value": {"doubleValue": "Infinity"}},
                  {"key": "tries", "value": {"doubleValue": "1.5"}}
                ]}}
              }]
            }]
          }]
        }"#;
        let request = decode_logs(body).unwrap();
        let scope_logs = &request.resource_logs[0].scope_logs[0];
        let scope = scope_logs.scope.as_ref().unwrap();
        assert_eq!(
            (scope.name.as_str(), scope.version.as_str()),
            ("lib", "2.0")
        );
        let Some(any_value::Value::DoubleValue(ratio)) =
            scope.attributes[0].value.as_ref().unwrap().value
        else {
            panic!("not a double")
        };
        assert!(ratio.is_nan());

        let record = &scope_logs.log_records[0];
        assert_eq!(record.time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(record.observed_time_unix_nano, 1_700_000_000_000_000_002);
        assert_eq!(record.severity_number, SeverityNumber::Warn2 as i32);
        assert_eq!(record.severity_text, "WARN");
        assert_eq!(
            record.body.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("disk almost full".into()))
        );
        let values: Vec<_> = record
            .attributes
            .iter()
            .map(|kv| kv.value.as_ref().unwrap().value.clone().unwrap())
            .collect();
        assert_eq!(values[0], any_value::Value::IntValue(1024));
        assert_eq!(
            values[1],
            any_value::Value::StringValue("not an enum".into())
        );
        assert_eq!(values[2], any_value::Value::DoubleValue(f64::NEG_INFINITY));
        assert_eq!((record.dropped_attributes_count, record.flags), (2, 1));
        assert_eq!(
            hex::encode(&record.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(hex::encode(&record.span_id), "eee19b7ec3c1b174");
        assert_eq!(record.event_name, "disk.pressure");

        let record = &scope_logs.log_records[1];
        assert_eq!(record.severity_number, SeverityNumber::Error as i32);
        assert_eq!(record.time_unix_nano, 0);
        let Some(any_value::Value::KvlistValue(map)) = &record.body.as_ref().unwrap().value else {
            panic!("not a map body")
        };
        let fields: Vec<_> = map
            .values
            .iter()
            .map(|kv| kv.value.as_ref().unwrap().value.clone().unwrap())
            .collect();
        assert_eq!(fields[0], any_value::Value::StringValue("boom".into()));
        assert_eq!(fields[1], any_value::Value::DoubleValue(f64::INFINITY));
        assert_eq!(fields[2], any_value::Value::DoubleValue(1.5));
    }

    #[test]
    fn refuses_bad_logs_with_a_reason() {
        let bad_enum = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"SEVERITY_NUMBER_LOUD"}]}]}]}"#;
        assert!(
            decode_logs(bad_enum)
                .unwrap_err()
                .0
                .contains("SEVERITY_NUMBER_LOUD")
        );
        // Enum names of other signals mean nothing here.
        let traces_enum = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"SPAN_KIND_SERVER"}]}]}]}"#;
        assert!(decode_logs(traces_enum).is_err());
        let bad_id = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"xyz"}]}]}]}"#;
        assert!(
            decode_logs(bad_id)
                .unwrap_err()
                .0
                .starts_with("invalid OTLP/JSON logs request")
        );
        let bad_time =
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"yesterday"}]}]}]}"#;
        assert!(decode_logs(bad_time).is_err());
        // Unlike a metric's data, a bad body value fails the request rather
        // than vanishing.
        let bad_body =
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"intValue":"many"}}]}]}]}"#;
        assert!(decode_logs(bad_body).is_err());
        assert!(decode_logs(b"{").unwrap_err().0.contains("invalid JSON"));
        // An empty object is an empty request.
        assert!(decode_logs(b"{}").unwrap().resource_logs.is_empty());
    }
}
