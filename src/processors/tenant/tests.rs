use super::*;
use crate::config::ComponentId;
use crate::config::Validate;
use crate::delivery::Batch;
use crate::delivery::Outcome;
use crate::delivery::Reservation;
use crate::delivery::{Admission, MemoryLimiter, Ticket};
use crate::plan::Config;
use crate::processors::tenant::active::ActiveSet;
use crate::processors::tenant::active::EXPIRY_TICKS;
use crate::processors::tenant::bucket::Bucket;
use crate::signal::Signal;
use crate::signal::logs::{Entry, Stream};
use crate::signal::metrics::Series;
use crate::signal::traces::tests::kv;
use crate::signal::{Labels, Logs, Metrics, SignalData, Traces};
use crate::telemetry::Telemetry;
use crate::telemetry::TenantLabels;
use crate::telemetry::TenantReasonLabels;
use http::HeaderValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

fn config(toml_text: &str) -> TenantConfig {
    let raw: RawTenantConfig = toml::from_str(toml_text).unwrap();
    raw.validate().unwrap_or_else(|e| panic!("{e:?}"))
}

fn limiter(toml_text: &str) -> (TenantLimiter, Arc<Telemetry>) {
    let telemetry = Telemetry::new();
    let limiter = TenantLimiter::new(
        &ComponentId::new("tenant", "test"),
        &config(toml_text),
        &telemetry,
    );
    (limiter, telemetry)
}

fn errors(toml_text: &str) -> Vec<(String, String)> {
    let raw: RawTenantConfig = toml::from_str(toml_text).unwrap();
    match raw.validate() {
        Ok(_) => panic!("`{toml_text}` should not validate"),
        Err(errors) => errors.into_iter().map(|e| (e.field, e.message)).collect(),
    }
}

/// A stream of `entries` lines of 10 bytes in namespace `ns`.
fn stream(ns: &str, app: &str, entries: usize) -> Stream {
    Stream {
        labels: Labels::from_pairs([("namespace", ns), ("app", app)]),
        entries: (0..entries)
            .map(|i| Entry::new(i as i64, format!("line {i:05}")))
            .collect(),
    }
}

/// What a push's batch carries once `reservation`'s limiter admitted it.
fn admitted(reservation: &Reservation) -> Option<Arc<Admission>> {
    let mut admission = Admission::default();
    reservation.record(&mut admission);
    Some(Arc::new(admission))
}

fn logs(streams: Vec<Stream>) -> Batch<Logs> {
    Batch::new(Logs::new(streams), Ticket::untracked())
}

fn series(ns: &str, name: &str) -> Series {
    Series::sample(
        Labels::from_pairs([("__name__", name), ("namespace", ns)]),
        1.0,
        1000,
    )
}

fn metrics(series: Vec<Series>) -> Batch<Metrics> {
    Batch::new(Metrics::new(series), Ticket::untracked())
}

fn tenant_of<T>(batch: &Batch<T>) -> &str {
    batch
        .tenancy
        .tenant
        .as_ref()
        .map_or("", |t| t.to_str().unwrap())
}

fn dropped(telemetry: &Telemetry, signal: &str, tenant: &str, reason: &str) -> u64 {
    telemetry
        .tenants
        .dropped
        .get_or_create(&TenantReasonLabels {
            processor: "tenant.test".into(),
            signal: Box::leak(signal.to_string().into_boxed_str()),
            tenant: tenant.into(),
            reason: Box::leak(reason.to_string().into_boxed_str()),
        })
        .get()
}

fn secs(n: f64) -> Duration {
    Duration::from_secs_f64(n)
}

// --- token bucket ---

#[test]
fn bucket_passes_its_burst_then_its_rate() {
    let t0 = Instant::now();
    let mut bucket = Bucket::new(
        Rate {
            per_second: 10.0,
            burst: 20.0,
        },
        t0,
    );
    assert!(bucket.allows(20.0, t0));
    bucket.take(20.0);
    assert!(!bucket.allows(1.0, t0), "the burst is spent");
    assert_eq!(bucket.wait(t0), secs(0.1));
    assert!(
        bucket.allows(5.0, t0 + secs(0.5)),
        "5 tokens refilled in 0.5s"
    );
    assert!(!bucket.allows(6.0, t0 + secs(0.5)));
    assert!(
        bucket.allows(20.0, t0 + secs(100.0)),
        "refill stops at the burst"
    );
    assert!(bucket.is_full(t0 + secs(100.0)));
    bucket.take(1.0);
    assert!(!bucket.allows(20.0, t0 + secs(100.0)), "but not beyond");
}

