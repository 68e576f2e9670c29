//! OTLP exponential histograms → Prometheus native histograms.
//!
//! Both are base-2 exponential bucketings with the same schema number (OTLP
//! `scale` = Prometheus `schema`), so the conversion is a change of layout:
//!
//! - OTLP bucket `i` covers `(base^i, base^(i+1)]`, Prometheus bucket `i`
//!   covers `(base^(i-1), base^i]`: OTLP index `i` is Prometheus index `i+1`.
//! - OTLP buckets are dense (an offset and one count per bucket), Prometheus
//!   buckets are sparse: spans of consecutive buckets, each count written as
//!   the delta from the previous one. As in `client_golang`, gaps of up to two
//!   empty buckets are written as zero buckets rather than a new span.
//! - Prometheus schemas stop at 8; finer OTLP scales are scaled down by merging
//!   each `2^(scale-8)` adjacent buckets.
//!
//! Source: Prometheus' `storage/remote/otlptranslator/prometheusremotewrite/histograms.go`.

use ferro_proto::prometheus::{BucketSpan, Histogram, histogram};
use opentelemetry_proto::tonic::metrics::v1::ExponentialHistogramDataPoint;
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;

use crate::signal::metrics::{STALE_NAN_BITS, stale_nan};

/// The coarsest and finest schemas Prometheus stores.
const SCHEMA_MIN: i32 = -4;
const SCHEMA_MAX: i32 = 8;

/// The zero bucket's width when the point does not say: Prometheus' default.
const DEFAULT_ZERO_THRESHOLD: f64 = 1e-128;

/// The native histogram of one exponential histogram data point, or why it
/// cannot be one.
pub(crate) fn native_histogram(
    point: &ExponentialHistogramDataPoint,
    timestamp_ms: i64,
    stale: bool,
) -> Result<Histogram, String> {
    let scale = point.scale;
    if scale < SCHEMA_MIN {
        return Err(format!(
            "exponential histogram scale {scale} is below {SCHEMA_MIN}, the coarsest native histogram schema"
        ));
    }
    let (schema, scale_down) = if scale > SCHEMA_MAX {
        (SCHEMA_MAX, (scale - SCHEMA_MAX) as u32)
    } else {
        (scale, 0)
    };
    let empty = Buckets::default();
    let positive = point.positive.as_ref().unwrap_or(&empty);
    let negative = point.negative.as_ref().unwrap_or(&empty);
    if !stale {
        check_counts(point, positive, negative)?;
    }
    let (positive_spans, positive_deltas) = buckets_layout(positive, scale_down)?;
    let (negative_spans, negative_deltas) = buckets_layout(negative, scale_down)?;

    let (sum, count) = if stale {
        // Prometheus' staleness marker for histograms is a stale-NaN sum. The
        // count is the same bit pattern as an integer, as Prometheus' own
        // translator sets it: a count that large keeps the marker valid
        // whatever the buckets hold.
        (stale_nan(), STALE_NAN_BITS)
    } else {
        (point.sum.unwrap_or(0.0), point.count)
    };
    Ok(Histogram {
        count: Some(histogram::Count::CountInt(count)),
        sum,
        schema,
        // Prometheus always writes its default here (a TODO in its
        // translator); the point's own threshold, when it has one, is the
        // width its zero count was actually collected with.
        zero_threshold: if point.zero_threshold > 0.0 && point.zero_threshold.is_finite() {
            point.zero_threshold
        } else {
            DEFAULT_ZERO_THRESHOLD
        },
        zero_count: Some(histogram::ZeroCount::ZeroCountInt(point.zero_count)),
        negative_spans,
        negative_deltas,
        negative_counts: Vec::new(),
        positive_spans,
        positive_deltas,
        positive_counts: Vec::new(),
        // Cumulative points may or may not follow a reset; only Prometheus'
        // own detection can say, and UNKNOWN lets it.
        reset_hint: histogram::ResetHint::Unknown as i32,
        timestamp: timestamp_ms,
        custom_values: Vec::new(),
    })
}

