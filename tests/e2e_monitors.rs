//! ServiceMonitors and PodMonitors end to end: the Kubernetes API stand-in
//! serves the monitors, Services and each node's pods in the real wire
//! format; every pod is a real HTTP server on a loopback address of its
//! own; the agents remote-write into Debian's Prometheus. Each target is
//! scraped by exactly one agent (its pod's node's), under the labels the
//! Prometheus Operator's generated config gives it; monitors added,
//! changed and deleted while ferro runs take effect; what ferro cannot
//! follow is counted and logged, and the rest keeps working.

mod common;

use common::kube_api::{self, KubeApi};
use common::prom::{prometheus, series};
use common::{Ferro, WAIT, eventually, eventually_async, told};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A pod's metrics endpoint: `/metrics` on its own loopback address.
struct PodServer {
    addr: SocketAddr,
    scrapes: Arc<AtomicUsize>,
}

impl PodServer {
    async fn start(ip: &str, name: &str) -> PodServer {
        let scrapes = Arc::new(AtomicUsize::new(0));
        let counted = scrapes.clone();
        let page = format!(
            "# TYPE app_requests_total counter\napp_requests_total{{code=\"200\",served_by=\"{name}\"}} 42\n# TYPE go_goroutines gauge\ngo_goroutines 7\n"
        );
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                counted.fetch_add(1, Ordering::Relaxed);
                let page = page.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        page,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        PodServer { addr, scrapes }
    }

    fn scrapes(&self) -> usize {
        self.scrapes.load(Ordering::Relaxed)
    }
}

/// A pod of `node` labelled `app`, whose container port `http` is its
/// server's.
fn pod(node: &str, name: &str, app: &str, server: &PodServer) -> Value {
    let ip = server.addr.ip().to_string();
    let mut pod = kube_api::pod(node, "shop", name, &format!("uid-{name}"), &ip);
    pod["metadata"]["labels"] = json!({"app": app, "version": "v2"});
    pod["spec"]["containers"][0]["ports"] =
        json!([{"name": "http", "containerPort": server.addr.port(), "protocol": "TCP"}]);
    pod
}

fn config(api: &KubeApi, node: &str, prometheus: SocketAddr) -> String {
    config_of(api, node, &prometheus.to_string(), None)
}

/// An agent of `node` following the monitors labelled `release=prom`, with
/// a leader Lease in `lease_namespace` if given.
fn config_of(api: &KubeApi, node: &str, prometheus: &str, lease_namespace: Option<&str>) -> String {
    format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        {kubernetes}
        [[receivers.prometheus.k8s.monitors]]
        selector = {{ match_labels = {{ release = "prom" }} }}
        scrape_interval = "1s"
        scrape_timeout = "900ms"
        [exporters.remote_write.prom]
        endpoint = "http://{prometheus}/api/v1/write"
        batch_send_deadline = "100ms"
        [pipelines.metrics]
        receivers = ["prometheus.k8s"]
        exporters = ["remote_write.prom"]
        "#,
        kubernetes = kube_api::kubernetes_toml(api, node, lease_namespace),
    )
}

/// The targets (`host:port`) an agent scrapes now (its self-metrics name
/// each by URL).
fn targets(ferro: &Ferro) -> Vec<String> {
    let mut out: Vec<String> = ferro
        .metrics()
        .lines()
        .filter(|l| l.starts_with("ferro_scrape_target_up{"))
        .filter_map(|l| {
            let start = l.find("target=\"")? + 8;
            let end = l[start..].find('"')? + start;
            let url = &l[start..end];
            let address = url.strip_prefix("http://")?.split('/').next()?;
            Some(address.to_string())
        })
        .collect();
    out.sort();
    out
}