#[test]
fn bucket_lets_an_oversized_group_through_from_full_and_owes_it() {
    let t0 = Instant::now();
    let mut bucket = Bucket::new(
        Rate {
            per_second: 10.0,
            burst: 10.0,
        },
        t0,
    );
    assert!(bucket.allows(50.0, t0), "larger than the burst, from full");
    bucket.take(50.0);
    assert!(!bucket.allows(1.0, t0 + secs(3.0)), "still owes 10 tokens");
    assert_eq!(bucket.wait(t0 + secs(3.0)), secs(1.1));
    assert!(bucket.allows(1.0, t0 + secs(4.2)));
    assert!(!bucket.is_full(t0 + secs(4.2)));
    assert!(bucket.is_full(t0 + secs(5.0)));
}

// --- active series ---

#[test]
fn active_set_holds_to_its_limit_but_keeps_known_series() {
    let mut set = ActiveSet::default();
    for h in 0..100u64 {
        assert!(set.touch(h.wrapping_mul(0x9e37_79b9_7f4a_7c15), 0, 100));
    }
    assert_eq!(set.len(), 100);
    assert!(
        !set.touch(12345 << 20, 0, 100),
        "a new series past the limit"
    );
    assert!(
        set.touch(7u64.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1, 100),
        "a known one"
    );
    assert_eq!(set.len(), 100);
}

#[test]
fn active_set_expires_what_was_not_seen_and_shrinks() {
    let mut set = ActiveSet::default();
    for h in 0..1000u64 {
        set.touch(h.wrapping_mul(0x9e37_79b9_7f4a_7c15), 10, usize::MAX);
    }
    let big = set.heap_bytes();
    // Ten of them seen again later.
    for h in 0..10u64 {
        set.touch(h.wrapping_mul(0x9e37_79b9_7f4a_7c15), 60, usize::MAX);
    }
    set.sweep(10 + EXPIRY_TICKS);
    assert_eq!(set.len(), 1000, "not yet past the expiry");
    set.sweep(11 + EXPIRY_TICKS);
    assert_eq!(set.len(), 10);
    assert!(set.heap_bytes() < big / 10, "the table shrank");
    // Ticks wrap: ages are differences.
    set.sweep(60u16.wrapping_add(EXPIRY_TICKS));
    assert_eq!(set.len(), 10);
    set.sweep(61u16.wrapping_add(EXPIRY_TICKS));
    assert_eq!(set.len(), 0);
    assert_eq!(set.heap_bytes(), 0);
}

#[test]
fn active_set_costs_8_to_22_bytes_a_series() {
    let mut set = ActiveSet::default();
    for n in [1000usize, 100_000, 300_000] {
        set.clear();
        for h in 0..n as u64 {
            assert!(set.touch(xxhash_rust::xxh3::xxh3_64(&h.to_le_bytes()), 0, usize::MAX));
        }
        assert_eq!(set.len(), n, "no collisions among {n} hashes");
        let per_series = set.heap_bytes() as f64 / n as f64;
        assert!(
            (8.0..22.0).contains(&per_series),
            "{per_series} bytes a series at {n}"
        );
    }
}

// --- config ---

#[test]
fn config_reads_sources_defaults_and_overrides() {
    let c = config(
        r#"
        source = "label"
        label = "namespace"
        attribute = "k8s.namespace.name"
        default_tenant = "platform"
        [limits]
        records_per_second = 1000
        bytes_per_second = "1MiB"
        max_active_series = 5000
        [overrides.batch-jobs]
        records_per_second = 50000
        max_active_series = 0
        "#,
    );
    assert_eq!(
        c.source,
        Source::Label {
            label: "namespace".into(),
            attribute: "k8s.namespace.name".into()
        }
    );
    assert_eq!(c.default_tenant, "platform");
    assert_eq!(
        c.limits.records,
        Some(Rate {
            per_second: 1000.0,
            burst: 2000.0
        })
    );
    let o = c.limits_of("batch-jobs");
    assert_eq!(
        o.records,
        Some(Rate {
            per_second: 50000.0,
            burst: 100_000.0
        }),
        "an override's burst follows its own rate"
    );
    assert_eq!(
        o.bytes, c.limits.bytes,
        "what an override leaves out is inherited"
    );
    assert_eq!(o.max_active_series, None, "0 turns a limit off");
    assert_eq!(c.limits_of("anyone-else"), &c.limits);
    assert_eq!(c.max_tenants, 500);
    assert!(!c.refuse);

    let c = config("source = \"label\"\nlabel = \"namespace\"");
    assert_eq!(
        c.source,
        Source::Label {
            label: "namespace".into(),
            attribute: "namespace".into()
        }
    );
    assert_eq!(c.default_tenant, DEFAULT_TENANT);
    assert_eq!(
        config("source = \"static\"\ntenant = \"team-a\"").source,
        Source::Static(HeaderValue::from_static("team-a"))
    );
}