/// Refuses points Prometheus' TSDB would refuse on append (its
/// `Histogram.Validate`): the buckets and the zero bucket must add up to the
/// count (at most the count when the sum is NaN), and every count must fit
/// the signed integers native histograms hold.
fn check_counts(
    point: &ExponentialHistogramDataPoint,
    positive: &Buckets,
    negative: &Buckets,
) -> Result<(), String> {
    let limit = i64::MAX as u64;
    let counts = || {
        positive
            .bucket_counts
            .iter()
            .chain(&negative.bucket_counts)
            .copied()
    };
    if counts().any(|c| c > limit) || point.zero_count > limit || point.count > limit {
        return Err("exponential histogram count out of range".to_string());
    }
    let total: u128 = counts().map(u128::from).sum::<u128>() + u128::from(point.zero_count);
    let count = u128::from(point.count);
    let sum_is_nan = point.sum.is_some_and(f64::is_nan);
    if (sum_is_nan && total > count) || (!sum_is_nan && total != count) {
        return Err(format!(
            "exponential histogram buckets hold {total} observations but its count is {count}"
        ));
    }
    Ok(())
}

/// Dense OTLP buckets → Prometheus spans and count deltas, merging each
/// `2^scale_down` buckets into one.
///
/// Indexes are computed in 64 bits: an OTLP offset near the `i32` limits plus
/// the bucket position would overflow, and such a point is refused rather
/// than wrapped.
fn buckets_layout(
    buckets: &Buckets,
    scale_down: u32,
) -> Result<(Vec<BucketSpan>, Vec<i64>), String> {
    let counts = &buckets.bucket_counts;
    if counts.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let offset = i64::from(buckets.offset);
    // OTLP index → Prometheus index at the target schema. `>>` on a signed
    // integer floors, which is the right merge for negative indexes too.
    // (OTLP scales stop at 20; an absurd one merges everything, as Go's
    // shifts do, instead of overflowing the shift.)
    let scale_down = scale_down.min(63);
    let prometheus_index = |position: usize| ((position as i64 + offset) >> scale_down) + 1;
    let last = prometheus_index(counts.len() - 1);
    let first = prometheus_index(0);
    if first < i64::from(i32::MIN)
        || last > i64::from(i32::MAX)
        || last - first > i64::from(i32::MAX)
    {
        return Err("exponential histogram bucket index out of range".to_string());
    }

    let mut layout = Layout {
        spans: vec![BucketSpan {
            offset: first as i32,
            length: 0,
        }],
        deltas: Vec::new(),
        previous: 0,
    };
    let mut index = first;
    let mut count: i64 = 0;
    for (position, &bucket) in counts.iter().enumerate() {
        let next_index = prometheus_index(position);
        if next_index == index {
            // Still inside the same (merged) bucket.
            count = count.wrapping_add(bucket as i64);
            continue;
        }
        if count == 0 {
            // Nothing to write for an empty bucket yet: `index` stays where
            // it was, so the next write sees the empty run as a gap (zeros or
            // a new span). This is Prometheus' layout, byte for byte.
            count = bucket as i64;
            continue;
        }
        layout.gap(next_index - index - 1);
        layout.push(count);
        count = bucket as i64;
        index = next_index;
    }
    layout.gap(last - index);
    layout.push(count);
    Ok((layout.spans, layout.deltas))
}

/// Spans and deltas being written.
struct Layout {
    spans: Vec<BucketSpan>,
    deltas: Vec<i64>,
    previous: i64,
}

impl Layout {
    /// Appends one bucket's absolute count.
    fn push(&mut self, count: i64) {
        if let Some(span) = self.spans.last_mut() {
            span.length += 1;
        }
        self.deltas.push(count.wrapping_sub(self.previous));
        self.previous = count;
    }

    /// `gap` empty buckets before the next one: written as zeros when there
    /// are at most two, a new span otherwise (what `client_golang` does).
    fn gap(&mut self, gap: i64) {
        if gap > 2 {
            self.spans.push(BucketSpan {
                offset: gap as i32,
                length: 0,
            });
        } else {
            for _ in 0..gap.max(0) {
                self.push(0);
            }
        }
    }
}
