use super::discovery::{ScrapeAnnotations, target_groups};
use super::pod::workload;
use super::*;
use crate::telemetry::Telemetry;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::Event;
use serde_json::json;

/// A pod as the API server writes it.
pub fn pod_json(namespace: &str, name: &str, uid: &str, ip: Option<&str>) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": "100",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app.kubernetes.io/name": "web", "pod-template-hash": "5d8f9c7b6d"},
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9102",
                "kubectl.kubernetes.io/last-applied-configuration": "{\"big\":true}"
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f9c7b6d",
                "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true
            }],
            "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1"}]
        },
        "spec": {
            "nodeName": "node-a",
            "containers": [
                {"name": "app", "image": "web:1.2", "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9102, "protocol": "TCP"}
                ], "env": [{"name": "HUGE", "value": "x"}]},
            ],
            "initContainers": [{"name": "init", "image": "busybox"}]
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "hostIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    })
}

fn pod(namespace: &str, name: &str, uid: &str, ip: Option<&str>) -> Pod {
    serde_json::from_value(pod_json(namespace, name, uid, ip)).unwrap()
}

fn cache() -> PodCache {
    PodCache::empty(
        KubernetesConfig {
            node_name: "node-a".into(),
            api_server: None,
            namespaces: None,
            watch_node: false,
            leader: None,
        },
        &Telemetry::new(),
    )
}

/// A namespace as the API server returns it.
pub fn namespace(name: &str, labels: serde_json::Value) -> k8s_openapi::api::core::v1::Namespace {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": format!("ns-{name}"),
            "resourceVersion": "7",
            "labels": labels,
            "annotations": {
                "owner.example/contact": "team-shop@example.com",
                "kubectl.kubernetes.io/last-applied-configuration": "{}"
            }
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    }))
    .unwrap()
}

/// A cache that has listed `pods`, and watches `namespaces`, keeping the
/// labels and annotations the tests copy.
pub fn cache_with_namespaces(
    pods: Vec<Pod>,
    namespaces: Vec<k8s_openapi::api::core::v1::Namespace>,
) -> PodCache {
    let cache = PodCache::empty(
        KubernetesConfig {
            node_name: "node-a".into(),
            api_server: None,
            namespaces: Some(NamespaceKeys {
                labels: ["team", "cost-center"].map(String::from).into(),
                annotations: [
                    "owner.example/contact",
                    "kubectl.kubernetes.io/last-applied-configuration",
                ]
                .map(String::from)
                .into(),
            }),
            watch_node: false,
            leader: None,
        },
        &Telemetry::new(),
    );
    let mut relist = Relist::default();
    cache.apply(Event::Init, &mut relist);
    for p in pods {
        cache.apply(Event::InitApply(p), &mut relist);
    }
    cache.apply(Event::InitDone, &mut relist);
    assert!(cache.is_synced() && !cache.namespaces_synced());
    let mut relist = Relist::default();
    cache.apply_namespace(Event::Init, &mut relist);
    for ns in namespaces {
        cache.apply_namespace(Event::InitApply(ns), &mut relist);
    }
    cache.apply_namespace(Event::InitDone, &mut relist);
    assert!(cache.namespaces_synced());
    cache
}

#[test]
fn namespaces_are_listed_changed_deleted_and_relisted() {
    let cache = cache_with_namespaces(
        vec![],
        vec![
            namespace("shop", json!({"team": "shop"})),
            namespace("infra", json!({"team": "platform"})),
        ],
    );
    let shop = cache.namespace("shop").unwrap();
    assert_eq!(shop.label("team"), Some("shop"));
    assert_eq!(
        shop.annotation("owner.example/contact"),
        Some("team-shop@example.com")
    );
    assert_eq!(
        shop.annotation("kubectl.kubernetes.io/last-applied-configuration"),
        None,
        "kept out, as on pods"
    );
    let mut relist = Relist::default();
    cache.apply_namespace(
        Event::Apply(namespace("shop", json!({"team": "checkout"}))),
        &mut relist,
    );
    assert_eq!(
        cache.namespace("shop").unwrap().label("team"),
        Some("checkout")
    );
    cache.apply_namespace(Event::Delete(namespace("infra", json!({}))), &mut relist);
    assert!(cache.namespace("infra").is_none());
    // A relist that does not name `shop` drops it once complete.
    cache.apply_namespace(Event::Init, &mut relist);
    cache.apply_namespace(
        Event::InitApply(namespace("billing", json!({}))),
        &mut relist,
    );
    assert!(
        cache.namespace("shop").is_some(),
        "kept until the list is whole"
    );
    cache.apply_namespace(Event::InitDone, &mut relist);
    assert!(cache.namespace("shop").is_none());
    assert_eq!(cache.namespace_count(), 1);
}

