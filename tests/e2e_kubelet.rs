//! The kubelet and cAdvisor scraped as kube-prometheus scrapes them, found
//! by `role = "node"` discovery: the Kubernetes API stand-in serves this
//! node (its InternalIP and kubelet port), a TLS kubelet stand-in serves
//! recorded real pages only to the service account's bearer token, and
//! the series go to a real Prometheus with kube-prometheus' labels (`job`,
//! `metrics_path`, `node`, `instance` the node's name).

mod common;

use common::kube_api::KubeApi;
use common::kubelet::{Failure, Kubelet};
use common::prom::{prometheus, query};
use common::sink::TestCert;
use common::{Ferro, WAIT, eventually};
use serde_json::json;
use std::collections::BTreeMap;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kubelet")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// One kube-prometheus kubelet job: HTTPS with the token and CA, the
/// node found by discovery, `metrics_path` and `node` labels.
fn kubelet_job(name: &str, path: &str, token: &std::path::Path, ca: &std::path::Path) -> String {
    format!(
        r#"
        [[receivers.prometheus.kubelet.scrape_configs]]
        job_name = "{name}"
        scheme = "https"
        metrics_path = "{path}"
        scrape_interval = "1s"
        scrape_timeout = "900ms"
        honor_labels = true
        honor_timestamps = false
        bearer_token_file = "{token}"
        tls_config = {{ ca_file = "{ca}" }}
        kubernetes_sd_configs = [{{ role = "node" }}]
        relabel_configs = [
          {{ source_labels = ["__meta_kubernetes_node_name"], target_label = "node" }},
          {{ source_labels = ["__metrics_path__"], target_label = "metrics_path" }},
          {{ target_label = "job", replacement = "kubelet" }},
        ]
        "#,
        token = token.display(),
        ca = ca.display(),
    )
}

/// Node `node-a` as both tests see it: its kubelet stand-in (TLS, serving
/// `pages` to the service account token in `token`) and the Kubernetes API
/// stand-in serving the node with its InternalIP and the kubelet's port.
struct NodeA {
    dir: tempfile::TempDir,
    cert: TestCert,
    token: std::path::PathBuf,
    kubelet: Kubelet,
    api: KubeApi,
}

