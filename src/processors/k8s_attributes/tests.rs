use super::*;
use crate::config::ComponentId;
use crate::config::Validate;
use crate::delivery::Batch;
use crate::delivery::Ticket;
use crate::k8s::tests::{cache_with, pod_json};
use crate::plan::Config;
use crate::signal::Signal;
use crate::signal::logs::{Entry, Stream};
use crate::signal::metrics::Series;
use crate::signal::{Labels, Logs, Metrics, Traces};
use crate::telemetry::Telemetry;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::net::IpAddr;
use std::sync::Arc;

fn config(toml_text: &str) -> K8sAttributesConfig {
    let raw: RawK8sAttributesConfig = toml::from_str(toml_text).unwrap();
    raw.validate().unwrap_or_else(|e| panic!("{e:?}"))
}

fn errors(toml_text: &str) -> String {
    let raw: RawK8sAttributesConfig = toml::from_str(toml_text).unwrap();
    format!("{:?}", raw.validate().unwrap_err())
}

/// Two pods of node-a: `web-1` (Deployment `web`, one container) and
/// `db-0` (StatefulSet `db`, two containers).
fn processor(toml_text: &str) -> (K8sAttributes, Arc<Telemetry>) {
    let mut db = pod_json("shop", "db-0", "uid-db", Some("10.1.0.8"));
    db["metadata"]["ownerReferences"][0]["kind"] = "StatefulSet".into();
    db["metadata"]["ownerReferences"][0]["name"] = "db".into();
    db["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "sidecar", "image": "envoy"}));
    let cache = cache_with(vec![
        serde_json::from_value(pod_json("shop", "web-1", "uid-web", Some("10.1.0.5"))).unwrap(),
        serde_json::from_value(db).unwrap(),
    ]);
    let telemetry = Telemetry::new();
    let p = K8sAttributes::new(
        &ComponentId::new("k8s_attributes", "test"),
        &config(toml_text),
        Some(cache),
        &telemetry,
    );
    (p, telemetry)
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// One resource with `attributes` and one span, encoded as the OTLP
/// receiver hands it on.
fn traces(attributes: Vec<KeyValue>) -> Traces {
    let rs = ResourceSpans {
        resource: Some(Resource {
            attributes,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                name: "GET /".into(),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut request = Vec::new();
    prost::encoding::message::encode(1, &rs, &mut request);
    let body = bytes::Bytes::from(request);
    let infos = crate::otlp::scan::trace_request(&body).unwrap();
    Traces::from_scanned(&body, infos).0
}

fn resource_attributes(batch: &Batch<Traces>) -> Vec<(String, String)> {
    batch.data.resource_spans()[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                _ => String::new(),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn attribute<'a>(attributes: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn spans_found_by_pod_uid_get_otel_attributes() {
    let (p, telemetry) = processor(
        r#"pod_labels = ["app.kubernetes.io/name", { key = "pod-template-hash", name = "hash" }]"#,
    );
    let mut batch = Batch::new(
        traces(vec![
            kv("service.name", "web"),
            kv("k8s.pod.uid", "uid-web"),
        ]),
        Ticket::untracked(),
    );
    let before = batch.bytes;
    p.process(&mut batch);
    let got = resource_attributes(&batch);
    for (key, value) in [
        ("service.name", "web"),
        ("k8s.pod.uid", "uid-web"),
        ("k8s.namespace.name", "shop"),
        ("k8s.pod.name", "web-1"),
        ("k8s.node.name", "node-a"),
        ("k8s.container.name", "app"),
        ("k8s.deployment.name", "web"),
        ("k8s.pod.label.app.kubernetes.io/name", "web"),
        ("hash", "5d8f9c7b6d"),
    ] {
        assert_eq!(attribute(&got, key), Some(value), "{key} in {got:?}");
    }
    assert!(batch.bytes > before, "the batch's size follows its data");
    let labels = Telemetry::labels(
        "processor",
        &ComponentId::new("k8s_attributes", "test"),
        Signal::Traces,
    );
    assert_eq!(
        Telemetry::counter(&telemetry.k8s.associated, &labels).get(),
        1
    );
}

#[test]
fn spans_found_by_pod_ip_or_by_the_senders_address() {
    let (p, telemetry) = processor("");
    let mut by_ip = Batch::new(
        traces(vec![kv("k8s.pod.ip", "10.1.0.8")]),
        Ticket::untracked(),
    );
    p.process(&mut by_ip);
    let got = resource_attributes(&by_ip);
    assert_eq!(attribute(&got, "k8s.pod.name"), Some("db-0"));
    assert_eq!(attribute(&got, "k8s.statefulset.name"), Some("db"));
    assert_eq!(
        attribute(&got, "k8s.container.name"),
        None,
        "two containers: unknown which"
    );

    let peer: IpAddr = "10.1.0.5".parse().unwrap();
    let mut by_peer = Batch::new(traces(vec![kv("service.name", "web")]), Ticket::untracked())
        .with_peer(Some(peer));
    p.process(&mut by_peer);
    assert_eq!(
        attribute(&resource_attributes(&by_peer), "k8s.pod.name"),
        Some("web-1")
    );

    // No key at all, and a key no pod has: both pass unchanged, counted.
    let mut anonymous = Batch::new(
        traces(vec![kv("service.name", "cron")]),
        Ticket::untracked(),
    );
    p.process(&mut anonymous);
    assert_eq!(resource_attributes(&anonymous).len(), 1);
    let mut stranger = Batch::new(
        traces(vec![kv("k8s.pod.uid", "uid-gone")]),
        Ticket::untracked(),
    );
    p.process(&mut stranger);
    assert_eq!(resource_attributes(&stranger).len(), 1);
    let labels = Telemetry::labels(
        "processor",
        &ComponentId::new("k8s_attributes", "test"),
        Signal::Traces,
    );
    assert_eq!(
        Telemetry::reason_counter(&telemetry.k8s.unassociated, &labels, "no_pod_key").get(),
        1
    );
    assert_eq!(
        Telemetry::reason_counter(&telemetry.k8s.unassociated, &labels, "pod_not_found").get(),
        1
    );
}

#[test]
fn a_batch_from_two_clients_is_not_attributed_by_peer() {
    let (p, _) = processor(r#"associate = ["peer"]"#);
    let mut batch = Batch::new(traces(vec![kv("service.name", "a")]), Ticket::untracked())
        .with_peer(Some("10.1.0.5".parse().unwrap()));
    batch.merge(
        Batch::new(traces(vec![kv("service.name", "b")]), Ticket::untracked())
            .with_peer(Some("10.1.0.8".parse().unwrap())),
    );
    p.process(&mut batch);
    for rs in batch.data.resource_spans() {
        let attributes = &rs.resource.as_ref().unwrap().attributes;
        assert!(
            !attributes.iter().any(|kv| kv.key.starts_with("k8s.")),
            "{attributes:?}"
        );
    }
}

#[test]
fn log_streams_found_by_their_file_labels_get_labels() {
    let (p, _) = processor(r#"pod_labels = ["app.kubernetes.io/name"]"#);
    let logs = Logs::new(vec![Stream {
        labels: Labels::from_pairs([
            ("namespace", "shop"),
            ("pod", "db-0"),
            ("container", "sidecar"),
        ]),
        entries: vec![Entry::new(1, "ready")],
    }]);
    let mut batch = Batch::new(logs, Ticket::untracked());
    p.process(&mut batch);
    let labels = &batch.data.streams[0].labels;
    assert_eq!(
        labels.get("container"),
        Some("sidecar"),
        "the file's container is kept"
    );
    assert_eq!(labels.get("node"), Some("node-a"));
    assert_eq!(labels.get("owner_kind"), Some("StatefulSet"));
    assert_eq!(labels.get("owner_name"), Some("db"));
    assert_eq!(labels.get("app_kubernetes_io_name"), Some("web"));
    assert_eq!(labels.get("pod_uid"), None, "left out by default");
}

#[test]
fn otlp_log_streams_are_found_by_lokis_label_names() {
    let (p, _) = processor(r#"associate = ["namespace_pod"]"#);
    let logs = Logs::new(vec![Stream {
        labels: Labels::from_pairs([
            ("k8s_namespace_name", "shop"),
            ("k8s_pod_name", "web-1"),
            ("service_name", "web"),
        ]),
        entries: vec![Entry::new(1, "GET /")],
    }]);
    let mut batch = Batch::new(logs, Ticket::untracked());
    p.process(&mut batch);
    let labels = &batch.data.streams[0].labels;
    assert_eq!(labels.get("owner_name"), Some("web"));
    assert_eq!(labels.get("container"), Some("app"));
}

#[test]
fn series_found_by_their_scrape_instance_and_names_are_configurable() {
    let (p, _) = processor(
        r#"
        [label_names]
        namespace = "k8s_namespace"
        node = ""
        pod_uid = "pod_uid"
        "#,
    );
    let metrics = Metrics::new(vec![Series::sample(
        Labels::from_pairs([
            ("__name__", "up"),
            ("instance", "10.1.0.5:9102"),
            ("job", "pods"),
        ]),
        1.0,
        1,
    )]);
    let mut batch = Batch::new(metrics, Ticket::untracked());
    p.process(&mut batch);
    let labels = &batch.data.series[0].labels;
    assert_eq!(labels.get("k8s_namespace"), Some("shop"));
    assert_eq!(labels.get("namespace"), None);
    assert_eq!(labels.get("node"), None);
    assert_eq!(labels.get("pod"), Some("web-1"));
    assert_eq!(labels.get("pod_uid"), Some("uid-web"));
    assert_eq!(labels.get("owner_name"), Some("web"));
}

#[test]
fn a_sidecar_takes_its_identity_from_the_environment() {
    let env = |name: &str| match name {
        "POD_NAMESPACE" => Some("shop".to_string()),
        "POD_NAME" => Some("web-1".to_string()),
        "POD_UID" => Some("uid-web".to_string()),
        "NODE_NAME" => Some("node-a".to_string()),
        _ => None,
    };
    let telemetry = Telemetry::new();
    let p = K8sAttributes::with_env(
        &ComponentId::new("k8s_attributes", "sidecar"),
        &config(r#"source = "env""#),
        None,
        &telemetry,
        &env,
    );
    let mut batch = Batch::new(traces(vec![kv("service.name", "web")]), Ticket::untracked());
    p.process(&mut batch);
    let got = resource_attributes(&batch);
    assert_eq!(attribute(&got, "k8s.pod.name"), Some("web-1"));
    assert_eq!(attribute(&got, "k8s.pod.uid"), Some("uid-web"));
    assert_eq!(
        attribute(&got, "k8s.container.name"),
        None,
        "CONTAINER_NAME is not set"
    );
    let logs = Logs::new(vec![Stream {
        labels: Labels::from_pairs([("app", "web")]),
        entries: vec![Entry::new(1, "x")],
    }]);
    let mut batch = Batch::new(logs, Ticket::untracked());
    p.process(&mut batch);
    assert_eq!(batch.data.streams[0].labels.get("namespace"), Some("shop"));
    assert_eq!(batch.data.streams[0].labels.get("pod"), Some("web-1"));
}

#[test]
fn namespace_labels_and_annotations_are_copied_from_the_pods_namespace() {
    use crate::k8s::tests::{cache_with_namespaces, namespace};
    let cache = cache_with_namespaces(
        vec![
            serde_json::from_value(pod_json("shop", "web-1", "uid-web", Some("10.1.0.5"))).unwrap(),
        ],
        vec![namespace(
            "shop",
            serde_json::json!({"team": "checkout", "cost-center": "cc-42"}),
        )],
    );
    let config = config(
        r#"
namespace_labels = [{ key = "team", name = "team" }, "cost-center"]
namespace_annotations = ["owner.example/contact"]
"#,
    );
    assert!(config.uses_namespaces());
    let p = K8sAttributes::new(
        &ComponentId::new("k8s_attributes", "test"),
        &config,
        Some(cache),
        &Telemetry::new(),
    );
    let mut traces = Batch::new(
        traces(vec![kv("k8s.pod.uid", "uid-web")]),
        Ticket::untracked(),
    );
    p.process(&mut traces);
    let got = resource_attributes(&traces);
    assert_eq!(attribute(&got, "team"), Some("checkout"));
    assert_eq!(
        attribute(&got, "k8s.namespace.label.cost-center"),
        Some("cc-42")
    );
    assert_eq!(
        attribute(&got, "k8s.namespace.annotation.owner.example/contact"),
        Some("team-shop@example.com")
    );
    let mut logs = Batch::new(
        Logs::new(vec![Stream {
            labels: Labels::from_pairs([("namespace", "shop"), ("pod", "web-1")]),
            entries: vec![Entry::new(1, "hello")],
        }]),
        Ticket::untracked(),
    );
    p.process(&mut logs);
    let labels = &logs.data.streams[0].labels;
    assert_eq!(labels.get("team"), Some("checkout"));
    assert_eq!(labels.get("cost_center"), Some("cc-42"));
    assert_eq!(
        labels.get("owner_example_contact"),
        Some("team-shop@example.com")
    );
}

#[test]
fn config_mistakes_are_reported() {
    assert!(errors(r#"source = "cluster""#).contains("not a source"));
    assert!(errors(r#"associate = ["pod_name"]"#).contains("not an association"));
    assert!(errors(r#"associate = ["peer", "peer"]"#).contains("listed twice"));
    assert!(errors(r#"label_names = { pod = "pod-name" }"#).contains("not a label name"));
    assert!(errors(r#"label_names = { workload = "w" }"#).contains("not a field"));
    assert!(
        errors("source = \"env\"\npod_labels = [\"app\"]").contains("need source = \\\"api\\\"")
    );
    assert!(errors("source = \"env\"\nnamespace_labels = [\"team\"]").contains("namespace_labels"));
    assert!(
        errors("pod_labels = [\"team\"]\nnamespace_labels = [\"team\"]")
            .contains("a name a field or another copy has")
    );
    assert!(
        errors("namespace_labels = [{ key = \"env\", name = \"namespace\" }]")
            .contains("a name a field or another copy has")
    );
    // The same key as a label and as an annotation needs a name for one.
    config("pod_labels = [\"app\"]\npod_annotations = [{ key = \"app\", name = \"app_note\" }]");
    let defaults = K8sAttributesConfig::default();
    assert!(defaults.uses_peer());
    assert_eq!(defaults.associate.len(), 5);
}

const PIPELINE: &str = r#"
[kubernetes]
node_name = "node-a"

[receivers.otlp.in]
grpc = "127.0.0.1:0"

[processors.k8s_attributes.pods]

[exporters.debug.out]

[pipelines.traces]
receivers = ["otlp.in"]
exporters = ["debug.out"]
"#;

#[test]
fn peer_association_must_come_before_batching() {
    let ok = format!("{PIPELINE}processors = [\"k8s_attributes.pods\", \"batch\"]\n");
    let config = Config::from_str(&ok, "test").unwrap_or_else(|e| panic!("{e}"));
    let kubernetes = config.kubernetes.unwrap();
    assert_eq!(kubernetes.node_name, "node-a");
    assert!(
        kubernetes.namespaces.is_none(),
        "no namespace watch unless asked for"
    );
    let namespaces = ok.replace(
        "[processors.k8s_attributes.pods]",
        "[processors.k8s_attributes.pods]\nnamespace_labels = [\"team\"]",
    );
    let config = Config::from_str(&namespaces, "test").unwrap_or_else(|e| panic!("{e}"));
    let keys = config.kubernetes.unwrap().namespaces.unwrap();
    assert!(
        keys.labels.contains("team")
            && !keys.labels.contains("owner")
            && !keys.annotations.contains("team")
    );

    let wrong = format!("{PIPELINE}processors = [\"batch\", \"k8s_attributes.pods\"]\n");
    let e = Config::from_str(&wrong, "test").unwrap_err().to_string();
    assert!(e.contains("list it before `batch`"), "{e}");

    // Without peer association, after batch is fine.
    let by_uid = wrong.replace(
        "[processors.k8s_attributes.pods]",
        "[processors.k8s_attributes.pods]\nassociate = [\"pod_uid\"]",
    );
    Config::from_str(&by_uid, "test").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_pod_cache_needs_a_node() {
    let text = format!("{PIPELINE}processors = [\"k8s_attributes.pods\"]\n")
        .replace("[kubernetes]\nnode_name = \"node-a\"\n", "");
    let e = Config::from_str(&text, "test").unwrap_err().to_string();
    assert!(e.contains("processors.k8s_attributes.pods"), "{e}");
    assert!(e.contains("[kubernetes] section with node_name"), "{e}");

    let empty = format!("{PIPELINE}processors = [\"k8s_attributes.pods\"]\n").replace(
        "node_name = \"node-a\"",
        "node_name = \"\"\napi_server = \"localhost\"",
    );
    let e = Config::from_str(&empty, "test").unwrap_err().to_string();
    assert!(e.contains("kubernetes.node_name"), "{e}");
    assert!(e.contains("kubernetes.api_server"), "{e}");

    let sidecar = text.replace(
        "[processors.k8s_attributes.pods]",
        "[processors.k8s_attributes.pods]\nsource = \"env\"",
    );
    Config::from_str(&sidecar, "test").unwrap_or_else(|e| panic!("{e}"));
}
