//! From journal entries to Loki streams: which fields are read, the labels
//! and structured metadata they become, and the batch being filled.

use bytes::Bytes;
use std::collections::HashMap;

use super::config::{JournaldConfig, PRIORITIES};
use super::cursor::Cursor;
use super::export::Fields;
use crate::receivers::log_batch::{LogBatch, Taken};
use crate::signal::Labels;
use crate::signal::labels::LabelsBuilder;
use crate::signal::logs::Entry;

/// Entries in one batch.
pub const MAX_BATCH_ENTRIES: usize = 1000;
/// Bytes (as Loki would see them) in one batch.
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// The longest label value kept (Loki's default `max_label_value_length`).
const MAX_LABEL_VALUE: usize = 2048;
/// The longest structured metadata value kept.
const MAX_METADATA_VALUE: usize = 16 * 1024;
/// Label sets remembered by their fields' values; past this many (units
/// named per session or per run), the memory starts over.
const MAX_CACHED_LABEL_SETS: usize = 4096;

const CURSOR: usize = 0;
const REALTIME: usize = 1;
const MESSAGE: usize = 2;
const PRIORITY: usize = 3;

/// What the reader counted since it was last asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub read: u64,
    pub no_message: u64,
    pub truncated: u64,
    pub invalid_utf8: u64,
}

/// Turns entries into streams, and holds the batch being filled.
pub struct Converter {
    /// The journal fields read, in slot order, with the cap on each value.
    fields: Vec<(String, usize)>,
    /// Label name and slot of each `field_labels` entry.
    label_slots: Vec<(String, usize)>,
    /// Name and slot of each `structured_metadata` entry.
    metadata_slots: Vec<(String, usize)>,
    /// `job` and the static labels.
    base: Vec<(String, String)>,
    label_sets: HashMap<Vec<u8>, Labels>,
    key: Vec<u8>,
    builder: LabelsBuilder,
    pub pending: Pending,
    pub tally: Tally,
}

impl Converter {
    pub fn new(config: &JournaldConfig) -> Self {
        let mut fields: Vec<(String, usize)> = vec![
            ("__CURSOR".into(), 512),
            ("__REALTIME_TIMESTAMP".into(), 32),
            ("MESSAGE".into(), config.max_line_size),
            ("PRIORITY".into(), 8),
        ];
        let mut slot_of =
            |field: &str, cap: usize| match fields.iter().position(|(f, _)| f == field) {
                Some(slot) => {
                    fields[slot].1 = fields[slot].1.max(cap);
                    slot
                }
                None => {
                    fields.push((field.to_string(), cap));
                    fields.len() - 1
                }
            };
        let label_slots = config
            .field_labels
            .iter()
            .map(|(label, field)| (label.clone(), slot_of(field, MAX_LABEL_VALUE)))
            .collect();
        let metadata_slots = config
            .structured_metadata
            .iter()
            .map(|(name, field)| (name.clone(), slot_of(field, MAX_METADATA_VALUE)))
            .collect();
        let mut base = vec![("job".to_string(), config.job.clone())];
        base.extend(config.labels.iter().map(|(n, v)| (n.clone(), v.clone())));
        Self {
            fields,
            label_slots,
            metadata_slots,
            base,
            label_sets: HashMap::new(),
            key: Vec::new(),
            builder: LabelsBuilder::new(),
            pending: Pending::default(),
            tally: Tally::default(),
        }
    }

    /// The fields to read, with the cap on each value (for the export reader).
    pub fn wanted(&self) -> Vec<(&str, usize)> {
        self.fields
            .iter()
            .map(|(f, cap)| (f.as_str(), *cap))
            .collect()
    }

