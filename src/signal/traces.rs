//! Traces as OTLP `ResourceSpans`, kept in their wire form until something
//! needs to read or change them.
//!
//! A protobuf request is validated by [`crate::otlp::scan`] and split into the
//! byte ranges of its `ResourceSpans`; those ranges travel to the exporter and
//! are written out as they came. That is what makes pass-through cheap: no
//! decode, no allocation per span, no encode. A part is decoded (into prost
//! types) only when something asks for the structure: a processor that changes
//! spans, a batch split inside one resource, the debug exporter, or a request
//! that arrived as JSON.

use bytes::{BufMut, Bytes};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;

use super::fields::{self, FieldVisitor, Fields, Group, Naming};
use super::{Signal, SignalData};
use crate::otlp::scan::ResourceSpansInfo;

/// A batch of spans grouped by resource and instrumentation scope.
#[derive(Clone, Debug, Default)]
pub struct Traces {
    parts: Vec<Part>,
    spans: usize,
}

#[derive(Clone, Debug)]
enum Part {
    /// A validated, encoded `ResourceSpans` (without tag and length) and its span count.
    Encoded { bytes: Bytes, spans: usize },
    Decoded {
        resource_spans: ResourceSpans,
        spans: usize,
    },
}

impl Part {
    fn spans(&self) -> usize {
        match self {
            Part::Encoded { spans, .. } | Part::Decoded { spans, .. } => *spans,
        }
    }

    fn decoded(resource_spans: ResourceSpans) -> Self {
        let spans = count(&resource_spans);
        Part::Decoded {
            resource_spans,
            spans,
        }
    }

    /// The structure; decodes an encoded part (already validated, so the
    /// decode cannot fail in practice; if it did, the part is kept empty).
    fn to_resource_spans(&self) -> ResourceSpans {
        match self {
            Part::Encoded { bytes, .. } => ResourceSpans::decode(bytes.clone()).unwrap_or_default(),
            Part::Decoded { resource_spans, .. } => resource_spans.clone(),
        }
    }

    fn into_resource_spans(self) -> ResourceSpans {
        match self {
            Part::Encoded { bytes, .. } => ResourceSpans::decode(bytes).unwrap_or_default(),
            Part::Decoded { resource_spans, .. } => resource_spans,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            Part::Encoded { bytes, .. } => bytes.len(),
            Part::Decoded { resource_spans, .. } => resource_spans.encoded_len(),
        }
    }
}

fn count(rs: &ResourceSpans) -> usize {
    rs.scope_spans.iter().map(|ss| ss.spans.len()).sum()
}

impl Traces {
    /// Traces from decoded messages (OTLP/JSON, tests, processors).
    pub fn new(resource_spans: Vec<ResourceSpans>) -> Self {
        let parts: Vec<Part> = resource_spans.into_iter().map(Part::decoded).collect();
        let spans = parts.iter().map(Part::spans).sum();
        Self { parts, spans }
    }

    /// Traces from a scanned `ExportTraceServiceRequest` body. Resources whose
    /// spans all have valid ids stay encoded; the others are decoded and their
    /// invalid spans removed. Returns the traces and how many spans were removed.
    pub fn from_scanned(body: &Bytes, infos: Vec<ResourceSpansInfo>) -> (Self, usize) {
        let mut parts = Vec::with_capacity(infos.len());
        let mut removed = 0;
        for info in infos {
            let bytes = body.slice(info.range);
            if info.invalid_spans == 0 {
                parts.push(Part::Encoded {
                    bytes,
                    spans: info.spans,
                });
                continue;
            }
            let mut rs = ResourceSpans::decode(bytes).unwrap_or_default();
            for ss in &mut rs.scope_spans {
                ss.spans
                    .retain(|s| valid_id(&s.trace_id, 16) && valid_id(&s.span_id, 8));
            }
            removed += info.invalid_spans;
            parts.push(Part::decoded(rs));
        }
        let spans = parts.iter().map(Part::spans).sum();
        (Self { parts, spans }, removed)
    }

