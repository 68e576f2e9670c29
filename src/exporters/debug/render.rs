//! What `debug` prints: one line per batch, or in `detailed` every span,
//! series, log entry and profile.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use std::fmt::Write as _;

use super::Verbosity;
use crate::signal::metrics::is_stale_nan;
use crate::signal::{Logs, Metrics, Profiles, SignalData, Traces};

/// What `debug` prints of a batch of one signal.
pub trait Render {
    fn render(&self, verbosity: Verbosity) -> String;
}

impl Render for Traces {
    fn render(&self, verbosity: Verbosity) -> String {
        render_traces(self, verbosity)
    }
}

impl Render for Metrics {
    fn render(&self, verbosity: Verbosity) -> String {
        render_metrics(self, verbosity)
    }
}

impl Render for Logs {
    fn render(&self, verbosity: Verbosity) -> String {
        render_logs(self, verbosity)
    }
}

impl Render for Profiles {
    fn render(&self, verbosity: Verbosity) -> String {
        render_profiles(self, verbosity)
    }
}

/// One line per batch, and in `detailed` one line per profile: its labels,
/// time range, sample types and size.
pub fn render_profiles(profiles: &Profiles, verbosity: Verbosity) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "profiles: {} profile(s), {} bytes",
        profiles.item_count(),
        profiles
            .profiles
            .iter()
            .map(|p| p.pprof.len())
            .sum::<usize>()
    );
    if verbosity == Verbosity::Basic {
        return out;
    }
    for profile in &profiles.profiles {
        let types: Vec<String> = profile
            .sample_types
            .iter()
            .map(|t| format!("{}/{}", t.kind, t.unit))
            .collect();
        let _ = writeln!(
            out,
            "  {} {}..{} [{}] {} bytes",
            profile.labels,
            profile.start_ns,
            profile.end_ns,
            types.join(", "),
            profile.pprof.len()
        );
    }
    out
}

pub fn render_logs(logs: &Logs, verbosity: Verbosity) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "logs: {} stream(s), {} entr(ies)",
        logs.streams.len(),
        logs.item_count()
    );
    if verbosity == Verbosity::Basic {
        return out;
    }
    for stream in &logs.streams {
        let _ = writeln!(out, "  {}", stream.labels);
        for entry in &stream.entries {
            let _ = writeln!(out, "    {} {}", entry.timestamp_ns, entry.line_str());
            if !entry.metadata.is_empty() {
                out.push_str("      metadata: {");
                for (i, (name, value)) in entry.metadata.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{name}={value:?}");
                }
                out.push_str("}\n");
            }
        }
    }
    out
}

pub fn render_metrics(metrics: &Metrics, verbosity: Verbosity) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "metrics: {} series, {} sample(s)",
        metrics.series.len(),
        metrics.item_count()
    );
    if verbosity == Verbosity::Basic {
        return out;
    }
    for series in &metrics.series {
        for sample in &series.samples {
            let value = if is_stale_nan(sample.value) {
                "stale".to_string()
            } else {
                sample.value.to_string()
            };
            let _ = writeln!(
                out,
                "  {} {} @{}",
                series.labels, value, sample.timestamp_ms
            );
        }
        for histogram in &series.histograms {
            let _ = writeln!(
                out,
                "  {} native histogram sum={} @{}",
                series.labels, histogram.sum, histogram.timestamp
            );
        }
    }
    out
}

pub fn render_traces(traces: &Traces, verbosity: Verbosity) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "traces: {} resource(s), {} span(s)",
        traces.resource_count(),
        traces.item_count()
    );
    if verbosity == Verbosity::Basic {
        return out;
    }
    for rs in &traces.resource_spans() {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let _ = writeln!(out, "  resource {{{resource}}}");
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref().map(|s| s.name.as_str()).unwrap_or("");
            let _ = writeln!(out, "    scope {scope:?}");
            for span in &ss.spans {
                let _ = writeln!(
                    out,
                    "      span {:?} trace={} id={} parent={} kind={} duration={}ns attrs={{{}}} events={} links={}",
                    span.name,
                    hex::encode(&span.trace_id),
                    hex::encode(&span.span_id),
                    hex::encode(&span.parent_span_id),
                    span.kind,
                    span.end_time_unix_nano
                        .saturating_sub(span.start_time_unix_nano),
                    attributes(&span.attributes),
                    span.events.len(),
                    span.links.len(),
                );
            }
        }
    }
    out
}

fn attributes(kvs: &[KeyValue]) -> String {
    kvs.iter()
        .map(|kv| format!("{}={}", kv.key, value(kv.value.as_ref())))
        .collect::<Vec<_>>()
        .join(", ")
}

fn value(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => format!("{s:?}"),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => format!("0x{}", hex::encode(b)),
        Some(any_value::Value::ArrayValue(a)) => {
            format!(
                "[{}]",
                a.values
                    .iter()
                    .map(|v| value(Some(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Some(any_value::Value::KvlistValue(kv)) => format!("{{{}}}", attributes(&kv.values)),
        Some(any_value::Value::StringValueStrindex(i)) => format!("<string #{i}>"),
        None => "null".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Labels;
    use crate::signal::logs::{Entry, Stream};
    use crate::signal::traces::tests::sample;

    #[test]
    fn basic_is_one_line_and_detailed_shows_spans() {
        let traces = sample(1, 1, 2);
        assert_eq!(
            render_traces(&traces, Verbosity::Basic),
            "traces: 1 resource(s), 2 span(s)\n"
        );
        let detailed = render_traces(&traces, Verbosity::Detailed);
        assert!(detailed.contains("service.name=\"svc-0\""), "{detailed}");
        assert!(detailed.contains(
            "span \"span-2\" trace=01010101010101010101010101010101 id=0000000000000002"
        ));
    }

    #[test]
    fn detailed_profiles_show_labels_range_and_sample_types() {
        let profiles = Profiles::new(vec![crate::signal::profiles::tests::profile("api", 10)]);
        assert_eq!(
            render_profiles(&profiles, Verbosity::Basic),
            "profiles: 1 profile(s), 10 bytes\n"
        );
        assert_eq!(
            render_profiles(&profiles, Verbosity::Detailed),
            "profiles: 1 profile(s), 10 bytes\n  {__name__=\"process_cpu\", service_name=\"api\"} 1..2 [cpu/nanoseconds] 10 bytes\n"
        );
    }

    #[test]
    fn detailed_logs_show_streams_lines_and_metadata() {
        let mut with_metadata = Entry::new(2, "disk full");
        with_metadata.metadata = vec![
            ("severity_text".into(), "ERROR".into()),
            ("detected_level".into(), "error".into()),
        ];
        let logs = Logs::new(vec![Stream {
            labels: Labels::from_pairs([("service_name", "api")]),
            entries: vec![Entry::new(1, "started"), with_metadata],
        }]);
        assert_eq!(
            render_logs(&logs, Verbosity::Basic),
            "logs: 1 stream(s), 2 entr(ies)\n"
        );
        assert_eq!(
            render_logs(&logs, Verbosity::Detailed),
            "logs: 1 stream(s), 2 entr(ies)\n  {service_name=\"api\"}\n    1 started\n    2 disk full\n      metadata: {severity_text=\"ERROR\", detected_level=\"error\"}\n"
        );
    }
}
