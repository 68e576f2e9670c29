//! Attribute values as label values: what OTel's Go `pcommon.Value.AsString`
//! returns, since that is what Prometheus puts in its labels and Loki in its
//! stream labels, structured metadata and log lines.
//!
//! Scalars are plain text (`true`, `42`, `0.5`), bytes are standard base64,
//! and arrays and maps are the JSON Go's `encoding/json` writes (map keys
//! sorted, `<`, `>` and `&` escaped, floats in ES6 notation).

use std::collections::BTreeMap;
use std::fmt::Write;

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};

/// The label value of an attribute value; empty for an empty value.
pub(crate) fn value_string(value: Option<&AnyValue>) -> String {
    let Some(value) = value.and_then(|v| v.value.as_ref()) else {
        return String::new();
    };
    match value {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => go_float(*d).unwrap_or_else(|| {
            // pcommon writes the error JSON encoding would give.
            let spelled = match *d {
                d if d.is_nan() => "NaN",
                d if d > 0.0 => "+Inf",
                _ => "-Inf",
            };
            format!("json: unsupported value: {spelled}")
        }),
        any_value::Value::BytesValue(bytes) => {
            base64::engine::general_purpose::STANDARD.encode(bytes)
        }
        // Go's `json.Marshal` fails on NaN and infinities; pcommon then
        // returns an empty string.
        any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_) => {
            let mut out = String::new();
            match write_json(&mut out, value) {
                Ok(()) => out,
                Err(NotJson) => String::new(),
            }
        }
        // A profiles-only dictionary reference: no value without the dictionary.
        any_value::Value::StringValueStrindex(_) => String::new(),
    }
}

/// A float as Go's `encoding/json` writes it (ES6 number-to-string): the
/// shortest digits that read back exactly, positional between 1e-6 and 1e21,
/// exponent form (`1e+21`, `1e-7`) outside. `None` for NaN and infinities,
/// which JSON cannot hold.
pub(crate) fn go_float(value: f64) -> Option<String> {
    if !value.is_finite() {
        return None;
    }
    let abs = value.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust writes `1e21`/`1e-7`; Go writes `1e+21`/`1e-7` (after its
        // clean-up of `e-07`).
        let formatted = format!("{value:e}");
        return Some(match formatted.split_once('e') {
            Some((mantissa, exponent)) if !exponent.starts_with('-') => {
                format!("{mantissa}e+{exponent}")
            }
            _ => formatted,
        });
    }
    Some(format!("{value}"))
}

/// A value JSON cannot encode (NaN or an infinity somewhere inside).
struct NotJson;

fn write_json(out: &mut String, value: &any_value::Value) -> Result<(), NotJson> {
    match value {
        any_value::Value::StringValue(s) => write_json_string(out, s),
        any_value::Value::BoolValue(b) => out.push_str(if *b { "true" } else { "false" }),
        any_value::Value::IntValue(i) => {
            let _ = write!(out, "{i}");
        }
        any_value::Value::DoubleValue(d) => out.push_str(&go_float(*d).ok_or(NotJson)?),
        any_value::Value::BytesValue(bytes) => write_json_string(
            out,
            &base64::engine::general_purpose::STANDARD.encode(bytes),
        ),
        any_value::Value::ArrayValue(array) => {
            out.push('[');
            for (i, item) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_any(out, Some(item))?;
            }
            out.push(']');
        }
        any_value::Value::KvlistValue(list) => {
            // Go marshals a map: keys sorted, the last of duplicate keys wins.
            let map: BTreeMap<&str, Option<&AnyValue>> = list
                .values
                .iter()
                .map(|kv| (kv.key.as_str(), kv.value.as_ref()))
                .collect();
            out.push('{');
            for (i, (key, item)) in map.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, key);
                out.push(':');
                write_json_any(out, item)?;
            }
            out.push('}');
        }
        any_value::Value::StringValueStrindex(_) => out.push_str("null"),
    }
    Ok(())
}

fn write_json_any(out: &mut String, value: Option<&AnyValue>) -> Result<(), NotJson> {
    match value.and_then(|v| v.value.as_ref()) {
        Some(value) => write_json(out, value),
        None => {
            out.push_str("null");
            Ok(())
        }
    }
}

/// A JSON string with Go's escaping, HTML characters included.
fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
