//! Leader election end to end: three ferro processes, the agents of three
//! nodes, against one Kubernetes API stand-in that keeps the Lease with
//! the API server's optimistic concurrency (409 on a stale
//! resourceVersion). Exactly one leads; a leader killed with SIGKILL is
//! replaced, and only once its Lease has expired; a leader stopped with
//! SIGTERM releases the Lease and is replaced at once.

mod common;

use common::kube_api::{self, KubeApi};
use common::{Ferro, WAIT, eventually};
use serde_json::Value;

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
/// The lease timings of the test (client-go's are 15 s, 10 s, 2 s).
const LEASE_DURATION_S: f64 = 4.0;

fn config(api: &KubeApi, node: &str) -> String {
    format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        {kubernetes}
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        [exporters.blackhole.out]
        [pipelines.traces]
        receivers = ["otlp.in"]
        exporters = ["blackhole.out"]
        "#,
        kubernetes = kube_api::kubernetes_toml(api, node, Some("monitoring")),
    )
}

fn leading(ferro: &Ferro) -> bool {
    ferro.metric("ferro_k8s_leader", &[]) == 1.0
}

/// Which of `agents` lead now (checked once each).
fn leaders(agents: &[Option<Ferro>]) -> Vec<usize> {
    agents
        .iter()
        .enumerate()
        .filter(|(_, a)| a.as_ref().is_some_and(leading))
        .map(|(i, _)| i)
        .collect()
}

fn holder(api: &KubeApi) -> String {
    api.lease("monitoring", "ferro-leader")
        .map(|l| {
            l["spec"]["holderIdentity"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

/// Seconds since the epoch of a `MicroTime`.
fn seconds(time: &Value) -> f64 {
    let t: k8s_openapi::jiff::Timestamp = time.as_str().unwrap().parse().unwrap();
    t.as_microsecond() as f64 / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_replaced_after_its_lease_expires_or_at_once_when_released() {
    let api = KubeApi::start_nodes(&NODES).await;
    let mut agents: Vec<Option<Ferro>> = NODES
        .iter()
        .map(|node| Some(Ferro::start(&config(&api, node))))
        .collect();

    // Exactly one leads, and holds the Lease.
    let mut first = Vec::new();
    eventually("one leader", WAIT, || {
        first = leaders(&agents);
        first.len() == 1
    });
    let first = first[0];
    assert_eq!(holder(&api), format!("ferro-{}", NODES[first]));
    // It keeps leading through several renewals, alone.
    let renewals = api.lease_writes().len();
    eventually("three renewals", WAIT, || {
        api.lease_writes().len() >= renewals + 3
    });
    assert_eq!(leaders(&agents), [first]);

    // SIGKILL: no release. Another takes over, and only after the dead
    // leader's last renewal plus the lease duration.
    let dead_writes = api.lease_writes().len();
    agents[first].as_mut().unwrap().signal("KILL");
    agents[first].as_mut().unwrap().wait_exit(WAIT);
    let last_renewal = api.lease_writes()[..dead_writes]
        .iter()
        .rev()
        .find(|w| w["spec"]["holderIdentity"] == format!("ferro-{}", NODES[first]))
        .map(|w| seconds(&w["spec"]["renewTime"]))
        .unwrap();
    agents[first] = None;
    let mut second = Vec::new();
    eventually("a new leader", WAIT, || {
        second = leaders(&agents);
        assert!(second.len() <= 1, "two leaders: {second:?}");
        second.len() == 1
    });
    let second = second[0];
    let lease = api.lease("monitoring", "ferro-leader").unwrap();
    assert_eq!(
        lease["spec"]["holderIdentity"],
        format!("ferro-{}", NODES[second])
    );
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    let acquired = seconds(&lease["spec"]["acquireTime"]);
    eprintln!(
        "taken over {:.2} s after the dead leader's last renewal (lease duration {LEASE_DURATION_S} s)",
        acquired - last_renewal
    );
    assert!(
        acquired - last_renewal >= LEASE_DURATION_S,
        "taken over {:.2} s after the last renewal, before the lease expired",
        acquired - last_renewal
    );

    // SIGTERM: the leader releases the Lease (empty holder), and the third
    // agent takes it at its next try.
    agents[second].as_mut().unwrap().signal("TERM");
    assert!(agents[second].as_mut().unwrap().wait_exit(WAIT).success());
    agents[second] = None;
    let released = api
        .lease_writes()
        .iter()
        .any(|w| w["spec"]["holderIdentity"] == "" && w["spec"]["leaseDurationSeconds"] == 1);
    assert!(released, "the stopping leader released the Lease");
    let third = (0..3).find(|i| *i != first && *i != second).unwrap();
    eventually("the third agent leads", WAIT, || {
        agents[third].as_ref().is_some_and(leading)
    });
    let lease = api.lease("monitoring", "ferro-leader").unwrap();
    assert_eq!(
        lease["spec"]["holderIdentity"],
        format!("ferro-{}", NODES[third])
    );
    assert_eq!(lease["spec"]["leaseTransitions"], 2);
    let ferro = agents[third].as_ref().unwrap();
    assert_eq!(
        ferro.metric(
            "ferro_k8s_leader_transitions_total",
            &["reason=\"acquired\""]
        ),
        1.0
    );
}

/// The API server goes away: the leader cannot renew and stops leading
/// within its renew deadline, and nobody leads while it is away (nobody
/// can reach the Lease). It comes back: one agent leads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_api_server_is_away_nobody_leads_then_one_does_again() {
    let api = KubeApi::start_nodes(&NODES[..2]).await;
    let agents: Vec<Option<Ferro>> = NODES[..2]
        .iter()
        .map(|node| Some(Ferro::start(&config(&api, node))))
        .collect();
    eventually("one leader", WAIT, || leaders(&agents).len() == 1);
    api.set_down(true);
    eventually("the leader to stop leading", WAIT, || {
        leaders(&agents).is_empty()
    });
    let leader_errors = |a: &Option<Ferro>| {
        a.as_ref()
            .unwrap()
            .metric("ferro_k8s_lease_errors_total", &["reason=\"api_error\""])
    };
    // Both keep trying, and failing, while it is away.
    let before: Vec<f64> = agents.iter().map(leader_errors).collect();
    eventually("both agents to try again", WAIT, || {
        agents
            .iter()
            .zip(&before)
            .all(|(a, b)| leader_errors(a) > *b)
    });
    assert!(
        leaders(&agents).is_empty(),
        "nobody leads without the Lease"
    );
    let lost: f64 = agents
        .iter()
        .map(|a| {
            a.as_ref()
                .unwrap()
                .metric("ferro_k8s_leader_transitions_total", &["reason=\"lost\""])
        })
        .sum();
    assert_eq!(lost, 1.0, "the leader counted losing the Lease");
    api.set_down(false);
    eventually("one leader again", WAIT, || leaders(&agents).len() == 1);
}