/// A cache that has listed `pods`.
pub fn cache_with(pods: Vec<Pod>) -> PodCache {
    let cache = cache();
    let mut relist = Relist::default();
    cache.apply(Event::Init, &mut relist);
    for p in pods {
        cache.apply(Event::InitApply(p), &mut relist);
    }
    cache.apply(Event::InitDone, &mut relist);
    cache
}

#[test]
fn workloads_come_from_owner_names() {
    assert_eq!(
        workload("ReplicaSet", "web-5d8f9c7b6d"),
        ("Deployment", "web")
    );
    assert_eq!(
        workload("ReplicaSet", "my-api-server-7c9b4d6f8"),
        ("Deployment", "my-api-server")
    );
    // Not a template hash (vowels): a bare ReplicaSet.
    assert_eq!(
        workload("ReplicaSet", "frontend-abc"),
        ("ReplicaSet", "frontend-abc")
    );
    assert_eq!(
        workload("ReplicaSet", "frontend"),
        ("ReplicaSet", "frontend")
    );
    assert_eq!(workload("Job", "backup-28459200"), ("CronJob", "backup"));
    assert_eq!(workload("Job", "migrate-db"), ("Job", "migrate-db"));
    assert_eq!(workload("Job", "run-42"), ("Job", "run-42"));
    assert_eq!(workload("StatefulSet", "db"), ("StatefulSet", "db"));
    assert_eq!(workload("DaemonSet", "ferro"), ("DaemonSet", "ferro"));
    assert_eq!(workload("Node", "node-a"), ("Node", "node-a"));
}

#[test]
fn a_pod_is_trimmed_to_what_is_used() {
    let mut skipped = 0;
    let info = PodInfo::from_pod(
        &pod("shop", "web-1", "uid-1", Some("10.1.0.5")),
        &mut skipped,
    )
    .unwrap();
    assert_eq!(skipped, 1, "last-applied-configuration is not kept");
    assert_eq!(&*info.uid, "uid-1");
    assert_eq!(&*info.namespace, "shop");
    assert_eq!(&*info.node, "node-a");
    assert_eq!(info.ip, Some("10.1.0.5".parse().unwrap()));
    assert_eq!(info.ready, "true");
    assert_eq!(
        info.owner.as_ref().map(|(k, n)| (&**k, &**n)),
        Some(("Deployment", "web"))
    );
    assert_eq!(info.label("app.kubernetes.io/name"), Some("web"));
    assert_eq!(info.annotation("prometheus.io/port"), Some("9102"));
    assert_eq!(
        info.annotation("kubectl.kubernetes.io/last-applied-configuration"),
        None
    );
    assert_eq!(
        info.only_container(),
        Some("app"),
        "init containers do not count"
    );
    assert_eq!(info.containers.len(), 2);

    let mut big = pod_json("shop", "web-2", "uid-2", None);
    big["metadata"]["annotations"]["huge"] = json!("x".repeat(pod::MAX_ANNOTATION_VALUE + 1));
    let mut skipped = 0;
    let info = PodInfo::from_pod(&serde_json::from_value(big).unwrap(), &mut skipped).unwrap();
    assert_eq!(skipped, 2);
    assert_eq!(info.annotation("huge"), None);

    let mut no_uid = pod_json("shop", "web-3", "uid-3", None);
    no_uid["metadata"].as_object_mut().unwrap().remove("uid");
    assert!(PodInfo::from_pod(&serde_json::from_value(no_uid).unwrap(), &mut 0).is_err());
}

#[test]
fn lookups_by_uid_ip_and_name() {
    let cache = cache_with(vec![
        pod("shop", "web-1", "uid-1", Some("10.1.0.5")),
        pod("shop", "web-2", "uid-2", Some("10.1.0.6")),
    ]);
    assert!(cache.is_synced());
    assert_eq!(cache.len(), 2);
    assert_eq!(&*cache.by_uid("uid-2").unwrap().name, "web-2");
    assert_eq!(
        &*cache.by_ip("10.1.0.5".parse().unwrap()).unwrap().uid,
        "uid-1"
    );
    assert_eq!(&*cache.by_name("shop", "web-2").unwrap().uid, "uid-2");
    assert!(cache.by_name("other", "web-2").is_none());
    assert!(cache.by_ip("10.9.9.9".parse().unwrap()).is_none());
}

