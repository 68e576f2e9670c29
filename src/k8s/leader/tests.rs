//! The election on paused time against an in-memory Lease shared by
//! several candidates, each of which can be cut off from it.

use super::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Default)]
struct Shared {
    lease: Arc<Mutex<Option<(Record, u64)>>>,
}

/// One candidate's view of the shared Lease; `cut` makes every call fail.
struct FakeStore {
    shared: Shared,
    cut: Arc<AtomicBool>,
}

impl FakeStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.cut.load(Ordering::SeqCst) {
            Err(StoreError::Api("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

impl LeaseStore for FakeStore {
    async fn get(&self) -> Result<Option<(Record, String)>, StoreError> {
        self.check()?;
        let read = self
            .shared
            .lease
            .lock()
            .unwrap()
            .clone()
            .map(|(r, v)| (r, v.to_string()));
        // Other candidates may read before this one writes, as over a network.
        tokio::task::yield_now().await;
        Ok(read)
    }

    async fn create(&self, record: &Record) -> Result<String, StoreError> {
        self.check()?;
        let mut lease = self.shared.lease.lock().unwrap();
        if lease.is_some() {
            return Err(StoreError::Conflict);
        }
        *lease = Some((record.clone(), 1));
        Ok("1".into())
    }

    async fn update(&self, record: &Record, version: &str) -> Result<String, StoreError> {
        self.check()?;
        let mut lease = self.shared.lease.lock().unwrap();
        let Some((current, v)) = lease.as_mut() else {
            return Err(StoreError::Api("not found".into()));
        };
        if v.to_string() != version {
            return Err(StoreError::Conflict);
        }
        *current = record.clone();
        *v += 1;
        Ok(v.to_string())
    }
}

fn config(identity: &str) -> LeaderConfig {
    LeaderConfig {
        lease_name: "ferro".into(),
        lease_namespace: Some("monitoring".into()),
        identity: identity.into(),
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    }
}

struct Candidate {
    leader: Leader,
    cut: Arc<AtomicBool>,
}

fn candidate(shared: &Shared, identity: &str, telemetry: &Arc<Telemetry>) -> Candidate {
    let cut = Arc::new(AtomicBool::new(false));
    let store = FakeStore {
        shared: shared.clone(),
        cut: cut.clone(),
    };
    Candidate {
        leader: Leader::start(store, config(identity), telemetry),
        cut,
    }
}

/// Steps paused time by 100 ms `steps` times, checking after each that at
/// most one candidate leads; returns who led at the end.
async fn run_for(candidates: &[&Candidate], steps: usize) -> Vec<bool> {
    for _ in 0..steps {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let leading = candidates.iter().filter(|c| c.leader.is_leader()).count();
        assert!(leading <= 1, "{leading} candidates lead at once");
    }
    candidates.iter().map(|c| c.leader.is_leader()).collect()
}

fn holder(shared: &Shared) -> Record {
    shared.lease.lock().unwrap().clone().unwrap().0
}

#[tokio::test(start_paused = true)]
async fn one_of_three_leads_and_keeps_renewing() {
    let telemetry = Telemetry::new();
    let shared = Shared::default();
    let a = candidate(&shared, "a", &telemetry);
    let b = candidate(&shared, "b", &telemetry);
    let c = candidate(&shared, "c", &telemetry);
    let leading = run_for(&[&a, &b, &c], 600).await;
    assert_eq!(leading.iter().filter(|l| **l).count(), 1);
    let record = holder(&shared);
    let leader = ["a", "b", "c"][leading.iter().position(|l| *l).unwrap()];
    assert_eq!(record.holder, leader);
    assert_eq!(record.transitions, 0, "taken once, never changed hands");
    assert_eq!(record.lease_duration_seconds, 15);
}

#[tokio::test(start_paused = true)]
async fn a_leader_cut_off_stops_before_another_takes_over() {
    let telemetry = Telemetry::new();
    let shared = Shared::default();
    let a = candidate(&shared, "a", &telemetry);
    run_for(&[&a], 5).await;
    assert!(a.leader.is_leader());
    let b = candidate(&shared, "b", &telemetry);
    run_for(&[&a, &b], 50).await;
    // a can no longer reach the API server: it must stop leading within
    // renew_deadline, and b may take over only after lease_duration.
    a.cut.store(true, Ordering::SeqCst);
    let mut a_stopped = None;
    let mut b_started = None;
    for step in 1..=300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!(a.leader.is_leader() && b.leader.is_leader()), "both lead");
        if !a.leader.is_leader() && a_stopped.is_none() {
            a_stopped = Some(step);
        }
        if b.leader.is_leader() && b_started.is_none() {
            b_started = Some(step);
        }
    }
    let (a_stopped, b_started) = (a_stopped.unwrap(), b_started.unwrap());
    assert!(
        a_stopped <= 100,
        "a stopped within renew_deadline (step {a_stopped})"
    );
    assert!(b_started > a_stopped, "b took over after a stopped");
    assert!(
        b_started <= 15 * 10 + 30,
        "b took over within a lease duration and a retry (step {b_started})"
    );
    let record = holder(&shared);
    assert_eq!(record.holder, "b");
    assert_eq!(record.transitions, 1);
    // a, back in touch, stays a candidate while b renews.
    a.cut.store(false, Ordering::SeqCst);
    let leading = run_for(&[&a, &b], 300).await;
    assert_eq!(leading, [false, true]);
}

#[tokio::test(start_paused = true)]
async fn a_graceful_stop_releases_and_the_next_takes_over_at_once() {
    let telemetry = Telemetry::new();
    let shared = Shared::default();
    let a = candidate(&shared, "a", &telemetry);
    run_for(&[&a], 5).await;
    let b = candidate(&shared, "b", &telemetry);
    run_for(&[&a, &b], 30).await;
    assert!(a.leader.is_leader() && !b.leader.is_leader());
    a.leader.stop().await;
    assert_eq!(holder(&shared).holder, "", "released");
    // b takes it at its next try, well before a lease duration.
    let mut steps = 0;
    while !b.leader.is_leader() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        steps += 1;
        assert!(
            steps <= 30,
            "b took over within a retry period and its jitter"
        );
    }
    let record = holder(&shared);
    assert_eq!((record.holder.as_str(), record.transitions), ("b", 1));
    let page = telemetry.encode();
    assert!(
        page.contains(
            r#"ferro_k8s_leader_transitions_total{lease="monitoring/ferro",reason="released"} 1"#
        ),
        "{page}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stale_write_conflicts_and_is_counted() {
    let telemetry = Telemetry::new();
    let shared = Shared::default();
    // Someone else holds it and keeps renewing: b never takes it, and its
    // reads are no conflicts; a write on a stale version is.
    *shared.lease.lock().unwrap() = Some((
        Record {
            holder: "other".into(),
            lease_duration_seconds: 15,
            acquire_time: None,
            renew_time: None,
            transitions: 4,
        },
        7,
    ));
    let renewer = {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let mut lease = shared.lease.lock().unwrap();
                let (record, v) = lease.as_mut().unwrap();
                record.renew_time = Some(Timestamp::now());
                *v += 1;
            }
        })
    };
    let b = candidate(&shared, "b", &telemetry);
    let leading = run_for(&[&b], 600).await;
    assert_eq!(leading, [false]);
    renewer.abort();
    // The other stops renewing: b takes over after a lease duration.
    let leading = run_for(&[&b], 200).await;
    assert_eq!(leading, [true]);
    assert_eq!(holder(&shared).transitions, 5);
}

