//! A validating walk over encoded OTLP trace messages that allocates nothing.
//!
//! It checks what prost's decoder would check (wire types of known fields,
//! lengths within bounds, UTF-8 in string fields, nesting depth) and, on the
//! way, counts spans and finds spans with invalid ids. That lets traces stay
//! in their wire form from receiver to exporter: a request is split into its
//! `ResourceSpans` byte ranges, which the exporter writes back out as they
//! came, without a decode or an encode in between.
//!
//! Field numbers are those of `opentelemetry/proto/trace/v1/trace.proto`,
//! `common/v1/common.proto` and `resource/v1/resource.proto`.

use std::ops::Range;

use crate::wire::{Reader, Value, WireError};

/// Deepest nesting of `AnyValue` arrays and key-value lists accepted; prost's
/// own recursion limit is 100 messages.
const MAX_ANY_VALUE_DEPTH: u32 = 32;

/// Why an encoded message is not valid OTLP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScanError(pub &'static str);

impl From<WireError> for ScanError {
    fn from(e: WireError) -> Self {
        ScanError(e.0)
    }
}

/// One `ResourceSpans` of a request, as a byte range of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSpansInfo {
    /// The bytes of the `ResourceSpans` message (without its tag and length).
    pub range: Range<usize>,
    pub spans: usize,
    /// Spans whose trace id is not 16 bytes or span id not 8 bytes, or all zero.
    pub invalid_spans: usize,
}

/// Walks an `ExportTraceServiceRequest`.
pub fn trace_request(buf: &[u8]) -> Result<Vec<ResourceSpansInfo>, ScanError> {
    let mut out = Vec::new();
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field()? {
        match (field, value) {
            (1, Value::Len(bytes)) => {
                let start = reader.pos() - bytes.len();
                let mut counts = Counts::default();
                resource_spans(bytes, &mut counts)?;
                out.push(ResourceSpansInfo {
                    range: start..reader.pos(),
                    spans: counts.spans,
                    invalid_spans: counts.invalid,
                });
            }
            (1, _) => return Err(ScanError("resource_spans has the wrong wire type")),
            _ => {}
        }
    }
    Ok(out)
}

#[derive(Default)]
struct Counts {
    spans: usize,
    invalid: usize,
}

fn resource_spans(buf: &[u8], counts: &mut Counts) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field()? {
        match field {
            1 => resource(value.message()?)?,
            2 => scope_spans(value.message()?, counts)?,
            3 => {
                value.check_string()?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn resource(buf: &[u8]) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field()? {
        match field {
            1 => key_value(value.message()?, 0)?,
            2 => {
                value.varint()?;
            }
            3 => entity_ref(value.message()?)?,
            _ => {}
        }
    }
    Ok(())
}

fn entity_ref(buf: &[u8]) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field()? {
        if (1..=4).contains(&field) {
            value.check_string()?;
        }
    }
    Ok(())
}

fn scope_spans(buf: &[u8], counts: &mut Counts) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field()? {
        match field {
            1 => scope(value.message()?)?,
            2 => {
                counts.spans += 1;
                if !span(value.message()?)? {
                    counts.invalid += 1;
                }
            }
            3 => {
                value.check_string()?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn scope(buf: &[u8]) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field()? {
        match field {
            1 | 2 => {
                value.check_string()?;
            }
            3 => key_value(value.message()?, 0)?,
            4 => {
                value.varint()?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks a span; returns whether its ids are valid.
fn span(buf: &[u8]) -> Result<bool, ScanError> {
    let (mut trace_id_ok, mut span_id_ok) = (false, false);
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field()? {
        match field {
            1 => trace_id_ok = valid_id(value.bytes()?, 16),
            2 => span_id_ok = valid_id(value.bytes()?, 8),
            4 => {
                value.bytes()?;
            }
            3 | 5 => {
                value.check_string()?;
            }
            6 | 10 | 12 | 14 => {
                value.varint()?;
            }
            7 | 8 => value.fixed64()?,
            9 => key_value(value.message()?, 0)?,
            11 => event(value.message()?)?,
            13 => link(value.message()?)?,
            15 => status(value.message()?)?,
            16 => value.fixed32()?,
            _ => {}
        }
    }
    Ok(trace_id_ok && span_id_ok)
}

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|&b| b != 0)
}

fn event(buf: &[u8]) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field()? {
        match field {
            1 => value.fixed64()?,
            2 => {
                value.check_string()?;
            }
            3 => key_value(value.message()?, 0)?,
            4 => {
                value.varint()?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn link(buf: &[u8]) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field()? {
        match field {
            1 | 2 => {
                value.bytes()?;
            }
            3 => {
                value.check_string()?;
            }
            4 => key_value(value.message()?, 0)?,
            5 => {
                value.varint()?;
            }
            6 => value.fixed32()?,
            _ => {}
        }
    }
    Ok(())
}

fn status(buf: &[u8]) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field()? {
        match field {
            2 => {
                value.check_string()?;
            }
            3 => {
                value.varint()?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn key_value(buf: &[u8], depth: u32) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field()? {
        match field {
            1 => {
                value.check_string()?;
            }
            2 => any_value(value.message()?, depth)?,
            3 => {
                value.varint()?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn any_value(buf: &[u8], depth: u32) -> Result<(), ScanError> {
    if depth > MAX_ANY_VALUE_DEPTH {
        return Err(ScanError("attribute values are nested too deeply"));
    }
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field()? {
        match field {
            1 => {
                value.check_string()?;
            }
            2 | 3 | 8 => {
                value.varint()?;
            }
            4 => value.fixed64()?,
            5 => {
                let mut items = Reader::new(value.message()?);
                while let Some((field, item)) = items.field()? {
                    if field == 1 {
                        any_value(item.message()?, depth + 1)?;
                    }
                }
            }
            6 => {
                let mut items = Reader::new(value.message()?);
                while let Some((field, item)) = items.field()? {
                    if field == 1 {
                        key_value(item.message()?, depth + 1)?;
                    }
                }
            }
            7 => {
                value.bytes()?;
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
