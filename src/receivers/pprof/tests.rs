use super::config::BUILT_IN;
use super::kubernetes::pod_groups;
use super::push::{multipart_parts, parse_key, parse_query};
use super::scrape::targets;
use super::*;
use crate::config::ComponentId;
use crate::config::Validate;
use crate::delivery::Batch;
use crate::delivery::MemoryLimiter;
use crate::delivery::PipelineInputs;
use crate::signal::Profiles;
use crate::signal::Signal;
use crate::telemetry::Telemetry;
use bytes::Bytes;
use http::HeaderValue;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn config(text: &str) -> Result<PprofConfig, Vec<crate::config::FieldError>> {
    let raw: RawPprofConfig = toml::from_str(text).unwrap();
    raw.validate()
}

const JOB: &str = r#"
scrape_interval = "15s"
[[scrape_configs]]
job_name = "go"
static_configs = [
  { targets = ["10.0.0.1:6060"], labels = { service_name = "checkout", env = "prod" } },
  { targets = ["10.0.0.2:6060"] },
]
"#;

#[test]
fn every_built_in_profile_type_is_scraped_with_cpu_over_the_interval() {
    let config = config(JOB).unwrap();
    let job = &config.scrape_configs[0];
    assert_eq!(job.job.scrape_timeout, std::time::Duration::from_secs(18));
    assert_eq!(job.profiles.len(), BUILT_IN.len());
    let found = targets(job, &job.job.static_configs);
    assert_eq!(found.len(), 2 * BUILT_IN.len());
    let cpu = found
        .iter()
        .find(|t| {
            t.url.starts_with("http://10.0.0.1:6060/")
                && t.labels.get("__name__") == Some("process_cpu")
        })
        .unwrap();
    assert_eq!(
        cpu.url,
        "http://10.0.0.1:6060/debug/pprof/profile?seconds=14"
    );
    assert_eq!(
        cpu.labels.to_string(),
        r#"{__name__="process_cpu", env="prod", instance="10.0.0.1:6060", job="go", service_name="checkout"}"#
    );
    let memory = found
        .iter()
        .find(|t| {
            t.url.starts_with("http://10.0.0.2:6060/") && t.labels.get("__name__") == Some("memory")
        })
        .unwrap();
    assert_eq!(memory.url, "http://10.0.0.2:6060/debug/pprof/allocs");
    // Without a service_name label, the job names the service.
    assert_eq!(memory.labels.get("service_name"), Some("go"));
}

#[test]
fn profile_types_can_be_disabled_moved_and_added() {
    let text = format!(
        "{JOB}profiles.goroutine = {{ enabled = false }}\nprofiles.memory = {{ path = \"/debug/pprof/heap\" }}\nprofiles.fgprof = {{ path = \"/debug/fgprof\", delta = true }}\n"
    );
    let config = config(&text).unwrap();
    let job = &config.scrape_configs[0];
    let names: Vec<&str> = job.profiles.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["process_cpu", "memory", "mutex", "block", "fgprof"]);
    let found = targets(job, &job.job.static_configs[..1]);
    let urls: Vec<&str> = found.iter().map(|t| t.url.as_str()).collect();
    assert!(
        urls.contains(&"http://10.0.0.1:6060/debug/pprof/heap"),
        "{urls:?}"
    );
    assert!(
        urls.contains(&"http://10.0.0.1:6060/debug/fgprof?seconds=14"),
        "{urls:?}"
    );
    // A delta profile is labelled so that Pyroscope does not subtract it
    // again; Go's cumulative totals are not.
    let delta = |name: &str| {
        let target = found
            .iter()
            .find(|t| t.labels.get("__name__") == Some(name));
        target.unwrap().labels.get("__delta__").map(str::to_string)
    };
    assert_eq!(delta("fgprof").as_deref(), Some("false"));
    assert_eq!(delta("memory"), None);
    assert_eq!(delta("process_cpu"), None);
}

#[test]
fn relabelling_is_prometheus_own() {
    let text = format!(
        "{JOB}relabel_configs = [\n  {{ source_labels = [\"__address__\"], regex = \"10.0.0.2:.*\", action = \"drop\" }},\n  {{ target_label = \"cluster\", replacement = \"eu-1\" }},\n]\n"
    );
    let config = config(&text).unwrap();
    let job = &config.scrape_configs[0];
    let found = targets(job, &job.job.static_configs);
    assert_eq!(found.len(), BUILT_IN.len());
    assert!(
        found
            .iter()
            .all(|t| t.labels.get("cluster") == Some("eu-1"))
    );
}