#[tokio::test(start_paused = true)]
async fn of_two_racing_to_create_one_wins_and_the_other_counts_a_conflict() {
    let telemetry = Telemetry::new();
    let shared = Shared::default();
    let a = candidate(&shared, "a", &telemetry);
    let b = candidate(&shared, "b", &telemetry);
    let leading = run_for(&[&a, &b], 50).await;
    assert_eq!(leading.iter().filter(|l| **l).count(), 1);
    let page = telemetry.encode();
    assert!(
        page.contains(
            r#"ferro_k8s_lease_errors_total{lease="monitoring/ferro",reason="conflict"} 1"#
        ),
        "{page}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_finds_another_holder_stops_at_its_next_renewal() {
    let telemetry = Telemetry::new();
    let shared = Shared::default();
    let a = candidate(&shared, "a", &telemetry);
    run_for(&[&a], 5).await;
    assert!(a.leader.is_leader());
    // The Lease is deleted and someone else creates it.
    *shared.lease.lock().unwrap() = Some((
        Record {
            holder: "intruder".into(),
            lease_duration_seconds: 15,
            acquire_time: None,
            renew_time: None,
            transitions: 0,
        },
        100,
    ));
    // Within a retry period (2 s) and its jitter, not the 10 s deadline.
    let mut steps = 0;
    while a.leader.is_leader() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        steps += 1;
        assert!(steps <= 25, "still leading after {steps} steps");
    }
    assert_eq!(holder(&shared).holder, "intruder", "left as it is");
}
