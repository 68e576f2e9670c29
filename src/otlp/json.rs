//! OTLP/JSON: protobuf's JSON mapping with OTLP's deviations.
//!
//! - trace and span ids are hex strings, not base64;
//! - enums may be written as names (`"SPAN_KIND_SERVER"`) or numbers;
//! - 64-bit integers may be strings or numbers;
//! - field names are lowerCamelCase; unknown fields are ignored.
//!
//! The message types' serde derives (opentelemetry-proto `with-serde`) cover
//! ids and integers; enum names are turned into numbers here first.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use serde_json::Value;

/// Decodes an OTLP/JSON traces request.
pub fn decode_traces(body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    normalize_enums(&mut value, None)?;
    serde_json::from_value(value).map_err(|e| format!("invalid OTLP/JSON traces request: {e}"))
}

/// Rewrites enum names to their numbers, wherever OTLP has an enum field.
fn normalize_enums(value: &mut Value, parent_key: Option<&str>) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if let Value::String(name) = child {
                    let number = match (parent_key, key.as_str()) {
                        (_, "kind") => Some(SpanKind::from_str_name(name).map(|k| k as i32)),
                        (Some("status"), "code") => {
                            Some(StatusCode::from_str_name(name).map(|c| c as i32))
                        }
                        _ => None,
                    };
                    match number {
                        Some(Some(n)) => *child = Value::from(n),
                        Some(None) => {
                            return Err(format!("`{key}` has an unknown enum value {name:?}"));
                        }
                        None => {}
                    }
                } else {
                    normalize_enums(child, Some(key.as_str()))?;
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                normalize_enums(item, parent_key)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value;

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
                .contains("invalid JSON")
        );
        let bad_enum =
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_WRONG"}]}]}]}"#;
        assert!(
            decode_traces(bad_enum)
                .unwrap_err()
                .contains("SPAN_KIND_WRONG")
        );
        let bad_id = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#;
        assert!(decode_traces(bad_id).is_err());
    }
}
