//! Push request bodies: streams grouped by label set with their entries in
//! timestamp order, written as `logproto.PushRequest` (straight from ferro's
//! streams, no intermediate prost structs; then snappy block compression) or
//! as Loki's JSON push body.
//!
//! Push API: <https://grafana.com/docs/loki/latest/reference/loki-http-api/#ingest-logs>.

use bytes::Bytes;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use std::collections::HashMap;
use std::io::Write;

use super::config::Encoding;
use crate::signal::Labels;
use crate::signal::logs::{Entry, Stream};
use crate::signal::names::is_label_name;

/// Merges the streams that share a label set, in arrival order, and sorts
/// each stream's entries by timestamp. The sort is stable: entries with equal
/// timestamps keep their order, which Loki keeps too.
pub fn group(streams: Vec<Stream>) -> Vec<Stream> {
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(streams.len());
    let mut grouped: Vec<Stream> = Vec::with_capacity(streams.len());
    for stream in streams {
        match index.get(&stream.labels) {
            Some(&i) => grouped[i].entries.extend(stream.entries),
            None => {
                index.insert(stream.labels.clone(), grouped.len());
                grouped.push(stream);
            }
        }
    }
    for stream in &mut grouped {
        if !stream.entries.is_sorted_by_key(|e| e.timestamp_ns) {
            stream.entries.sort_by_key(|e| e.timestamp_ns);
        }
    }
    grouped
}

/// Why Loki would refuse a stream for its labels alone, in Loki's words for
/// the reason; such streams are dropped here rather than failing the request.
pub fn check_labels(labels: &Labels) -> Result<(), &'static str> {
    if labels.is_empty() {
        return Err("missing_labels");
    }
    if labels.iter().any(|(name, _)| !is_label_name(name)) {
        return Err("invalid_labels");
    }
    Ok(())
}

/// Writes a label set as Loki parses it: `{a="1", b="2"}`, names sorted,
/// values escaped as Prometheus does (`\\`, `\"`, `\n`).
pub fn render_labels(labels: &Labels, out: &mut String) {
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        let mut rest = value;
        while let Some(at) = rest.find(['\\', '"', '\n']) {
            out.push_str(&rest[..at]);
            out.push_str(match rest.as_bytes()[at] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            });
            rest = &rest[at + 1..];
        }
        out.push_str(rest);
        out.push('"');
    }
    out.push('}');
}

/// The request body for `streams` (already grouped). `scratch` is reused
/// between requests for the uncompressed protobuf.
pub fn body(
    streams: &[Stream],
    encoding: Encoding,
    scratch: &mut Vec<u8>,
) -> Result<Bytes, String> {
    match encoding {
        Encoding::Protobuf => {
            scratch.clear();
            push_request(streams, scratch);
            let compressed = snap::raw::Encoder::new()
                .compress_vec(scratch)
                .map_err(|e| format!("snappy: {e}"))?;
            Ok(Bytes::from(compressed))
        }
        Encoding::Json => {
            let mut out = Vec::with_capacity(json_size_hint(streams));
            push_json(streams, &mut out);
            Ok(Bytes::from(out))
        }
    }
}

