//! Kubernetes end to end against a local stand-in API server
//! (`common::kube_api`) that speaks the real list/watch wire format:
//!
//! - the pod cache through kube-rs: the node-scoped field selector, pods
//!   added, changed and deleted mid-stream, `410 Gone` and a relist, 5xx
//!   answers, and an outage during which the cache keeps serving;
//! - the real binary: pod log files and OTLP spans enriched with pod
//!   metadata on their way to the Loki and OTLP stand-ins, the cache kept
//!   across a SIGHUP reload, namespace labels from a namespace watch
//!   (changed mid-stream), and Prometheus and pprof pod discovery by
//!   annotation.

mod common;

use common::kube_api::{KubeApi, namespace, pod};
use common::loki::LokiServer;
use common::prom::{PageServer, Rw2Server};
use common::pyroscope::{PprofTarget, PyroscopeServer};
use common::sink::Sink;
use common::{Ferro, WAIT, eventually_async, http_post, metric_value};
use ferro::k8s::{KubernetesConfig, PodCache};
use ferro::telemetry::Telemetry;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// Waits until ferro scrapes no target on `port` of 127.0.0.1: the scrape
/// loops of its targets ended (their `ferro_scrape_target_up` series went
/// with them), so no scrape of it starts after.
async fn scrape_loop_ended(ferro: &Ferro, port: u16) {
    let target = format!("127.0.0.1:{port}");
    eventually_async(
        "the scrape loops of a gone pod's targets to end",
        WAIT,
        || {
            !ferro
                .metrics()
                .lines()
                .any(|l| l.starts_with("ferro_scrape_target_up{") && l.contains(&target))
        },
    )
    .await;
}

fn figure(telemetry: &Telemetry, name: &str, labels: &[&str]) -> f64 {
    metric_value(&telemetry.encode(), name, labels)
}