#[test]
fn config_errors_are_reported_together() {
    let errors = config(
        r#"
scrape_interval = "1s"
[[scrape_configs]]
job_name = "a"
scheme = "ftp"
profiles.custom = { enabled = true }
profiles.memory = { path = "debug/heap" }
[[scrape_configs]]
job_name = "a"
scrape_interval = "30s"
scrape_timeout = "10s"
"#,
    )
    .unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "scrape_configs.0.scrape_interval",
            "scrape_configs.0.scheme",
            "scrape_configs.0.profiles.custom",
            "scrape_configs.0.profiles.memory.path",
            "scrape_configs.1.job_name",
            "scrape_configs.1.scrape_timeout",
        ]
    );
    assert!(config("").unwrap_err()[0].message.contains("listen"));
}

#[test]
fn ingest_keys_and_queries_parse_as_pyroscope_writes_them() {
    let key = parse_key("checkout.cpu{env=prod, region = eu}").unwrap();
    assert_eq!(key.service, "checkout");
    assert_eq!(key.kind, Some("process_cpu"));
    assert_eq!(
        key.labels,
        [
            ("env".to_string(), "prod".to_string()),
            ("region".into(), "eu".into())
        ]
    );
    let key = parse_key("my.app").unwrap();
    assert_eq!(
        (key.service.as_str(), key.kind, key.labels.len()),
        ("my.app", None, 0)
    );
    assert!(parse_key("app{env=prod").is_err());
    assert!(parse_key("app{bad-name=x}").is_err());
    assert!(parse_key("app{otel.scope.name=x}").is_ok());
    assert!(parse_key(".cpu{}").is_err());
    let query = parse_query(
        "name=checkout.alloc_space%7Benv%3Dprod%7D&from=1700000000&until=1700000010000&format=pprof&spyName=gospy&sampleRate=100",
    )
    .unwrap();
    assert_eq!(query.name, "checkout.alloc_space{env=prod}");
    assert_eq!(query.from, Some(1_700_000_000_000_000_000));
    assert_eq!(query.until, Some(1_700_000_010_000_000_000));
    assert_eq!(query.format.as_deref(), Some("pprof"));
    assert_eq!(query.spy_name.as_deref(), Some("gospy"));
    assert!(parse_query("from=1").is_err());
    assert!(parse_query("name=a&from=yesterday").is_err());
}

#[test]
fn multipart_parts_are_found_by_name() {
    let body = Bytes::from_static(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n\x1f\x8b\r\nbinary\r\n--XyZ\r\nContent-Disposition: form-data; name=\"sample_type_config\"\r\n\r\n{\"cpu\":{}}\r\n--XyZ--\r\n",
    );
    let parts = multipart_parts(&body, "XyZ").unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].0, "profile");
    assert_eq!(&parts[0].1[..], b"\x1f\x8b\r\nbinary");
    assert_eq!(
        parts[1],
        (
            "sample_type_config".to_string(),
            Bytes::from_static(b"{\"cpu\":{}}")
        )
    );
    assert!(multipart_parts(&Bytes::from_static(b"no delimiter"), "XyZ").is_none());
    assert!(multipart_parts(&Bytes::from_static(b"--XyZ\r\nno end"), "XyZ").is_none());
}

/// A pod of `k8s::tests::pod_json` with `annotations`, declaring the ports
/// `http-pprof` (6060) and `http` (8080).
fn pod(name: &str, ip: &str, annotations: serde_json::Value) -> k8s_openapi::api::core::v1::Pod {
    let mut p = crate::k8s::tests::pod_json("shop", name, &format!("uid-{name}"), Some(ip));
    p["metadata"]["annotations"] = annotations;
    p["spec"]["containers"][0]["ports"] = serde_json::json!([
        {"name": "http-pprof", "containerPort": 6060, "protocol": "TCP"},
        {"name": "http", "containerPort": 8080, "protocol": "TCP"}
    ]);
    serde_json::from_value(p).unwrap()
}

