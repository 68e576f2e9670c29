use super::config::BUILT_IN;
use super::kubernetes::{Pod, pod_groups};
use super::push::{multipart_parts, parse_key, parse_query};
use super::scrape::targets;
use super::*;
use crate::config::Validate;
use bytes::Bytes;

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
    assert_eq!(job.scrape_timeout, std::time::Duration::from_secs(18));
    assert_eq!(job.profiles.len(), BUILT_IN.len());
    let found = targets(job, &job.static_configs);
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
    let found = targets(job, &job.static_configs[..1]);
    let urls: Vec<&str> = found.iter().map(|t| t.url.as_str()).collect();
    assert!(
        urls.contains(&"http://10.0.0.1:6060/debug/pprof/heap"),
        "{urls:?}"
    );
    assert!(
        urls.contains(&"http://10.0.0.1:6060/debug/fgprof?seconds=14"),
        "{urls:?}"
    );
}

#[test]
fn relabelling_is_prometheus_own() {
    let text = format!(
        "{JOB}relabel_configs = [\n  {{ source_labels = [\"__address__\"], regex = \"10.0.0.2:.*\", action = \"drop\" }},\n  {{ target_label = \"cluster\", replacement = \"eu-1\" }},\n]\n"
    );
    let config = config(&text).unwrap();
    let job = &config.scrape_configs[0];
    let found = targets(job, &job.static_configs);
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

#[test]
fn pod_annotations_become_one_group_per_profile_type() {
    let mut pod = Pod {
        namespace: "shop".into(),
        name: "checkout-7d9".into(),
        ip: "10.1.2.3".into(),
        ports: vec![("app".into(), "http-pprof".into(), 6060)],
        ..Pod::default()
    };
    for (k, v) in [
        ("profiles.grafana.com/cpu.scrape", "true"),
        ("profiles.grafana.com/cpu.port_name", "http-pprof"),
        ("profiles.grafana.com/memory.scrape", "true"),
        ("profiles.grafana.com/memory.port", "6060"),
        ("profiles.grafana.com/memory.path", "/debug/pprof/heap"),
        ("profiles.grafana.com/mutex.scrape", "false"),
        ("profiles.grafana.com/block.scrape", "true"),
    ] {
        pod.annotations.insert(k.into(), v.into());
    }
    let groups = pod_groups(&pod);
    // block has no port: skipped.
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].targets, ["10.1.2.3:6060"]);
    assert_eq!(groups[0].labels["__profile_type__"], "process_cpu");
    assert_eq!(
        groups[0].labels["__meta_kubernetes_pod_container_name"],
        "app"
    );
    assert_eq!(groups[1].labels["__profile_path__"], "/debug/pprof/heap");

    // The groups drive the job's targets: one profile type each, at its path,
    // relabelled into service_name.
    let text = format!(
        "{JOB}relabel_configs = [{{ source_labels = [\"__meta_kubernetes_namespace\", \"__meta_kubernetes_pod_container_name\"], separator = \"/\", target_label = \"service_name\" }}]\n"
    );
    let config = config(&text).unwrap();
    let found = targets(&config.scrape_configs[0], &groups);
    let urls: Vec<&str> = found.iter().map(|t| t.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "http://10.1.2.3:6060/debug/pprof/heap",
            "http://10.1.2.3:6060/debug/pprof/profile?seconds=14"
        ]
    );
    assert!(
        found
            .iter()
            .all(|t| t.labels.get("service_name") == Some("shop/app"))
    );
    assert!(
        found
            .iter()
            .all(|t| t.labels.get("__profile_type__").is_none())
    );
}
