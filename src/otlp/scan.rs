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

/// Deepest nesting of `AnyValue` arrays and key-value lists accepted; prost's
/// own recursion limit is 100 messages.
const MAX_ANY_VALUE_DEPTH: u32 = 32;

/// Why an encoded message is not valid OTLP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScanError(pub &'static str);

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
    while let Some((field, value)) = reader.next()? {
        match (field, value) {
            (1, Value::Len(bytes)) => {
                let start = reader.pos - bytes.len();
                let mut counts = Counts::default();
                resource_spans(bytes, &mut counts)?;
                out.push(ResourceSpansInfo {
                    range: start..reader.pos,
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
    while let Some((field, value)) = reader.next()? {
        match field {
            1 => resource(value.message()?)?,
            2 => scope_spans(value.message()?, counts)?,
            3 => value.string()?,
            _ => {}
        }
    }
    Ok(())
}

fn resource(buf: &[u8]) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.next()? {
        match field {
            1 => key_value(value.message()?, 0)?,
            2 => value.varint()?,
            3 => entity_ref(value.message()?)?,
            _ => {}
        }
    }
    Ok(())
}

fn entity_ref(buf: &[u8]) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.next()? {
        if (1..=4).contains(&field) {
            value.string()?;
        }
    }
    Ok(())
}

fn scope_spans(buf: &[u8], counts: &mut Counts) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.next()? {
        match field {
            1 => scope(value.message()?)?,
            2 => {
                counts.spans += 1;
                if !span(value.message()?)? {
                    counts.invalid += 1;
                }
            }
            3 => value.string()?,
            _ => {}
        }
    }
    Ok(())
}

fn scope(buf: &[u8]) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.next()? {
        match field {
            1 | 2 => value.string()?,
            3 => key_value(value.message()?, 0)?,
            4 => value.varint()?,
            _ => {}
        }
    }
    Ok(())
}

/// Checks a span; returns whether its ids are valid.
fn span(buf: &[u8]) -> Result<bool, ScanError> {
    let (mut trace_id_ok, mut span_id_ok) = (false, false);
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.next()? {
        match field {
            1 => trace_id_ok = valid_id(value.bytes()?, 16),
            2 => span_id_ok = valid_id(value.bytes()?, 8),
            4 => {
                value.bytes()?;
            }
            3 | 5 => value.string()?,
            6 | 10 | 12 | 14 => value.varint()?,
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
    while let Some((field, value)) = reader.next()? {
        match field {
            1 => value.fixed64()?,
            2 => value.string()?,
            3 => key_value(value.message()?, 0)?,
            4 => value.varint()?,
            _ => {}
        }
    }
    Ok(())
}

fn link(buf: &[u8]) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.next()? {
        match field {
            1 | 2 => {
                value.bytes()?;
            }
            3 => value.string()?,
            4 => key_value(value.message()?, 0)?,
            5 => value.varint()?,
            6 => value.fixed32()?,
            _ => {}
        }
    }
    Ok(())
}

fn status(buf: &[u8]) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.next()? {
        match field {
            2 => value.string()?,
            3 => value.varint()?,
            _ => {}
        }
    }
    Ok(())
}

fn key_value(buf: &[u8], depth: u32) -> Result<(), ScanError> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.next()? {
        match field {
            1 => value.string()?,
            2 => any_value(value.message()?, depth)?,
            3 => value.varint()?,
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
    while let Some((field, value)) = reader.next()? {
        match field {
            1 => value.string()?,
            2 | 3 | 8 => value.varint()?,
            4 => value.fixed64()?,
            5 => {
                let mut items = Reader::new(value.message()?);
                while let Some((field, item)) = items.next()? {
                    if field == 1 {
                        any_value(item.message()?, depth + 1)?;
                    }
                }
            }
            6 => {
                let mut items = Reader::new(value.message()?);
                while let Some((field, item)) = items.next()? {
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

/// A field's value as it is on the wire.
#[derive(Clone, Copy)]
enum Value<'a> {
    Varint,
    Fixed64,
    Fixed32,
    Len(&'a [u8]),
}

impl<'a> Value<'a> {
    fn message(self) -> Result<&'a [u8], ScanError> {
        match self {
            Value::Len(bytes) => Ok(bytes),
            _ => Err(ScanError("a message field has the wrong wire type")),
        }
    }

    fn bytes(self) -> Result<&'a [u8], ScanError> {
        match self {
            Value::Len(bytes) => Ok(bytes),
            _ => Err(ScanError("a bytes field has the wrong wire type")),
        }
    }

    #[inline]
    fn string(self) -> Result<(), ScanError> {
        match self {
            // Attribute keys and values are short and nearly always ASCII:
            // that check is cheaper than a full UTF-8 validation call.
            Value::Len(bytes) if bytes.is_ascii() => Ok(()),
            Value::Len(bytes) => std::str::from_utf8(bytes)
                .map(|_| ())
                .map_err(|_| ScanError("a string field is not valid UTF-8")),
            _ => Err(ScanError("a string field has the wrong wire type")),
        }
    }

    fn varint(self) -> Result<(), ScanError> {
        match self {
            Value::Varint => Ok(()),
            _ => Err(ScanError("an integer field has the wrong wire type")),
        }
    }

    fn fixed64(self) -> Result<(), ScanError> {
        match self {
            Value::Fixed64 => Ok(()),
            _ => Err(ScanError("a fixed64 field has the wrong wire type")),
        }
    }

    fn fixed32(self) -> Result<(), ScanError> {
        match self {
            Value::Fixed32 => Ok(()),
            _ => Err(ScanError("a fixed32 field has the wrong wire type")),
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, ScanError> {
        // Tags and short lengths fit in one byte.
        if let Some(&byte) = self.buf.get(self.pos)
            && byte < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(byte));
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, ScanError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(ScanError("a varint runs past the end"));
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(ScanError("a varint is longer than 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(ScanError("a varint is longer than 64 bits"))
    }

    #[inline(always)]
    fn skip(&mut self, n: usize) -> Result<&'a [u8], ScanError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        let Some(end) = end else {
            return Err(ScanError("a field runs past the end of its message"));
        };
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// The next field, or `None` at the end.
    #[inline(always)]
    fn next(&mut self) -> Result<Option<(u64, Value<'a>)>, ScanError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(ScanError("a field number is out of range"));
        }
        let value = match key & 7 {
            0 => {
                self.varint()?;
                Value::Varint
            }
            1 => {
                self.skip(8)?;
                Value::Fixed64
            }
            5 => {
                self.skip(4)?;
                Value::Fixed32
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| ScanError("a length is too large"))?;
                Value::Len(self.skip(len)?)
            }
            _ => return Err(ScanError("groups and unknown wire types are not OTLP")),
        };
        Ok(Some((field, value)))
    }
}

#[cfg(test)]
mod tests;