#[test]
fn a_dual_stack_pod_is_found_by_either_ip() {
    let mut json = pod_json("shop", "web-1", "uid-1", Some("10.1.0.5"));
    json["status"]["podIPs"] = serde_json::json!([{"ip": "10.1.0.5"}, {"ip": "fd00:10:1::5"}]);
    let cache = cache_with(vec![serde_json::from_value(json).unwrap()]);
    for ip in ["10.1.0.5", "fd00:10:1::5"] {
        assert_eq!(
            cache.by_ip(ip.parse().unwrap()).map(|p| p.uid.to_string()),
            Some("uid-1".to_string()),
            "{ip}"
        );
    }
    // Gone with the pod, both of them.
    let mut relist = Relist::default();
    cache.apply(
        Event::Delete(pod("shop", "web-1", "uid-1", Some("10.1.0.5"))),
        &mut relist,
    );
    assert!(cache.by_ip("fd00:10:1::5".parse().unwrap()).is_none());
}

#[test]
fn changes_and_deletes_update_every_index() {
    let cache = cache_with(vec![pod("shop", "web-1", "uid-1", Some("10.1.0.5"))]);
    let mut changes = cache.changes();
    changes.mark_unchanged();
    let mut relist = Relist::default();
    // The pod moves to a new IP.
    cache.apply(
        Event::Apply(pod("shop", "web-1", "uid-1", Some("10.1.0.7"))),
        &mut relist,
    );
    assert!(changes.has_changed().unwrap());
    assert!(cache.by_ip("10.1.0.5".parse().unwrap()).is_none());
    assert_eq!(
        &*cache.by_ip("10.1.0.7".parse().unwrap()).unwrap().uid,
        "uid-1"
    );
    cache.apply(
        Event::Delete(pod("shop", "web-1", "uid-1", Some("10.1.0.7"))),
        &mut relist,
    );
    assert!(cache.by_uid("uid-1").is_none());
    assert!(cache.by_name("shop", "web-1").is_none());
    assert!(cache.by_ip("10.1.0.7".parse().unwrap()).is_none());
    assert!(cache.is_empty());
}

#[test]
fn a_running_pod_wins_an_ip_over_a_finished_one() {
    let mut done = pod_json("shop", "job-1", "uid-old", Some("10.1.0.9"));
    done["status"]["phase"] = json!("Succeeded");
    let cache = cache_with(vec![
        serde_json::from_value(done).unwrap(),
        pod("shop", "web-1", "uid-new", Some("10.1.0.9")),
    ]);
    assert_eq!(
        &*cache.by_ip("10.1.0.9".parse().unwrap()).unwrap().uid,
        "uid-new"
    );
    cache.apply(
        Event::Delete(pod("shop", "web-1", "uid-new", Some("10.1.0.9"))),
        &mut Relist::default(),
    );
    assert_eq!(
        &*cache.by_ip("10.1.0.9".parse().unwrap()).unwrap().uid,
        "uid-old"
    );
}

#[test]
fn host_network_pods_are_not_found_by_ip() {
    let mut host = pod_json("kube-system", "proxy", "uid-h", Some("10.0.0.1"));
    host["spec"]["hostNetwork"] = json!(true);
    let cache = cache_with(vec![serde_json::from_value(host).unwrap()]);
    assert!(cache.by_ip("10.0.0.1".parse().unwrap()).is_none());
    assert!(cache.by_uid("uid-h").is_some());
}

#[test]
fn a_relist_drops_pods_it_no_longer_names_only_when_complete() {
    let cache = cache_with(vec![
        pod("shop", "web-1", "uid-1", Some("10.1.0.5")),
        pod("shop", "web-2", "uid-2", Some("10.1.0.6")),
    ]);
    let mut relist = Relist::default();
    cache.apply(Event::Init, &mut relist);
    cache.apply(
        Event::InitApply(pod("shop", "web-2", "uid-2", Some("10.1.0.6"))),
        &mut relist,
    );
    assert!(cache.by_uid("uid-1").is_some(), "still served mid-relist");
    cache.apply(Event::InitDone, &mut relist);
    assert!(cache.by_uid("uid-1").is_none());
    assert_eq!(cache.len(), 1);
}

