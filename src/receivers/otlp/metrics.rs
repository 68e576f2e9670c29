//! OTLP metrics → Prometheus series, following Prometheus' own OTLP
//! translation (the `prometheus/otlptranslator` rules).
//!
//! The goal is that a series looks the same whether an application's OTLP
//! reached Prometheus (or Mimir) directly or went through ferro, so the rules
//! are Prometheus' ones with its default settings:
//!
//! - names: translation strategy `UnderscoreEscapingWithSuffixes`
//!   (`metrics/names.rs`): invalid characters to `_`, unit words (`_seconds`,
//!   `_bytes_per_second`), `_total` on monotonic counters, `_ratio` on
//!   gauges of unit `1`;
//! - labels: data point attributes, normalized; `job` from
//!   `service.namespace`/`service.name` and `instance` from
//!   `service.instance.id`; the other resource attributes go to one
//!   `target_info` series per resource instead of every series;
//! - types: gauge → gauge; cumulative sum → counter (`_total`) when monotonic,
//!   gauge otherwise; histogram → classic `_bucket{le}`/`_sum`/`_count`;
//!   summary → `{quantile}`/`_sum`/`_count`; exponential histogram → native
//!   histogram (`metrics/native.rs`);
//! - DELTA temporality is refused (Prometheus stores cumulative series only
//!   unless its experimental native-delta ingestion is on);
//! - `NO_RECORDED_VALUE` points become staleness markers.
//!
//! Sources: the OTel spec's [Prometheus compatibility](https://opentelemetry.io/docs/specs/otel/compatibility/prometheus_and_openmetrics/#otlp-metric-points-to-prometheus),
//! <https://github.com/prometheus/otlptranslator> and Prometheus'
//! `storage/remote/otlptranslator/prometheusremotewrite/`.
//!
//! Departures from Prometheus, each for a reason given where it is made:
//!
//! - points Prometheus would store wrongly or its TSDB would refuse later are
//!   rejected here with reason `invalid`, so one bad point cannot fail a whole
//!   remote-write batch downstream: a histogram whose bucket counts do not
//!   match its bounds (or whose bounds are not finite and increasing), a
//!   number point without a value (Prometheus stores 0), an exponential
//!   histogram whose buckets do not add up to its count;
//! - an exponential histogram's own zero threshold is kept (Prometheus always
//!   writes its default, with a TODO to use the point's);
//! - an exemplar without a value is dropped alone (Prometheus drops the rest
//!   of the metric);
//! - `target_info` gets one sample, at the resource's latest point (recent
//!   Prometheus also repeats it every 2.5 minutes back to the earliest point
//!   of the request, which matters only for requests spanning minutes).

mod names;
mod native;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, DataPointFlags, ExponentialHistogramDataPoint, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, SummaryDataPoint, exemplar, metric::Data,
    number_data_point,
};

use super::rejections::Rejections;
use super::values;
use crate::signal::metrics::{Exemplar, Metadata, MetricType, Sample, Series, stale_nan};
use crate::signal::{Labels, LabelsBuilder, Metrics};
use names::NameType;

/// What one request became.
#[derive(Debug, Default)]
pub struct Converted {
    /// The series and the families' metadata.
    pub metrics: Metrics,
    /// OTLP data points not converted.
    pub rejected_points: u64,
    /// The rejected points by reason (`delta_temporality`, `invalid`), in the
    /// order the reasons were first met.
    pub rejections: Vec<(&'static str, u64)>,
    /// For the OTLP `partial_success` answer; empty if nothing was rejected.
    pub error_message: String,
}

/// Rejection reason: a DELTA sum or histogram.
pub const REASON_DELTA: &str = "delta_temporality";
/// Rejection reason: anything else Prometheus would not store.
pub const REASON_INVALID: &str = "invalid";

/// Resource attributes with a meaning of their own.
const SERVICE_NAME: &str = "service.name";
const SERVICE_NAMESPACE: &str = "service.namespace";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";

/// Exemplar labels beyond this many characters lose their attributes (the
/// OpenMetrics limit), keeping the trace and span ids.
const MAX_EXEMPLAR_RUNES: usize = 128;

/// Converts an OTLP metrics request to Prometheus series. Never fails as a
/// whole: what cannot be converted is counted in the answer.
pub fn convert(request: ExportMetricsServiceRequest) -> Converted {
    let mut converter = Converter::default();
    for resource_metrics in &request.resource_metrics {
        converter.resource(resource_metrics);
    }
    converter.finish()
}

#[derive(Default)]
struct Converter {
    series: Vec<Series>,
    /// Where each label set's series is: points of one series in one request
    /// land in one `Series`, as in Prometheus' converter.
    index: HashMap<Labels, usize>,
    metadata: Vec<Metadata>,
    seen_metadata: HashSet<Metadata>,
    rejections: Rejections,
}

/// The labels every series of one resource shares.
struct Resource<'a> {
    attributes: &'a [KeyValue],
    /// `service.namespace/service.name`, or `service.name`.
    job: Option<String>,
    /// `service.instance.id`.
    instance: Option<String>,
}