#[tokio::test]
async fn the_pod_cache_follows_the_node_through_changes_gone_and_outages() {
    let api = KubeApi::start("node-a").await;
    api.add(pod("node-a", "shop", "web", "u-web", "10.1.0.5"));
    api.add(pod("node-a", "shop", "db", "u-db", "10.1.0.6"));
    let telemetry = Telemetry::new();
    let cache = PodCache::start(
        KubernetesConfig {
            node_name: "node-a".into(),
            api_server: Some(api.url().parse().unwrap()),
            namespaces: None,
            watch_node: false,
            leader: None,
        },
        &telemetry,
    )
    .await
    .unwrap();
    assert!(cache.wait_synced(WAIT).await, "the first list arrives");
    assert_eq!(cache.len(), 2);
    let web = cache.by_uid("u-web").unwrap();
    assert_eq!(
        web.owner.as_ref().map(|(k, n)| (&**k, &**n)),
        Some(("Deployment", "web"))
    );
    assert_eq!(
        &*cache.by_ip("10.1.0.6".parse().unwrap()).unwrap().name,
        "db"
    );

    // Added, changed and deleted mid-stream.
    api.add(pod("node-a", "shop", "api", "u-api", "10.1.0.7"));
    eventually_async("an added pod", WAIT, || cache.by_uid("u-api").is_some()).await;
    api.modify(pod("node-a", "shop", "api", "u-api", "10.1.0.9"));
    eventually_async("a changed pod", WAIT, || {
        cache.by_ip("10.1.0.9".parse().unwrap()).is_some()
    })
    .await;
    assert!(cache.by_ip("10.1.0.7".parse().unwrap()).is_none());
    api.delete("u-db");
    eventually_async("a deleted pod", WAIT, || cache.by_uid("u-db").is_none()).await;

    // A deletion the watch never saw: the resume gets 410 Gone, and the
    // fresh list that follows drops the pod.
    let lists_before = api.requests().iter().filter(|r| !r.watch).count();
    api.delete_unseen("u-api");
    eventually_async("a relist after 410 Gone", WAIT, || {
        cache.by_uid("u-api").is_none()
    })
    .await;
    assert!(api.requests().iter().filter(|r| !r.watch).count() > lists_before);
    assert!(
        figure(
            &telemetry,
            "ferro_k8s_api_errors_total",
            &["reason=\"gone\""]
        ) >= 1.0
    );
    assert!(figure(&telemetry, "ferro_k8s_watch_relists_total", &[]) >= 1.0);

    // The API server goes away: lookups keep answering from the cache.
    api.set_down(true);
    eventually_async("the outage noticed", WAIT, || {
        figure(
            &telemetry,
            "ferro_k8s_api_errors_total",
            &["reason=\"server_error\""],
        ) >= 2.0
    })
    .await;
    assert_eq!(&*cache.by_uid("u-web").unwrap().name, "web");
    api.add(pod("node-a", "shop", "late", "u-late", "10.1.0.10"));
    // The cache asked again after the pod was added, and was refused.
    let errors = figure(
        &telemetry,
        "ferro_k8s_api_errors_total",
        &["reason=\"server_error\""],
    );
    eventually_async("a request refused after the pod was added", WAIT, || {
        figure(
            &telemetry,
            "ferro_k8s_api_errors_total",
            &["reason=\"server_error\""],
        ) > errors
    })
    .await;
    assert!(
        cache.by_uid("u-late").is_none(),
        "nothing gets through while down"
    );
    // Back: the watch resumes and catches up.
    api.set_down(false);
    eventually_async("catching up after the outage", WAIT, || {
        cache.by_uid("u-late").is_some()
    })
    .await;

    // 5xx answers are retried; a cut watch resumes.
    api.fail_next(2);
    api.cut_watches();
    api.add(pod("node-a", "shop", "after", "u-after", "10.1.0.11"));
    eventually_async("recovery from 500s", WAIT, || {
        cache.by_uid("u-after").is_some()
    })
    .await;

    // Every request, list or watch, was scoped to this node.
    let requests = api.requests();
    assert!(requests.iter().any(|r| r.watch) && requests.iter().any(|r| !r.watch));
    for r in &requests {
        assert_eq!(
            r.field_selector.as_deref(),
            Some("spec.nodeName=node-a"),
            "{r:?}"
        );
    }
    assert_eq!(cache.len(), 3);
    assert_eq!(figure(&telemetry, "ferro_k8s_pods_cached", &[]), 3.0);
    assert_eq!(figure(&telemetry, "ferro_k8s_cache_synced", &[]), 1.0);
    cache.stop();
}

#[tokio::test]
async fn a_wrong_node_selector_is_refused_by_the_test_server() {
    let api = KubeApi::start("node-a").await;
    api.add(pod("node-a", "shop", "web", "u-web", "10.1.0.5"));
    let telemetry = Telemetry::new();
    let cache = PodCache::start(
        KubernetesConfig {
            node_name: "node-b".into(),
            api_server: Some(api.url().parse().unwrap()),
            namespaces: None,
            watch_node: false,
            leader: None,
        },
        &telemetry,
    )
    .await
    .unwrap();
    // The cache asked and was refused; it has not synced, and holds nothing.
    eventually_async("a refused list", WAIT, || {
        figure(
            &telemetry,
            "ferro_k8s_api_errors_total",
            &["reason=\"api_error\""],
        ) >= 1.0
    })
    .await;
    assert!(!cache.is_synced());
    assert!(cache.is_empty());
    assert!(api.requests().iter().all(|r| r.status == 400));
    cache.stop();
}