#[test]
fn the_cache_is_bounded() {
    let cache = cache();
    let mut relist = Relist::default();
    cache.apply(Event::Init, &mut relist);
    for i in 0..cache::MAX_PODS + 3 {
        cache.apply(
            Event::InitApply(pod("ns", &format!("p{i}"), &format!("u{i}"), None)),
            &mut relist,
        );
    }
    cache.apply(Event::InitDone, &mut relist);
    assert_eq!(cache.len(), cache::MAX_PODS);
}

#[test]
fn discovery_by_annotation_gives_prometheus_meta_labels() {
    let mut plain = pod_json("shop", "db-0", "uid-db", Some("10.1.0.8"));
    plain["metadata"]["annotations"] = json!({});
    let mut custom = pod_json("shop", "api-1", "uid-api", Some("fd00::7"));
    custom["metadata"]["annotations"] = json!({
        "prometheus.io/scrape": "true",
        "prometheus.io/path": "/custom",
        "prometheus.io/scheme": "https"
    });
    let cache = cache_with(vec![
        pod("shop", "web-1", "uid-1", Some("10.1.0.5")),
        serde_json::from_value(plain).unwrap(),
        serde_json::from_value(custom).unwrap(),
        pod("shop", "starting", "uid-s", None),
    ]);
    let groups = target_groups(
        &cache.pods(),
        Some(&ScrapeAnnotations::prefixed("prometheus.io")),
    );
    let targets: Vec<&str> = groups.iter().map(|g| g.targets[0].as_str()).collect();
    // api-1 has no port annotation: each declared TCP port; web-1 the annotated one.
    assert_eq!(
        targets,
        ["[fd00::7]:8080", "[fd00::7]:9102", "10.1.0.5:9102"]
    );
    let api = &groups[0].labels;
    assert_eq!(api["__metrics_path__"], "/custom");
    assert_eq!(api["__scheme__"], "https");
    let web = &groups[2].labels;
    for (name, value) in [
        ("__meta_kubernetes_namespace", "shop"),
        ("__meta_kubernetes_pod_name", "web-1"),
        ("__meta_kubernetes_pod_ip", "10.1.0.5"),
        ("__meta_kubernetes_pod_uid", "uid-1"),
        ("__meta_kubernetes_pod_node_name", "node-a"),
        ("__meta_kubernetes_pod_host_ip", "10.0.0.1"),
        ("__meta_kubernetes_pod_ready", "true"),
        ("__meta_kubernetes_pod_phase", "Running"),
        ("__meta_kubernetes_pod_controller_kind", "ReplicaSet"),
        ("__meta_kubernetes_pod_controller_name", "web-5d8f9c7b6d"),
        ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "web"),
        (
            "__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name",
            "true",
        ),
        (
            "__meta_kubernetes_pod_annotation_prometheus_io_port",
            "9102",
        ),
        ("__meta_kubernetes_pod_container_name", "app"),
        ("__meta_kubernetes_pod_container_port_name", "metrics"),
        ("__meta_kubernetes_pod_container_port_number", "9102"),
        ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
        ("__meta_kubernetes_pod_container_init", "false"),
    ] {
        assert_eq!(web.get(name).map(String::as_str), Some(value), "{name}");
    }
    assert!(!web.contains_key("__metrics_path__"));
}

#[test]
fn discovery_without_annotations_is_the_pod_role() {
    let cache = cache_with(vec![pod("shop", "web-1", "uid-1", Some("10.1.0.5"))]);
    let groups = target_groups(&cache.pods(), None);
    let targets: Vec<&str> = groups.iter().map(|g| g.targets[0].as_str()).collect();
    // Both app ports, and the port-less init container.
    assert_eq!(targets, ["10.1.0.5:8080", "10.1.0.5:9102", "10.1.0.5"]);
    assert_eq!(
        groups[2].labels["__meta_kubernetes_pod_container_init"],
        "true"
    );
}