impl<'a> Resource<'a> {
    fn new(attributes: &'a [KeyValue]) -> Self {
        let get = |key: &str| {
            attributes
                .iter()
                .find(|kv| kv.key == key)
                .map(|kv| values::value_string(kv.value.as_ref()))
        };
        let job = get(SERVICE_NAME).map(|name| match get(SERVICE_NAMESPACE) {
            Some(namespace) => format!("{namespace}/{name}"),
            None => name,
        });
        Resource {
            attributes,
            job,
            instance: get(SERVICE_INSTANCE_ID),
        }
    }
}

impl Converter {
    fn resource(&mut self, resource_metrics: &ResourceMetrics) {
        let attributes = resource_metrics
            .resource
            .as_ref()
            .map_or(&[][..], |r| &r.attributes[..]);
        let resource = Resource::new(attributes);
        // target_info is stamped with the latest point of the resource,
        // converted or not (as Prometheus does).
        let mut latest: Option<u64> = None;
        for scope_metrics in &resource_metrics.scope_metrics {
            for metric in &scope_metrics.metrics {
                if let Some(t) = latest_timestamp(metric) {
                    latest = Some(latest.map_or(t, |l| l.max(t)));
                }
                self.metric(&resource, metric);
            }
        }
        if let Some(latest) = latest {
            self.target_info(&resource, latest);
        }
    }

    fn metric(&mut self, resource: &Resource, metric: &Metric) {
        // A metric without data has no points to convert or count.
        let Some(data) = &metric.data else { return };
        let points = point_count(data);
        if points == 0 {
            return;
        }
        if let Some(temporality) = temporality(data)
            && temporality != AggregationTemporality::Cumulative as i32
        {
            if temporality == AggregationTemporality::Delta as i32 {
                self.rejections.add(
                    REASON_DELTA,
                    points,
                    format!(
                        "metric {:?}: DELTA temporality is not supported, only CUMULATIVE",
                        metric.name
                    ),
                );
            } else {
                self.rejections.add(
                    REASON_INVALID,
                    points,
                    format!(
                        "metric {:?}: aggregation temporality {temporality} is not CUMULATIVE",
                        metric.name
                    ),
                );
            }
            return;
        }

        let (name_type, kind) = match data {
            Data::Gauge(_) => (NameType::Gauge, MetricType::Gauge),
            Data::Sum(sum) if sum.is_monotonic => (NameType::MonotonicCounter, MetricType::Counter),
            Data::Sum(_) => (NameType::NonMonotonicCounter, MetricType::Gauge),
            Data::Histogram(_) => (NameType::Histogram, MetricType::Histogram),
            Data::ExponentialHistogram(_) => {
                (NameType::ExponentialHistogram, MetricType::Histogram)
            }
            Data::Summary(_) => (NameType::Summary, MetricType::Summary),
        };
        let Some(name) = names::metric_name(&metric.name, &metric.unit, name_type) else {
            self.rejections.add(
                REASON_INVALID,
                points,
                format!(
                    "metric {:?}: the name has no character valid in a Prometheus name",
                    metric.name
                ),
            );
            return;
        };

        // Each point is converted or rejected on its own.
        let results: Vec<Result<(), String>> = match data {
            // Prometheus attaches exemplars to counters, not gauges.
            Data::Gauge(gauge) => (gauge.data_points.iter())
                .map(|p| self.number_point(resource, &name, p, false))
                .collect(),
            Data::Sum(sum) => (sum.data_points.iter())
                .map(|p| self.number_point(resource, &name, p, true))
                .collect(),
            Data::Histogram(histogram) => (histogram.data_points.iter())
                .map(|p| self.histogram_point(resource, &name, p))
                .collect(),
            Data::ExponentialHistogram(histogram) => (histogram.data_points.iter())
                .map(|p| self.exponential_point(resource, &name, p))
                .collect(),
            Data::Summary(summary) => (summary.data_points.iter())
                .map(|p| self.summary_point(resource, &name, p))
                .collect(),
        };
        let mut converted = 0u64;
        for result in results {
            match result {
                Ok(()) => converted += 1,
                Err(problem) => self.rejections.add(
                    REASON_INVALID,
                    1,
                    format!("metric {:?}: {problem}", metric.name),
                ),
            }
        }
        if converted > 0 {
            // The family is the name the series are built from: with `_total`
            // for counters, without `_bucket`/`_sum`/`_count` (Prometheus'
            // `MetricFamilyName`); the unit is the one in the name.
            self.add_metadata(Metadata {
                family: name,
                kind,
                help: metric.description.clone(),
                unit: names::unit_name(&metric.unit),
            });
        }
    }

