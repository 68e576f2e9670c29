//! The one seam processors reach every signal's data through.
//!
//! Redaction, Kubernetes attributes and tenant limits work on traces, metrics,
//! logs and profiles alike. Each signal says here, once, where its fields are:
//!
//! - [`Fields::visit_fields`] walks every attribute-like pair (resource, scope,
//!   span, event and link attributes; series and exemplar labels; stream labels
//!   and structured metadata) and every free-text field (span, event and link
//!   names, status messages, log lines) and lets a [`FieldVisitor`] replace
//!   values. Before walking a region the visitor gets its raw bytes
//!   ([`FieldVisitor::may_change`]); a region it rules out is not walked, not
//!   decoded and not copied, so a clean batch costs one scan of its bytes.
//! - [`Fields::retain_groups`] visits each *group*: the records that share
//!   identifying attributes (a resource's spans, a series, a stream, a
//!   profile). A [`Group`] reads and sets those attributes, in the signal's own
//!   naming ([`Naming`]), and tells how many records and bytes it holds.
//! - [`Fields::partition`] cuts a batch into one batch per key of its groups.

/// How a signal names the attributes processors add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// OpenTelemetry semantic conventions on resource attributes
    /// (`k8s.namespace.name`, `k8s.pod.name`, …): traces.
    Otel,
    /// Prometheus/Loki-style labels (`namespace`, `pod`, `container`, …):
    /// metrics, logs and profiles.
    Labels,
}

/// What walks a batch's fields and may replace their values.
pub trait FieldVisitor {
    /// A cheap look at raw bytes holding many fields (an encoded resource's
    /// spans, a label set, a log line): `false` promises that no field inside
    /// would be changed, so the region is skipped whole.
    fn may_change(&self, bytes: &[u8]) -> bool;

    /// [`Self::may_change`] over many small regions at once (the lines of a
    /// stream): `false` promises that none of them would change. Looking at
    /// them together saves the per-call cost that dominates on short lines.
    fn may_change_any(&self, regions: &mut dyn Iterator<Item = &[u8]>) -> bool {
        for region in regions {
            if self.may_change(region) {
                return true;
            }
        }
        false
    }

    /// An attribute, label or structured-metadata value under `key`;
    /// `Some` replaces the value (the key is kept).
    fn pair(&mut self, key: &str, value: &str) -> Option<String>;

    /// Free text: a log line, a span, event or link name, a status message;
    /// `Some` replaces it.
    fn text(&mut self, text: &str) -> Option<String>;

    /// The lines of one log stream follow, in order; `stream` names the
    /// stream from one batch to the next. A visitor that carries something
    /// from a line to the next (a private key logged a line at a time)
    /// answers `true` when it must see this stream's lines whatever
    /// [`Self::may_change_any`] says of them.
    fn begin_lines(&mut self, _stream: u64) -> bool {
        false
    }

    /// A line of the stream begun last; `Some` replaces it. By default, the
    /// line as [`Self::text`] where [`Self::may_change`] allows (a line that
    /// is not UTF-8 is left alone).
    fn line(&mut self, line: &[u8]) -> Option<String> {
        if !self.may_change(line) {
            return None;
        }
        std::str::from_utf8(line)
            .ok()
            .and_then(|text| self.text(text))
    }

    /// The stream begun last has no more lines in this batch.
    fn end_lines(&mut self) {}
}

/// One group of records sharing identifying attributes.
pub trait Group {
    /// The value of attribute (or label) `key`, if it is a string.
    fn get(&self, key: &str) -> Option<&str>;

    /// Every string attribute or label.
    fn for_each(&self, f: &mut dyn FnMut(&str, &str));

    /// Sets each `(key, value)`, replacing what is there; an empty value
    /// removes the key. Labels are rebuilt once for the whole call.
    fn set(&mut self, pairs: &[(&str, &str)]);