/// A pod of `pod_json` with `annotations` and the app container's ports
/// `http-pprof` (6060) and `http` (8080).
fn annotated(name: &str, ip: &str, annotations: serde_json::Value) -> Pod {
    let mut p = pod_json("shop", name, &format!("uid-{name}"), Some(ip));
    p["metadata"]["annotations"] = annotations;
    p["spec"]["containers"][0]["ports"] = json!([
        {"name": "http-pprof", "containerPort": 6060, "protocol": "TCP"},
        {"name": "http", "containerPort": 8080, "protocol": "TCP"}
    ]);
    serde_json::from_value(p).unwrap()
}

#[test]
fn profile_annotations_name_the_type_and_resolve_port_names() {
    let keys = |kind: &str| ScrapeAnnotations::profiles("profiles.grafana.com", kind, "__p__");
    let memory = keys("memory");
    assert_eq!(memory.scrape, "profiles.grafana.com/memory.scrape");
    assert_eq!(memory.port, "profiles.grafana.com/memory.port");
    assert_eq!(
        memory.port_name.as_deref(),
        Some("profiles.grafana.com/memory.port_name")
    );
    let cache = cache_with(vec![
        annotated(
            "checkout",
            "10.1.2.3",
            json!({
                "profiles.grafana.com/cpu.scrape": "true",
                "profiles.grafana.com/cpu.port_name": "http-pprof",
                "profiles.grafana.com/cpu.scheme": "https",
                "profiles.grafana.com/memory.scrape": "true",
                "profiles.grafana.com/memory.port": "6060",
                "profiles.grafana.com/memory.port_name": "http",
                "profiles.grafana.com/memory.path": "/debug/pprof/heap",
                "profiles.grafana.com/mutex.scrape": "false",
                "profiles.grafana.com/mutex.port": "6060",
                "profiles.grafana.com/block.scrape": "true",
                "profiles.grafana.com/block.path": "not-absolute",
                "profiles.grafana.com/goroutine.scrape": "true",
                "profiles.grafana.com/goroutine.port_name": "no-such-port"
            }),
        ),
        annotated(
            "v6",
            "fd00::9",
            json!({
                "profiles.grafana.com/cpu.scrape": "true",
                "profiles.grafana.com/cpu.port": "7070"
            }),
        ),
    ]);
    let pods = cache.pods();
    let found = |kind: &str| target_groups(&pods, Some(&keys(kind)));

    // port_name: the declared port of that name, with its container's labels.
    let cpu = found("cpu");
    let targets: Vec<&str> = cpu.iter().map(|g| g.targets[0].as_str()).collect();
    assert_eq!(targets, ["10.1.2.3:6060", "[fd00::9]:7070"]);
    assert_eq!(cpu[0].labels["__meta_kubernetes_pod_container_name"], "app");
    assert_eq!(
        cpu[0].labels["__meta_kubernetes_pod_container_port_name"],
        "http-pprof"
    );
    assert_eq!(cpu[0].labels["__scheme__"], "https");
    assert_eq!(cpu[0].labels["__meta_kubernetes_pod_name"], "checkout");
    assert_eq!(cpu[0].labels["__meta_kubernetes_namespace"], "shop");
    assert!(!cpu[0].labels.contains_key("__p__"));
    // A port no container declares: the pod's only container is named.
    assert_eq!(cpu[1].labels["__meta_kubernetes_pod_container_name"], "app");
    assert!(
        !cpu[1]
            .labels
            .contains_key("__meta_kubernetes_pod_container_port_name")
    );

    // port wins over port_name; the path goes into the label asked for.
    let memory = found("memory");
    assert_eq!(memory.len(), 1);
    assert_eq!(memory[0].targets, ["10.1.2.3:6060"]);
    assert_eq!(memory[0].labels["__p__"], "/debug/pprof/heap");
    assert!(!memory[0].labels.contains_key("__metrics_path__"));

    assert!(found("mutex").is_empty(), "scrape must be \"true\"");
    // No port annotation: each declared TCP port of the regular containers;
    // a path that is not absolute is not taken.
    let block = found("block");
    let targets: Vec<&str> = block.iter().map(|g| g.targets[0].as_str()).collect();
    assert_eq!(targets, ["10.1.2.3:6060", "10.1.2.3:8080"]);
    assert!(block.iter().all(|g| !g.labels.contains_key("__p__")));
    // A port name no container declares: not scraped at all.
    assert!(found("goroutine").is_empty());

    // The Prometheus convention has no port_name.
    assert_eq!(ScrapeAnnotations::prefixed("prometheus.io").port_name, None);
}