    fn number_point(
        &mut self,
        resource: &Resource,
        name: &str,
        point: &NumberDataPoint,
        with_exemplars: bool,
    ) -> Result<(), String> {
        let stale = is_stale(point.flags);
        let value = match point.value {
            _ if stale => stale_nan(),
            Some(number_data_point::Value::AsDouble(v)) => v,
            Some(number_data_point::Value::AsInt(v)) => v as f64,
            // Prometheus would store 0 for a point the OTLP spec calls invalid.
            None => return Err("data point has no value".to_string()),
        };
        let base = self.base_labels(resource, &point.attributes)?;
        let index = self.add_sample(
            series_labels(&base, name, None),
            value,
            timestamp_ms(point.time_unix_nano),
        );
        if with_exemplars {
            let exemplars = exemplars(&point.exemplars);
            self.series[index].exemplars.extend(exemplars);
        }
        Ok(())
    }

    fn histogram_point(
        &mut self,
        resource: &Resource,
        name: &str,
        point: &HistogramDataPoint,
    ) -> Result<(), String> {
        let bounds = &point.explicit_bounds;
        let counts = &point.bucket_counts;
        // The OTLP spec: one more count than bounds, or no buckets at all.
        // Prometheus would silently pair what it can, misplacing counts.
        if !counts.is_empty() && counts.len() != bounds.len() + 1 {
            return Err(format!(
                "histogram has {} bucket counts for {} explicit bounds",
                counts.len(),
                bounds.len()
            ));
        }
        // Unordered, NaN or infinite bounds make `le` series no query can use
        // (and an explicit `+Inf` bound would collide with the implicit one).
        if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err("histogram bounds must be finite and increasing".to_string());
        }
        let base = self.base_labels(resource, &point.attributes)?;
        let timestamp = timestamp_ms(point.time_unix_nano);
        let stale = is_stale(point.flags);
        let value = |v: f64| if stale { stale_nan() } else { v };

        if let Some(sum) = point.sum {
            let labels = series_labels(&base, &format!("{name}_sum"), None);
            self.add_sample(labels, value(sum), timestamp);
        }
        let labels = series_labels(&base, &format!("{name}_count"), None);
        self.add_sample(labels, value(point.count as f64), timestamp);

        let bucket_name = format!("{name}_bucket");
        let mut buckets = Vec::with_capacity(bounds.len() + 1);
        let mut cumulative: u64 = 0;
        for (&bound, &count) in bounds.iter().zip(counts) {
            cumulative = cumulative.wrapping_add(count);
            let le = names::format_float(bound);
            let labels = series_labels(&base, &bucket_name, Some(("le", &le)));
            let index = self.add_sample(labels, value(cumulative as f64), timestamp);
            buckets.push((bound, index));
        }
        let labels = series_labels(&base, &bucket_name, Some(("le", "+Inf")));
        let inf_index = self.add_sample(labels, value(point.count as f64), timestamp);