impl NodeA {
    async fn start(pages: BTreeMap<&'static str, String>) -> NodeA {
        let dir = tempfile::tempdir().unwrap();
        let cert = TestCert::new(dir.path());
        let token = dir.path().join("token");
        std::fs::write(&token, "sa-token-of-ferro").unwrap();
        let kubelet = Kubelet::start(&cert, "sa-token-of-ferro", pages).await;
        let api = KubeApi::start("node-a").await;
        api.add_node(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-a", "uid": "node-a-uid", "labels": {"kubernetes.io/os": "linux"}},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": "node-a"}
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.addr.port()}}
            }
        }));
        NodeA {
            dir,
            cert,
            token,
            kubelet,
            api,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_and_cadvisor_arrive_with_kube_prometheus_labels() {
    let Some(prom) = prometheus() else { return };
    let NodeA {
        dir,
        cert,
        token,
        kubelet,
        api,
    } = NodeA::start(BTreeMap::from([
        ("/metrics/cadvisor", fixture("cadvisor.txt")),
        ("/metrics/probes", fixture("probes.txt")),
    ]))
    .await;
    let wrong = dir.path().join("wrong-token");
    std::fs::write(&wrong, "someone-else").unwrap();
    let config = format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [kubernetes]
        node_name = "node-a"
        api_server = "{api}"
        {cadvisor}
        {probes}
        {refused}
        [exporters.remote_write.prom]
        endpoint = "http://{prom}/api/v1/write"
        batch_send_deadline = "100ms"
        [pipelines.metrics]
        receivers = ["prometheus.kubelet"]
        exporters = ["remote_write.prom"]
        "#,
        api = api.url(),
        cadvisor = kubelet_job("cadvisor", "/metrics/cadvisor", &token, &cert.cert_file),
        probes = kubelet_job("probes", "/metrics/probes", &token, &cert.cert_file),
        refused = kubelet_job("no-token", "/metrics", &wrong, &cert.cert_file),
        prom = prom.addr,
    );
    let ferro = Ferro::start(&config);
    let has = |promql: &str| !query(prom.addr, promql).is_empty();
    eventually("cAdvisor and probe series in Prometheus", WAIT, || {
        has(
            r#"container_blkio_device_usage_total{job="kubelet",metrics_path="/metrics/cadvisor",node="node-a",instance="node-a",device="/dev/nvme0n1",id="/kubepods"}"#,
        ) && has(
            r#"prober_probe_total{job="kubelet",metrics_path="/metrics/probes",node="node-a",pod="kube-dns-c598bd956-wgf4n",probe_type="Startup",result="failed"}"#,
        )
    });
    // Values as the page has them; the page's own timestamps are not used.
    let (_, value) = query(
        prom.addr,
        r#"container_blkio_device_usage_total{metrics_path="/metrics/cadvisor",id="/kubepods",operation="Total"}"#,
    )
    .remove(0);
    assert_eq!(value, 2.1068013568e10);
    // The job with the wrong token is refused: up 0, and the kubelet saw
    // every request with the right token allowed and the others refused.
    eventually("the refused job's up = 0", WAIT, || {
        query(prom.addr, r#"up{metrics_path="/metrics"}"#)
            .first()
            .is_some_and(|(_, v)| *v == 0.0)
    });
    let seen = kubelet.seen();
    assert!(seen.iter().any(|(p, ok)| p == "/metrics/cadvisor" && *ok));
    // The kubelet rotates the service-account token in place: the next
    // scrapes send the new one.
    std::fs::write(&token, "rotated-token").unwrap();
    kubelet.set_token("rotated-token");
    let rotated_at = kubelet.seen().len();
    eventually("a scrape allowed with the rotated token", WAIT, || {
        kubelet.seen()[rotated_at..]
            .iter()
            .any(|(p, ok)| p == "/metrics/cadvisor" && *ok)
    });
    assert!(
        seen.iter()
            .filter(|(p, _)| p == "/metrics")
            .all(|(_, ok)| !ok)
    );
    let node_requests: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.resource == "nodes")
        .collect();
    assert!(!node_requests.is_empty());
    assert!(
        node_requests
            .iter()
            .all(|r| r.field_selector.as_deref() == Some("metadata.name=node-a")),
        "only this node is asked for"
    );
    drop(ferro);
}

/// A kubelet that answers 500, then hangs, then serves again: each failure
/// is `up = 0` with its reason, counted; ferro stays up and scrapes again
/// as soon as the kubelet does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_answering_500_or_hanging_is_up_0_with_its_reason_then_recovers() {
    let NodeA {
        dir: _dir,
        cert,
        token,
        kubelet,
        api,
    } = NodeA::start(BTreeMap::from([(
        "/metrics/cadvisor",
        fixture("cadvisor.txt"),
    )]))
    .await;
    let ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [kubernetes]
        node_name = "node-a"
        api_server = "{api}"
        {cadvisor}
        [exporters.blackhole.out]
        [pipelines.metrics]
        receivers = ["prometheus.kubelet"]
        exporters = ["blackhole.out"]
        "#,
        api = api.url(),
        cadvisor = kubelet_job("cadvisor", "/metrics/cadvisor", &token, &cert.cert_file),
    ));
    let up = ["ferro_scrape_target_up", "job=\"cadvisor\""];
    let failing = |reason: &str| {
        ferro.metric(
            "ferro_scrape_target_last_error",
            &["job=\"cadvisor\"", &format!("reason=\"{reason}\"")],
        )
    };
    ferro.wait_metric(up[0], &up[1..], |v| v == 1.0);
    for (failure, reason) in [
        (Failure::Status500, "http_status"),
        (Failure::Hang, "timeout"),
    ] {
        kubelet.set_failure("/metrics/cadvisor", Some(failure));
        let what = format!("up = 0 for {reason}");
        eventually(what, WAIT, || {
            ferro.metric(up[0], &up[1..]) == 0.0 && failing(reason) == 1.0
        });
        kubelet.set_failure("/metrics/cadvisor", None);
        ferro.wait_metric(up[0], &up[1..], |v| v == 1.0);
        assert_eq!(failing(reason), 0.0, "the reason goes once scrapes succeed");
    }
    assert_eq!(common::http_get(ferro.telemetry, "/-/ready").0, 200);
}