    /// How many string attributes or labels the group has, and the longest
    /// value's length in bytes.
    fn shape(&self) -> (usize, usize) {
        let (mut count, mut longest) = (0, 0);
        self.for_each(&mut |_, value| {
            count += 1;
            longest = longest.max(value.len());
        });
        (count, longest)
    }

    /// Records in the group (spans, samples, log entries, profiles).
    fn items(&self) -> usize;

    /// Encoded bytes of the group, as the signal's `encoded_len` counts them.
    fn bytes(&self) -> usize;

    /// A 64-bit hash of the group's string attributes or labels: what makes
    /// a series or a stream itself, for counting the active ones.
    fn identity(&self) -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        self.for_each(&mut |key, value| {
            hasher.update(key.as_bytes());
            hasher.update(&[0xff]);
            hasher.update(value.as_bytes());
            hasher.update(&[0xfe]);
        });
        hasher.digest()
    }
}

/// The processors' view of a signal's data.
pub trait Fields: super::SignalData {
    const NAMING: Naming;

    /// Walks every field, replacing what `visitor` asks to replace.
    fn visit_fields(&mut self, visitor: &mut dyn FieldVisitor);

    /// Calls `keep` on every group; a group it returns `false` for is removed.
    fn retain_groups(&mut self, keep: &mut dyn FnMut(&mut dyn Group) -> bool);

    /// Cuts the batch into one batch per distinct key `key` gives a group,
    /// in order of first appearance; groups keep their order within a batch.
    fn partition(self, key: &mut dyn FnMut(&mut dyn Group) -> u64) -> Vec<(u64, Self)>;
}

/// Walks a label set's pairs through `visitor`; `Some` with the changed set
/// when any value was replaced.
pub(crate) fn visit_labels(
    labels: &super::Labels,
    visitor: &mut dyn FieldVisitor,
) -> Option<super::Labels> {
    if labels.is_empty() || !visitor.may_change(labels.as_bytes()) {
        return None;
    }
    let mut changed: Option<super::LabelsBuilder> = None;
    for (name, value) in labels.iter() {
        if let Some(new) = visitor.pair(name, value) {
            changed
                .get_or_insert_with(|| labels.to_builder())
                .set(name, &new);
        }
    }
    changed.map(|mut builder| builder.labels())
}

/// Groups `items` into batches by `key`, in order of first appearance.
pub(crate) fn partition_vec<I>(
    items: Vec<I>,
    mut key: impl FnMut(&mut I) -> u64,
) -> Vec<(u64, Vec<I>)> {
    let mut out: Vec<(u64, Vec<I>)> = Vec::new();
    for mut item in items {
        let k = key(&mut item);
        match out.iter_mut().find(|(existing, _)| *existing == k) {
            Some((_, group)) => group.push(item),
            None => out.push((k, vec![item])),
        }
    }
    out
}

/// A group whose identity is a label set (a series, a stream, a profile).
pub(crate) struct LabelsGroup<'a> {
    pub labels: &'a mut super::Labels,
    pub items: usize,
    pub bytes: usize,
}

impl Group for LabelsGroup<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.labels.get(key)
    }

    fn for_each(&self, f: &mut dyn FnMut(&str, &str)) {
        for (name, value) in self.labels.iter() {
            f(name, value);
        }
    }

    fn set(&mut self, pairs: &[(&str, &str)]) {
        if pairs
            .iter()
            .all(|(k, v)| self.labels.get(k).unwrap_or("") == *v)
        {
            return;
        }
        let mut builder = self.labels.to_builder();
        for (key, value) in pairs {
            builder.set(key, value);
        }
        *self.labels = builder.labels();
    }

    fn shape(&self) -> (usize, usize) {
        self.labels.shape()
    }

    fn items(&self) -> usize {
        self.items
    }

    fn bytes(&self) -> usize {
        self.bytes
    }

    fn identity(&self) -> u64 {
        self.labels.hash64()
    }
}