#[test]
fn config_errors_name_their_field() {
    let has = |errors: &[(String, String)], field: &str, needle: &str| {
        assert!(
            errors.iter().any(|(f, m)| f == field && m.contains(needle)),
            "no `{field}` error with `{needle}` in {errors:?}"
        );
    };
    has(&errors(""), "source", "static");
    has(&errors("source = \"static\""), "tenant", "needs");
    has(&errors("source = \"label\""), "label", "needs");
    has(
        &errors("source = \"header\"\nlabel = \"namespace\""),
        "label",
        "only with source = \"label\"",
    );
    has(
        &errors("source = \"static\"\ntenant = \"a b\""),
        "tenant",
        "not a tenant ID",
    );
    has(
        &errors("source = \"header\"\ndefault_tenant = \"..\""),
        "default_tenant",
        "not a tenant ID",
    );
    has(
        &errors("source = \"header\"\nmax_tenants = 0"),
        "max_tenants",
        "at least 1",
    );
    has(
        &errors("source = \"header\"\nactive_expiry = \"10ms\""),
        "active_expiry",
        "at least 1s",
    );
    has(
        &errors("source = \"header\"\n[limits]\nrecords_burst = 10"),
        "limits.records_burst",
        "needs records_per_second",
    );
    has(
        &errors("source = \"header\"\n[overrides.\"a/b\"]\nrecords_per_second = 1"),
        "overrides.a/b",
        "not a tenant ID",
    );
    has(
        &errors("source = \"header\"\n[overrides.x]\nbytes_burst = 10"),
        "overrides.x.bytes_burst",
        "needs bytes_per_second",
    );
    has(
        &errors("source = \"header\"\nrefuse = true"),
        "refuse",
        "no tenant has",
    );
    // An error inherited from `limits` is reported there only.
    let e = errors(
        "source = \"header\"\n[limits]\nrecords_burst = 5\n[overrides.x]\nmax_active_series = 3",
    );
    assert_eq!(e.len(), 1, "{e:?}");
}

#[test]
fn config_file_errors_carry_the_full_path_and_line() {
    let text = r#"
[processors.tenant.teams]
source = "label"
label = "namespace"

[processors.tenant.teams.overrides.noisy]
records_per_second = 10
recrods_burst = 5
"#;
    let errors = Config::from_str(text, "t.toml").unwrap_err().errors;
    let error = errors
        .iter()
        .find(|e| e.path == "processors.tenant.teams.overrides.noisy.recrods_burst")
        .unwrap_or_else(|| panic!("{errors:?}"));
    assert_eq!(error.line, Some(8));
    assert_eq!(error.message, "unknown field");
}

// --- the processor ---

#[test]
fn label_source_splits_by_tenant_and_throttles_only_the_noisy_one() {
    let (limiter, telemetry) = limiter(
        r#"
        source = "label"
        label = "namespace"
        [limits]
        records_per_second = 1000
        [overrides.noisy]
        records_per_second = 10
        records_burst = 10
        "#,
    );
    let t0 = Instant::now();
    let mut out = Vec::new();
    limiter.process_at(
        logs(vec![
            stream("noisy", "a", 8),
            stream("quiet", "b", 5),
            stream("noisy", "c", 8),
            stream("quiet", "d", 5),
        ]),
        &mut out,
        t0,
    );
    assert_eq!(out.len(), 2, "one batch per tenant");
    assert_eq!(tenant_of(&out[0]), "noisy");
    assert_eq!(
        out[0].items(),
        8,
        "the second noisy stream is over its burst"
    );
    assert_eq!(tenant_of(&out[1]), "quiet");
    assert_eq!(out[1].items(), 10);
    assert_eq!(
        out[1]
            .data
            .streams
            .iter()
            .map(|s| s.labels.get("app").unwrap())
            .collect::<Vec<_>>(),
        vec!["b", "d"],
        "groups keep their order"
    );
    assert_eq!(out[0].bytes, out[0].data.encoded_len());
    assert_eq!(dropped(&telemetry, "logs", "noisy", "rate_limited"), 8);
    assert_eq!(dropped(&telemetry, "logs", "quiet", "rate_limited"), 0);
    // A second later the noisy tenant has 10 tokens again.
    out.clear();
    limiter.process_at(
        logs(vec![stream("noisy", "a", 8)]),
        &mut out,
        t0 + secs(1.0),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].items(), 8);
    let page = telemetry.encode();
    assert!(
        page.contains(r#"ferro_dropped_items_total{kind="processor",component="tenant.test",signal="logs",reason="rate_limited"} 8"#),
        "{page}"
    );
}

