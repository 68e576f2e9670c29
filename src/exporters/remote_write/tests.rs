use super::*;
use std::time::Duration;

fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn success_and_partial_writes() {
    let ok = classify(
        http::StatusCode::NO_CONTENT,
        &headers(&[]),
        b"",
        10,
        ProtocolVersion::V1,
    )
    .unwrap();
    assert_eq!(ok.rejected_items, 0);
    let partial = classify(
        http::StatusCode::OK,
        &headers(&[
            ("X-Prometheus-Remote-Write-Samples-Written", "7"),
            ("X-Prometheus-Remote-Write-Histograms-Written", "1"),
        ]),
        b"2 samples were out of order",
        10,
        ProtocolVersion::V2,
    )
    .unwrap();
    assert_eq!(partial.rejected_items, 2);
}

#[test]
fn retryable_and_permanent_answers() {
    let e = classify(
        http::StatusCode::TOO_MANY_REQUESTS,
        &headers(&[("Retry-After", "7")]),
        b"slow down",
        1,
        ProtocolVersion::V1,
    )
    .unwrap_err();
    assert!(e.retryable);
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    let e = classify(
        http::StatusCode::SERVICE_UNAVAILABLE,
        &headers(&[]),
        b"",
        1,
        ProtocolVersion::V1,
    )
    .unwrap_err();
    assert!(e.retryable);
    let cases = [
        ("out of order sample", "out_of_order"),
        ("duplicate sample for timestamp", "duplicate"),
        ("out of bounds", "too_old"),
        ("invalid labels", "http_4xx"),
    ];
    for (body, reason) in cases {
        let e = classify(
            http::StatusCode::BAD_REQUEST,
            &headers(&[]),
            body.as_bytes(),
            1,
            ProtocolVersion::V1,
        )
        .unwrap_err();
        assert!(!e.retryable, "{body}");
        assert_eq!(e.reason, reason);
        assert!(e.message.contains(body), "the server's message is kept");
    }
    let e = classify(
        http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        &headers(&[]),
        b"",
        1,
        ProtocolVersion::V2,
    )
    .unwrap_err();
    assert_eq!(e.reason, "unsupported_protocol");
    assert!(e.message.contains("protocol_version"));
}

#[test]
fn basic_and_bearer_authorization() {
    let raw: RawRemoteWriteConfig = toml::from_str(
        r#"endpoint = "http://mimir:8080/api/v1/push"
basic_auth = { username = "user", password = "pass" }
tenant_id = "team-a""#,
    )
    .unwrap();
    let config = crate::config::Validate::validate(raw).unwrap();
    assert_eq!(
        config.http.credentials.header().unwrap().unwrap(),
        "Basic dXNlcjpwYXNz"
    );
    assert!(
        config
            .http
            .headers
            .iter()
            .any(|(n, v)| n == "x-scope-orgid" && v == "team-a")
    );
    let raw: RawRemoteWriteConfig =
        toml::from_str("endpoint = \"http://x/push\"\nbearer_token = \"t0k\"\nbasic_auth = { username = \"u\", password = \"p\" }").unwrap();
    let errors = crate::config::Validate::validate(raw).unwrap_err();
    assert!(errors.iter().any(|e| e.message.contains("use one of")));
}

#[test]
fn samples_past_max_sample_age_are_dropped_and_counted() {
    use crate::signal::metrics::{Sample, Series};
    use crate::signal::{Labels, Metrics};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let sample = |age_s: i64| Sample {
        value: 1.0,
        timestamp_ms: now - age_s * 1000,
    };
    let mut fresh = Series::new(Labels::from_pairs([("__name__", "fresh")]));
    fresh.samples = vec![sample(7200), sample(30), sample(1)];
    let mut stale = Series::new(Labels::from_pairs([("__name__", "old")]));
    stale.samples = vec![sample(7200), sample(3601)];
    let mut metrics = Metrics {
        series: vec![fresh, stale],
        metadata: Vec::new(),
    };
    let dropped = super::sink::drop_older_than(&mut metrics, std::time::Duration::from_secs(3600));
    assert_eq!(dropped, 3);
    assert_eq!(metrics.series.len(), 1, "a series left empty goes");
    assert_eq!(metrics.series[0].samples.len(), 2);
    let raw: RawRemoteWriteConfig =
        toml::from_str("endpoint = \"http://mimir/api/v1/push\"\nmax_sample_age = \"1h\"").unwrap();
    let config = crate::config::Validate::validate(raw).unwrap();
    assert_eq!(
        config.max_sample_age,
        Some(std::time::Duration::from_secs(3600))
    );
}
