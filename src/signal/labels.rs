//! `Labels`: a sorted, de-duplicated set of label pairs in one allocation.
//!
//! Metrics series and log streams are identified by their labels; ferro holds
//! many of them, so a label set is one immutable buffer (each name and value
//! length-prefixed, names sorted) behind an `Arc`: one allocation per set,
//! cheap to clone and hash, and written to the wire without intermediate
//! strings.

use std::fmt;
use std::sync::Arc;

/// An immutable, sorted label set.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<[u8]>);

impl Labels {
    /// Builds a label set; later pairs win over earlier ones with the same
    /// name, and pairs with an empty value are left out (Prometheus treats an
    /// empty value as an absent label).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
        let mut builder = LabelsBuilder::default();
        for (name, value) in pairs {
            builder.set(name, value);
        }
        builder.labels()
    }

    pub fn empty() -> Labels {
        Labels(Arc::from(&[][..]))
    }

    /// The pairs in name order.
    pub fn iter(&self) -> LabelsIter<'_> {
        LabelsIter { buf: &self.0 }
    }

    /// The value of `name`. Names are compared as bytes, and only the
    /// value found is read as text.
    pub fn get(&self, name: &str) -> Option<&str> {
        let mut buf = &self.0[..];
        while !buf.is_empty() {
            let n = take_bytes(&mut buf);
            let value = take_bytes(&mut buf);
            if n == name.as_bytes() {
                return Some(as_str(value));
            }
        }
        None
    }

    /// The number of pairs, counted without reading them as text.
    pub fn len(&self) -> usize {
        self.shape().0
    }

    /// The number of pairs and the longest value's length in bytes, read
    /// without taking them as text.
    pub fn shape(&self) -> (usize, usize) {
        let mut buf = &self.0[..];
        let (mut pairs, mut longest) = (0, 0);
        while !buf.is_empty() {
            take_bytes(&mut buf);
            longest = take_bytes(&mut buf).len().max(longest);
            pairs += 1;
        }
        (pairs, longest)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A 64-bit hash of the set (xxh3), stable across runs: what staleness
    /// tracking and sharding key on.
    pub fn hash64(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&self.0)
    }

    /// The encoded buffer (length-prefixed names and values), for scans
    /// that look at a whole set at once.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Bytes this set holds on the heap.
    pub fn heap_size(&self) -> usize {
        self.0.len()
    }

    /// A builder holding these pairs, for changes.
    pub fn to_builder(&self) -> LabelsBuilder {
        let mut builder = LabelsBuilder::default();
        builder
            .pairs
            .extend(self.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        builder
    }
}

impl Default for Labels {
    fn default() -> Self {
        Labels::empty()
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Labels {
    /// Prometheus' notation: `{a="1", b="2"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, value)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

/// Iterates `(name, value)` pairs in name order.
pub struct LabelsIter<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for LabelsIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let name = take(&mut self.buf);
        let value = take(&mut self.buf);
        Some((name, value))
    }
}

/// Reads one length-prefixed string. The buffer is only ever written by
/// `LabelsBuilder::labels` from `&str`s, so it is valid UTF-8 at every boundary.
fn take<'a>(buf: &mut &'a [u8]) -> &'a str {
    as_str(take_bytes(buf))
}

/// Reads one length-prefixed string's bytes.
fn take_bytes<'a>(buf: &mut &'a [u8]) -> &'a [u8] {
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let byte = buf[0];
        *buf = &buf[1..];
        len |= usize::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
        shift += 7;
    }
    let (text, rest) = buf.split_at(len);
    *buf = rest;
    text
}

/// What `take_bytes` read, as text: from_utf8 cannot fail on what
/// `labels()` wrote; the fallback keeps a corrupted buffer from panicking.
fn as_str(text: &[u8]) -> &str {
    std::str::from_utf8(text).unwrap_or("")
}

fn put(buf: &mut Vec<u8>, text: &str) {
    let mut len = text.len();
    while len >= 0x80 {
        buf.push((len as u8) | 0x80);
        len >>= 7;
    }
    buf.push(len as u8);
    buf.extend_from_slice(text.as_bytes());
}

/// A mutable label set: what relabelling and conversions work on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelsBuilder {
    /// Unsorted until `labels()`; names unique.
    pairs: Vec<(String, String)>,
}

impl LabelsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes every pair, keeping the allocation for the next set.
    pub fn clear(&mut self) {
        self.pairs.clear();
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            self.remove(name);
            return;
        }
        match self.pairs.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => {
                v.clear();
                v.push_str(value);
            }
            None => self.pairs.push((name.to_string(), value.to_string())),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn remove(&mut self, name: &str) {
        self.pairs.retain(|(n, _)| n != name);
    }

    /// Keeps the pairs for which `keep(name, value)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.pairs.retain(|(n, v)| keep(n, v));
    }

    /// The pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The immutable, sorted set.
    pub fn labels(&mut self) -> Labels {
        self.pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let size: usize = self.pairs.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        let mut buf = Vec::with_capacity(size);
        for (name, value) in &self.pairs {
            put(&mut buf, name);
            put(&mut buf, value);
        }
        Labels(Arc::from(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_deduplicated_and_without_empty_values() {
        let labels = Labels::from_pairs([
            ("job", "node"),
            ("__name__", "up"),
            ("empty", ""),
            ("job", "api"),
        ]);
        let pairs: Vec<_> = labels.iter().collect();
        assert_eq!(pairs, vec![("__name__", "up"), ("job", "api")]);
        assert_eq!(labels.get("job"), Some("api"));
        assert_eq!(labels.get("empty"), None);
        assert_eq!(labels.to_string(), r#"{__name__="up", job="api"}"#);
    }

    #[test]
    fn equal_sets_hash_equal_whatever_the_order() {
        let a = Labels::from_pairs([("a", "1"), ("b", "2")]);
        let b = Labels::from_pairs([("b", "2"), ("a", "1")]);
        assert_eq!(a, b);
        assert_eq!(a.hash64(), b.hash64());
        assert_ne!(
            a.hash64(),
            Labels::from_pairs([("a", "1"), ("b", "3")]).hash64()
        );
    }

    #[test]
    fn long_values_and_unicode_round_trip() {
        let long = "x".repeat(100_000);
        let labels = Labels::from_pairs([("long", long.as_str()), ("ünï", "cödé ✓")]);
        assert_eq!(labels.get("long").unwrap().len(), 100_000);
        assert_eq!(labels.get("ünï"), Some("cödé ✓"));
        assert_eq!(labels.shape(), (2, 100_000));
        assert_eq!(labels.get("ün"), None, "a name's prefix is not the name");
        let mut builder = labels.to_builder();
        builder.remove("long");
        assert_eq!(builder.labels().len(), 1);
        assert_eq!(builder.labels().shape(), (1, "cödé ✓".len()));
        assert_eq!(Labels::empty().shape(), (0, 0));
    }
}