    /// The fields journalctl is asked to print (`--output-fields`): the
    /// cursor and timestamps come anyway.
    pub fn output_fields(&self) -> String {
        self.fields
            .iter()
            .map(|(f, _)| f.as_str())
            .filter(|f| !f.starts_with("__"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One entry read: into the batch, or counted as skipped. Its cursor
    /// becomes the batch's either way.
    pub fn push(&mut self, fields: &Fields, now_ns: i64) {
        self.tally.read += 1;
        if let Some(cursor) = fields
            .get(CURSOR)
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(Cursor::parse)
        {
            self.pending.cursor = Some(cursor);
        }
        let Some(message) = fields.get(MESSAGE) else {
            self.tally.no_message += 1;
            return;
        };
        let timestamp_ns = fields
            .get(REALTIME)
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|us| us.checked_mul(1000))
            .unwrap_or(now_ns);
        let line = match std::str::from_utf8(message) {
            Ok(text) => Bytes::copy_from_slice(text.as_bytes()),
            Err(_) => {
                self.tally.invalid_utf8 += 1;
                Bytes::from(String::from_utf8_lossy(message).into_owned())
            }
        };
        let truncated = fields.was_cut(MESSAGE);
        let mut metadata = Vec::with_capacity(self.metadata_slots.len() + usize::from(truncated));
        for (name, slot) in &self.metadata_slots {
            if let Some(value) = fields.get(*slot).filter(|v| !v.is_empty()) {
                metadata.push((name.clone(), String::from_utf8_lossy(value).into_owned()));
            }
        }
        if truncated {
            self.tally.truncated += 1;
            metadata.push(("truncated".to_string(), "true".to_string()));
        }
        let labels = self.labels(fields);
        self.pending.push(
            labels,
            Entry {
                timestamp_ns,
                line,
                metadata,
            },
        );
    }

    /// The entry's label set, built once per distinct set of values.
    fn labels(&mut self, fields: &Fields) -> Labels {
        let level = fields
            .get(PRIORITY)
            .filter(|p| p.len() == 1 && (b'0'..b'8').contains(&p[0]))
            .map(|p| usize::from(p[0] - b'0'));
        self.key.clear();
        self.key.push(level.map_or(u8::MAX, |l| l as u8));
        // Each value length-prefixed: values are bytes, any separator
        // could occur in one.
        for (_, slot) in &self.label_slots {
            let value = fields.get(*slot).map(label_value);
            let len = value.map_or(u32::MAX, |v| v.len() as u32);
            self.key.extend_from_slice(&len.to_le_bytes());
            self.key.extend_from_slice(value.unwrap_or_default());
        }
        if let Some(labels) = self.label_sets.get(&self.key) {
            return labels.clone();
        }
        self.builder.clear();
        for (name, value) in &self.base {
            self.builder.set(name, value);
        }
        for (name, slot) in &self.label_slots {
            if let Some(value) = fields.get(*slot) {
                self.builder
                    .set(name, &String::from_utf8_lossy(label_value(value)));
            }
        }
        if let Some(level) = level {
            self.builder.set("level", PRIORITIES[level]);
        }
        let labels = self.builder.labels();
        if self.label_sets.len() >= MAX_CACHED_LABEL_SETS {
            self.label_sets.clear();
        }
        self.label_sets.insert(self.key.clone(), labels.clone());
        labels
    }
}

/// A label's value, cut to what Loki takes: a field read for structured
/// metadata too (or `MESSAGE`) is read with a larger cap.
fn label_value(value: &[u8]) -> &[u8] {
    &value[..value.len().min(MAX_LABEL_VALUE)]
}

/// The batch being filled, and the cursor of the last entry read into it
/// (or skipped after it).
#[derive(Default)]
pub struct Pending {
    batch: LogBatch,
    pub cursor: Option<Cursor>,
}

impl Pending {
    fn push(&mut self, labels: Labels, entry: Entry) {
        self.batch.push(labels, entry);
    }

    pub fn is_full(&self) -> bool {
        self.batch.entries >= MAX_BATCH_ENTRIES || self.batch.bytes >= MAX_BATCH_BYTES
    }

    /// The entries gathered, if any (the cursor stays to be taken with them).
    pub fn take(&mut self) -> Option<Taken> {
        self.batch.take()
    }
}