        // Each exemplar goes to the lowest bucket that holds its value.
        for exemplar in exemplars(&point.exemplars) {
            let index = buckets
                .iter()
                .find(|(bound, _)| exemplar.value <= *bound)
                .map_or(inf_index, |(_, index)| *index);
            self.series[index].exemplars.push(exemplar);
        }
        Ok(())
    }

    fn exponential_point(
        &mut self,
        resource: &Resource,
        name: &str,
        point: &ExponentialHistogramDataPoint,
    ) -> Result<(), String> {
        let timestamp = timestamp_ms(point.time_unix_nano);
        let histogram = native::native_histogram(point, timestamp, is_stale(point.flags))?;
        let base = self.base_labels(resource, &point.attributes)?;
        let labels = series_labels(&base, name, None);
        let index = self.series_index(labels);
        let series = &mut self.series[index];
        series.histograms.push(histogram);
        series.exemplars.extend(exemplars(&point.exemplars));
        Ok(())
    }

    fn summary_point(
        &mut self,
        resource: &Resource,
        name: &str,
        point: &SummaryDataPoint,
    ) -> Result<(), String> {
        let base = self.base_labels(resource, &point.attributes)?;
        let timestamp = timestamp_ms(point.time_unix_nano);
        let stale = is_stale(point.flags);
        let value = |v: f64| if stale { stale_nan() } else { v };

        let labels = series_labels(&base, &format!("{name}_sum"), None);
        self.add_sample(labels, value(point.sum), timestamp);
        let labels = series_labels(&base, &format!("{name}_count"), None);
        self.add_sample(labels, value(point.count as f64), timestamp);
        for quantile in &point.quantile_values {
            let q = names::format_float(quantile.quantile);
            let labels = series_labels(&base, name, Some(("quantile", &q)));
            self.add_sample(labels, value(quantile.value), timestamp);
        }
        Ok(())
    }

    /// One `target_info` series (value 1) for a resource with attributes
    /// beyond the ones `job` and `instance` come from: those attributes as
    /// labels, with `job` and `instance`, so they can be joined on.
    fn target_info(&mut self, resource: &Resource, latest_ns: u64) {
        let identifying = [SERVICE_NAMESPACE, SERVICE_NAME, SERVICE_INSTANCE_ID];
        let present = identifying
            .iter()
            .filter(|key| resource.attributes.iter().any(|kv| kv.key == **key))
            .count();
        if resource.attributes.len() <= present {
            // Only job and instance: nothing target_info would add.
            return;
        }
        let others: Vec<KeyValue> = resource
            .attributes
            .iter()
            .filter(|kv| !identifying.contains(&kv.key.as_str()))
            .cloned()
            .collect();
        // An attribute key Prometheus cannot name loses target_info, not the
        // request (no data point is lost).
        let Ok(base) = self.base_labels(resource, &others) else {
            return;
        };
        if base.get("job").is_none() && base.get("instance").is_none() {
            // Without either, target_info cannot be joined to anything.
            return;
        }
        let labels = series_labels(&base, "target_info", None);
        self.add_sample(labels, 1.0, timestamp_ms(latest_ns));
        self.add_metadata(Metadata {
            family: "target_info".to_string(),
            kind: MetricType::Gauge,
            help: "Target metadata".to_string(),
            unit: String::new(),
        });
    }

    /// The labels of a data point before `__name__` and `le`/`quantile`:
    /// its attributes with normalized names, then `job` and `instance`.
    ///
    /// Attributes are taken in key order, and keys that normalize to the same
    /// name (`a.b` and `a_b`) get their values joined with `;`, as Prometheus
    /// does.
    fn base_labels(
        &self,
        resource: &Resource,
        attributes: &[KeyValue],
    ) -> Result<LabelsBuilder, String> {
        let mut sorted: Vec<&KeyValue> = attributes.iter().collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        let mut builder = LabelsBuilder::new();
        for kv in sorted {
            let name = names::label_name(&kv.key).ok_or_else(|| {
                format!(
                    "attribute key {:?} is not a valid Prometheus label name",
                    kv.key
                )
            })?;
            let value = values::value_string(kv.value.as_ref());
            match builder.get(&name) {
                Some(existing) => {
                    let joined = format!("{existing};{value}");
                    builder.set(&name, &joined);
                }
                None => builder.set(&name, &value),
            }
        }
        if let Some(job) = &resource.job {
            builder.set("job", job);
        }
        if let Some(instance) = &resource.instance {
            builder.set("instance", instance);
        }
        Ok(builder)
    }

    fn series_index(&mut self, labels: Labels) -> usize {
        if let Some(&index) = self.index.get(&labels) {
            return index;
        }
        let index = self.series.len();
        self.index.insert(labels.clone(), index);
        self.series.push(Series::new(labels));
        index
    }

    fn add_sample(&mut self, labels: Labels, value: f64, timestamp_ms: i64) -> usize {
        let index = self.series_index(labels);
        self.series[index].samples.push(Sample {
            value,
            timestamp_ms,
        });
        index
    }

    fn add_metadata(&mut self, metadata: Metadata) {
        if self.seen_metadata.insert(metadata.clone()) {
            self.metadata.push(metadata);
        }
    }

    fn finish(mut self) -> Converted {
        for series in &mut self.series {
            // Series are oldest first; OTLP points need not be.
            if !series.samples.is_sorted_by_key(|s| s.timestamp_ms) {
                series.samples.sort_by_key(|s| s.timestamp_ms);
            }
            if !series.histograms.is_sorted_by_key(|h| h.timestamp) {
                series.histograms.sort_by_key(|h| h.timestamp);
            }
        }
        let (rejected_points, rejections, error_message) =
            self.rejections.finish("data point", "point");
        Converted {
            metrics: Metrics {
                series: self.series,
                metadata: self.metadata,
            },
            rejected_points,
            rejections,
            error_message,
        }
    }
}

