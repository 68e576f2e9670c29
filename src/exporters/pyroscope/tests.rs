use super::*;
use crate::config::Validate;
use crate::signal::Labels;
use crate::signal::profiles::Profile;
use crate::signal::profiles::tests::profile;
use bytes::Bytes;
use ferro_proto::push::v1::PushRequest;
use prost::Message;

fn config(extra: &str) -> Result<PyroscopeConfig, Vec<crate::config::FieldError>> {
    let text = format!("endpoint = \"http://pyroscope:4040/\"\n{extra}");
    let raw: RawPyroscopeConfig = toml::from_str(&text).unwrap();
    raw.validate()
}

fn with_labels(mut p: Profile, pairs: &[(&str, &str)]) -> Profile {
    p.labels = Labels::from_pairs(pairs.iter().copied());
    p
}

#[test]
fn push_request_groups_series_and_decodes_with_pyroscopes_schema() {
    let a = profile("api", 10);
    let b = profile("db", 20);
    let a2 = Profile {
        pprof: Bytes::from_static(b"second"),
        ..profile("api", 0)
    };
    let body = encode::push_request(&[a.clone(), b, a2]);
    let request = PushRequest::decode(body).unwrap();
    assert_eq!(request.series.len(), 2);
    let labels: Vec<(&str, &str)> = request.series[0]
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(
        labels,
        [("__name__", "process_cpu"), ("service_name", "api")]
    );
    let samples = &request.series[0].samples;
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].raw_profile, a.pprof.to_vec());
    assert_eq!(samples[1].raw_profile, b"second");
    assert_eq!(samples[0].id.len(), 36);
    assert_ne!(samples[0].id, samples[1].id);
    assert_eq!(request.series[1].samples[0].raw_profile.len(), 20);
}

#[test]
fn labels_pyroscope_refuses_are_named() {
    let ok = profile("api", 1);
    assert_eq!(encode::check_labels(&ok.labels), Ok(()));
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "missing_labels"),
        (&[("service_name", "a")], "invalid_profile_name"),
        (
            &[("__name__", "process-cpu"), ("service_name", "a")],
            "invalid_profile_name",
        ),
        (&[("__name__", "memory")], "missing_service_name"),
        (
            &[
                ("__name__", "memory"),
                ("service_name", "a"),
                ("k8s-pod", "x"),
            ],
            "invalid_labels",
        ),
    ];
    for (pairs, reason) in cases {
        let p = with_labels(profile("x", 1), pairs);
        assert_eq!(encode::check_labels(&p.labels), Err(*reason), "{pairs:?}");
    }
    let many: Vec<(String, String)> = (0..31).map(|i| (format!("l{i}"), "v".into())).collect();
    let mut labels =
        Labels::from_pairs(many.iter().map(|(n, v)| (n.as_str(), v.as_str()))).to_builder();
    labels.set("__name__", "memory");
    labels.set("service_name", "a");
    assert_eq!(
        encode::check_labels(&labels.labels()),
        Err("max_label_names_per_series")
    );
    let long = "v".repeat(2049);
    let p = with_labels(
        profile("x", 1),
        &[("__name__", "memory"), ("service_name", &long)],
    );
    assert_eq!(encode::check_labels(&p.labels), Err("label_value_too_long"));
}

#[test]
fn ingest_query_carries_the_key_and_the_time_range_in_seconds() {
    let mut p = with_labels(
        profile("x", 1),
        &[
            ("__name__", "process_cpu"),
            ("service_name", "checkout"),
            ("env", "prod"),
            ("pod", "a-1"),
        ],
    );
    p.start_ns = 1_700_000_000_500_000_000;
    p.end_ns = 1_700_000_010_000_000_000;
    assert_eq!(
        encode::ingest_query(&p).unwrap(),
        "name=checkout%7Benv%3Dprod%2Cpod%3Da-1%7D&from=1700000000&until=1700000010&format=pprof&spyName=ferro"
    );
    // Reserved labels stay out of the key; the spy label is spyName.
    let p = with_labels(
        p,
        &[
            ("__name__", "process_cpu"),
            ("__delta__", "false"),
            ("service_name", "checkout"),
            ("pyroscope_spy", "gospy"),
            ("env", "prod"),
        ],
    );
    assert_eq!(
        encode::ingest_query(&p).unwrap(),
        "name=checkout%7Benv%3Dprod%7D&from=1700000000&until=1700000010&format=pprof&spyName=gospy"
    );
    let bad = with_labels(
        profile("x", 1),
        &[("__name__", "memory"), ("service_name", "a"), ("q", "a=b")],
    );
    assert_eq!(
        encode::ingest_query(&bad),
        Err("label_not_representable_in_ingest_key")
    );
}

