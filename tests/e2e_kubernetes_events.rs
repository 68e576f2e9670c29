//! Kubernetes events end to end: ferro lists and watches `events.k8s.io/v1`
//! events at the Kubernetes API stand-in and ships them to the Loki
//! stand-in (with Loki's default unordered writes, which drop an exact
//! duplicate: the tests count those, so a line shipped twice shows). Each
//! event becomes one line in Alloy's format; an event seen again with the
//! same count, a relist after `410 Gone`, a restart, and a new leader
//! after the old one is killed ship nothing twice and lose nothing.

mod common;

use common::kube_api::{self, KubeApi};
use common::loki::{Limits, LokiServer, Received};
use common::{Ferro, WAIT, eventually, told};
use serde_json::{Value, json};

const NAMESPACE: &str = "monitoring";

struct Setup {
    api: KubeApi,
    loki: LokiServer,
    _tmp: tempfile::TempDir,
    data: std::path::PathBuf,
}

async fn setup(nodes: &[&str]) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    Setup {
        api: KubeApi::start_nodes(nodes).await,
        loki: LokiServer::start_with(Limits {
            unordered_writes: true,
            ..Limits::default()
        })
        .await,
        data: tmp.path().to_path_buf(),
        _tmp: tmp,
    }
}

/// ferro of `node` shipping events; `leader` adds `[kubernetes.leader]`
/// (else the receiver is not leader-only).
fn config(s: &Setup, node: &str, leader: bool) -> String {
    let kubernetes = kube_api::kubernetes_toml(&s.api, node, leader.then_some(NAMESPACE));
    format!(
        r#"
        data_dir = "{data}"
        [telemetry]
        listen = "127.0.0.1:0"
        {kubernetes}
        [receivers.kubernetes_events.cluster]
        leader_only = {leader}
        state_namespace = "{NAMESPACE}"
        labels = {{ cluster = "test" }}
        [processors.batch.b]
        timeout = "50ms"
        [exporters.loki.out]
        endpoint = "{loki}"
        [pipelines.logs]
        receivers = ["kubernetes_events.cluster"]
        processors = ["batch.b"]
        exporters = ["loki.out"]
        "#,
        data = s.data.join(node).display(),
        loki = s.loki.url(),
    )
}

/// Every line stored, with its stream's labels.
fn lines(loki: &LokiServer) -> Vec<(Vec<(String, String)>, String)> {
    loki.with(|r: &Received| {
        r.streams
            .iter()
            .flat_map(|((_, labels), entries)| {
                entries.iter().map(|e| (labels.clone(), e.line.clone()))
            })
            .collect()
    })
}

fn stored(loki: &LokiServer) -> usize {
    loki.with(Received::entry_count)
}

fn duplicates(loki: &LokiServer) -> usize {
    loki.with(|r| r.duplicates)
}

/// Waits until exactly `n` lines are stored, and checks none came twice.
fn expect_lines(loki: &LokiServer, n: usize) {
    let what = told(|| format!("{n} lines at the Loki stand-in (have {})", stored(loki)));
    eventually(what, WAIT, || stored(loki) >= n);
    assert_eq!(stored(loki), n, "{:#?}", lines(loki));
    assert_eq!(duplicates(loki), 0, "a line was shipped twice");
}