    /// A decoded copy of every resource's spans.
    pub fn resource_spans(&self) -> Vec<ResourceSpans> {
        self.parts.iter().map(Part::to_resource_spans).collect()
    }

    pub fn into_resource_spans(self) -> Vec<ResourceSpans> {
        self.parts
            .into_iter()
            .map(Part::into_resource_spans)
            .collect()
    }

    /// Resources in this batch.
    pub fn resource_count(&self) -> usize {
        self.parts.len()
    }

    /// Lets `f` change each resource's spans, decoding what is still encoded.
    pub fn for_each_resource_spans_mut(&mut self, mut f: impl FnMut(&mut ResourceSpans)) {
        for part in &mut self.parts {
            let mut rs = std::mem::replace(
                part,
                Part::Encoded {
                    bytes: Bytes::new(),
                    spans: 0,
                },
            )
            .into_resource_spans();
            f(&mut rs);
            *part = Part::decoded(rs);
        }
        self.spans = self.parts.iter().map(Part::spans).sum();
    }

    /// Appends this batch as `ExportTraceServiceRequest` fields: encoded parts
    /// are copied as they came, decoded ones encoded by prost.
    pub fn encode_request(&self, buf: &mut impl BufMut) {
        for part in &self.parts {
            match part {
                Part::Encoded { bytes, .. } => {
                    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, buf);
                    prost::encoding::encode_varint(bytes.len() as u64, buf);
                    buf.put_slice(bytes);
                }
                Part::Decoded { resource_spans, .. } => {
                    prost::encoding::message::encode(1, resource_spans, buf)
                }
            }
        }
    }
}

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|&b| b != 0)
}

impl SignalData for Traces {
    const SIGNAL: Signal = Signal::Traces;

    fn item_count(&self) -> usize {
        self.spans
    }

    fn encoded_len(&self) -> usize {
        // Each ResourceSpans is field 1 of ExportTraceServiceRequest.
        self.parts
            .iter()
            .map(|part| {
                let len = part.body_len();
                1 + prost::encoding::encoded_len_varint(len as u64) + len
            })
            .sum()
    }

    fn merge(&mut self, other: Self) {
        self.spans += other.spans;
        self.parts.extend(other.parts);
    }

    fn split_to(&mut self, n: usize) -> Self {
        // Whole resources first; a resource is decoded only to cut inside it.
        let whole = self
            .parts
            .iter()
            .scan(0usize, |taken, part| {
                *taken += part.spans();
                Some(*taken)
            })
            .take_while(|&taken| taken <= n)
            .count();
        let mut taken: Vec<Part> = self.parts.drain(..whole).collect();
        let mut remaining = n - taken.iter().map(Part::spans).sum::<usize>();
        if remaining > 0 && !self.parts.is_empty() {
            let mut rs = std::mem::replace(
                &mut self.parts[0],
                Part::Encoded {
                    bytes: Bytes::new(),
                    spans: 0,
                },
            )
            .into_resource_spans();
            let mut head = ResourceSpans {
                resource: rs.resource.clone(),
                scope_spans: Vec::new(),
                schema_url: rs.schema_url.clone(),
            };
            let mut scopes = std::mem::take(&mut rs.scope_spans).into_iter().peekable();
            while remaining > 0 {
                let Some(mut ss) = scopes.next() else { break };
                if ss.spans.len() <= remaining {
                    remaining -= ss.spans.len();
                    head.scope_spans.push(ss);
                } else {
                    let rest = ss.spans.split_off(remaining);
                    head.scope_spans.push(ScopeSpans {
                        scope: ss.scope.clone(),
                        spans: std::mem::replace(&mut ss.spans, rest),
                        schema_url: ss.schema_url.clone(),
                    });
                    remaining = 0;
                    rs.scope_spans.push(ss);
                }
            }
            rs.scope_spans.extend(scopes);
            self.parts[0] = Part::decoded(rs);
            taken.push(Part::decoded(head));
        }
        let spans: usize = taken.iter().map(Part::spans).sum();
        self.spans -= spans;
        Traces {
            parts: taken,
            spans,
        }
    }
}

impl Fields for Traces {
    const NAMING: Naming = Naming::Otel;