/// A series' labels: the base labels, the extra (`le` or `quantile`) and the
/// name. The extra and the name override attributes of the same name.
fn series_labels(base: &LabelsBuilder, name: &str, extra: Option<(&str, &str)>) -> Labels {
    let mut builder = base.clone();
    if let Some((label, value)) = extra {
        builder.set(label, value);
    }
    builder.set("__name__", name);
    builder.labels()
}

/// OTLP exemplars → Prometheus exemplars: the trace and span ids as
/// `trace_id`/`span_id` labels (hex), plus the filtered attributes when all
/// of it stays within the OpenMetrics length limit. Exemplars without a value
/// are dropped.
fn exemplars(list: &[opentelemetry_proto::tonic::metrics::v1::Exemplar]) -> Vec<Exemplar> {
    let mut out = Vec::with_capacity(list.len());
    for exemplar in list {
        let value = match exemplar.value {
            Some(exemplar::Value::AsDouble(v)) => v,
            Some(exemplar::Value::AsInt(v)) => v as f64,
            None => continue,
        };
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut runes = 0;
        // All-zero ids are OTel's "no id".
        for (label, id) in [
            ("trace_id", &exemplar.trace_id),
            ("span_id", &exemplar.span_id),
        ] {
            if id.iter().any(|b| *b != 0) {
                let hex = hex::encode(id);
                runes += label.len() + hex.len();
                pairs.push((label.to_string(), hex));
            }
        }
        let attributes: Vec<(String, String)> = exemplar
            .filtered_attributes
            .iter()
            .map(|kv| (kv.key.clone(), values::value_string(kv.value.as_ref())))
            .collect();
        runes += attributes
            .iter()
            .map(|(k, v)| k.chars().count() + v.chars().count())
            .sum::<usize>();
        if runes <= MAX_EXEMPLAR_RUNES {
            pairs.extend(attributes);
        }
        out.push(Exemplar {
            labels: Labels::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            value,
            timestamp_ms: timestamp_ms(exemplar.time_unix_nano),
        });
    }
    out
}

fn is_stale(flags: u32) -> bool {
    flags & DataPointFlags::NoRecordedValueMask as u32 != 0
}

/// OTLP nanoseconds → Prometheus milliseconds, as Prometheus computes it
/// (`int64(ns) / 1e6`: a wrapping cast, then truncation).
fn timestamp_ms(ns: u64) -> i64 {
    (ns as i64) / 1_000_000
}

/// The temporality of the kinds that have one.
fn temporality(data: &Data) -> Option<i32> {
    match data {
        Data::Sum(sum) => Some(sum.aggregation_temporality),
        Data::Histogram(h) => Some(h.aggregation_temporality),
        Data::ExponentialHistogram(h) => Some(h.aggregation_temporality),
        Data::Gauge(_) | Data::Summary(_) => None,
    }
}

fn point_count(data: &Data) -> u64 {
    let n = match data {
        Data::Gauge(g) => g.data_points.len(),
        Data::Sum(s) => s.data_points.len(),
        Data::Histogram(h) => h.data_points.len(),
        Data::ExponentialHistogram(h) => h.data_points.len(),
        Data::Summary(s) => s.data_points.len(),
    };
    n as u64
}

fn latest_timestamp(metric: &Metric) -> Option<u64> {
    fn max<T>(points: &[T], time: impl Fn(&T) -> u64) -> Option<u64> {
        points.iter().map(time).max()
    }
    match metric.data.as_ref()? {
        Data::Gauge(g) => max(&g.data_points, |p| p.time_unix_nano),
        Data::Sum(s) => max(&s.data_points, |p| p.time_unix_nano),
        Data::Histogram(h) => max(&h.data_points, |p| p.time_unix_nano),
        Data::ExponentialHistogram(h) => max(&h.data_points, |p| p.time_unix_nano),
        Data::Summary(s) => max(&s.data_points, |p| p.time_unix_nano),
    }
}