/// The state ConfigMap's text.
fn state(api: &KubeApi) -> String {
    api.config_map(NAMESPACE, "ferro-events-cluster")
        .and_then(|m| m["data"]["state"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn shipped_in_state(api: &KubeApi, uid: &str, count: i32) -> bool {
    state(api)
        .lines()
        .any(|l| l.starts_with(&format!("shipped {uid} {count} ")))
}

/// `ferro_kubernetes_events_<name>_total{reason}` of the receiver.
fn events_metric(ferro: &Ferro, name: &str, reason: &str) -> f64 {
    let reason = format!("reason=\"{reason}\"");
    ferro.metric(
        &format!("ferro_kubernetes_events_{name}_total"),
        &["component=\"kubernetes_events.cluster\"", &reason],
    )
}

/// Waits until [`events_metric`] passes `check`.
fn wait_events_metric(ferro: &Ferro, name: &str, reason: &str, check: impl Fn(f64) -> bool) {
    let what = told(|| {
        format!(
            "{name}{{reason={reason}}} ({})",
            events_metric(ferro, name, reason)
        )
    });
    eventually(what, WAIT, || check(events_metric(ferro, name, reason)));
}

fn event(uid: &str, reason: &str, note: &str, count: i32, last: &str) -> Value {
    kube_api::event("default", uid, reason, note, count, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_ship_once_in_alloys_format_across_changes_relists_and_restarts() {
    let s = setup(&["node-a"]).await;
    s.api.add_event(event(
        "ev-1",
        "Pulled",
        "Successfully pulled image \"nginx:1.27\"",
        1,
        "2025-06-01T10:00:01Z",
    ));
    let mut system = kube_api::event(
        "kube-system",
        "ev-2",
        "FailedScheduling",
        "0/3 nodes are available:\n3 Insufficient memory.",
        1,
        "2025-06-01T10:00:02Z",
    );
    system["regarding"]["name"] = json!("coredns-5d78c9869d-abcde");
    s.api.add_event(system);
    // Not an Event: its note is not a string. Counted, skipped alone.
    let mut bad = event("ev-bad", "Pulled", "x", 1, "2025-06-01T10:00:03Z");
    bad["note"] = json!({"not": "a string"});
    s.api.add_event(bad);

    let ferro = Ferro::start(&config(&s, "node-a", false));
    expect_lines(&s.loki, 2);
    let pulled = s.loki.entries(
        "fake",
        &[
            ("cluster", "test"),
            ("job", "loki.source.kubernetes_events"),
            ("namespace", "default"),
            ("kind", "Pod"),
        ],
    );
    assert_eq!(pulled.len(), 1);
    assert!(
        pulled[0]
            .line
            .starts_with("name=web-0 kind=Pod objectAPIversion=v1 objectRV=4711 eventRV="),
        "{}",
        pulled[0].line
    );
    assert!(
        pulled[0].line.ends_with(
            " reportinginstance=node-a reportingcontroller=kubelet sourcecomponent=kubelet sourcehost=node-a reason=Pulled type=Normal count=1 msg=\"Successfully pulled image \\\"nginx:1.27\\\"\" "
        ),
        "{}",
        pulled[0].line
    );
    // The time is when the event last happened.
    assert_eq!(pulled[0].timestamp_ns, 1_748_772_001_000_000_000);
    let metadata: Vec<(&str, &str)> = pulled[0]
        .metadata
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        metadata,
        [
            ("name", "web-0"),
            ("reason", "Pulled"),
            ("type", "Normal"),
            ("reporting_controller", "kubelet")
        ]
    );
    let scheduling = s.loki.entries(
        "fake",
        &[
            ("cluster", "test"),
            ("job", "loki.source.kubernetes_events"),
            ("namespace", "kube-system"),
            ("kind", "Pod"),
        ],
    );
    assert!(
        scheduling[0].line.ends_with(
            " reason=FailedScheduling type=Warning count=1 msg=\"0/3 nodes are available:\\n3 Insufficient memory.\" "
        ),
        "{}",
        scheduling[0].line
    );
    wait_events_metric(&ferro, "skipped", "malformed", |v| v == 1.0);

    // The event happens again: a new line with its count. A change that
    // leaves the count (an annotation) ships nothing.
    s.api.modify_event(event(
        "ev-1",
        "Pulled",
        "Successfully pulled image \"nginx:1.27\"",
        2,
        "2025-06-01T10:05:00Z",
    ));
    expect_lines(&s.loki, 3);
    let mut same = event(
        "ev-1",
        "Pulled",
        "Successfully pulled image \"nginx:1.27\"",
        2,
        "2025-06-01T10:05:00Z",
    );
    same["metadata"]["annotations"] = json!({"touched": "yes"});
    s.api.modify_event(same);
    wait_events_metric(&ferro, "skipped", "shipped", |v| v >= 1.0);
    // Another bad one, in the watch this time: skipped, the watch goes on.
    let mut bad = event("ev-bad-2", "Pulled", "x", 1, "2025-06-01T10:05:01Z");
    bad["deprecatedCount"] = json!("three");
    s.api.add_event(bad);
    s.api.add_event(event(
        "ev-3",
        "Started",
        "Started container app",
        1,
        "2025-06-01T10:05:02Z",
    ));
    expect_lines(&s.loki, 4);
    wait_events_metric(&ferro, "skipped", "malformed", |v| v == 2.0);

    // History compacted and the watch cut: 410 Gone, a fresh list, and
    // nothing shipped again.
    let skipped_before = events_metric(&ferro, "skipped", "shipped");
    s.api.compact();
    wait_events_metric(&ferro, "relists", "expired", |v| v >= 1.0);
    wait_events_metric(&ferro, "skipped", "shipped", |v| v >= skipped_before + 3.0);
    s.api.add_event(event(
        "ev-4",
        "Killing",
        "Stopping container app",
        1,
        "2025-06-01T10:06:00Z",
    ));
    expect_lines(&s.loki, 5);

    // The state reaches the ConfigMap; a restart resumes from it and the
    // file, ships what came meanwhile, and nothing twice.
    eventually("ev-4 in the state ConfigMap", WAIT, || {
        shipped_in_state(&s.api, "ev-4", 1)
    });
    let mut ferro = ferro;
    ferro.signal("TERM");
    assert!(ferro.wait_exit(WAIT).success());
    s.api.add_event(event(
        "ev-5",
        "BackOff",
        "Back-off restarting failed container",
        1,
        "2025-06-01T10:07:00Z",
    ));
    s.api.modify_event(event(
        "ev-3",
        "Started",
        "Started container app",
        2,
        "2025-06-01T10:07:01Z",
    ));
    let ferro = Ferro::start(&config(&s, "node-a", false));
    expect_lines(&s.loki, 7);
    // It resumed its watch: no list at start.
    assert_eq!(events_metric(&ferro, "relists", "start"), 0.0);
    let all = lines(&s.loki);
    assert!(
        all.iter()
            .any(|(_, l)| l.contains("reason=BackOff type=Warning count=1"))
    );
    assert!(
        all.iter()
            .any(|(_, l)| l.contains("reason=Started type=Normal count=2"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_ships_what_the_killed_one_had_not_and_nothing_twice() {
    let s = setup(&["node-a", "node-b"]).await;
    for i in 0..5 {
        s.api.add_event(event(
            &format!("ev-{i}"),
            "Pulled",
            &format!("pulled image {i}"),
            1,
            &format!("2025-06-01T10:00:0{i}Z"),
        ));
    }
    let mut agents = [
        Some(Ferro::start(&config(&s, "node-a", true))),
        Some(Ferro::start(&config(&s, "node-b", true))),
    ];
    expect_lines(&s.loki, 5);
    let shipping = |f: &Ferro| f.metric("ferro_kubernetes_events_shipping", &[]) == 1.0;
    let mut leader = 0;
    eventually("one agent ships", WAIT, || {
        let who: Vec<usize> = (0..2)
            .filter(|i| agents[*i].as_ref().is_some_and(shipping))
            .collect();
        assert!(who.len() <= 1, "two agents ship: {who:?}");
        who.first().map(|i| leader = *i).is_some()
    });
    eventually("the five in the state ConfigMap", WAIT, || {
        (0..5).all(|i| shipped_in_state(&s.api, &format!("ev-{i}"), 1))
    });

    // SIGKILL: no goodbye. Events come while nobody leads.
    agents[leader].as_mut().unwrap().signal("KILL");
    agents[leader].as_mut().unwrap().wait_exit(WAIT);
    agents[leader] = None;
    let killed = std::time::Instant::now();
    for i in 5..10 {
        s.api.add_event(event(
            &format!("ev-{i}"),
            "Pulled",
            &format!("pulled image {i}"),
            1,
            &format!("2025-06-01T10:00:1{i}Z"),
        ));
    }
    s.api.modify_event(event(
        "ev-0",
        "Pulled",
        "pulled image 0",
        2,
        "2025-06-01T10:01:00Z",
    ));
    expect_lines(&s.loki, 11);
    eprintln!(
        "the new leader shipped the events of the leaderless time {:.2} s after the leader was killed (lease duration 4 s; Loki exporter batch_wait 1 s)",
        killed.elapsed().as_secs_f64()
    );
    let other = agents[1 - leader].as_ref().unwrap();
    assert!(shipping(other));
    // It went on from the dead leader's resourceVersion (no list).
    assert_eq!(events_metric(other, "relists", "start"), 0.0);
    let all = lines(&s.loki);
    for i in 0..10 {
        let n = all
            .iter()
            .filter(|(_, l)| l.contains(&format!("msg=\"pulled image {i}\"")))
            .count();
        assert_eq!(n, if i == 0 { 2 } else { 1 }, "ev-{i}: {all:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rbac_for_its_configmap_it_says_so_and_ships_anyway() {
    let s = setup(&["node-a"]).await;
    s.api.forbid_config_maps(true);
    s.api
        .add_event(event("ev-1", "Pulled", "pulled", 1, "2025-06-01T10:00:01Z"));
    let ferro = Ferro::start(&config(&s, "node-a", false));
    expect_lines(&s.loki, 1);
    ferro.wait_for_log("may not read its state ConfigMap", WAIT);
    assert!(events_metric(&ferro, "api_errors", "state_read") >= 1.0);
    // The file under data_dir still keeps what was shipped.
    let file = s.data.join("node-a/kubernetes_events/cluster.state");
    eventually("the state file", WAIT, || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains("shipped ev-1 1 "))
    });
    assert!(
        s.api
            .config_map(NAMESPACE, "ferro-events-cluster")
            .is_none()
    );
}

/// A first start lists the events in pages of 500 (the API server's
/// `limit`/`continue`) and ships every one of them once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_lists_in_pages_and_ships_each_event_once() {
    let s = setup(&["node-a"]).await;
    for i in 0..1201 {
        s.api.add_event(event(
            &format!("ev-{i}"),
            "Pulled",
            &format!("pulled image {i}"),
            1,
            &format!("2025-06-01T10:{:02}:{:02}Z", i / 60 % 60, i % 60),
        ));
    }
    let _ferro = Ferro::start(&config(&s, "node-a", false));
    expect_lines(&s.loki, 1201);
    let lists: Vec<_> = s
        .api
        .requests()
        .into_iter()
        .filter(|r| r.resource == "events" && r.verb == "list")
        .collect();
    assert_eq!(lists.len(), 3, "three pages: {lists:?}");
}