#[test]
fn pod_annotations_become_one_group_per_enabled_profile_type() {
    let cache = crate::k8s::tests::cache_with(vec![
        pod(
            "checkout-7d9",
            "10.1.2.3",
            serde_json::json!({
                "profiles.grafana.com/cpu.scrape": "true",
                "profiles.grafana.com/cpu.port_name": "http-pprof",
                "profiles.grafana.com/memory.scrape": "true",
                "profiles.grafana.com/memory.port": "6060",
                "profiles.grafana.com/memory.path": "/debug/pprof/heap",
                "profiles.grafana.com/fgprof.scrape": "true",
                "profiles.grafana.com/fgprof.port": "6060",
                // Disabled in the job: not scraped although annotated.
                "profiles.grafana.com/goroutine.scrape": "true",
                "profiles.grafana.com/goroutine.port": "6060",
                "profiles.grafana.com/mutex.scrape": "false",
                "profiles.grafana.com/mutex.port": "6060"
            }),
        ),
        pod("quiet", "10.1.2.4", serde_json::json!({})),
    ]);
    let text = format!(
        "{JOB}kubernetes_sd_configs = [{{ role = \"pod\" }}]\nprofiles.goroutine = {{ enabled = false }}\nprofiles.fgprof = {{ path = \"/debug/fgprof\", delta = true }}\nrelabel_configs = [{{ source_labels = [\"__meta_kubernetes_namespace\", \"__meta_kubernetes_pod_container_name\"], separator = \"/\", target_label = \"service_name\" }}, {{ source_labels = [\"__meta_kubernetes_pod_name\"], target_label = \"pod\" }}]\n"
    );
    let parsed = config(&text).unwrap();
    assert!(parsed.uses_pod_cache());
    let job = &parsed.scrape_configs[0];
    let groups = pod_groups(&job.kubernetes_sd_configs, &cache.pods());
    let types: Vec<&str> = groups
        .iter()
        .map(|g| g.labels["__profile_type__"].as_str())
        .collect();
    assert_eq!(types, ["process_cpu", "memory", "fgprof"]);
    assert!(groups.iter().all(|g| g.targets == ["10.1.2.3:6060"]));
    assert_eq!(
        groups[0].labels["__meta_kubernetes_pod_container_port_name"],
        "http-pprof"
    );
    assert_eq!(groups[1].labels["__profile_path__"], "/debug/pprof/heap");
    assert_eq!(
        groups[0].labels["__meta_kubernetes_pod_uid"],
        "uid-checkout-7d9"
    );

    // The groups drive the job's targets: one profile type each, at its
    // path (the job's path and delta when not annotated), relabelled.
    let found = targets(job, &groups);
    let urls: Vec<&str> = found.iter().map(|t| t.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "http://10.1.2.3:6060/debug/fgprof?seconds=14",
            "http://10.1.2.3:6060/debug/pprof/heap",
            "http://10.1.2.3:6060/debug/pprof/profile?seconds=14",
        ]
    );
    for t in &found {
        assert_eq!(t.labels.get("service_name"), Some("shop/app"));
        assert_eq!(t.labels.get("pod"), Some("checkout-7d9"));
        assert_eq!(t.labels.get("instance"), Some("10.1.2.3:6060"));
        assert!(t.labels.get("__profile_type__").is_none());
        assert!(t.labels.get("__meta_kubernetes_namespace").is_none());
    }
}

#[test]
fn pod_discovery_can_take_every_port_or_another_prefix() {
    let cache = crate::k8s::tests::cache_with(vec![pod(
        "web",
        "10.1.2.3",
        serde_json::json!({
            "pyroscope.example/cpu.scrape": "true",
            "pyroscope.example/cpu.port": "6060"
        }),
    )]);
    // Every container port, with every enabled type: relabelling chooses.
    let text = format!(
        "{JOB}kubernetes_sd_configs = [{{ role = \"pod\", annotations = \"\" }}]\nrelabel_configs = [{{ source_labels = [\"__meta_kubernetes_pod_container_port_name\"], regex = \"http-pprof\", action = \"keep\" }}]\n"
    );
    let parsed = config(&text).unwrap();
    let job = &parsed.scrape_configs[0];
    let groups = pod_groups(&job.kubernetes_sd_configs, &cache.pods());
    // Both app ports and the port-less init container.
    assert_eq!(groups.len(), 3);
    assert!(
        groups
            .iter()
            .all(|g| !g.labels.contains_key("__profile_type__"))
    );
    let found = targets(job, &groups);
    assert_eq!(found.len(), BUILT_IN.len());
    assert!(
        found
            .iter()
            .all(|t| t.url.starts_with("http://10.1.2.3:6060/"))
    );

    let text = format!(
        "{JOB}kubernetes_sd_configs = [{{ role = \"pod\", annotations = \"pyroscope.example\" }}]\n"
    );
    let parsed = config(&text).unwrap();
    let job = &parsed.scrape_configs[0];
    let groups = pod_groups(&job.kubernetes_sd_configs, &cache.pods());
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].labels["__profile_type__"], "process_cpu");

    // Only the pod role, reported with its place; no discovery, no cache.
    let errors = config(&format!(
        "{JOB}kubernetes_sd_configs = [{{ role = \"node\" }}]\n"
    ))
    .unwrap_err();
    assert_eq!(
        errors[0].field,
        "scrape_configs.0.kubernetes_sd_configs.0.role"
    );
    assert!(errors[0].message.contains("only role = \"pod\""));
    assert!(!config(JOB).unwrap().uses_pod_cache());
}

