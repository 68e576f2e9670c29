use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;

use super::config::{Format, KubernetesEventsConfig, RawKubernetesEventsConfig};
use super::state::{Shipped, Skip};
use super::store::{FakeStore, write_state};
use crate::config::Validate;

fn config(toml: &str) -> Result<KubernetesEventsConfig, Vec<String>> {
    let raw: RawKubernetesEventsConfig = toml::from_str(toml).unwrap();
    raw.validate().map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    })
}

#[test]
fn defaults_are_alloys_and_the_leaders() {
    let c = config("").unwrap();
    assert_eq!(c.format, Format::Logfmt);
    assert_eq!(c.job, "loki.source.kubernetes_events");
    assert!(c.leader_only);
    assert_eq!(c.watch_keys(), ["*"]);
    assert_eq!(
        c.configmap_for("cluster_events").as_deref(),
        Some("ferro-events-cluster-events")
    );
    let c = config(
        r#"
namespaces = ["kube-system", "default"]
format = "json"
job = "integrations/kubernetes/eventhandler"
labels = { cluster = "prod-1" }
leader_only = false
state_configmap = ""
"#,
    )
    .unwrap();
    assert_eq!(c.format, Format::Json);
    assert_eq!(c.watch_keys(), ["kube-system", "default"]);
    assert_eq!(c.configmap_for("x"), None, "kept under data_dir only");
    assert!(!c.leader_only);
}

#[test]
fn config_errors_name_their_key() {
    let errors = config(
        r#"
namespaces = ["Kube_System", "ok", "ok"]
format = "yaml"
job = ""
labels = { "bad-name" = "x", kind = "y" }
state_configmap = "Not_A_Name"
state_namespace = "a.b"
"#,
    )
    .unwrap_err();
    let joined = errors.join("\n");
    for key in [
        "namespaces.0",
        "namespaces.2",
        "format",
        "job",
        "labels.bad-name",
        "labels.kind",
        "state_configmap",
        "state_namespace",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(&format!("{key}:"))),
            "{key} in {joined}"
        );
    }
}

fn state(events: &[(&str, i32, i64)]) -> Shipped {
    let mut s = Shipped::default();
    for (uid, count, time) in events {
        s.record(uid, *count, *time);
    }
    s
}

#[tokio::test]
async fn the_state_is_created_then_replaced_at_its_version() {
    let store = Arc::new(FakeStore::default());
    let conflicts = Counter::default();
    let mut version = None;
    write_state(
        &store,
        &mut state(&[("a", 1, 10)]),
        &mut version,
        &conflicts,
    )
    .await
    .unwrap();
    assert_eq!(version.as_deref(), Some("1"));
    write_state(
        &store,
        &mut state(&[("a", 2, 20)]),
        &mut version,
        &conflicts,
    )
    .await
    .unwrap();
    assert_eq!(version.as_deref(), Some("2"));
    assert_eq!(conflicts.get(), 0);
    let stored = Shipped::parse(&store.text().unwrap()).unwrap();
    assert_eq!(stored.skip("a", 2, 20), Some(Skip::Shipped));
}

#[tokio::test]
async fn a_conflict_merges_the_other_writers_state_and_loses_neither() {
    let store = Arc::new(FakeStore::default());
    let conflicts = Counter::default();
    // Agent A writes; agent B, which read nothing, writes after it.
    let mut version_a = None;
    write_state(
        &store,
        &mut state(&[("a", 1, 10)]),
        &mut version_a,
        &conflicts,
    )
    .await
    .unwrap();
    let mut version_b = None;
    write_state(
        &store,
        &mut state(&[("b", 1, 11)]),
        &mut version_b,
        &conflicts,
    )
    .await
    .unwrap();
    assert_eq!(conflicts.get(), 1, "B's create found A's");
    // A writes again from its old version: conflict, merge, write.
    let mut a = state(&[("a", 1, 10), ("c", 1, 12)]);
    write_state(&store, &mut a, &mut version_a, &conflicts)
        .await
        .unwrap();
    assert_eq!(conflicts.get(), 2);
    assert_eq!(a.skip("b", 1, 11), Some(Skip::Shipped), "the merge sticks");
    let stored = Shipped::parse(&store.text().unwrap()).unwrap();
    for uid in ["a", "b", "c"] {
        assert_eq!(stored.skip(uid, 1, 10), Some(Skip::Shipped), "{uid}");
    }
}

#[tokio::test]
async fn a_store_that_fails_says_why_and_keeps_its_version() {
    let store = Arc::new(FakeStore::default());
    let conflicts = Counter::default();
    let mut version = None;
    write_state(
        &store,
        &mut state(&[("a", 1, 10)]),
        &mut version,
        &conflicts,
    )
    .await
    .unwrap();
    store.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let error = write_state(
        &store,
        &mut state(&[("a", 2, 20)]),
        &mut version,
        &conflicts,
    )
    .await
    .unwrap_err();
    assert!(error.contains("503"), "{error}");
    assert_eq!(version.as_deref(), Some("1"));
}
