//! Remote-write request bodies, written straight from ferro's series (no
//! intermediate prost structs for 1.0), then snappy-compressed (block format).

use ferro_proto::{prometheus as v1, write_v2 as v2};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use std::collections::HashMap;

use crate::signal::Labels;
use crate::signal::metrics::{Metadata, MetricType, Series};

fn len_field(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn put_len_prefix(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn put_str(tag: u32, text: &str, buf: &mut Vec<u8>) {
    put_len_prefix(tag, text.len(), buf);
    buf.extend_from_slice(text.as_bytes());
}

/// `prometheus.Label` body length.
fn label_len(name: &str, value: &str) -> usize {
    len_field(1, name.len()) + len_field(2, value.len())
}

fn labels_len(labels: &Labels) -> usize {
    labels
        .iter()
        .map(|(n, v)| len_field(1, label_len(n, v)))
        .sum()
}

fn put_labels(tag: u32, labels: &Labels, buf: &mut Vec<u8>) {
    for (name, value) in labels.iter() {
        put_len_prefix(tag, label_len(name, value), buf);
        put_str(1, name, buf);
        put_str(2, value, buf);
    }
}

/// `prometheus.Sample` body: double value = 1, int64 timestamp = 2.
fn sample_len(timestamp_ms: i64) -> usize {
    9 + 1 + encoded_len_varint(timestamp_ms as u64)
}

fn put_sample(value: f64, timestamp_ms: i64, buf: &mut Vec<u8>) {
    put_len_prefix(2, sample_len(timestamp_ms), buf);
    encode_key(1, WireType::SixtyFourBit, buf);
    buf.extend_from_slice(&value.to_le_bytes());
    encode_key(2, WireType::Varint, buf);
    encode_varint(timestamp_ms as u64, buf);
}

fn exemplar_len(e: &crate::signal::metrics::Exemplar) -> usize {
    labels_len(&e.labels) + 9 + 1 + encoded_len_varint(e.timestamp_ms as u64)
}

fn series_len(series: &Series) -> usize {
    labels_len(&series.labels)
        + series
            .samples
            .iter()
            .map(|s| len_field(2, sample_len(s.timestamp_ms)))
            .sum::<usize>()
        + series
            .exemplars
            .iter()
            .map(|e| len_field(3, exemplar_len(e)))
            .sum::<usize>()
        + series
            .histograms
            .iter()
            .map(|h| len_field(4, h.encoded_len()))
            .sum::<usize>()
}

/// A `prometheus.WriteRequest` (remote-write 1.0), uncompressed.
pub fn write_request_v1(series: &[Series], metadata: &[Metadata]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(series.iter().map(|s| series_len(s) + 4).sum::<usize>() + 64);
    for s in series {
        put_len_prefix(1, series_len(s), &mut buf);
        put_labels(1, &s.labels, &mut buf);
        for sample in &s.samples {
            put_sample(sample.value, sample.timestamp_ms, &mut buf);
        }
        for e in &s.exemplars {
            put_len_prefix(3, exemplar_len(e), &mut buf);
            put_labels(1, &e.labels, &mut buf);
            encode_key(2, WireType::SixtyFourBit, &mut buf);
            buf.extend_from_slice(&e.value.to_le_bytes());
            encode_key(3, WireType::Varint, &mut buf);
            encode_varint(e.timestamp_ms as u64, &mut buf);
        }
        for h in &s.histograms {
            prost::encoding::message::encode(4, h, &mut buf);
        }
    }
    for m in metadata {
        let body = v1::MetricMetadata {
            r#type: m.kind as i32,
            metric_family_name: m.family.clone(),
            help: m.help.clone(),
            unit: m.unit.clone(),
        };
        prost::encoding::message::encode(3, &body, &mut buf);
    }
    buf
}

/// The family a series belongs to, for metadata lookup: its name without the
/// suffixes Prometheus adds to a family's series.
pub fn family_of(name: &str) -> &str {
    for suffix in [
        "_bucket", "_count", "_sum", "_total", "_created", "_info", "_gcount", "_gsum",
    ] {
        if let Some(family) = name.strip_suffix(suffix) {
            return family;
        }
    }
    name
}

/// An `io.prometheus.write.v2.Request` (remote-write 2.0), uncompressed:
/// strings interned into the symbol table, metadata inline per series.
pub fn write_request_v2(series: &[Series], metadata: &HashMap<String, Metadata>) -> Vec<u8> {
    let mut symbols = Symbols::default();
    let timeseries = series
        .iter()
        .map(|s| {
            let name = s.labels.get("__name__").unwrap_or("");
            let meta = metadata.get(name).or_else(|| metadata.get(family_of(name)));
            v2::TimeSeries {
                labels_refs: symbols.labels(&s.labels),
                samples: s
                    .samples
                    .iter()
                    .map(|p| v2::Sample {
                        value: p.value,
                        timestamp: p.timestamp_ms,
                    })
                    .collect(),
                histograms: s.histograms.iter().map(histogram_v2).collect(),
                exemplars: s
                    .exemplars
                    .iter()
                    .map(|e| v2::Exemplar {
                        labels_refs: symbols.labels(&e.labels),
                        value: e.value,
                        timestamp: e.timestamp_ms,
                    })
                    .collect(),
                metadata: Some(v2::Metadata {
                    r#type: meta.map_or(MetricType::Unknown, |m| m.kind) as i32,
                    help_ref: symbols.get(meta.map_or("", |m| m.help.as_str())),
                    unit_ref: symbols.get(meta.map_or("", |m| m.unit.as_str())),
                }),
                created_timestamp: 0,
            }
        })
        .collect();
    v2::Request {
        symbols: symbols.table,
        timeseries,
    }
    .encode_to_vec()
}

fn histogram_v2(h: &v1::Histogram) -> v2::Histogram {
    // The two messages share field numbers and meaning; re-decode rather than
    // copy field by field so a field added to one is never silently lost.
    v2::Histogram::decode(h.encode_to_vec().as_slice()).unwrap_or_default()
}

/// The remote-write 2.0 symbol table: `symbols[0]` is always "".
struct Symbols {
    table: Vec<String>,
    index: HashMap<String, u32>,
}

impl Default for Symbols {
    fn default() -> Self {
        Self {
            table: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }
}

impl Symbols {
    fn get(&mut self, text: &str) -> u32 {
        if let Some(&i) = self.index.get(text) {
            return i;
        }
        let i = self.table.len() as u32;
        self.table.push(text.to_string());
        self.index.insert(text.to_string(), i);
        i
    }

    fn labels(&mut self, labels: &Labels) -> Vec<u32> {
        labels
            .iter()
            .flat_map(|(n, v)| [self.get(n), self.get(v)])
            .collect()
    }
}

/// Snappy block format, as remote-write requires.
pub fn snappy(body: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(body)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::metrics::{Exemplar, Sample};

    fn series() -> Vec<Series> {
        vec![
            Series {
                labels: Labels::from_pairs([
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("code", "200"),
                ]),
                samples: vec![
                    Sample {
                        value: 12.5,
                        timestamp_ms: 1_700_000_000_000,
                    },
                    Sample {
                        value: 13.0,
                        timestamp_ms: 1_700_000_015_000,
                    },
                ],
                exemplars: vec![Exemplar {
                    labels: Labels::from_pairs([("trace_id", "abc")]),
                    value: 0.3,
                    timestamp_ms: 1_700_000_000_001,
                }],
                histograms: vec![v1::Histogram {
                    sum: 3.5,
                    schema: 2,
                    timestamp: 1_700_000_000_000,
                    ..Default::default()
                }],
            },
            Series::sample(
                Labels::from_pairs([("__name__", "up"), ("job", "api")]),
                1.0,
                -5,
            ),
        ]
    }

    #[test]
    fn v1_matches_the_prost_encoding_of_the_same_request() {
        let metadata = vec![Metadata {
            family: "http_requests".into(),
            kind: MetricType::Counter,
            help: "Requests.".into(),
            unit: String::new(),
        }];
        let ours = write_request_v1(&series(), &metadata);
        let decoded = v1::WriteRequest::decode(ours.as_slice()).unwrap();
        assert_eq!(decoded.timeseries.len(), 2);
        let first = &decoded.timeseries[0];
        let names: Vec<_> = first
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("__name__", "http_requests_total"),
                ("code", "200"),
                ("job", "api")
            ]
        );
        assert_eq!(first.samples[1].value, 13.0);
        assert_eq!(first.samples[1].timestamp, 1_700_000_015_000);
        assert_eq!(first.exemplars[0].labels[0].value, "abc");
        assert_eq!(first.histograms[0].schema, 2);
        assert_eq!(decoded.timeseries[1].samples[0].timestamp, -5);
        assert_eq!(decoded.metadata[0].metric_family_name, "http_requests");
        assert_eq!(decoded.metadata[0].r#type, 1);
        // And byte for byte what prost writes for the decoded message.
        assert_eq!(decoded.encode_to_vec(), ours);
    }

    #[test]
    fn v2_interns_symbols_and_inlines_metadata() {
        let metadata = HashMap::from([(
            "http_requests".to_string(),
            Metadata {
                family: "http_requests".into(),
                kind: MetricType::Counter,
                help: "Requests.".into(),
                unit: String::new(),
            },
        )]);
        let body = write_request_v2(&series(), &metadata);
        let request = v2::Request::decode(body.as_slice()).unwrap();
        assert_eq!(request.symbols[0], "");
        let ts = &request.timeseries[0];
        let label = |i: usize| request.symbols[ts.labels_refs[i] as usize].as_str();
        assert_eq!((label(0), label(1)), ("__name__", "http_requests_total"));
        let meta = ts.metadata.unwrap();
        assert_eq!(meta.r#type, 1);
        assert_eq!(request.symbols[meta.help_ref as usize], "Requests.");
        assert_eq!(request.symbols[meta.unit_ref as usize], "");
        // "job" and "api" appear once in the table though used by both series.
        assert_eq!(request.symbols.iter().filter(|s| *s == "job").count(), 1);
        assert_eq!(ts.histograms[0].schema, 2);
    }

    #[test]
    fn snappy_round_trips() {
        let body = write_request_v1(&series(), &[]);
        let compressed = snappy(&body);
        assert_eq!(
            snap::raw::Decoder::new()
                .decompress_vec(&compressed)
                .unwrap(),
            body
        );
    }
}