    /// Parts the visitor rules out stay encoded; a part is decoded to be
    /// walked and re-encoded only if something in it changed.
    fn visit_fields(&mut self, visitor: &mut dyn FieldVisitor) {
        for part in &mut self.parts {
            if let Part::Encoded { bytes, .. } = part
                && !visitor.may_change(bytes)
            {
                continue;
            }
            let mut rs = part.to_resource_spans();
            if visit_resource_spans(&mut rs, visitor) {
                *part = Part::decoded(rs);
            }
        }
    }

    fn retain_groups(&mut self, keep: &mut dyn FnMut(&mut dyn Group) -> bool) {
        self.parts.retain_mut(|part| with_group(part, &mut *keep));
        self.spans = self.parts.iter().map(Part::spans).sum();
    }

    fn partition(self, key: &mut dyn FnMut(&mut dyn Group) -> u64) -> Vec<(u64, Self)> {
        fields::partition_vec(self.parts, |part| with_group(part, &mut *key))
            .into_iter()
            .map(|(k, parts)| {
                let spans = parts.iter().map(Part::spans).sum();
                (k, Traces { parts, spans })
            })
            .collect()
    }
}

/// Runs `f` on a part's resource as a [`Group`], writing changes back.
fn with_group<R>(part: &mut Part, f: &mut dyn FnMut(&mut dyn Group) -> R) -> R {
    let resource = match part {
        Part::Decoded { resource_spans, .. } => resource_spans.resource.clone().unwrap_or_default(),
        Part::Encoded { bytes, .. } => encoded_resource(bytes),
    };
    let mut group = ResourceGroup {
        resource,
        changed: false,
        spans: part.spans(),
        bytes: part.body_len(),
    };
    let result = f(&mut group);
    if group.changed {
        match part {
            Part::Decoded { resource_spans, .. } => resource_spans.resource = Some(group.resource),
            Part::Encoded { bytes, .. } => *bytes = replace_resource(bytes, &group.resource),
        }
    }
    result
}

/// The `Resource` (field 1) of an encoded, validated `ResourceSpans`.
fn encoded_resource(bytes: &Bytes) -> Resource {
    let mut resource = Resource::default();
    for_each_field(bytes, |number, field| {
        if number == 1 {
            // Validated on receipt; a failure leaves the resource empty.
            resource = Resource::decode(field).unwrap_or_default();
        }
    });
    resource
}

/// The encoded `ResourceSpans` with its resource replaced and every other
/// field copied as it was: enriching a resource never re-encodes its spans.
fn replace_resource(bytes: &Bytes, resource: &Resource) -> Bytes {
    let mut out = Vec::with_capacity(bytes.len() + resource.encoded_len() + 8);
    prost::encoding::message::encode(1, resource, &mut out);
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let start = rest;
        let Ok((number, wire_type)) = prost::encoding::decode_key(&mut rest) else {
            break;
        };
        if prost::encoding::skip_field(
            wire_type,
            number,
            &mut rest,
            prost::encoding::DecodeContext::default(),
        )
        .is_err()
        {
            break;
        }
        if number != 1 {
            out.extend_from_slice(&start[..start.len() - rest.len()]);
        }
    }
    Bytes::from(out)
}

/// Calls `f(number, value)` for each length-delimited top-level field.
fn for_each_field(bytes: &[u8], mut f: impl FnMut(u32, &[u8])) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let Ok((number, wire_type)) = prost::encoding::decode_key(&mut rest) else {
            return;
        };
        if wire_type == prost::encoding::WireType::LengthDelimited {
            let Ok(len) = prost::encoding::decode_varint(&mut rest) else {
                return;
            };
            let Some((value, tail)) = rest.split_at_checked(len as usize) else {
                return;
            };
            f(number, value);
            rest = tail;
        } else if prost::encoding::skip_field(
            wire_type,
            number,
            &mut rest,
            prost::encoding::DecodeContext::default(),
        )
        .is_err()
        {
            return;
        }
    }
}

/// A resource's attributes as a [`Group`].
struct ResourceGroup {
    resource: Resource,
    changed: bool,
    spans: usize,
    bytes: usize,
}

