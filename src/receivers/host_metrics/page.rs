//! One collection's output: series under node_exporter's names with their
//! families' help and type, label sets built once and reused while a series
//! lasts, and a staleness marker for each series that is gone.

use std::collections::{HashMap, HashSet};

use crate::signal::metrics::{Metadata, MetricType, Sample, Series, stale_nan};
use crate::signal::{Labels, LabelsBuilder, Metrics};

/// What lasts across collections: the label sets of live series, and the
/// families whose metadata went out.
pub struct Catalog {
    job: String,
    instance: String,
    labels: HashMap<u64, Known>,
    described: HashSet<String>,
    generation: u64,
}

struct Known {
    labels: Labels,
    /// The collection that last produced it.
    seen: u64,
}

impl Catalog {
    pub fn new(job: &str, instance: &str) -> Self {
        Self {
            job: job.to_string(),
            instance: instance.to_string(),
            labels: HashMap::new(),
            described: HashSet::new(),
            generation: 0,
        }
    }

    /// A page for one collection taken at `timestamp_ms`.
    pub fn page(&mut self, timestamp_ms: i64) -> Page<'_> {
        self.generation += 1;
        Page {
            known: self,
            metrics: Metrics::default(),
            timestamp_ms,
        }
    }

    /// Label sets held now.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.labels.len()
    }
}

/// One collection being written.
pub struct Page<'a> {
    known: &'a mut Catalog,
    metrics: Metrics,
    timestamp_ms: i64,
}

impl Page<'_> {
    /// Declares the family `name`: its help and type go out with the first
    /// collection that has it.
    pub fn family(&mut self, name: &str, kind: MetricType, help: &str) {
        if self.known.described.contains(name) {
            return;
        }
        self.known.described.insert(name.to_string());
        self.metrics.metadata.push(Metadata {
            family: name.to_string(),
            kind,
            help: help.to_string(),
            unit: String::new(),
        });
    }

    /// A sample of the series `name{labels}`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let key = key(name, labels);
        let generation = self.known.generation;
        let known = self.known.labels.entry(key).or_insert_with(|| {
            let mut builder = LabelsBuilder::new();
            builder.set("__name__", name);
            for (label, value) in labels {
                builder.set(label, value);
            }
            builder.set("job", &self.known.job);
            builder.set("instance", &self.known.instance);
            Known {
                labels: builder.labels(),
                seen: generation,
            }
        });
        known.seen = generation;
        let mut series = Series::new(known.labels.clone());
        series.samples.push(Sample {
            value,
            timestamp_ms: self.timestamp_ms,
        });
        self.metrics.series.push(series);
    }

    /// The collection's metrics, with a staleness marker for each series an
    /// earlier collection had and this one has not.
    pub fn finish(self) -> Metrics {
        let Page {
            known,
            mut metrics,
            timestamp_ms,
        } = self;
        let generation = known.generation;
        known.labels.retain(|_, k| {
            if k.seen == generation {
                return true;
            }
            let mut series = Series::new(k.labels.clone());
            series.samples.push(Sample {
                value: stale_nan(),
                timestamp_ms,
            });
            metrics.series.push(series);
            false
        });
        metrics
    }
}

/// A series' identity: its name and label pairs, hashed.
fn key(name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(name.as_bytes());
    for (label, value) in labels {
        hasher.update(&[0xff]);
        hasher.update(label.as_bytes());
        hasher.update(&[0xfe]);
        hasher.update(value.as_bytes());
    }
    hasher.digest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::metrics::is_stale_nan;

    #[test]
    fn label_sets_are_reused_and_gone_series_get_a_marker() {
        let mut known = Catalog::new("node-exporter", "host-a");
        let mut page = known.page(1000);
        page.family("node_load1", MetricType::Gauge, "1m load average.");
        page.sample("node_load1", &[], 0.5);
        page.sample("node_x", &[("device", "sda")], 1.0);
        let first = page.finish();
        assert_eq!(first.metadata.len(), 1);
        assert_eq!(
            first.series[1].labels.to_string(),
            r#"{__name__="node_x", device="sda", instance="host-a", job="node-exporter"}"#
        );
        let mut page = known.page(2000);
        page.family("node_load1", MetricType::Gauge, "1m load average.");
        page.sample("node_load1", &[], 0.7);
        let second = page.finish();
        assert!(second.metadata.is_empty(), "help and type go out once");
        assert_eq!(second.series.len(), 2);
        assert_eq!(second.series[0].labels, first.series[0].labels);
        assert!(is_stale_nan(second.series[1].samples[0].value));
        assert_eq!(second.series[1].samples[0].timestamp_ms, 2000);
        assert_eq!(known.held(), 1);
    }
}