fn len_field(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A proto3 string field; empty strings are left out, as prost does.
fn str_field_len(tag: u32, text: &[u8]) -> usize {
    if text.is_empty() {
        0
    } else {
        len_field(tag, text.len())
    }
}

fn put_len_prefix(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn put_str(tag: u32, text: &[u8], buf: &mut Vec<u8>) {
    if !text.is_empty() {
        put_len_prefix(tag, text.len(), buf);
        buf.extend_from_slice(text);
    }
}

/// `google.protobuf.Timestamp` parts of a nanosecond timestamp.
fn seconds_nanos(timestamp_ns: i64) -> (i64, i32) {
    (
        timestamp_ns.div_euclid(1_000_000_000),
        timestamp_ns.rem_euclid(1_000_000_000) as i32,
    )
}

fn timestamp_len(timestamp_ns: i64) -> usize {
    let (seconds, nanos) = seconds_nanos(timestamp_ns);
    let mut len = 0;
    if seconds != 0 {
        len += 1 + encoded_len_varint(seconds as u64);
    }
    if nanos != 0 {
        len += 1 + encoded_len_varint(nanos as u64);
    }
    len
}

fn pair_len(name: &str, value: &str) -> usize {
    str_field_len(1, name.as_bytes()) + str_field_len(2, value.as_bytes())
}

/// `EntryAdapter` body: timestamp = 1, line = 2, structuredMetadata = 3.
fn entry_len(entry: &Entry) -> usize {
    // The timestamp is always written, even when zero: Loki decodes it as a
    // non-nullable Go time, and a missing one would mean year 1, not 1970.
    len_field(1, timestamp_len(entry.timestamp_ns))
        + str_field_len(2, &entry.line)
        + entry
            .metadata
            .iter()
            .map(|(n, v)| len_field(3, pair_len(n, v)))
            .sum::<usize>()
}

fn put_entry(entry: &Entry, buf: &mut Vec<u8>) {
    put_len_prefix(2, entry_len(entry), buf);
    put_len_prefix(1, timestamp_len(entry.timestamp_ns), buf);
    let (seconds, nanos) = seconds_nanos(entry.timestamp_ns);
    if seconds != 0 {
        encode_key(1, WireType::Varint, buf);
        encode_varint(seconds as u64, buf);
    }
    if nanos != 0 {
        encode_key(2, WireType::Varint, buf);
        encode_varint(nanos as u64, buf);
    }
    // Lines are UTF-8 by the logs model's contract (receivers replace invalid
    // bytes), so they go out as they are.
    put_str(2, &entry.line, buf);
    for (name, value) in &entry.metadata {
        put_len_prefix(3, pair_len(name, value), buf);
        put_str(1, name.as_bytes(), buf);
        put_str(2, value.as_bytes(), buf);
    }
}

/// Writes `logproto.PushRequest`: streams = 1, each a `StreamAdapter` with
/// labels = 1 and entries = 2 (the optional hash = 3 is Loki's to compute).
pub fn push_request(streams: &[Stream], buf: &mut Vec<u8>) {
    let mut labels = String::new();
    for stream in streams {
        labels.clear();
        render_labels(&stream.labels, &mut labels);
        let stream_len = str_field_len(1, labels.as_bytes())
            + stream
                .entries
                .iter()
                .map(|e| len_field(2, entry_len(e)))
                .sum::<usize>();
        put_len_prefix(1, stream_len, buf);
        put_str(1, labels.as_bytes(), buf);
        for entry in &stream.entries {
            put_entry(entry, buf);
        }
    }
}

fn json_str(text: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, text).expect("a string always serializes into a Vec");
}

fn json_size_hint(streams: &[Stream]) -> usize {
    streams
        .iter()
        .map(|s| {
            s.labels.heap_size() + 32 + s.entries.iter().map(|e| e.line.len() + 32).sum::<usize>()
        })
        .sum::<usize>()
        + 16
}

/// Writes Loki's JSON push body:
/// `{"streams":[{"stream":{"a":"1"},"values":[["<ns>","<line>",{"k":"v"}]]}]}`;
/// the structured-metadata object is left out when an entry has none.
pub fn push_json(streams: &[Stream], out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"streams\":[");
    for (i, stream) in streams.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"stream\":{");
        for (j, (name, value)) in stream.labels.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            json_str(name, out);
            out.push(b':');
            json_str(value, out);
        }
        out.extend_from_slice(b"},\"values\":[");
        for (j, entry) in stream.entries.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            // Writing to a Vec cannot fail.
            let _ = write!(out, "[\"{}\",", entry.timestamp_ns);
            json_str(&String::from_utf8_lossy(&entry.line), out);
            if !entry.metadata.is_empty() {
                out.extend_from_slice(b",{");
                for (k, (name, value)) in entry.metadata.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    json_str(name, out);
                    out.push(b':');
                    json_str(value, out);
                }
                out.push(b'}');
            }
            out.push(b']');
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
}
