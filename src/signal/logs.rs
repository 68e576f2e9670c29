//! Logs as Loki streams: a label set and its entries (timestamp, line,
//! structured metadata). This is what Loki's push API carries, so tailing →
//! Loki converts nothing.

use bytes::Bytes;

use super::fields::{self, FieldVisitor, Fields, Group, LabelsGroup, Naming};
use super::{Labels, Signal, SignalData};

/// A batch of streams.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Logs {
    pub streams: Vec<Stream>,
}

/// One stream: its labels and its entries, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stream {
    pub labels: Labels,
    pub entries: Vec<Entry>,
}

/// One log line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entry {
    /// Nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
    /// The line, valid UTF-8 (receivers replace invalid bytes, as Loki
    /// requires a protobuf `string`).
    pub line: Bytes,
    /// Loki's structured metadata: pairs that are not stream labels.
    pub metadata: Vec<(String, String)>,
}

impl Entry {
    pub fn new(timestamp_ns: i64, line: impl Into<Bytes>) -> Self {
        Self {
            timestamp_ns,
            line: line.into(),
            metadata: Vec::new(),
        }
    }

    /// The line as text (it is UTF-8 by construction; a violation shows as empty).
    pub fn line_str(&self) -> &str {
        std::str::from_utf8(&self.line).unwrap_or("")
    }

    fn wire_size(&self) -> usize {
        self.line.len()
            + 16
            + self
                .metadata
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>()
    }
}

impl Stream {
    pub fn new(labels: Labels) -> Self {
        Self {
            labels,
            entries: Vec::new(),
        }
    }

    fn wire_size(&self) -> usize {
        self.labels.heap_size() + 8 + self.entries.iter().map(Entry::wire_size).sum::<usize>()
    }
}

impl Logs {
    pub fn new(streams: Vec<Stream>) -> Self {
        Self { streams }
    }
}

impl SignalData for Logs {
    const SIGNAL: Signal = Signal::Logs;

    /// Log entries.
    fn item_count(&self) -> usize {
        self.streams.iter().map(|s| s.entries.len()).sum()
    }

    /// Roughly the bytes of a Loki push request before compression.
    fn encoded_len(&self) -> usize {
        self.streams.iter().map(Stream::wire_size).sum()
    }

    fn merge(&mut self, other: Self) {
        self.streams.extend(other.streams);
    }

    fn split_to(&mut self, n: usize) -> Self {
        let mut taken = Vec::new();
        let mut remaining = n;
        let mut whole = 0;
        for stream in &self.streams {
            if stream.entries.len() > remaining {
                break;
            }
            remaining -= stream.entries.len();
            whole += 1;
        }
        taken.extend(self.streams.drain(..whole));
        if remaining > 0
            && let Some(first) = self.streams.first_mut()
        {
            // The oldest entries go first, so per-stream order holds.
            let head: Vec<Entry> = first.entries.drain(..remaining).collect();
            taken.push(Stream {
                labels: first.labels.clone(),
                entries: head,
            });
        }
        Logs { streams: taken }
    }
}

impl Fields for Logs {
    const NAMING: Naming = Naming::Labels;

    fn visit_fields(&mut self, visitor: &mut dyn FieldVisitor) {
        for stream in &mut self.streams {
            if let Some(labels) = fields::visit_labels(&stream.labels, visitor) {
                stream.labels = labels;
            }
            let carried = visitor.begin_lines(xxhash_rust::xxh3::xxh3_64(stream.labels.as_bytes()));
            let lines_may_change =
                carried || visitor.may_change_any(&mut stream.entries.iter().map(|e| &e.line[..]));
            for entry in &mut stream.entries {
                if lines_may_change && let Some(line) = visitor.line(&entry.line) {
                    entry.line = Bytes::from(line);
                }
                for (key, value) in &mut entry.metadata {
                    if let Some(new) = visitor.pair(key, value) {
                        *value = new;
                    }
                }
            }
            visitor.end_lines();
        }
    }

    fn retain_groups(&mut self, keep: &mut dyn FnMut(&mut dyn Group) -> bool) {
        self.streams.retain_mut(|stream| {
            let bytes = stream.wire_size();
            keep(&mut LabelsGroup {
                labels: &mut stream.labels,
                items: stream.entries.len(),
                bytes,
            })
        });
    }

    fn partition(self, key: &mut dyn FnMut(&mut dyn Group) -> u64) -> Vec<(u64, Self)> {
        fields::partition_vec(self.streams, |stream| {
            let bytes = stream.wire_size();
            key(&mut LabelsGroup {
                labels: &mut stream.labels,
                items: stream.entries.len(),
                bytes,
            })
        })
        .into_iter()
        .map(|(k, streams)| (k, Logs { streams }))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(name: &str, n: usize) -> Stream {
        Stream {
            labels: Labels::from_pairs([("app", name)]),
            entries: (0..n)
                .map(|i| Entry::new(i as i64, format!("line {i}")))
                .collect(),
        }
    }

    #[test]
    fn split_keeps_order_and_every_entry() {
        let mut logs = Logs::new(vec![stream("a", 3), stream("b", 4)]);
        assert_eq!(logs.item_count(), 7);
        let head = logs.split_to(5);
        assert_eq!(head.item_count(), 5);
        assert_eq!(logs.item_count(), 2);
        assert_eq!(
            head.streams[1]
                .entries
                .iter()
                .map(|e| e.timestamp_ns)
                .collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(logs.streams[0].entries[0].timestamp_ns, 2);
        assert_eq!(logs.streams[0].labels, head.streams[1].labels);
    }

    #[test]
    fn sizes_add_up_across_merge() {
        let (a, b) = (
            Logs::new(vec![stream("a", 2)]),
            Logs::new(vec![stream("b", 3)]),
        );
        let (la, lb) = (a.encoded_len(), b.encoded_len());
        let mut m = a;
        m.merge(b);
        assert_eq!(m.encoded_len(), la + lb);
        assert_eq!(m.streams[1].entries[2].line_str(), "line 2");
    }
}