#[test]
fn ingest_form_names_the_profile_type_in_sample_type_config() {
    use crate::signal::profiles::SampleType;
    let contention = |name: &str, delta: Option<&str>| {
        let mut labels = vec![("__name__", name), ("service_name", "shop")];
        labels.extend(delta.map(|d| ("__delta__", d)));
        let mut p = with_labels(profile("shop", 0), &labels);
        p.pprof = Bytes::from_static(b"\x1f\x8bpprof bytes");
        p.sample_types = ["contentions", "delay"]
            .into_iter()
            .map(|kind| SampleType {
                kind: kind.into(),
                unit: "count".into(),
            })
            .collect();
        p
    };
    let form = |p: &Profile| {
        let (content_type, body) = encode::ingest_form(p);
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        let parts = crate::receivers::pprof::push::multipart_parts(&body, boundary).unwrap();
        assert_eq!(parts[0].0, "profile");
        assert_eq!(parts[0].1, p.pprof, "the profile travels as it is");
        assert_eq!(parts[1].0, "sample_type_config");
        serde_json::from_slice::<serde_json::Value>(&parts[1].1).unwrap()
    };
    let mutex = form(&contention("mutex", None));
    assert_eq!(mutex["contentions"]["display-name"], "mutex_count");
    assert_eq!(mutex["delay"]["display-name"], "mutex_duration");
    assert_eq!(mutex["delay"]["units"], "lock_nanoseconds");
    assert!(
        mutex["delay"].get("cumulative").is_none(),
        "/ingest subtracts nothing: no type is marked cumulative"
    );
    let block = form(&contention("block", Some("false")));
    assert_eq!(block["contentions"]["display-name"], "block_count");
    // A Go CPU profile: `samples` is shown as `cpu`, so `cpu` is not listed.
    let mut cpu = with_labels(profile("shop", 0), &[("__name__", "process_cpu")]);
    cpu.sample_types = [("samples", "count"), ("cpu", "nanoseconds")]
        .into_iter()
        .map(|(kind, unit)| SampleType {
            kind: kind.into(),
            unit: unit.into(),
        })
        .collect();
    let cpu = form(&cpu);
    assert_eq!(cpu["samples"]["display-name"], "cpu");
    assert!(cpu.get("cpu").is_none(), "{cpu}");
    // A custom type: no config, the server's own mapping applies.
    let custom = contention("fgprof", None);
    let (_, body) = encode::ingest_form(&custom);
    assert!(!String::from_utf8_lossy(&body).contains("sample_type_config"));
    // A boundary is never a run of bytes in the profile.
    let mut tricky = contention("mutex", None);
    tricky.pprof = Bytes::from_static(b"--ferro-profile-form\r\n");
    assert_eq!(form(&tricky)["contentions"]["display-name"], "mutex_count");
}

#[test]
fn config_defaults_and_errors() {
    let c = config("").unwrap();
    assert_eq!(c.url(), "http://pyroscope:4040/push.v1.PusherService/Push");
    assert_eq!(c.api, Api::Push);
    assert_eq!(c.compression, Compression::Gzip);
    assert_eq!(c.max_request_size, 4 << 20);
    let c = config("api = \"ingest\"\ntenant_id = \"team-a\"").unwrap();
    assert_eq!(c.url(), "http://pyroscope:4040/ingest");
    assert_eq!(c.http.tenant_id.unwrap(), "team-a");
    let errors = config(
        "tenant_id = \"a b\"\nmax_request_size = 0\nheaders = { \"X-Scope-OrgID\" = \"x\" }",
    )
    .unwrap_err();
    // Which fields, not in which order: `ferro validate` sorts them by line.
    let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["headers.X-Scope-OrgID", "max_request_size", "tenant_id"]
    );
}

#[test]
fn answers_are_classified_as_pyroscope_means_them() {
    assert!(classify(http::StatusCode::OK, None, "").is_ok());
    let e = classify(
        http::StatusCode::TOO_MANY_REQUESTS,
        Some(std::time::Duration::from_secs(3)),
        "{\"code\":\"resource_exhausted\"}",
    )
    .unwrap_err();
    assert!(e.retryable);
    assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(3)));
    assert!(
        classify(http::StatusCode::SERVICE_UNAVAILABLE, None, "")
            .unwrap_err()
            .retryable
    );
    let e = classify(
        http::StatusCode::BAD_REQUEST,
        None,
        "{\"code\":\"invalid_argument\",\"message\":\"invalid labels\"}",
    )
    .unwrap_err();
    assert!(!e.retryable);
    assert_eq!(e.reason, "invalid_argument");
    assert!(e.message.contains("invalid labels"), "{}", e.message);
}
