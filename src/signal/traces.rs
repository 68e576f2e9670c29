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
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;

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

#[cfg(test)]
pub(crate) mod tests;