/// A push server of a receiver whose pipeline is `rx`, with `admission`
/// (tenant limiters that refuse).
async fn push_server(
    admission: Vec<Arc<crate::processors::tenant::TenantLimiter>>,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::Receiver<Batch<Profiles>>,
    Arc<Telemetry>,
    CancellationToken,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let telemetry = Telemetry::new();
    let id = ComponentId::new("pprof", "push");
    let labels = Telemetry::labels("receiver", &id, Signal::Profiles);
    let shared = Arc::new(Shared {
        id,
        // As behind a tenant processor with `source = "header"`.
        inputs: PipelineInputs::new(vec![tx], std::time::Duration::from_millis(100))
            .with_admission(
                admission
                    .into_iter()
                    .map(|l| l as Arc<dyn crate::delivery::Admitter<Profiles>>)
                    .collect(),
            )
            .reading_org_id(true),
        limiter: MemoryLimiter::new(64 << 20),
        telemetry: telemetry.clone(),
        accepted: Telemetry::counter(&telemetry.accepted, &labels),
        labels,
        max_profile_size: 1 << 20,
        body: crate::net::body::BodyRules {
            max: 1 << 20,
            timeout: std::time::Duration::from_secs(20),
            min_rate: 1024,
        },
    });
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = axum::serve(
        listener,
        push::routes(shared).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stop.clone().cancelled_owned());
    tokio::spawn(async move { server.await.unwrap() });
    (addr, rx, telemetry, stop)
}