impl Group for ResourceGroup {
    fn get(&self, key: &str) -> Option<&str> {
        self.resource
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.as_str()),
                _ => None,
            })
    }

    fn for_each(&self, f: &mut dyn FnMut(&str, &str)) {
        for kv in &self.resource.attributes {
            if let Some(AnyValue {
                value: Some(any_value::Value::StringValue(s)),
            }) = &kv.value
            {
                f(&kv.key, s);
            }
        }
    }

    fn set(&mut self, pairs: &[(&str, &str)]) {
        for (key, value) in pairs {
            let attributes = &mut self.resource.attributes;
            let position = attributes.iter().position(|kv| kv.key == *key);
            if value.is_empty() {
                if let Some(i) = position {
                    attributes.remove(i);
                    self.changed = true;
                }
                continue;
            }
            if self.get(key) == Some(value) {
                continue;
            }
            let new = Some(string_value(value));
            match position {
                Some(i) => self.resource.attributes[i].value = new,
                None => self.resource.attributes.push(KeyValue {
                    key: key.to_string(),
                    value: new,
                    ..Default::default()
                }),
            }
            self.changed = true;
        }
    }

    fn items(&self) -> usize {
        self.spans
    }

    fn bytes(&self) -> usize {
        self.bytes
    }
}

fn string_value(value: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(value.to_string())),
    }
}

/// Walks every attribute and free-text field of `rs`; `true` if any changed.
fn visit_resource_spans(rs: &mut ResourceSpans, visitor: &mut dyn FieldVisitor) -> bool {
    let mut changed = false;
    if let Some(resource) = &mut rs.resource {
        changed |= visit_attributes(&mut resource.attributes, visitor);
    }
    for ss in &mut rs.scope_spans {
        if let Some(scope) = &mut ss.scope {
            changed |= visit_attributes(&mut scope.attributes, visitor);
        }
        for span in &mut ss.spans {
            changed |= visit_text(&mut span.name, visitor);
            changed |= visit_attributes(&mut span.attributes, visitor);
            for event in &mut span.events {
                changed |= visit_text(&mut event.name, visitor);
                changed |= visit_attributes(&mut event.attributes, visitor);
            }
            for link in &mut span.links {
                changed |= visit_attributes(&mut link.attributes, visitor);
            }
            if let Some(status) = &mut span.status {
                changed |= visit_text(&mut status.message, visitor);
            }
        }
    }
    changed
}

fn visit_text(text: &mut String, visitor: &mut dyn FieldVisitor) -> bool {
    if text.is_empty() || !visitor.may_change(text.as_bytes()) {
        return false;
    }
    match visitor.text(text) {
        Some(new) => {
            *text = new;
            true
        }
        None => false,
    }
}

/// OTLP attributes, nested lists and maps included; a value that is not a
/// string is offered as `""` so that a key-based rule can still replace it.
pub(crate) fn visit_attributes(
    attributes: &mut [KeyValue],
    visitor: &mut dyn FieldVisitor,
) -> bool {
    let mut changed = false;
    for kv in attributes {
        if let Some(value) = &mut kv.value {
            changed |= visit_any_value(&kv.key, value, visitor);
        }
    }
    changed
}

fn visit_any_value(key: &str, value: &mut AnyValue, visitor: &mut dyn FieldVisitor) -> bool {
    let replacement = match &mut value.value {
        Some(any_value::Value::StringValue(s)) => visitor.pair(key, s),
        Some(any_value::Value::KvlistValue(list)) => {
            return visit_attributes(&mut list.values, visitor);
        }
        Some(any_value::Value::ArrayValue(array)) => {
            let mut changed = false;
            for item in &mut array.values {
                changed |= visit_any_value(key, item, visitor);
            }
            return changed;
        }
        Some(_) | None => visitor.pair(key, ""),
    };
    match replacement {
        Some(new) => {
            value.value = Some(any_value::Value::StringValue(new));
            true
        }
        None => false,
    }
}

#[cfg(test)]
pub(crate) mod tests;