/// A CRI log line.
fn cri(line: &str) -> String {
    format!("2025-06-01T10:00:00.000000001Z stdout F {line}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_logs_and_spans_are_enriched_from_the_api_server() {
    let api = KubeApi::start("node-a").await;
    // The OTLP client will connect from 127.0.0.1: that is this pod's IP.
    api.add(pod("node-a", "shop", "web", "u-web", "127.0.0.1"));
    let mut db = pod("node-a", "shop", "db", "u-db", "10.1.0.6");
    db["metadata"]["ownerReferences"][0]["kind"] = "StatefulSet".into();
    db["metadata"]["ownerReferences"][0]["name"] = "db".into();
    api.add(db);
    let sink = Sink::start().await;
    let loki = LokiServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("pods")).unwrap();
    let config = format!(
        r#"
        data_dir = "{data}"
        [telemetry]
        listen = "127.0.0.1:0"
        [kubernetes]
        node_name = "node-a"
        api_server = "{api}"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        http = "127.0.0.1:0"
        [receivers.pod_logs.node]
        include = ["{root}/*/*/*.log"]
        start_at = "beginning"
        rescan_interval = "100ms"
        [processors.k8s_attributes.pods]
        pod_labels = ["app.kubernetes.io/name"]
        [processors.batch.b]
        timeout = "50ms"
        [exporters.otlp.sink]
        endpoint = "http://{sink}"
        [exporters.loki.loki]
        endpoint = "{loki}"
        tenant_id = "t1"
        batch_wait = "50ms"
        [pipelines.traces]
        receivers = ["otlp.in"]
        processors = ["k8s_attributes.pods", "batch.b"]
        exporters = ["otlp.sink"]
        [pipelines.logs]
        receivers = ["pod_logs.node"]
        processors = ["k8s_attributes.pods", "batch.b"]
        exporters = ["loki.loki"]
        "#,
        data = tmp.path().join("data").display(),
        api = api.url(),
        root = tmp.path().join("pods").display(),
        sink = sink.grpc,
        loki = loki.url(),
    );
    let ferro = Ferro::start(&config);

    // A log file: found by its path's namespace/pod, gets node and owner.
    let logs = tmp.path().join("pods/shop_db_u-db/postgres");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("0.log"), cri("database system is ready")).unwrap();
    assert_eq!(loki.wait_for_entries(1, WAIT).await, 1, "{}", ferro.logs());
    let streams: Vec<Vec<(String, String)>> =
        loki.with(|r| r.streams.keys().map(|(_, l)| l.clone()).collect());
    let labels = &streams[0];
    for pair in [
        ("namespace", "shop"),
        ("pod", "db"),
        ("container", "postgres"),
        ("node", "node-a"),
        ("owner_kind", "StatefulSet"),
        ("owner_name", "db"),
        ("app_kubernetes_io_name", "db"),
    ] {
        assert!(
            labels.contains(&(pair.0.to_string(), pair.1.to_string())),
            "{pair:?} in {labels:?}"
        );
    }

    // Spans: one naming its pod by uid, one from a client that names
    // nothing (found by its connection's address).
    let body = |attributes: &str| {
        format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{attributes}]}},"scopeSpans":[{{"spans":[{{
            "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "name":"GET /","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2"}}]}}]}}]}}"#
        )
    };
    let http = ferro.http.unwrap();
    let headers = [("Content-Type", "application/json")];
    let by_uid = body(r#"{"key":"k8s.pod.uid","value":{"stringValue":"u-db"}}"#);
    assert_eq!(
        http_post(http, "/v1/traces", &headers, by_uid.as_bytes()).0,
        200
    );
    let by_peer = body(r#"{"key":"service.name","value":{"stringValue":"web"}}"#);
    assert_eq!(
        http_post(http, "/v1/traces", &headers, by_peer.as_bytes()).0,
        200
    );
    // Over gRPC too: the connection's address comes from tonic.
    let mut client = TraceServiceClient::connect(format!("http://{}", ferro.grpc.unwrap()))
        .await
        .unwrap();
    let span = Span {
        trace_id: vec![7; 16],
        span_id: vec![8; 8],
        name: "grpc".into(),
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("grpc-client".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    client.export(request).await.unwrap();
    assert_eq!(sink.wait_for_spans(3, WAIT).await, 3, "{}", ferro.logs());
    let by_grpc_peer = sink
        .spans()
        .into_iter()
        .find(|s| s.span.name == "grpc")
        .unwrap();
    assert!(
        by_grpc_peer
            .resource
            .unwrap()
            .attributes
            .iter()
            .any(|kv| kv.key == "k8s.pod.uid"
                && kv.value.as_ref().and_then(|v| v.value.as_ref())
                    == Some(&any_value::Value::StringValue("u-web".into()))),
        "a gRPC client is found by its address"
    );
    let attributes = |pod_name: &str| -> Vec<(String, String)> {
        let spans = sink.spans();
        let span = spans
            .iter()
            .find(|s| {
                s.resource.as_ref().unwrap().attributes.iter().any(|kv| {
                    kv.key == "k8s.pod.name"
                        && format!("{:?}", kv.value).contains(&format!("\"{pod_name}\""))
                })
            })
            .unwrap_or_else(|| panic!("a span of pod {pod_name} in {spans:?}"));
        span.resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|kv| {
                let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => s.clone(),
                    _ => String::new(),
                };
                (kv.key.clone(), value)
            })
            .collect()
    };
    let db = attributes("db");
    for pair in [
        ("k8s.namespace.name", "shop"),
        ("k8s.node.name", "node-a"),
        ("k8s.statefulset.name", "db"),
        ("k8s.container.name", "app"),
        ("k8s.pod.label.app.kubernetes.io/name", "db"),
    ] {
        assert!(
            db.contains(&(pair.0.into(), pair.1.into())),
            "{pair:?} in {db:?}"
        );
    }
    let web = attributes("web");
    assert!(
        web.contains(&("k8s.pod.uid".into(), "u-web".into())),
        "{web:?}"
    );
    assert!(
        web.contains(&("k8s.deployment.name".into(), "web".into())),
        "{web:?}"
    );
    assert!(
        web.contains(&("service.name".into(), "web".into())),
        "{web:?}"
    );

    let associated = ferro.metric(
        "ferro_k8s_attributes_associated_items_total",
        &["component=\"k8s_attributes.pods\""],
    );
    assert_eq!(associated, 4.0, "three spans and one log entry");
    assert_eq!(ferro.metric("ferro_k8s_pods_cached", &[]), 2.0);

    // A reload keeps the cache: no new list against the API server.
    let lists = api.requests().iter().filter(|r| !r.watch).count();
    std::fs::write(
        &ferro.config_path,
        config.replace("timeout = \"50ms\"", "timeout = \"60ms\""),
    )
    .unwrap();
    ferro.signal("HUP");
    ferro.wait_for_log("reload done", WAIT);
    // A span through the reloaded pipeline, enriched: the new topology
    // runs with its pod cache.
    let marker = body(r#"{"key":"k8s.pod.uid","value":{"stringValue":"u-db"}}"#)
        .replace("eee19b7ec3c1b174", "eee19b7ec3c1b175");
    let http = ferro.listener("otlp.in", "http");
    assert_eq!(
        http_post(http, "/v1/traces", &headers, marker.as_bytes()).0,
        200
    );
    assert_eq!(sink.wait_for_spans(4, WAIT).await, 4, "{}", ferro.logs());
    assert_eq!(api.requests().iter().filter(|r| !r.watch).count(), lists);
    assert_eq!(ferro.metric("ferro_k8s_pods_cached", &[]), 2.0);
}

/// `namespace_labels`: the pod cache watches namespaces too (all of them:
/// there is no node to scope them by), and log streams get the labels of
/// their pod's namespace, following a change of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_labels_come_from_a_namespace_watch() {
    let api = KubeApi::start("node-a").await;
    api.add(pod("node-a", "shop", "db", "u-db", "10.1.0.6"));
    api.add_namespace(namespace("shop", serde_json::json!({"team": "checkout"})));
    api.add_namespace(namespace("infra", serde_json::json!({"team": "platform"})));
    let loki = LokiServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("pods")).unwrap();
    let config = format!(
        r#"
        data_dir = "{data}"
        [telemetry]
        listen = "127.0.0.1:0"
        [kubernetes]
        node_name = "node-a"
        api_server = "{api}"
        [receivers.pod_logs.node]
        include = ["{root}/*/*/*.log"]
        start_at = "beginning"
        rescan_interval = "100ms"
        [processors.k8s_attributes.pods]
        namespace_labels = ["team"]
        namespace_annotations = [{{ key = "owner.example/contact", name = "contact" }}]
        [processors.batch.b]
        timeout = "50ms"
        [exporters.loki.loki]
        endpoint = "{loki}"
        batch_wait = "50ms"
        [pipelines.logs]
        receivers = ["pod_logs.node"]
        processors = ["k8s_attributes.pods", "batch.b"]
        exporters = ["loki.loki"]
        "#,
        data = tmp.path().join("data").display(),
        api = api.url(),
        root = tmp.path().join("pods").display(),
        loki = loki.url(),
    );
    let ferro = Ferro::start(&config);
    let dir = tmp.path().join("pods/shop_db_u-db/postgres");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("0.log");
    std::fs::write(&file, cri("checkpoint starting")).unwrap();
    assert_eq!(loki.wait_for_entries(1, WAIT).await, 1, "{}", ferro.logs());
    let streams = || -> Vec<Vec<(String, String)>> {
        loki.with(|r| r.streams.keys().map(|(_, l)| l.clone()).collect())
    };
    let first = &streams()[0];
    for pair in [
        ("namespace", "shop"),
        ("team", "checkout"),
        ("contact", "shop@example.com"),
    ] {
        assert!(
            first.contains(&(pair.0.into(), pair.1.into())),
            "{pair:?} in {first:?}"
        );
    }

    // The namespace changes hands: later lines carry the new team.
    api.modify_namespace(namespace("shop", serde_json::json!({"team": "payments"})));
    let mut written = 1;
    eventually_async("a stream labelled with the new team", WAIT, || {
        let found = streams()
            .iter()
            .any(|l| l.contains(&("team".into(), "payments".into())));
        if !found {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&file)
                .unwrap();
            f.write_all(cri(&format!("checkpoint {written}")).as_bytes())
                .unwrap();
            written += 1;
        }
        found
    })
    .await;
    assert_eq!(ferro.metric("ferro_k8s_namespaces_cached", &[]), 2.0);

    // Pods were asked for by node, namespaces without a selector.
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.resource == "namespaces" && r.watch && r.status == 200),
        "{requests:?}"
    );
    assert!(requests.iter().all(|r| r.status == 200), "{requests:?}");
    assert!(
        requests
            .iter()
            .filter(|r| r.resource == "pods")
            .all(|r| r.field_selector.as_deref() == Some("spec.nodeName=node-a")),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_pods_that_ask_for_it_by_annotation() {
    let page = PageServer::start(
        "text/plain; version=0.0.4",
        "# TYPE jobs_done_total counter\njobs_done_total 7\n",
    )
    .await;
    let api = KubeApi::start("node-a").await;
    let mut web = pod("node-a", "shop", "web", "u-web", "127.0.0.1");
    web["metadata"]["annotations"] = serde_json::json!({
        "prometheus.io/scrape": "true",
        "prometheus.io/port": page.addr.port().to_string(),
        "prometheus.io/path": "/metrics"
    });
    api.add(web);
    // Not annotated: not scraped.
    api.add(pod("node-a", "shop", "quiet", "u-quiet", "127.0.0.2"));
    let rw = Rw2Server::start().await;
    let ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [kubernetes]
        node_name = "node-a"
        api_server = "{api}"
        [[receivers.prometheus.pods.scrape_configs]]
        job_name = "kubernetes-pods"
        scrape_interval = "500ms"
        scrape_timeout = "400ms"
        kubernetes_sd_configs = [{{ role = "pod" }}]
        relabel_configs = [
          {{ action = "labelmap", regex = "__meta_kubernetes_pod_label_(.+)" }},
          {{ source_labels = ["__meta_kubernetes_namespace"], target_label = "namespace" }},
          {{ source_labels = ["__meta_kubernetes_pod_name"], target_label = "pod" }},
        ]
        [processors.k8s_attributes.pods]
        [exporters.remote_write.rw]
        endpoint = "http://{rw}/api/v1/write"
        protocol_version = "2.0"
        batch_send_deadline = "100ms"
        [pipelines.metrics]
        receivers = ["prometheus.pods"]
        processors = ["k8s_attributes.pods"]
        exporters = ["remote_write.rw"]
        "#,
        api = api.url(),
        rw = rw.addr,
    ));
    eventually_async("a scrape of the annotated pod", WAIT, || {
        rw.received.lock().unwrap().series.iter().any(|s| {
            s.labels
                .contains(&("__name__".into(), "jobs_done_total".into()))
        })
    })
    .await;
    {
        let received = rw.received.lock().unwrap();
        let series = received
            .series
            .iter()
            .find(|s| {
                s.labels
                    .contains(&("__name__".into(), "jobs_done_total".into()))
            })
            .unwrap();
        for pair in [
            ("job", "kubernetes-pods"),
            ("instance", &*format!("127.0.0.1:{}", page.addr.port())),
            ("namespace", "shop"),
            ("pod", "web"),
            ("app_kubernetes_io_name", "web"),
            // Added by k8s_attributes, found by namespace/pod.
            ("node", "node-a"),
            ("owner_kind", "Deployment"),
            ("owner_name", "web"),
        ] {
            assert!(
                series
                    .labels
                    .contains(&(pair.0.to_string(), pair.1.to_string())),
                "{pair:?} in {:?}",
                series.labels
            );
        }
        assert!(
            !received
                .series
                .iter()
                .any(|s| s.labels.contains(&("pod".into(), "quiet".into()))),
            "a pod without the annotation is not scraped"
        );
    }
    // The annotated pod goes away: its target does too.
    let scrapes = page.scrapes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(scrapes >= 1);
    api.delete("u-web");
    scrape_loop_ended(&ferro, page.addr.port()).await;
    let after = page.scrapes.load(std::sync::atomic::Ordering::Relaxed);
    // A later marker: a pod annotated since is scraped twice, so ferro
    // scraped on, without the gone pod's target.
    let keeper = PageServer::start("text/plain; version=0.0.4", "keeper_up 1\n").await;
    let mut keep = pod("node-a", "shop", "keeper", "u-keeper", "127.0.0.1");
    keep["metadata"]["annotations"] = serde_json::json!({
        "prometheus.io/scrape": "true",
        "prometheus.io/port": keeper.addr.port().to_string(),
    });
    api.add(keep);
    eventually_async("two scrapes of a pod annotated since", WAIT, || {
        keeper.scrapes.load(std::sync::atomic::Ordering::Relaxed) >= 2
    })
    .await;
    assert_eq!(
        page.scrapes.load(std::sync::atomic::Ordering::Relaxed),
        after,
        "no scrapes once the pod is gone; {}",
        ferro.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pprof_scrapes_the_profile_types_pods_ask_for_by_annotation() {
    let target = PprofTarget::start().await;
    let port = target.addr.port();
    let api = KubeApi::start("node-a").await;
    let mut checkout = pod("node-a", "shop", "checkout", "u-checkout", "127.0.0.1");
    checkout["metadata"]["annotations"] = serde_json::json!({
        "profiles.grafana.com/cpu.scrape": "true",
        "profiles.grafana.com/cpu.port": port.to_string(),
        "profiles.grafana.com/memory.scrape": "true",
        "profiles.grafana.com/memory.port_name": "http-pprof",
        "profiles.grafana.com/memory.path": "/debug/pprof/heap",
        "profiles.grafana.com/goroutine.scrape": "false",
        "profiles.grafana.com/goroutine.port": port.to_string()
    });
    checkout["spec"]["containers"][0]["ports"] = serde_json::json!([
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "http-pprof", "containerPort": port, "protocol": "TCP"}
    ]);
    api.add(checkout);
    // Not annotated: not scraped.
    api.add(pod("node-a", "shop", "quiet", "u-quiet", "127.0.0.2"));
    let pyroscope = PyroscopeServer::start().await;
    let ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [kubernetes]
        node_name = "node-a"
        api_server = "{api}"
        [receivers.pprof.pods]
        scrape_interval = "2s"
        [[receivers.pprof.pods.scrape_configs]]
        job_name = "kubernetes-pods"
        kubernetes_sd_configs = [{{ role = "pod" }}]
        relabel_configs = [
          {{ source_labels = ["__meta_kubernetes_namespace"], target_label = "namespace" }},
          {{ source_labels = ["__meta_kubernetes_pod_name"], target_label = "pod" }},
          {{ source_labels = ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], target_label = "service_name" }},
        ]
        [exporters.pyroscope.out]
        endpoint = "{pyroscope}"
        [pipelines.profiles]
        receivers = ["pprof.pods"]
        exporters = ["pyroscope.out"]
        "#,
        api = api.url(),
        pyroscope = pyroscope.url(),
    ));
    for name in ["process_cpu", "memory"] {
        let found = pyroscope
            .wait_for(1, WAIT, |s| s.label("__name__") == Some(name))
            .await;
        assert!(!found.is_empty(), "no {name} profile; {}", ferro.logs());
        let s = &found[0];
        for (label, value) in [
            ("namespace", "shop"),
            ("pod", "checkout"),
            ("service_name", "checkout"),
            ("job", "kubernetes-pods"),
            ("instance", &*format!("127.0.0.1:{port}")),
        ] {
            assert_eq!(s.label(label), Some(value), "{label} in {:?}", s.labels);
        }
        assert!(s.label("__meta_kubernetes_namespace").is_none());
    }
    let asked = target.requests();
    // CPU at Go's path over the interval less a second; memory at the annotated path.
    assert!(
        asked.contains(&"/debug/pprof/profile?seconds=1".to_string()),
        "{asked:?}"
    );
    assert!(
        asked.contains(&"/debug/pprof/heap".to_string()),
        "{asked:?}"
    );
    assert!(
        asked
            .iter()
            .all(|p| p == "/debug/pprof/profile?seconds=1" || p == "/debug/pprof/heap"),
        "only the annotated types: {asked:?}"
    );
    assert!(
        pyroscope
            .stored()
            .iter()
            .all(|s| s.label("pod") == Some("checkout")),
        "a pod without the annotations is not scraped"
    );

    // The pod goes away: its targets do too.
    api.delete("u-checkout");
    scrape_loop_ended(&ferro, port).await;
    let after = target.requests().len();
    // A later marker: a pod annotated since is scraped twice, so ferro
    // scraped on, without the gone pod's targets.
    let keeper = PprofTarget::start().await;
    let mut keep = pod("node-a", "shop", "keeper", "u-keeper", "127.0.0.1");
    keep["metadata"]["annotations"] = serde_json::json!({
        "profiles.grafana.com/memory.scrape": "true",
        "profiles.grafana.com/memory.port": keeper.addr.port().to_string(),
    });
    api.add(keep);
    eventually_async("two scrapes of a pod annotated since", WAIT, || {
        keeper.requests().len() >= 2
    })
    .await;
    assert_eq!(
        target.requests().len(),
        after,
        "no scrapes once the pod is gone; {}",
        ferro.logs()
    );
}