#[test]
fn header_and_static_sources_tag_the_whole_batch() {
    let (limiter, _) = limiter("source = \"header\"\ndefault_tenant = \"nobody\"");
    let mut out = Vec::new();
    let mut batch = logs(vec![stream("x", "a", 2), stream("y", "b", 2)]);
    batch.tenancy.org_id = Some(HeaderValue::from_static("team-a"));
    limiter.process(batch, &mut out);
    limiter.process(logs(vec![stream("x", "a", 1)]), &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(tenant_of(&out[0]), "team-a");
    assert_eq!(out[0].items(), 4);
    assert_eq!(
        tenant_of(&out[1]),
        "nobody",
        "no header: the default tenant"
    );

    let (limiter, _) = limiter_static();
    let mut out = Vec::new();
    limiter.process(metrics(vec![series("x", "up")]), &mut out);
    assert_eq!(tenant_of(&out[0]), "ops");
}

fn limiter_static() -> (TenantLimiter, Arc<Telemetry>) {
    limiter("source = \"static\"\ntenant = \"ops\"")
}

#[test]
fn whole_batch_rate_limit_drops_and_reports_it_to_the_acknowledgement() {
    let (limiter, telemetry) = limiter(
        r#"
        source = "header"
        [limits]
        records_per_second = 5
        records_burst = 5
        "#,
    );
    let memory = MemoryLimiter::new(1 << 20);
    let t0 = Instant::now();
    let mut out = Vec::new();
    let (ticket, first) = memory.try_acquire(100).unwrap().with_ack();
    limiter.process_at(
        Batch::new(Logs::new(vec![stream("x", "a", 5)]), ticket),
        &mut out,
        t0,
    );
    let (ticket, second) = memory.try_acquire(100).unwrap().with_ack();
    limiter.process_at(
        Batch::new(Logs::new(vec![stream("x", "a", 5)]), ticket),
        &mut out,
        t0,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(memory.used(), 100, "the dropped batch gave its memory back");
    let (mut first, mut second) = (first, second);
    assert_eq!(second.try_outcome(), Some(Outcome::Dropped));
    drop(out);
    assert_eq!(first.try_outcome(), Some(Outcome::Delivered));
    assert_eq!(memory.used(), 0);
    assert_eq!(
        dropped(&telemetry, "logs", DEFAULT_TENANT, "rate_limited"),
        5
    );
}

#[test]
fn partly_dropped_batch_reports_the_loss_once_the_rest_is_finished() {
    let (limiter, _) = limiter(
        r#"
        source = "label"
        label = "namespace"
        [overrides.noisy]
        records_per_second = 1
        records_burst = 1
        "#,
    );
    let (ticket, mut ack) = Ticket::untracked().with_ack();
    let mut out = Vec::new();
    limiter.process(
        Batch::new(
            Logs::new(vec![
                stream("quiet", "a", 3),
                stream("noisy", "b", 3),
                stream("noisy", "c", 3),
            ]),
            ticket,
        ),
        &mut out,
    );
    assert_eq!(out.iter().map(|b| b.items()).sum::<usize>(), 6);
    assert_eq!(ack.try_outcome(), None, "the kept part is still in flight");
    drop(out);
    assert_eq!(ack.try_outcome(), Some(Outcome::Dropped));
}

#[test]
fn bytes_per_second_limit() {
    let size = logs(vec![stream("x", "a", 5)]).bytes;
    let (limiter, telemetry) = limiter(&format!(
        "source = \"static\"\ntenant = \"t\"\n[limits]\nbytes_per_second = {size}\nbytes_burst = {}",
        size + size / 2
    ));
    let t0 = Instant::now();
    let mut out = Vec::new();
    limiter.process_at(logs(vec![stream("x", "a", 5)]), &mut out, t0);
    limiter.process_at(logs(vec![stream("x", "a", 5)]), &mut out, t0);
    assert_eq!(out.len(), 1, "half a batch of bytes left: the second waits");
    assert_eq!(dropped(&telemetry, "logs", "t", "byte_rate_limited"), 5);
    limiter.process_at(logs(vec![stream("x", "a", 5)]), &mut out, t0 + secs(1.0));
    assert_eq!(out.len(), 2);
}

#[test]
fn active_series_limit_lets_known_series_on_and_expires() {
    let (limiter, telemetry) = limiter(
        r#"
        source = "label"
        label = "namespace"
        active_expiry = "64s"
        [limits]
        max_active_series = 2
        "#,
    );
    let t0 = Instant::now();
    let mut out = Vec::new();
    limiter.process_at(
        metrics(vec![
            series("a", "one"),
            series("a", "two"),
            series("a", "three"),
            series("b", "one"),
        ]),
        &mut out,
        t0,
    );
    let kept: Vec<_> = out
        .iter()
        .map(|b| (tenant_of(b).to_string(), b.items()))
        .collect();
    assert_eq!(kept, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
    assert_eq!(dropped(&telemetry, "metrics", "a", "series_limit"), 1);
    // The known series keep flowing; the third is still refused.
    out.clear();
    limiter.process_at(
        metrics(vec![series("a", "two"), series("a", "three")]),
        &mut out,
        t0 + secs(30.0),
    );
    assert_eq!(out[0].items(), 1);
    assert_eq!(
        telemetry
            .tenants
            .active
            .get_or_create(&TenantLabels {
                processor: "tenant.test".into(),
                signal: "metrics",
                tenant: "a".into()
            })
            .get(),
        2
    );
    // "one" was last seen at t0: past the expiry (64 ticks of 1s, plus one)
    // and a sweep, it no longer counts, and "three" gets its place.
    out.clear();
    limiter.process_at(
        metrics(vec![series("a", "three")]),
        &mut out,
        t0 + secs(66.0),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(dropped(&telemetry, "metrics", "a", "series_limit"), 2);
}

#[test]
fn stream_and_label_limits_on_logs() {
    let (limiter, telemetry) = limiter(
        r#"
        source = "static"
        tenant = "t"
        [limits]
        max_active_streams = 1
        max_labels_per_series = 2
        max_label_value_length = 8
        "#,
    );
    let mut out = Vec::new();
    let mut wide = stream("x", "a", 1);
    wide.labels = Labels::from_pairs([("a", "1"), ("b", "2"), ("c", "3")]);
    let mut long = stream("x", "a", 1);
    long.labels = Labels::from_pairs([("app", "much-too-long-value")]);
    limiter.process(
        logs(vec![
            stream("x", "a", 2),
            stream("x", "b", 2),
            wide,
            long,
            stream("x", "a", 1),
        ]),
        &mut out,
    );
    assert_eq!(out[0].items(), 3, "stream a, twice");
    assert_eq!(dropped(&telemetry, "logs", "t", "stream_limit"), 2);
    assert_eq!(dropped(&telemetry, "logs", "t", "too_many_labels"), 1);
    assert_eq!(dropped(&telemetry, "logs", "t", "label_value_too_long"), 1);
}

#[test]
fn traces_take_the_tenant_from_a_resource_attribute() {
    let (limiter, telemetry) = limiter(
        r#"
        source = "label"
        label = "namespace"
        attribute = "k8s.namespace.name"
        [overrides.noisy]
        records_per_second = 2
        records_burst = 2
        "#,
    );
    let resource = |ns: &str, spans: usize| ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("k8s.namespace.name", ns)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: (0..spans)
                .map(|i| Span {
                    trace_id: vec![1; 16],
                    span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        schema_url: String::new(),
    };
    let traces = Traces::new(vec![
        resource("shop", 3),
        resource("noisy", 2),
        resource("noisy", 2),
    ]);
    let mut out = Vec::new();
    limiter.process(Batch::new(traces, Ticket::untracked()), &mut out);
    let kept: Vec<_> = out
        .iter()
        .map(|b| (tenant_of(b).to_string(), b.items()))
        .collect();
    assert_eq!(
        kept,
        vec![("shop".to_string(), 3), ("noisy".to_string(), 2)]
    );
    assert_eq!(dropped(&telemetry, "traces", "noisy", "rate_limited"), 2);
}

#[test]
fn tenants_past_max_tenants_share_the_overflow_account_but_keep_their_id() {
    let (limiter, telemetry) = limiter(
        r#"
        source = "label"
        label = "namespace"
        max_tenants = 2
        [limits]
        records_per_second = 4
        records_burst = 4
        [overrides.vip]
        records_per_second = 100
        "#,
    );
    let mut out = Vec::new();
    limiter.process(
        logs(vec![
            stream("a", "x", 1),
            stream("b", "x", 1),
            stream("c", "x", 3),
            stream("d", "x", 3),
            stream("vip", "x", 50),
        ]),
        &mut out,
    );
    let kept: Vec<_> = out
        .iter()
        .map(|b| (tenant_of(b).to_string(), b.items()))
        .collect();
    assert_eq!(
        kept,
        vec![
            ("a".to_string(), 1),
            ("b".to_string(), 1),
            ("c".to_string(), 3),
            ("vip".to_string(), 50)
        ],
        "c and d share one bucket of 4; a tenant with an override is always tracked"
    );
    assert_eq!(dropped(&telemetry, "logs", OVERFLOW, "rate_limited"), 3);
    let page = telemetry.encode();
    assert!(page.contains(r#"ferro_tenant_overflow_items_total{kind="processor",component="tenant.test",signal="logs"} 3"#), "{page}");
    assert!(
        page.contains(
            r#"ferro_tenant_tracked{kind="processor",component="tenant.test",signal="logs"} 3"#
        ),
        "{page}"
    );
}

#[test]
fn invalid_tenant_names_are_dropped_and_counted() {
    let (limiter, telemetry) = limiter("source = \"label\"\nlabel = \"namespace\"");
    let mut out = Vec::new();
    limiter.process(
        logs(vec![stream("has space", "x", 2), stream("ok", "x", 1)]),
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(tenant_of(&out[0]), "ok");
    assert_eq!(dropped(&telemetry, "logs", INVALID, "invalid_tenant"), 2);
    // Without the label: the default tenant.
    out.clear();
    let mut unnamed = stream("x", "x", 1);
    unnamed.labels = Labels::from_pairs([("app", "x")]);
    limiter.process(logs(vec![unnamed]), &mut out);
    assert_eq!(tenant_of(&out[0]), DEFAULT_TENANT);
}

#[test]
fn idle_tenants_are_forgotten_with_their_counters() {
    let (limiter, telemetry) = limiter(
        r#"
        source = "label"
        label = "namespace"
        active_expiry = "10s"
        [limits]
        records_per_second = 1
        records_burst = 1
        "#,
    );
    let t0 = Instant::now();
    let mut out = Vec::new();
    limiter.process_at(
        logs(vec![stream("gone", "x", 1), stream("gone", "x", 1)]),
        &mut out,
        t0,
    );
    assert!(telemetry.encode().contains(r#"tenant="gone""#));
    limiter.process_at(
        logs(vec![stream("other", "x", 1)]),
        &mut out,
        t0 + secs(12.0),
    );
    let page = telemetry.encode();
    assert!(!page.contains(r#"tenant="gone""#), "{page}");
    assert_eq!(
        limiter.state(Signal::Logs).tenants.len(),
        2,
        "overflow and `other`"
    );
}

#[test]
fn admission_refuses_a_tenant_over_its_rate_and_admitted_data_is_charged_not_dropped() {
    let (limiter, telemetry) = limiter(
        r#"
        source = "header"
        refuse = true
        [limits]
        records_per_second = 10
        records_burst = 10
        "#,
    );
    let t0 = Instant::now();
    let noisy = HeaderValue::from_static("noisy");
    let admit = |batch: &mut Batch<Logs>, org_id: &HeaderValue, at: Instant| {
        let bytes = batch.bytes;
        limiter.admit_at(Some(org_id), &mut batch.data, bytes, at)
    };
    // Two pushes admitted before either is processed: the second sees what
    // the first took (10 - 8 = 2 tokens, still one to pass on).
    let mut pushes = Vec::new();
    for _ in 0..2 {
        let mut batch = logs(vec![stream("x", "a", 8)]);
        batch.tenancy.org_id = Some(noisy.clone());
        let reservation = admit(&mut batch, &noisy, t0).expect("admitted");
        batch.tenancy.admitted = admitted(&reservation);
        pushes.push(batch);
    }
    // 6 records owed: 0.7s until a token is back, processed or not.
    let mut one = logs(vec![stream("x", "a", 1)]);
    assert_eq!(admit(&mut one, &noisy, t0).unwrap_err(), secs(0.7));
    let mut out = Vec::new();
    for batch in pushes {
        limiter.process_at(batch, &mut out, t0);
    }
    assert_eq!(
        out.iter().map(|b| b.items()).sum::<usize>(),
        16,
        "admitted: charged once, at admission, and not dropped"
    );
    assert_eq!(dropped(&telemetry, "logs", "noisy", "rate_limited"), 0);
    assert_eq!(admit(&mut one, &noisy, t0).unwrap_err(), secs(0.7));
    assert!(admit(&mut one, &noisy, t0 + secs(0.75)).is_ok());
    let quiet = HeaderValue::from_static("quiet");
    assert!(
        admit(&mut one, &quiet, t0).is_ok(),
        "another tenant is not held back"
    );
    // Not admitted (a pull receiver): dropped as usual. 0.5 tokens are left.
    let mut batch = logs(vec![stream("x", "a", 2)]);
    batch.tenancy.org_id = Some(noisy);
    out.clear();
    limiter.process_at(batch, &mut out, t0 + secs(0.75));
    assert!(out.is_empty());
    assert_eq!(dropped(&telemetry, "logs", "noisy", "rate_limited"), 2);
}

#[test]
fn a_released_admission_gives_its_tokens_back() {
    let (limiter, _) = limiter(
        r#"
        source = "header"
        refuse = true
        [limits]
        records_per_second = 1
        records_burst = 10
        "#,
    );
    let t0 = Instant::now();
    let tenant = HeaderValue::from_static("t");
    let mut ten = Logs::new(vec![stream("x", "a", 10)]);
    let mut one = Logs::new(vec![stream("x", "a", 1)]);
    let reservation = limiter.admit_at(Some(&tenant), &mut ten, 100, t0).unwrap();
    assert!(limiter.admit_at(Some(&tenant), &mut one, 10, t0).is_err());
    // The pipelines did not take the push: the sender will retry it.
    limiter.release(reservation);
    let _taken = limiter.admit_at(Some(&tenant), &mut ten, 100, t0).unwrap();
    assert_eq!(
        limiter
            .admit_at(Some(&tenant), &mut one, 10, t0)
            .unwrap_err(),
        secs(1.0)
    );
}

/// A processor before the tenant one (here: by hand) gives a pushed stream
/// its tenant label after admission: that tenant is charged when the batch
/// is processed, not skipped, and the push is still not dropped.
#[test]
fn a_tenant_admission_did_not_see_is_charged_when_processed() {
    let (limiter, telemetry) = limiter(
        r#"
        source = "label"
        label = "namespace"
        refuse = true
        [limits]
        records_per_second = 1
        records_burst = 5
        "#,
    );
    let t0 = Instant::now();
    let mut batch = logs(vec![Stream {
        labels: Labels::from_pairs([("app", "a")]),
        entries: (0..4).map(|i| Entry::new(i, "x")).collect(),
    }]);
    let bytes = batch.bytes;
    let reservation = limiter.admit_at(None, &mut batch.data, bytes, t0).unwrap();
    batch.tenancy.admitted = admitted(&reservation);
    // Enriched after admission: the stream's tenant is now `team-a`.
    batch.data.streams[0].labels = Labels::from_pairs([("app", "a"), ("namespace", "team-a")]);
    let mut out = Vec::new();
    limiter.process_at(batch, &mut out, t0);
    assert_eq!(
        out.iter().map(|b| b.items()).sum::<usize>(),
        4,
        "not dropped"
    );
    assert_eq!(dropped(&telemetry, "logs", "team-a", "rate_limited"), 0);
    // `team-a` was charged 4 of its 5: a push of 2 more passes (debt), the
    // next waits.
    let mut two = Logs::new(vec![stream("team-a", "a", 2)]);
    let _taken = limiter.admit_at(None, &mut two, 20, t0).unwrap();
    assert!(limiter.admit_at(None, &mut two, 20, t0).is_err());
}

#[test]
fn admission_looks_at_each_group_with_a_label_source() {
    let (limiter, _) = limiter(
        r#"
        source = "label"
        label = "namespace"
        refuse = true
        [overrides.noisy]
        records_per_second = 1
        records_burst = 1
        "#,
    );
    let t0 = Instant::now();
    let mut out = Vec::new();
    limiter.process_at(logs(vec![stream("noisy", "a", 3)]), &mut out, t0);
    let mut quiet_only = Logs::new(vec![stream("quiet", "a", 3)]);
    assert!(limiter.admit_at(None, &mut quiet_only, 30, t0).is_ok());
    let mut mixed = Logs::new(vec![stream("quiet", "a", 3), stream("noisy", "b", 1)]);
    assert_eq!(
        limiter.admit_at(None, &mut mixed, 40, t0).unwrap_err(),
        secs(3.0)
    );
}

#[test]
fn batcher_keeps_tenants_apart() {
    use crate::processors::batch::{BatchConfig, Batcher};
    let mut batcher = Batcher::new(BatchConfig {
        send_batch_size: 4,
        send_batch_max_size: None,
        timeout: crate::config::HumanDuration::from_secs(1),
    });
    let tagged = |tenant: &'static str, n: usize| {
        let mut batch = logs(vec![stream("x", "a", n)]);
        batch.tenancy.tenant = Some(HeaderValue::from_static(tenant));
        batch
    };
    let mut out = Vec::new();
    batcher.push(tagged("a", 2), &mut out);
    batcher.push(tagged("b", 3), &mut out);
    batcher.push(tagged("a", 2), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!((tenant_of(&out[0]), out[0].items()), ("a", 4));
    batcher.flush(&mut out);
    assert_eq!((tenant_of(&out[1]), out[1].items()), ("b", 3));
}

#[test]
fn batcher_before_a_header_tenant_processor_keeps_org_ids_and_admissions_apart() {
    use crate::processors::batch::{BatchConfig, Batcher};
    let (limiter, _) = limiter(r#"source = "header""#);
    let config = BatchConfig {
        send_batch_size: 100,
        send_batch_max_size: None,
        timeout: crate::config::HumanDuration::from_secs(1),
    };
    // Without a tenant processor after it, only the tenant counts.
    let mut plain = Batcher::new(config.clone());
    let mut batcher = Batcher::new(config).keeping_origins();
    let pushed = |org_id: &'static str, admitted: bool| {
        let mut batch = logs(vec![stream("x", "a", 2)]);
        batch.tenancy.org_id = Some(HeaderValue::from_static(org_id));
        batch.tenancy.admitted = admitted.then(|| {
            Arc::new(Admission {
                by: vec!["tenant.t".into()],
                charged: vec![("tenant.t".into(), org_id.into())],
            })
        });
        batch
    };
    let mut out = Vec::new();
    plain.push(pushed("a", true), &mut out);
    plain.push(pushed("b", false), &mut out);
    plain.flush(&mut out);
    assert_eq!(out.len(), 1, "merged");
    assert_eq!(out[0].tenancy.org_id, None, "two org IDs: none kept");
    assert_eq!(out[0].tenancy.admitted, None);
    out.clear();
    batcher.push(pushed("a", true), &mut out);
    batcher.push(pushed("b", true), &mut out);
    batcher.push(pushed("a", true), &mut out);
    batcher.push(pushed("a", false), &mut out);
    batcher.flush(&mut out);
    let mut processed = Vec::new();
    for batch in out {
        limiter.process(batch, &mut processed);
    }
    let sent: Vec<_> = processed
        .iter()
        .map(|b| (tenant_of(b), b.items(), b.tenancy.admitted.is_some()))
        .collect();
    assert_eq!(sent, [("a", 4, true), ("b", 2, true), ("a", 2, false)]);
}

/// A push whose sender goes away while it waits for room in a full
/// pipeline gives its charge back: the tenant is not charged for data that
/// was never accepted. (The 50 ms the push is given runs on paused time:
/// the push has gone as far as it can when it is dropped.)
#[tokio::test(start_paused = true)]
async fn a_push_dropped_while_it_waits_for_room_gives_its_charge_back() {
    use crate::delivery::PipelineInputs;
    let (limiter, _) = limiter(
        r#"
        source = "header"
        refuse = true
        [limits]
        records_per_second = 1
        records_burst = 4
        "#,
    );
    let limiter = Arc::new(limiter);
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    tx.try_send(logs(vec![stream("x", "a", 1)])).unwrap();
    let inputs = PipelineInputs::new(vec![tx], Duration::from_secs(60))
        .with_admission(vec![limiter.clone()]);
    let tenant = HeaderValue::from_static("t");
    let mut push = logs(vec![stream("x", "a", 4)]);
    push.tenancy.org_id = Some(tenant.clone());
    let waited = tokio::time::timeout(Duration::from_millis(50), inputs.admit_and_send(push)).await;
    assert!(waited.is_err(), "the pipeline is full: the push waits");
    // The whole burst is there again: four pass, then nothing.
    let mut four = Logs::new(vec![stream("x", "a", 4)]);
    let _taken = limiter.admit(Some(&tenant), &mut four, 40).unwrap();
    assert!(limiter.admit(Some(&tenant), &mut four, 40).is_err());
}
