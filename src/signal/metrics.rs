//! Metrics as Prometheus series: a label set with samples, native histograms
//! and exemplars, plus metric-family metadata. This is what remote-write
//! carries, so scrape → remote-write converts nothing.

use ferro_proto::prometheus::Histogram;

use super::fields::{self, FieldVisitor, Fields, Group, LabelsGroup, Naming};
use super::{Labels, Signal, SignalData};

/// The NaN bit pattern Prometheus writes to mark a series stale.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Prometheus' staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `value` is the staleness marker (not just any NaN).
pub fn is_stale_nan(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// A batch of series and the metadata of their families.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub series: Vec<Series>,
    pub metadata: Vec<Metadata>,
}

/// One series: its labels (including `__name__`) and what was observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub labels: Labels,
    /// Oldest first.
    pub samples: Vec<Sample>,
    /// Native histogram samples, oldest first.
    pub histograms: Vec<Histogram>,
    pub exemplars: Vec<Exemplar>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: i64,
}

/// The kind of a metric family, as remote-write 1.0 numbers it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MetricType {
    #[default]
    Unknown = 0,
    Counter = 1,
    Gauge = 2,
    Histogram = 3,
    GaugeHistogram = 4,
    Summary = 5,
    Info = 6,
    StateSet = 7,
}

/// `# HELP`, `# TYPE` and `# UNIT` of a metric family.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Metadata {
    pub family: String,
    pub kind: MetricType,
    pub help: String,
    pub unit: String,
}

impl Series {
    pub fn new(labels: Labels) -> Self {
        Self {
            labels,
            ..Default::default()
        }
    }

    /// A series with one float sample.
    pub fn sample(labels: Labels, value: f64, timestamp_ms: i64) -> Self {
        Self {
            labels,
            samples: vec![Sample {
                value,
                timestamp_ms,
            }],
            ..Default::default()
        }
    }

    fn points(&self) -> usize {
        self.samples.len() + self.histograms.len()
    }

    /// Bytes this series takes in a remote-write 1.0 request, roughly: labels
    /// with their framing, 20 bytes a sample, histograms and exemplars by size.
    fn wire_size(&self) -> usize {
        let labels = self.labels.heap_size() + 6 * self.labels.len();
        let histograms: usize = self
            .histograms
            .iter()
            .map(prost::Message::encoded_len)
            .sum();
        let exemplars: usize = self
            .exemplars
            .iter()
            .map(|e| e.labels.heap_size() + 24)
            .sum();
        labels + 20 * self.samples.len() + histograms + exemplars + 4
    }
}

impl Metrics {
    pub fn new(series: Vec<Series>) -> Self {
        Self {
            series,
            metadata: Vec::new(),
        }
    }
}

impl SignalData for Metrics {
    const SIGNAL: Signal = Signal::Metrics;

    /// Samples and histogram samples.
    fn item_count(&self) -> usize {
        self.series.iter().map(Series::points).sum()
    }

    fn encoded_len(&self) -> usize {
        let metadata: usize = self
            .metadata
            .iter()
            .map(|m| m.family.len() + m.help.len() + m.unit.len() + 8)
            .sum();
        self.series.iter().map(Series::wire_size).sum::<usize>() + metadata
    }

    fn merge(&mut self, other: Self) {
        self.series.extend(other.series);
        self.metadata.extend(other.metadata);
    }

    fn split_to(&mut self, n: usize) -> Self {
        let mut taken = Vec::new();
        let mut remaining = n;
        let mut whole = 0;
        for series in &self.series {
            if series.points() > remaining {
                break;
            }
            remaining -= series.points();
            whole += 1;
        }
        taken.extend(self.series.drain(..whole));
        if remaining > 0
            && let Some(first) = self.series.first_mut()
        {
            // Cut inside one series: the first samples (oldest) go first, so
            // per-series order holds across the two halves.
            let mut head = Series::new(first.labels.clone());
            let from_samples = remaining.min(first.samples.len());
            head.samples = first.samples.drain(..from_samples).collect();
            let from_histograms = (remaining - from_samples).min(first.histograms.len());
            head.histograms = first.histograms.drain(..from_histograms).collect();
            taken.push(head);
        }
        // Metadata rides with the first part.
        Metrics {
            series: taken,
            metadata: std::mem::take(&mut self.metadata),
        }
    }
}

impl Fields for Metrics {
    const NAMING: Naming = Naming::Labels;

    fn visit_fields(&mut self, visitor: &mut dyn FieldVisitor) {
        for series in &mut self.series {
            if let Some(labels) = fields::visit_labels(&series.labels, visitor) {
                series.labels = labels;
            }
            for exemplar in &mut series.exemplars {
                if let Some(labels) = fields::visit_labels(&exemplar.labels, visitor) {
                    exemplar.labels = labels;
                }
            }
        }
        for metadata in &mut self.metadata {
            if visitor.may_change(metadata.help.as_bytes())
                && let Some(help) = visitor.text(&metadata.help)
            {
                metadata.help = help;
            }
        }
    }

    fn retain_groups(&mut self, keep: &mut dyn FnMut(&mut dyn Group) -> bool) {
        self.series.retain_mut(|series| {
            let (items, bytes) = (series.points(), series.wire_size());
            keep(&mut LabelsGroup {
                labels: &mut series.labels,
                items,
                bytes,
            })
        });
    }

    /// Every part gets all the metadata: it is small, and each tenant's
    /// backend wants the metadata of its own families.
    fn partition(self, key: &mut dyn FnMut(&mut dyn Group) -> u64) -> Vec<(u64, Self)> {
        let metadata = self.metadata;
        fields::partition_vec(self.series, |series| {
            let (items, bytes) = (series.points(), series.wire_size());
            key(&mut LabelsGroup {
                labels: &mut series.labels,
                items,
                bytes,
            })
        })
        .into_iter()
        .map(|(k, series)| {
            (
                k,
                Metrics {
                    series,
                    metadata: metadata.clone(),
                },
            )
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, points: usize) -> Series {
        Series {
            labels: Labels::from_pairs([("__name__", name)]),
            samples: (0..points)
                .map(|i| Sample {
                    value: i as f64,
                    timestamp_ms: i as i64,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn staleness_marker_is_not_any_nan() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
    }

    #[test]
    fn split_keeps_every_sample_in_order() {
        let mut m = Metrics::new(vec![series("a", 3), series("b", 4), series("c", 2)]);
        assert_eq!(m.item_count(), 9);
        let head = m.split_to(5);
        assert_eq!(head.item_count(), 5);
        assert_eq!(m.item_count(), 4);
        assert_eq!(
            head.series[1]
                .samples
                .iter()
                .map(|s| s.timestamp_ms)
                .collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(
            m.series[0]
                .samples
                .iter()
                .map(|s| s.timestamp_ms)
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(m.series[0].labels, head.series[1].labels);
    }

    #[test]
    fn sizes_add_up_across_merge() {
        let a = Metrics::new(vec![series("a", 3)]);
        let b = Metrics::new(vec![series("b", 4)]);
        let (la, lb) = (a.encoded_len(), b.encoded_len());
        let mut m = a;
        m.merge(b);
        assert_eq!(m.encoded_len(), la + lb);
    }
}
