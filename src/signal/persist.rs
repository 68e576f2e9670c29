//! Signal data as a disk queue stores it: [`Persist`] writes a batch's data
//! to bytes and reads it back.
//!
//! Traces are written as the `ExportTraceServiceRequest` they came in (their
//! encoded parts copied, not re-encoded) and read back through the same
//! scanner the OTLP receiver uses. Metrics, logs and profiles have a compact
//! layout of their own: varint lengths and counts, little-endian numbers,
//! label sets as pairs, native histograms as the protobuf Prometheus defines.
//!
//! Reading never trusts the bytes: the queue's checksum catches a damaged
//! disk, but a record from another build or a bug must still give an error,
//! never a panic or an allocation sized by a corrupt count.

use bytes::Bytes;
use prost::Message;

use super::logs::{Entry, Stream};
use super::metrics::{Exemplar, Metadata, MetricType, Sample, Series};
use super::profiles::{Profile, SampleType};
use super::{Labels, LabelsBuilder, Logs, Metrics, Profiles, Traces};

/// Why stored bytes are not a batch.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("stored batch is unreadable: {0}")]
pub struct RestoreError(pub &'static str);

/// Data that can be written to a disk queue and read back unchanged.
pub trait Persist: Sized {
    /// Appends this data's stored form to `out`.
    fn persist(&self, out: &mut Vec<u8>);

    /// The data `persist` wrote into `bytes`.
    fn restore(bytes: Bytes) -> Result<Self, RestoreError>;
}

impl Persist for Traces {
    fn persist(&self, out: &mut Vec<u8>) {
        self.encode_request(out);
    }

    fn restore(bytes: Bytes) -> Result<Self, RestoreError> {
        let infos = crate::otlp::scan::trace_request(&bytes)
            .map_err(|_| RestoreError("not an OTLP trace request"))?;
        Ok(Traces::from_scanned(&bytes, infos).0)
    }
}

impl Persist for Metrics {
    fn persist(&self, out: &mut Vec<u8>) {
        put_len(out, self.series.len());
        for series in &self.series {
            put_labels(out, &series.labels);
            put_len(out, series.samples.len());
            for sample in &series.samples {
                out.extend_from_slice(&sample.value.to_le_bytes());
                out.extend_from_slice(&sample.timestamp_ms.to_le_bytes());
            }
            put_len(out, series.histograms.len());
            for histogram in &series.histograms {
                put_bytes(out, &histogram.encode_to_vec());
            }
            put_len(out, series.exemplars.len());
            for exemplar in &series.exemplars {
                put_labels(out, &exemplar.labels);
                out.extend_from_slice(&exemplar.value.to_le_bytes());
                out.extend_from_slice(&exemplar.timestamp_ms.to_le_bytes());
            }
        }
        put_len(out, self.metadata.len());
        for metadata in &self.metadata {
            put_str(out, &metadata.family);
            put_len(out, metadata.kind as usize);
            put_str(out, &metadata.help);
            put_str(out, &metadata.unit);
        }
    }

    fn restore(bytes: Bytes) -> Result<Self, RestoreError> {
        let mut r = Cursor::new(&bytes);
        let mut series = Vec::with_capacity(r.count(16)?);
        for _ in 0..series.capacity() {
            let labels = r.labels()?;
            let mut samples = Vec::with_capacity(r.count(16)?);
            for _ in 0..samples.capacity() {
                samples.push(Sample {
                    value: r.f64()?,
                    timestamp_ms: r.i64()?,
                });
            }
            let mut histograms = Vec::with_capacity(r.count(1)?);
            for _ in 0..histograms.capacity() {
                let bytes = r.bytes()?;
                histograms.push(
                    ferro_proto::prometheus::Histogram::decode(bytes)
                        .map_err(|_| RestoreError("a native histogram does not decode"))?,
                );
            }
            let mut exemplars = Vec::with_capacity(r.count(17)?);
            for _ in 0..exemplars.capacity() {
                exemplars.push(Exemplar {
                    labels: r.labels()?,
                    value: r.f64()?,
                    timestamp_ms: r.i64()?,
                });
            }
            series.push(Series {
                labels,
                samples,
                histograms,
                exemplars,
            });
        }
        let mut metadata = Vec::with_capacity(r.count(4)?);
        for _ in 0..metadata.capacity() {
            metadata.push(Metadata {
                family: r.str()?.to_string(),
                kind: metric_type(r.varint()?)?,
                help: r.str()?.to_string(),
                unit: r.str()?.to_string(),
            });
        }
        r.end()?;
        Ok(Metrics { series, metadata })
    }
}

fn metric_type(n: u64) -> Result<MetricType, RestoreError> {
    Ok(match n {
        0 => MetricType::Unknown,
        1 => MetricType::Counter,
        2 => MetricType::Gauge,
        3 => MetricType::Histogram,
        4 => MetricType::GaugeHistogram,
        5 => MetricType::Summary,
        6 => MetricType::Info,
        7 => MetricType::StateSet,
        _ => return Err(RestoreError("unknown metric type")),
    })
}

impl Persist for Logs {
    fn persist(&self, out: &mut Vec<u8>) {
        put_len(out, self.streams.len());
        for stream in &self.streams {
            put_labels(out, &stream.labels);
            put_len(out, stream.entries.len());
            for entry in &stream.entries {
                out.extend_from_slice(&entry.timestamp_ns.to_le_bytes());
                put_bytes(out, &entry.line);
                put_len(out, entry.metadata.len());
                for (name, value) in &entry.metadata {
                    put_str(out, name);
                    put_str(out, value);
                }
            }
        }
    }

    fn restore(bytes: Bytes) -> Result<Self, RestoreError> {
        let mut r = Cursor::new(&bytes);
        let mut streams = Vec::with_capacity(r.count(2)?);
        for _ in 0..streams.capacity() {
            let labels = r.labels()?;
            let mut entries = Vec::with_capacity(r.count(10)?);
            for _ in 0..entries.capacity() {
                let timestamp_ns = r.i64()?;
                let line = r.str()?;
                // A slice of the record: no copy per line.
                let line = bytes.slice_ref(line.as_bytes());
                let mut metadata = Vec::with_capacity(r.count(2)?);
                for _ in 0..metadata.capacity() {
                    metadata.push((r.str()?.to_string(), r.str()?.to_string()));
                }
                entries.push(Entry {
                    timestamp_ns,
                    line,
                    metadata,
                });
            }
            streams.push(Stream { labels, entries });
        }
        r.end()?;
        Ok(Logs { streams })
    }
}

impl Persist for Profiles {
    fn persist(&self, out: &mut Vec<u8>) {
        put_len(out, self.profiles.len());
        for profile in &self.profiles {
            put_labels(out, &profile.labels);
            put_bytes(out, &profile.pprof);
            out.extend_from_slice(&profile.start_ns.to_le_bytes());
            out.extend_from_slice(&profile.end_ns.to_le_bytes());
            put_len(out, profile.sample_types.len());
            for sample_type in profile.sample_types.iter() {
                put_str(out, &sample_type.kind);
                put_str(out, &sample_type.unit);
            }
        }
    }

    fn restore(bytes: Bytes) -> Result<Self, RestoreError> {
        let mut r = Cursor::new(&bytes);
        let mut profiles = Vec::with_capacity(r.count(20)?);
        for _ in 0..profiles.capacity() {
            let labels = r.labels()?;
            let pprof = bytes.slice_ref(r.bytes()?);
            let (start_ns, end_ns) = (r.i64()?, r.i64()?);
            let mut sample_types = Vec::with_capacity(r.count(2)?);
            for _ in 0..sample_types.capacity() {
                sample_types.push(SampleType {
                    kind: r.str()?.to_string(),
                    unit: r.str()?.to_string(),
                });
            }
            profiles.push(Profile {
                labels,
                pprof,
                start_ns,
                end_ns,
                sample_types: sample_types.into(),
            });
        }
        r.end()?;
        Ok(Profiles { profiles })
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    prost::encoding::encode_varint(n as u64, out);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_bytes(out, text.as_bytes());
}

fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    put_len(out, labels.len());
    for (name, value) in labels.iter() {
        put_str(out, name);
        put_str(out, value);
    }
}

/// Reads what the `put_*` functions wrote, refusing anything that runs
/// past the end or is not what it should be.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn varint(&mut self) -> Result<u64, RestoreError> {
        prost::encoding::decode_varint(&mut self.buf).map_err(|_| RestoreError("a bad varint"))
    }

    /// A count of things at least `min_size` bytes each: refused when the
    /// rest could not hold that many, so a corrupt count cannot reserve
    /// memory the record never had.
    fn count(&mut self, min_size: usize) -> Result<usize, RestoreError> {
        let n = self.varint()?;
        if n.saturating_mul(min_size as u64) > self.buf.len() as u64 {
            return Err(RestoreError("a count larger than the record"));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], RestoreError> {
        let len = self.varint()?;
        if len > self.buf.len() as u64 {
            return Err(RestoreError("a length past the end"));
        }
        let (bytes, rest) = self.buf.split_at(len as usize);
        self.buf = rest;
        Ok(bytes)
    }

    fn str(&mut self) -> Result<&'a str, RestoreError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| RestoreError("text that is not UTF-8"))
    }

    fn fixed(&mut self) -> Result<[u8; 8], RestoreError> {
        let Some((bytes, rest)) = self.buf.split_first_chunk::<8>() else {
            return Err(RestoreError("a number past the end"));
        };
        self.buf = rest;
        Ok(*bytes)
    }

    fn f64(&mut self) -> Result<f64, RestoreError> {
        self.fixed().map(f64::from_le_bytes)
    }

    fn i64(&mut self) -> Result<i64, RestoreError> {
        self.fixed().map(i64::from_le_bytes)
    }

    fn labels(&mut self) -> Result<Labels, RestoreError> {
        let n = self.count(2)?;
        let mut builder = LabelsBuilder::new();
        for _ in 0..n {
            let name = self.str()?;
            builder.set(name, self.str()?);
        }
        Ok(builder.labels())
    }

    fn end(&self) -> Result<(), RestoreError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(RestoreError("bytes after the data"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::SignalData;

    fn round_trip<T: Persist + SignalData + std::fmt::Debug>(data: &T) -> T {
        let mut out = Vec::new();
        data.persist(&mut out);
        let back = T::restore(Bytes::from(out.clone())).unwrap();
        // Every strict prefix is refused, never a panic.
        for cut in 0..out.len() {
            let _ = T::restore(Bytes::copy_from_slice(&out[..cut]));
        }
        back
    }

    #[test]
    fn metrics_come_back_unchanged() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
        let mut series = Series::new(labels.clone());
        series.samples = vec![
            Sample {
                value: 1.5,
                timestamp_ms: 1_700_000_000_000,
            },
            Sample {
                value: crate::signal::metrics::stale_nan(),
                timestamp_ms: 1_700_000_001_000,
            },
        ];
        series.histograms = vec![ferro_proto::prometheus::Histogram {
            sum: 3.0,
            schema: 3,
            timestamp: 7,
            ..Default::default()
        }];
        series.exemplars = vec![Exemplar {
            labels: Labels::from_pairs([("trace_id", "abc")]),
            value: 0.25,
            timestamp_ms: 9,
        }];
        let metrics = Metrics {
            series: vec![series],
            metadata: vec![Metadata {
                family: "up".into(),
                kind: MetricType::Gauge,
                help: "whether the target is up".into(),
                unit: String::new(),
            }],
        };
        let back = round_trip(&metrics);
        assert_eq!(back.series[0].labels, metrics.series[0].labels);
        assert_eq!(back.series[0].samples[0], metrics.series[0].samples[0]);
        assert!(crate::signal::metrics::is_stale_nan(
            back.series[0].samples[1].value
        ));
        assert_eq!(back.series[0].histograms, metrics.series[0].histograms);
        assert_eq!(back.series[0].exemplars, metrics.series[0].exemplars);
        assert_eq!(back.metadata, metrics.metadata);
    }

    #[test]
    fn logs_come_back_unchanged() {
        let mut entry = Entry::new(1_700_000_000_123_456_789, "GET /healthz 200");
        entry.metadata = vec![("trace_id".into(), "0af7651916cd43dd".into())];
        let logs = Logs {
            streams: vec![Stream {
                labels: Labels::from_pairs([("namespace", "shop"), ("pod", "web-1")]),
                entries: vec![entry, Entry::new(-5, "")],
            }],
        };
        assert_eq!(round_trip(&logs), logs);
    }

    #[test]
    fn profiles_come_back_unchanged() {
        let profiles = Profiles {
            profiles: vec![Profile {
                labels: Labels::from_pairs([("__name__", "process_cpu"), ("service_name", "a")]),
                pprof: Bytes::from_static(b"\x1f\x8b pprof bytes"),
                start_ns: 1,
                end_ns: 2,
                sample_types: vec![SampleType {
                    kind: "cpu".into(),
                    unit: "nanoseconds".into(),
                }]
                .into(),
            }],
        };
        assert_eq!(round_trip(&profiles), profiles);
    }

    #[test]
    fn traces_come_back_unchanged() {
        let traces = crate::signal::traces::tests::sample(2, 3, 4);
        let back = round_trip(&traces);
        assert_eq!(back.item_count(), traces.item_count());
        assert_eq!(back.resource_spans(), traces.resource_spans());
    }

    #[test]
    fn a_corrupt_count_is_refused_without_allocating_it() {
        let mut out = Vec::new();
        put_len(&mut out, usize::MAX >> 1);
        assert!(Logs::restore(Bytes::from(out)).is_err());
        let mut out = Vec::new();
        Logs::default().persist(&mut out);
        out.push(0);
        assert_eq!(
            Logs::restore(Bytes::from(out)),
            Err(RestoreError("bytes after the data"))
        );
    }
}