fn web_service() -> Value {
    kube_api::service(
        "shop",
        "web",
        json!({"app": "web", "team": "storefront"}),
        json!({"app": "web"}),
        json!([{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]),
    )
}

fn web_monitor(spec_extra: Value) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": "web"}},
        "targetLabels": ["team"],
        "podTargetLabels": ["version"],
        "endpoints": [{"port": "http", "interval": "1s", "scrapeTimeout": "900ms",
                       "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "go_.*", "action": "drop"}]}]
    });
    for (k, v) in spec_extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    kube_api::monitor(
        "ServiceMonitor",
        "shop",
        "web",
        json!({"release": "prom"}),
        spec,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_monitor_target_is_scraped_by_its_nodes_agent_with_the_operators_labels() {
    let Some(prom) = prometheus() else { return };
    let nodes = ["node-a", "node-b", "node-c"];
    let api = KubeApi::start_nodes(&nodes).await;
    let mut servers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for j in 0..2 {
            let name = format!("web-{node}-{j}");
            let server = PodServer::start(&format!("127.0.0.{}", 11 + i * 2 + j), &name).await;
            api.add(pod(node, &name, "web", &server));
            servers.push((node.to_string(), name, server));
        }
    }
    api.add_object("services", web_service());
    api.add_object("servicemonitors", web_monitor(json!({})));
    // Not honoured: no release=prom label.
    api.add_object(
        "servicemonitors",
        kube_api::monitor(
            "ServiceMonitor",
            "shop",
            "ignored",
            json!({"release": "other"}),
            json!({"selector": {"matchLabels": {"app": "web"}}, "endpoints": [{"port": "http"}]}),
        ),
    );
    let agents: Vec<Ferro> = nodes
        .iter()
        .map(|node| Ferro::start(&config(&api, node, prom.addr)))
        .collect();

    // Each agent scrapes its own node's pods, and no other.
    for (agent, node) in agents.iter().zip(nodes) {
        let mut mine: Vec<String> = servers
            .iter()
            .filter(|(n, _, _)| n == node)
            .map(|(_, _, s)| s.addr.to_string())
            .collect();
        mine.sort();
        let what = told(|| {
            format!(
                "{node}'s agent to scrape {mine:?} (has {:?})",
                targets(agent)
            )
        });
        eventually(what, WAIT, || targets(agent) == mine);
    }
    eventually_async("every pod scraped", WAIT, || {
        servers.iter().all(|(_, _, s)| s.scrapes() >= 2)
    })
    .await;

    // In Prometheus: one series per pod, with the Operator's labels.
    let what = told(|| {
        format!(
            "six series in Prometheus: {:?}",
            series(prom.addr, "app_requests_total")
        )
    });
    eventually(what, WAIT, || {
        series(prom.addr, "app_requests_total").len() == 6
    });
    for labels in series(prom.addr, "app_requests_total") {
        let get = |name: &str| {
            labels
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let (node, pod, server) = servers
            .iter()
            .find(|(_, name, _)| name == get("served_by"))
            .map(|(n, p, s)| (n, p, s))
            .expect("a pod's series");
        assert_eq!(get("pod"), pod.as_str(), "{labels:?}");
        assert_eq!(get("instance"), server.addr.to_string());
        for (name, value) in [
            ("job", "web"),
            ("namespace", "shop"),
            ("service", "web"),
            ("container", "app"),
            ("endpoint", "http"),
            ("team", "storefront"),
            ("version", "v2"),
        ] {
            assert_eq!(get(name), value, "{name} in {labels:?} ({node})");
        }
        assert!(
            !labels.iter().any(|(n, _)| n.starts_with("__tmp")),
            "{labels:?}"
        );
    }
    // metricRelabelings dropped go_*.
    assert!(series(prom.addr, "go_goroutines").is_empty());
    assert!(!series(prom.addr, "up").is_empty(), "synthetic series");
    // The monitor without the label is not followed.
    for agent in &agents {
        assert_eq!(agent.metric("ferro_prometheus_monitor_jobs", &[]), 1.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_take_effect_while_running_and_bad_ones_are_counted_alone() {
    let Some(prom) = prometheus() else { return };
    let api = KubeApi::start("node-a").await;
    let web = PodServer::start("127.0.0.21", "web-0").await;
    let worker = PodServer::start("127.0.0.22", "worker-0").await;
    api.add(pod("node-a", "web-0", "web", &web));
    api.add(pod("node-a", "worker-0", "worker", &worker));
    api.add_object("services", web_service());
    let ferro = Ferro::start(&config(&api, "node-a", prom.addr));
    assert!(targets(&ferro).is_empty());

    // A ServiceMonitor with a field ferro does not act on: scraped, the
    // field counted and logged.
    api.add_object(
        "servicemonitors",
        web_monitor(json!({"attachMetadata": {"node": true}})),
    );
    eventually("the web pod scraped", WAIT, || {
        targets(&ferro) == [web.addr.to_string()]
    });
    ferro.wait_for_log("monitor sets fields ferro does not act on", WAIT);
    let unsupported = ["reason=\"unsupported_field\""];
    assert_eq!(
        ferro.metric("ferro_prometheus_monitor_problems_total", &unsupported),
        1.0
    );

    // A PodMonitor added while running: the worker pod too, job
    // namespace/name as the Operator names it.
    let pod_monitor = kube_api::monitor(
        "PodMonitor",
        "shop",
        "worker",
        json!({"release": "prom"}),
        json!({"selector": {"matchLabels": {"app": "worker"}},
               "podMetricsEndpoints": [{"port": "http", "interval": "1s", "scrapeTimeout": "900ms"}]}),
    );
    api.add_object("podmonitors", pod_monitor.clone());
    eventually("the worker pod scraped too", WAIT, || {
        targets(&ferro).len() == 2
    });
    let web_scrapes = web.scrapes();
    eventually("its series in Prometheus", WAIT, || {
        series(prom.addr, "app_requests_total{served_by=\"worker-0\"}")
            .iter()
            .any(|l| l.contains(&("job".to_string(), "shop/worker".to_string())))
    });

    // Changed: a relabeling drops the target; the ServiceMonitor's job goes on.
    let mut changed = pod_monitor.clone();
    changed["spec"]["podMetricsEndpoints"][0]["relabelings"] = json!([{"action": "drop", "sourceLabels": ["__meta_kubernetes_pod_name"], "regex": "worker-.*"}]);
    api.modify_object("podmonitors", changed);
    eventually("the worker pod dropped by relabeling", WAIT, || {
        targets(&ferro) == [web.addr.to_string()]
    });
    // Only the changed monitor's job was restarted.
    let stopped: Vec<String> = ferro
        .logs()
        .lines()
        .filter(|l| l.contains("monitor job stopped"))
        .map(str::to_string)
        .collect();
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert!(
        stopped[0].contains("podMonitor/shop/worker/0"),
        "{stopped:?}"
    );
    eventually("the web pod scraped on", WAIT, || {
        web.scrapes() > web_scrapes + 1
    });

    // A monitor with an invalid regex: counted and logged, the others go on.
    let mut bad = pod_monitor.clone();
    bad["metadata"]["name"] = json!("bad");
    bad["metadata"]["uid"] = json!("PodMonitor-shop-bad");
    bad["spec"]["podMetricsEndpoints"][0]["metricRelabelings"] =
        json!([{"sourceLabels": ["__name__"], "regex": "go_(", "action": "drop"}]);
    api.add_object("podmonitors", bad);
    // And one whose selector the API server would refuse.
    let mut bad_selector = pod_monitor.clone();
    bad_selector["metadata"]["name"] = json!("bad-selector");
    bad_selector["metadata"]["uid"] = json!("PodMonitor-shop-bad-selector");
    bad_selector["spec"]["selector"] =
        json!({"matchExpressions": [{"key": "app", "operator": "Near"}]});
    api.add_object("podmonitors", bad_selector);
    ferro.wait_for_log("monitor endpoint refused", WAIT);
    ferro.wait_for_log("monitor cannot be read", WAIT);
    assert_eq!(
        ferro.metric(
            "ferro_prometheus_monitor_problems_total",
            &["reason=\"invalid_endpoint\""]
        ),
        1.0
    );
    assert_eq!(
        ferro.metric(
            "ferro_prometheus_monitor_problems_total",
            &["reason=\"invalid\""]
        ),
        1.0
    );
    let before = web.scrapes();
    eventually("the web pod still scraped", WAIT, || {
        web.scrapes() > before + 1
    });

    // Deleted: its targets stop.
    api.delete_object("servicemonitors", "ServiceMonitor-shop-web");
    eventually("the ServiceMonitor's targets gone", WAIT, || {
        targets(&ferro).is_empty()
    });
    assert_eq!(
        ferro.metric("ferro_prometheus_monitor_jobs", &[]),
        1.0,
        "the PodMonitor's"
    );
}

/// Two agents with a leader: a Service without a selector whose endpoint
/// is no pod (as the API server's own) is scraped by the leader alone, from
/// its EndpointSlice; the slice's pod endpoint is left to the pod's node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_scrapes_endpoints_that_are_not_pods() {
    let nodes = ["node-a", "node-b"];
    let api = KubeApi::start_nodes(&nodes).await;
    let external = PodServer::start("127.0.0.31", "external").await;
    api.add_object(
        "services",
        kube_api::service(
            "default",
            "kubernetes",
            json!({"component": "apiserver", "provider": "kubernetes"}),
            Value::Null,
            json!([{"name": "https", "port": 443, "targetPort": external.addr.port(), "protocol": "TCP"}]),
        ),
    );
    api.add_object(
        "endpointslices",
        kube_api::endpoint_slice(
            "default",
            "kubernetes",
            "slice-kubernetes",
            json!([{"name": "https", "port": external.addr.port(), "protocol": "TCP"}]),
            json!([
                {"addresses": ["127.0.0.31"], "conditions": {"ready": true}},
                {"addresses": ["127.0.0.32"], "conditions": {"ready": true},
                 "targetRef": {"kind": "Pod", "name": "elsewhere", "namespace": "default", "uid": "u-elsewhere"}}
            ]),
        ),
    );
    // A slice of a Service no monitor selects: not watched.
    api.add_object(
        "endpointslices",
        kube_api::endpoint_slice("default", "other", "slice-other", json!([]), json!([])),
    );
    api.add_object(
        "servicemonitors",
        kube_api::monitor(
            "ServiceMonitor",
            "default",
            "apiserver",
            json!({"release": "prom"}),
            json!({"selector": {"matchLabels": {"component": "apiserver"}},
                   "namespaceSelector": {"matchNames": ["default"]},
                   "endpoints": [{"port": "https", "interval": "1s", "scrapeTimeout": "900ms"}]}),
        ),
    );
    let config = |node: &str| {
        let sink = "127.0.0.1:9"; // remote-write goes nowhere: only targets are checked
        config_of(&api, node, sink, Some("ferro"))
    };
    let mut agents: Vec<Option<Ferro>> = nodes
        .iter()
        .map(|n| Some(Ferro::start(&config(n))))
        .collect();
    let external_target = vec![external.addr.to_string()];
    let scraping = |agents: &[Option<Ferro>]| -> Vec<usize> {
        (0..agents.len())
            .filter(|i| {
                agents[*i]
                    .as_ref()
                    .is_some_and(|a| targets(a) == external_target)
            })
            .collect()
    };
    let mut leader = Vec::new();
    eventually("the leader to scrape the endpoint", WAIT, || {
        leader = scraping(&agents);
        leader.len() == 1
    });
    let leader = leader[0];
    assert_eq!(
        agents[leader]
            .as_ref()
            .unwrap()
            .metric("ferro_k8s_leader", &[]),
        1.0
    );
    eventually_async("scraped", WAIT, || external.scrapes() >= 2).await;
    // The EndpointSlice watch is the leader's alone, narrowed to the
    // monitored Service.
    let slice_watches: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.resource == "endpointslices")
        .collect();
    assert!(!slice_watches.is_empty());
    assert!(
        slice_watches
            .iter()
            .all(|r| r.label_selector.as_deref()
                == Some("kubernetes.io/service-name in (kubernetes)"))
    );
    // The leader goes: the other takes the endpoint over.
    agents[leader].as_mut().unwrap().signal("TERM");
    assert!(agents[leader].as_mut().unwrap().wait_exit(WAIT).success());
    agents[leader] = None;
    eventually("the other agent to scrape it", WAIT, || {
        scraping(&agents) == [1 - leader]
    });
}

/// What one agent asked of the API server and was sent, by resource.
#[derive(Debug, PartialEq)]
struct Load {
    requests: std::collections::BTreeMap<&'static str, usize>,
    objects: std::collections::BTreeMap<&'static str, usize>,
}

/// One agent of node-a following a ServiceMonitor and a PodMonitor over
/// `local` pods of its own and `elsewhere` pods on ten other nodes, until
/// each of its pods was scraped five times: what it read.
async fn load(local: usize, elsewhere: usize) -> Load {
    let mut nodes = vec!["node-a".to_string()];
    nodes.extend((0..10).map(|i| format!("node-{i}")));
    let node_refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let api = KubeApi::start_nodes(&node_refs).await;
    let mut servers = Vec::new();
    for i in 0..local {
        let server = PodServer::start(&format!("127.0.1.{}", 10 + i), &format!("web-{i}")).await;
        api.add(pod("node-a", &format!("web-{i}"), "web", &server));
        servers.push(server);
    }
    for i in 0..elsewhere {
        let node = &nodes[1 + i % 10];
        let ip = format!("10.1.{}.{}", i / 200, i % 200 + 10);
        let mut p = kube_api::pod(
            node,
            "shop",
            &format!("far-{i}"),
            &format!("uid-far-{i}"),
            &ip,
        );
        p["metadata"]["labels"] = json!({"app": "web"});
        api.add(p);
    }
    api.add_object("services", web_service());
    api.add_object("servicemonitors", web_monitor(json!({})));
    api.add_object(
        "podmonitors",
        kube_api::monitor(
            "PodMonitor",
            "shop",
            "web-pods",
            json!({"release": "prom"}),
            json!({"selector": {"matchLabels": {"app": "web"}},
                   "podMetricsEndpoints": [{"port": "http", "interval": "1s", "scrapeTimeout": "900ms"}]}),
        ),
    );
    let ferro = Ferro::start(&config(&api, "node-a", "127.0.0.1:9".parse().unwrap()));
    eventually("both jobs' targets", WAIT, || {
        targets(&ferro).len() == 2 * local
    });
    eventually_async("five scrapes of every pod by each job", WAIT, || {
        servers.iter().all(|s| s.scrapes() >= 10)
    })
    .await;
    let mut requests = std::collections::BTreeMap::new();
    for r in api.requests() {
        *requests.entry(r.resource).or_default() += 1;
    }
    let objects = [
        "pods",
        "services",
        "servicemonitors",
        "podmonitors",
        "endpointslices",
    ]
    .into_iter()
    .map(|r| (r, api.objects_sent(r)))
    .collect();
    Load { requests, objects }
}

/// API-server load: what an agent reads grows with its own node's pods,
/// not with the cluster's. 200 pods on other nodes, behind the same
/// Service and monitors, change nothing it asks or is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_api_reads_follow_its_own_node_not_the_cluster() {
    let alone = load(20, 0).await;
    let in_a_crowd = load(20, 200).await;
    eprintln!("20 pods here, none elsewhere: {alone:?}");
    eprintln!("20 pods here, 200 elsewhere: {in_a_crowd:?}");
    assert_eq!(in_a_crowd.objects, alone.objects);
    assert_eq!(
        in_a_crowd.objects["pods"], 20,
        "this node's pods, once each"
    );
    assert_eq!(
        in_a_crowd.objects["endpointslices"], 0,
        "no leader: no slices"
    );
    // One list and one watch of each (a watch renewed at most once).
    for (resource, n) in &in_a_crowd.requests {
        assert!(*n <= 4, "{resource}: {n} requests");
        assert!(n.abs_diff(alone.requests[resource]) <= 1, "{resource}");
    }
}

/// An endpoint whose `tlsConfig` names its CA by ConfigMap key: ferro
/// reads it and scrapes over HTTPS; one that names a Secret ferro may not
/// read is counted and logged, and not scraped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_from_configmaps_and_secrets_where_rbac_allows() {
    let dir = tempfile::tempdir().unwrap();
    let cert = common::sink::TestCert::new(dir.path());
    let scrapes = Arc::new(AtomicUsize::new(0));
    let counted = scrapes.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            async { "# TYPE secure_up gauge\nsecure_up 1\n" }
        }),
    );
    let addr = cert.serve(app).await;
    let api = KubeApi::start("node-a").await;
    let mut secure = kube_api::pod("node-a", "shop", "secure-0", "uid-secure-0", "127.0.0.1");
    secure["metadata"]["labels"] = json!({"app": "secure"});
    secure["spec"]["containers"][0]["ports"] =
        json!([{"name": "https", "containerPort": addr.port(), "protocol": "TCP"}]);
    api.add(secure);
    api.add_object(
        "services",
        kube_api::service(
            "shop",
            "secure",
            json!({"app": "secure"}),
            json!({"app": "secure"}),
            json!([{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]),
        ),
    );
    let pem = std::fs::read_to_string(&cert.cert_file).unwrap();
    api.put_config_map("shop", "secure-ca", json!({"ca.crt": pem}));
    api.forbid_secrets(true);
    let endpoint = |ca: Value| {
        json!([{"port": "https", "scheme": "https", "interval": "1s", "scrapeTimeout": "900ms",
                "tlsConfig": {"ca": ca, "serverName": "localhost"}}])
    };
    api.add_object(
        "servicemonitors",
        kube_api::monitor(
            "ServiceMonitor",
            "shop",
            "secure",
            json!({"release": "prom"}),
            json!({"selector": {"matchLabels": {"app": "secure"}},
                   "endpoints": endpoint(json!({"configMap": {"name": "secure-ca", "key": "ca.crt"}}))}),
        ),
    );
    api.add_object(
        "servicemonitors",
        kube_api::monitor(
            "ServiceMonitor",
            "shop",
            "secret-ca",
            json!({"release": "prom"}),
            json!({"selector": {"matchLabels": {"app": "secure"}},
                   "endpoints": endpoint(json!({"secret": {"name": "secure-ca", "key": "ca.crt"}}))}),
        ),
    );
    let ferro = Ferro::start(&config(&api, "node-a", "127.0.0.1:9".parse().unwrap()));
    let target = format!("https://127.0.0.1:{}/metrics", addr.port());
    let up = ["job=\"serviceMonitor/shop/secure/0\""];
    // The waits block this thread: off the runtime's workers, so that the
    // stand-ins' tasks (the API server, the HTTPS target) keep running.
    tokio::task::block_in_place(|| {
        ferro.wait_metric("ferro_scrape_target_up", &up, |v| v == 1.0);
        ferro.wait_for_log("may not read it (RBAC: get on secrets in shop)", WAIT);
    });
    assert!(ferro.metrics().contains(&target));
    assert!(scrapes.load(Ordering::Relaxed) >= 1);
    assert_eq!(
        ferro.metric(
            "ferro_prometheus_monitor_problems_total",
            &["reason=\"tls_unreadable\""]
        ),
        1.0
    );
    assert!(!ferro.metrics().contains("serviceMonitor/shop/secret-ca/0"));
}