/// POSTs `body` to `path` on `addr`; the status and body of the answer.
async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String) {
    use http_body_util::BodyExt;
    let client = crate::net::http_client::client(&Default::default()).unwrap();
    let mut request = http::Request::post(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(
            request
                .body(http_body_util::Full::new(Bytes::from(body)))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A `push.v1.PushRequest` of one CPU profile of `service`.
fn push_request(service: &str) -> Vec<u8> {
    use ferro_proto::push::v1::{PushRequest, RawProfileSeries, RawSample};
    use ferro_proto::types::v1::LabelPair;
    use prost::Message;
    let profile = crate::pprof::sample::profile(crate::pprof::sample::Kind::Cpu, 5, 10, 1);
    PushRequest {
        series: vec![RawProfileSeries {
            labels: vec![LabelPair {
                name: "service_name".into(),
                value: service.into(),
            }],
            samples: vec![RawSample {
                raw_profile: crate::pprof::encode_gzip(&profile).to_vec(),
                id: String::new(),
            }],
            annotations: Vec::new(),
        }],
    }
    .encode_to_vec()
}

const PROTO: (&str, &str) = ("Content-Type", "application/proto");
const PUSH: &str = "/push.v1.PusherService/Push";

#[tokio::test]
async fn pushes_carry_their_x_scope_orgid_into_the_batch() {
    let (addr, mut rx, telemetry, stop) = push_server(Vec::new()).await;
    let org = |tenant| ("X-Scope-OrgID", tenant);

    let (status, body) = post(addr, PUSH, &[PROTO, org(" team-a ")], push_request("api")).await;
    assert_eq!(status, 200, "{body}");
    let batch = rx.recv().await.unwrap();
    assert_eq!(
        batch.tenancy.org_id,
        Some(HeaderValue::from_static("team-a"))
    );
    assert_eq!(batch.items(), 1);

    let gzip = crate::pprof::encode_gzip(&crate::pprof::sample::profile(
        crate::pprof::sample::Kind::Cpu,
        5,
        10,
        1,
    ));
    let ingest = "/ingest?name=shop.cpu&format=pprof";
    let (status, body) = post(addr, ingest, &[org("team-b")], gzip.to_vec()).await;
    assert_eq!(status, 200, "{body}");
    let batch = rx.recv().await.unwrap();
    assert_eq!(
        batch.tenancy.org_id,
        Some(HeaderValue::from_static("team-b"))
    );

    // No header: no tenant named, for the processor's default_tenant.
    let (status, _) = post(addr, PUSH, &[PROTO], push_request("api")).await;
    assert_eq!(status, 200);
    assert_eq!(rx.recv().await.unwrap().tenancy.org_id, None);

    // Not a tenant ID: refused whole with 400 and counted, on both endpoints.
    let (status, body) = post(addr, PUSH, &[PROTO, org("team/a")], push_request("api")).await;
    assert_eq!(status, 400);
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["code"], "invalid_argument");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("\"team/a\" is not a tenant ID"),
        "{body}"
    );
    let (status, _) = post(addr, ingest, &[org("..")], gzip.to_vec()).await;
    assert_eq!(status, 400);
    assert!(rx.try_recv().is_err(), "nothing refused was passed on");
    assert!(
        telemetry.encode().contains(
            r#"ferro_receiver_rejected_requests_total{kind="receiver",component="pprof.push",signal="profiles",reason="invalid_tenant"} 2"#
        ),
        "{}",
        telemetry.encode()
    );
    stop.cancel();
}

#[tokio::test]
async fn a_tenant_over_its_rate_is_refused_by_header() {
    use crate::processors::tenant::{RawTenantConfig, TenantLimiter};
    let raw: RawTenantConfig = toml::from_str(
        "source = \"header\"\nrefuse = true\nlimits = { records_per_second = 1, records_burst = 1 }",
    )
    .unwrap();
    let limiter = TenantLimiter::new(
        &ComponentId::new("tenant", "t"),
        &raw.validate().unwrap(),
        &Telemetry::new(),
    );
    let limiter = Arc::new(limiter);
    let (addr, mut rx, telemetry, stop) = push_server(vec![limiter.clone()]).await;
    let org = |tenant| ("X-Scope-OrgID", tenant);
    let (status, _) = post(addr, PUSH, &[PROTO, org("noisy")], push_request("api")).await;
    assert_eq!(status, 200);
    let batch = rx.recv().await.unwrap();
    assert!(batch.tenancy.admitted.is_some());
    // The processor in the pipeline charges the tenant's bucket.
    let mut out = Vec::new();
    limiter.process(batch, &mut out);
    assert_eq!(
        out[0].tenancy.tenant,
        Some(HeaderValue::from_static("noisy"))
    );
    let (status, body) = post(addr, PUSH, &[PROTO, org("noisy")], push_request("api")).await;
    assert_eq!(status, 429, "{body}");
    // Another tenant has a bucket of its own.
    let (status, _) = post(addr, PUSH, &[PROTO, org("quiet")], push_request("api")).await;
    assert_eq!(status, 200);
    let batch = rx.recv().await.unwrap();
    assert_eq!(
        batch.tenancy.org_id,
        Some(HeaderValue::from_static("quiet"))
    );
    assert!(rx.try_recv().is_err());
    assert!(
        telemetry.encode().contains(r#"reason="tenant_limit"} 1"#),
        "{}",
        telemetry.encode()
    );
    stop.cancel();
}

#[test]
fn pod_discovery_needs_the_kubernetes_section() {
    let text = r#"
[kubernetes]
node_name = "node-a"
[receivers.pprof.pods]
[[receivers.pprof.pods.scrape_configs]]
job_name = "kubernetes-pods"
kubernetes_sd_configs = [{ role = "pod" }]
[exporters.pyroscope.out]
endpoint = "http://pyroscope:4040"
[pipelines.profiles]
receivers = ["pprof.pods"]
exporters = ["pyroscope.out"]
"#;
    let config = crate::plan::Config::from_str(text, "test").unwrap_or_else(|e| panic!("{e}"));
    assert!(config.receivers.values().any(|r| r.uses_pod_cache()));
    let without = text.replace("[kubernetes]\nnode_name = \"node-a\"\n", "");
    let e = crate::plan::Config::from_str(&without, "test")
        .unwrap_err()
        .to_string();
    assert!(e.contains("receivers.pprof.pods"), "{e}");
    assert!(
        e.contains("kubernetes_sd_configs needs a [kubernetes] section"),
        "{e}"
    );
}
