//! ferro's own figures: the metric families every component counts into,
//! their label sets, and the process phase the probes answer with.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::ComponentId;
use crate::signal::Signal;

/// Which component a figure is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    pub kind: &'static str,
    pub component: String,
    pub signal: &'static str,
}

/// A component's figure split by why it happened.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub kind: &'static str,
    pub component: String,
    pub signal: &'static str,
    pub reason: &'static str,
}

/// Which collector of a host metrics receiver a figure is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CollectorLabels {
    pub component: String,
    pub collector: &'static str,
}

/// Figures of the host metrics receivers (`ferro_host_metrics_*`).
#[derive(Default)]
pub struct HostMetricsFamilies {
    pub errors: Family<CollectorLabels, Counter>,
    pub collection_seconds: Family<ComponentLabels, Gauge<f64, AtomicU64>>,
}

impl HostMetricsFamilies {
    fn register(&self, r: &mut Registry) {
        r.register(
            "ferro_host_metrics_collector_errors",
            "Collections in which a host metrics collector failed (a file it reads is missing or malformed); the other collectors still ran",
            self.errors.clone(),
        );
        r.register(
            "ferro_host_metrics_collection_seconds",
            "How long the last collection of a host metrics receiver took",
            self.collection_seconds.clone(),
        );
    }
}

/// Figures of the journald receivers (`ferro_journald_*`).
#[derive(Default)]
pub struct JournaldFamilies {
    pub entries_read: Family<ComponentLabels, Counter>,
    pub bytes_read: Family<ComponentLabels, Counter>,
    pub entries_skipped: Family<ReasonLabels, Counter>,
    pub lines_truncated: Family<ComponentLabels, Counter>,
    pub lines_invalid_utf8: Family<ComponentLabels, Counter>,
    pub reader_restarts: Family<ReasonLabels, Counter>,
    pub journalctl_messages: Family<ComponentLabels, Counter>,
    pub acknowledged: Family<ReasonLabels, Counter>,
    pub acknowledged_timestamp: Family<ComponentLabels, Gauge<f64, AtomicU64>>,
    pub awaiting_acks: Family<ComponentLabels, Gauge>,
}

impl JournaldFamilies {
    fn register(&self, r: &mut Registry) {
        r.register(
            "ferro_journald_entries_read",
            "Journal entries a journald receiver read from journalctl",
            self.entries_read.clone(),
        );
        r.register(
            "ferro_journald_bytes_read",
            "Bytes of journalctl's export output a journald receiver read",
            self.bytes_read.clone(),
        );
        r.register(
            "ferro_journald_entries_skipped",
            "Journal entries not passed on, by reason (no_message: the entry has no MESSAGE field; malformed: journalctl wrote it in a form that is not the export format)",
            self.entries_skipped.clone(),
        );
        r.register(
            "ferro_journald_lines_truncated",
            "Messages cut to max_line_size and marked truncated=\"true\"",
            self.lines_truncated.clone(),
        );
        r.register(
            "ferro_journald_lines_invalid_utf8",
            "Messages whose invalid UTF-8 was replaced with U+FFFD",
            self.lines_invalid_utf8.clone(),
        );
        r.register(
            "ferro_journald_reader_restarts",
            "Times journalctl was started again after the last run ended, by reason (exited: it ended or could not open the journal; spawn_failed: it could not be run; malformed: its output was not the export format)",
            self.reader_restarts.clone(),
        );
        r.register(
            "ferro_journald_journalctl_messages",
            "Lines journalctl wrote to its standard error (a journal file it skips as corrupt or unsupported, a directory it cannot open); each is logged",
            self.journalctl_messages.clone(),
        );
        r.register(
            "ferro_journald_acknowledged_entries",
            "Journal entries whose delivery ended, by outcome (delivered, or dropped by an exporter); the saved cursor advances past both",
            self.acknowledged.clone(),
        );
        r.register(
            "ferro_journald_acknowledged_timestamp_seconds",
            "The journal time of the newest entry whose delivery ended: how far the receiver has shipped",
            self.acknowledged_timestamp.clone(),
        );
        r.register(
            "ferro_journald_awaiting_acks",
            "1 while the receiver stopped reading until the oldest of its batches in flight is acknowledged (backpressure from the pipeline or the backend)",
            self.awaiting_acks.clone(),
        );
    }
}

/// Figures of the kubernetes_events receivers (`ferro_kubernetes_events_*`).
#[derive(Default)]
pub struct KubernetesEventsFamilies {
    pub received: Family<ComponentLabels, Counter>,
    pub skipped: Family<ReasonLabels, Counter>,
    pub relists: Family<ReasonLabels, Counter>,
    pub api_errors: Family<ReasonLabels, Counter>,
    pub acknowledged: Family<ReasonLabels, Counter>,
    pub acknowledged_timestamp: Family<ComponentLabels, Gauge<f64, AtomicU64>>,
    pub shipping: Family<ComponentLabels, Gauge>,
    pub remembered: Family<ComponentLabels, Gauge>,
}

impl KubernetesEventsFamilies {
    fn register(&self, r: &mut Registry) {
        r.register(
            "ferro_kubernetes_events_received",
            "Event objects a kubernetes_events receiver read from the API server (lists and watches, new and changed)",
            self.received.clone(),
        );
        r.register(
            "ferro_kubernetes_events_skipped",
            "Events not shipped, by reason (shipped: this event with this count was shipped before, by this agent or an earlier leader; before_horizon: older than the events remembered, taken as shipped; malformed: not an events.k8s.io/v1 Event; no_object: it names no object)",
            self.skipped.clone(),
        );
        r.register(
            "ferro_kubernetes_events_relists",
            "Times a kubernetes_events receiver listed the events afresh, by reason (start: no resourceVersion to resume from; expired: the API server answered 410 Gone)",
            self.relists.clone(),
        );
        r.register(
            "ferro_kubernetes_events_api_errors",
            "Failed requests of a kubernetes_events receiver, by what it was doing (list, watch, state_read, state_write, state_conflict); each is retried",
            self.api_errors.clone(),
        );
        r.register(
            "ferro_kubernetes_events_acknowledged_entries",
            "Events whose delivery ended, by outcome (delivered, or dropped by an exporter); both count as shipped",
            self.acknowledged.clone(),
        );
        r.register(
            "ferro_kubernetes_events_acknowledged_timestamp_seconds",
            "The time of the newest event whose delivery ended",
            self.acknowledged_timestamp.clone(),
        );
        r.register(
            "ferro_kubernetes_events_shipping",
            "1 while this receiver ships events (it leads, or is not leader_only)",
            self.shipping.clone(),
        );
        r.register(
            "ferro_kubernetes_events_remembered",
            "Events remembered as shipped (bounded; older ones are covered by the horizon)",
            self.remembered.clone(),
        );
    }
}

/// Figures of the ServiceMonitors and PodMonitors a Prometheus receiver
/// honours (`ferro_prometheus_monitor_*`).
#[derive(Default)]
pub struct MonitorFamilies {
    pub jobs: Family<ComponentLabels, Gauge>,
    pub problems: Family<ReasonLabels, Counter>,
}

impl MonitorFamilies {
    fn register(&self, r: &mut Registry) {
        r.register(
            "ferro_prometheus_monitor_jobs",
            "Scrape jobs a Prometheus receiver runs for ServiceMonitor and PodMonitor endpoints",
            self.jobs.clone(),
        );
        r.register(
            "ferro_prometheus_monitor_problems",
            "Monitors or their endpoints ferro could not follow as written, by reason (invalid: the monitor cannot be read, e.g. a bad selector; invalid_endpoint: an endpoint's job is refused, e.g. a bad regex or duration; unsupported_field: a field ferro does not act on is set; tls_unreadable: a Secret or ConfigMap key its tlsConfig names cannot be read, and the endpoint is not scraped). Each is logged once per version of the monitor",
            self.problems.clone(),
        );
    }
}

/// Which processor rule a figure is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub processor: String,
    pub signal: &'static str,
    pub rule: String,
}

/// Which tenant of a tenant processor a figure is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub processor: String,
    pub signal: &'static str,
    pub tenant: String,
}

/// A tenant's figure split by why it happened.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantReasonLabels {
    pub processor: String,
    pub signal: &'static str,
    pub tenant: String,
    pub reason: &'static str,
}

/// Which listener a figure is about: the receiver (or `telemetry`) and
/// what it speaks.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub component: String,
    pub protocol: &'static str,
}

/// A listener's figure split by why it happened.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerReasonLabels {
    pub component: String,
    pub protocol: &'static str,
    pub reason: &'static str,
}

/// Figures of the listeners (`ferro_listener_*`): connections and what
/// the limits on them did.
#[derive(Default)]
pub struct ListenerFamilies {
    pub connections: Family<ListenerLabels, Gauge>,
    pub refused: Family<ListenerReasonLabels, Counter>,
    pub closed: Family<ListenerReasonLabels, Counter>,
    pub requests_refused: Family<ListenerReasonLabels, Counter>,
}

impl ListenerFamilies {
    fn register(&self, r: &mut Registry) {
        r.register(
            "ferro_listener_connections",
            "Connections open on a listener",
            self.connections.clone(),
        );
        r.register(
            "ferro_listener_connections_refused",
            "Connections refused at accept, by reason (max_connections of the listener, or the connection_budget all receivers share)",
            self.refused.clone(),
        );
        r.register(
            "ferro_listener_connections_closed",
            "Connections ferro closed, by reason (read_header_timeout: a request head did not arrive in time; idle_timeout)",
            self.closed.clone(),
        );
        r.register(
            "ferro_listener_requests_refused",
            "Requests answered 503/UNAVAILABLE because no receiver was attached to the listener in time (a reload that took longer than 5s, or a stop)",
            self.requests_refused.clone(),
        );
    }
}

/// Which scrape target a figure is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub component: String,
    pub job: String,
    pub target: String,
}

/// A scrape target's figure split by why it happened.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetReasonLabels {
    pub component: String,
    pub job: String,
    pub target: String,
    pub reason: &'static str,
}

/// Figures of each scrape target (`ferro_scrape_target_*`), removed when
/// the target goes away.
#[derive(Default)]
pub struct ScrapeFamilies {
    pub up: Family<TargetLabels, Gauge>,
    pub duration: Family<TargetLabels, Gauge<f64, AtomicU64>>,
    pub last_error: Family<TargetReasonLabels, Gauge>,
}

impl ScrapeFamilies {
    fn register(&self, r: &mut Registry) {
        r.register(
            "ferro_scrape_target_up",
            "1 if the target's last scrape succeeded, 0 if it failed (the reason is in ferro_scrape_target_last_error)",
            self.up.clone(),
        );
        r.register(
            "ferro_scrape_target_duration_seconds",
            "How long the target's last scrape took",
            self.duration.clone(),
        );
        r.register(
            "ferro_scrape_target_last_error",
            "1 for the reason the target's scrapes are failing (timeout, connection_refused, connection_failed, http_status, body_too_large, memory_limit, body_failed, parse_error, sample_limit, label_limit, target_limit, malformed_profile, bad_compression, profile_too_large, empty_profile); absent while they succeed",
            self.last_error.clone(),
        );
    }
}

/// Where the process is in its life, as `/-/ready` tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    Ready = 1,
    Reloading = 2,
    Stopping = 3,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Reloading => "reloading",
            Self::Stopping => "stopping",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct VersionLabels {
    version: &'static str,
}

/// Every counter and gauge ferro exposes. One per process; it outlives config
/// reloads so counters never reset under a running Prometheus.
pub struct Telemetry {
    registry: Mutex<Registry>,
    pub accepted: Family<ComponentLabels, Counter>,
    pub refused: Family<ReasonLabels, Counter>,
    pub rejected_requests: Family<ReasonLabels, Counter>,
    pub dropped: Family<ReasonLabels, Counter>,
    pub sent: Family<ComponentLabels, Counter>,
    pub send_failed: Family<ReasonLabels, Counter>,
    pub retries: Family<ComponentLabels, Counter>,
    pub queue_items: Family<ComponentLabels, Gauge>,
    pub queue_bytes: Family<ComponentLabels, Gauge>,
    pub memory_in_flight: Gauge,
    pub memory_limit: Gauge,
    /// Values a redaction processor replaced, by rule.
    pub redactions: Family<RuleLabels, Counter>,
    pub pod_logs: PodLogsFamilies,
    pub disk_queues: DiskQueueFamilies,
    pub host_metrics: HostMetricsFamilies,
    pub journald: JournaldFamilies,
    pub kubernetes_events: KubernetesEventsFamilies,
    pub monitors: MonitorFamilies,
    pub k8s: K8sFamilies,
    pub tenants: TenantFamilies,
    pub listeners: ListenerFamilies,
    pub scrapes: ScrapeFamilies,
    /// The process's memory limiter, read when the page is encoded.
    memory: std::sync::OnceLock<Arc<crate::delivery::MemoryLimiter>>,
    process_rss: Gauge,
    process_cpu: Counter<f64, AtomicU64>,
    process_start: Gauge<f64, AtomicU64>,
    phase: AtomicU8,
}

/// Figures only the pod log tailer has (`ferro_pod_logs_*`).
#[derive(Default)]
pub struct PodLogsFamilies {
    pub lines_read: Family<ComponentLabels, Counter>,
    pub bytes_read: Family<ComponentLabels, Counter>,
    pub lines_truncated: Family<ComponentLabels, Counter>,
    pub lines_malformed: Family<ComponentLabels, Counter>,
    pub lines_invalid_utf8: Family<ComponentLabels, Counter>,
    pub rotations: Family<ReasonLabels, Counter>,
    pub files_open: Family<ComponentLabels, Gauge>,
    pub files_awaiting_acks: Family<ComponentLabels, Gauge>,
    pub acknowledged: Family<ReasonLabels, Counter>,
    pub rescans: Family<ComponentLabels, Counter>,
}

/// Figures of the tenant processors (`ferro_tenant_*`). The `tenant` label
/// takes at most `max_tenants` values per processor, plus `__overflow__` and
/// `__invalid__`; a tenant's series go when it is forgotten.
#[derive(Default)]
pub struct TenantFamilies {
    pub dropped: Family<TenantReasonLabels, Counter>,
    pub active: Family<TenantLabels, Gauge>,
    pub overflow: Family<ComponentLabels, Counter>,
    pub tracked: Family<ComponentLabels, Gauge>,
}

impl TenantFamilies {
    fn register(&self, r: &mut Registry) {
        r.register(
            "ferro_tenant_dropped_items",
            "Items a tenant processor dropped, by tenant and limit (rate_limited, byte_rate_limited, series_limit, stream_limit, too_many_labels, label_value_too_long, invalid_tenant)",
            self.dropped.clone(),
        );
        r.register(
            "ferro_tenant_active_series",
            "Series (metrics) or streams (logs) a tenant sent within active_expiry",
            self.active.clone(),
        );
        r.register(
            "ferro_tenant_overflow_items",
            "Items of tenants past max_tenants, limited and counted together as tenant __overflow__",
            self.overflow.clone(),
        );
        r.register(
            "ferro_tenant_tracked",
            "Tenants a tenant processor tracks with limits and counters of their own",
            self.tracked.clone(),
        );
    }
}

impl PodLogsFamilies {
    fn register(&self, r: &mut Registry) {
        r.register(
            "ferro_pod_logs_lines_read",
            "Lines a pod log tailer read from files (before partial lines are merged)",
            self.lines_read.clone(),
        );
        r.register(
            "ferro_pod_logs_bytes_read",
            "Bytes a pod log tailer read from files",
            self.bytes_read.clone(),
        );
        r.register(
            "ferro_pod_logs_lines_truncated",
            "Entries cut to max_line_size and marked truncated=\"true\"",
            self.lines_truncated.clone(),
        );
        r.register(
            "ferro_pod_logs_lines_malformed",
            "Lines that did not fit their file's format, passed on as plain text",
            self.lines_malformed.clone(),
        );
        r.register(
            "ferro_pod_logs_lines_invalid_utf8",
            "Entries whose invalid UTF-8 was replaced with U+FFFD",
            self.lines_invalid_utf8.clone(),
        );
        r.register(
            "ferro_pod_logs_rotations",
            "Files rotated away (renamed or deleted) or truncated in place",
            self.rotations.clone(),
        );
        r.register(
            "ferro_pod_logs_files_open",
            "Files a pod log tailer has open",
            self.files_open.clone(),
        );
        r.register(
            "ferro_pod_logs_files_awaiting_acks",
            "Files whose tailer stopped reading until the oldest of its batches in flight is acknowledged (backpressure from the pipeline or the backend)",
            self.files_awaiting_acks.clone(),
        );
        r.register(
            "ferro_pod_logs_rescans",
            "Times a pod log tailer expanded its include globs again (every rescan_interval, and when inotify tells of a new, removed or renamed file)",
            self.rescans.clone(),
        );
        r.register(
            "ferro_pod_logs_acknowledged_entries",
            "Entries whose delivery ended, by outcome (delivered, or dropped by an exporter); positions advance past both",
            self.acknowledged.clone(),
        );
    }
}

/// Figures of the exporters' disk queues (`ferro_exporter_disk_queue_*`).
#[derive(Default)]
pub struct DiskQueueFamilies {
    pub bytes: Family<ComponentLabels, Gauge>,
    pub records: Family<ComponentLabels, Gauge>,
    pub written_bytes: Family<ComponentLabels, Counter>,
    pub oldest_age: Family<ComponentLabels, Gauge<f64, AtomicU64>>,
    pub replayed: Family<ComponentLabels, Counter>,
    pub damaged: Family<ReasonLabels, Counter>,
    pub damaged_bytes: Family<ComponentLabels, Counter>,
    pub fsyncs: Family<ComponentLabels, Counter>,
    pub fsync_seconds: Family<ComponentLabels, Counter<f64, AtomicU64>>,
    pub write_errors: Family<ReasonLabels, Counter>,
}

impl DiskQueueFamilies {
    fn register(&self, r: &mut Registry) {
        r.register(
            "ferro_exporter_disk_queue_bytes",
            "Bytes of an exporter's disk queue files (segments not yet wholly delivered)",
            self.bytes.clone(),
        );
        r.register(
            "ferro_exporter_disk_queue_records",
            "Records (batches) in an exporter's disk queue not yet delivered",
            self.records.clone(),
        );
        r.register(
            "ferro_exporter_disk_queue_written_bytes",
            "Bytes an exporter's disk queue appended to its files (records and their frames)",
            self.written_bytes.clone(),
        );
        r.register(
            "ferro_exporter_disk_queue_oldest_age_seconds",
            "Age of the oldest record in an exporter's disk queue not yet delivered (0 when empty)",
            self.oldest_age.clone(),
        );
        r.register(
            "ferro_exporter_disk_queue_replayed_records",
            "Records an earlier run wrote that this run read back to send",
            self.replayed.clone(),
        );
        r.register(
            "ferro_exporter_disk_queue_damaged",
            "Damage found in a disk queue and skipped, by kind (checksum, truncated, unreadable_segment, undecodable, cursor)",
            self.damaged.clone(),
        );
        r.register(
            "ferro_exporter_disk_queue_damaged_bytes",
            "Bytes of a disk queue skipped as damaged",
            self.damaged_bytes.clone(),
        );
        r.register(
            "ferro_exporter_disk_queue_fsyncs",
            "Syncs of a disk queue's files to the device",
            self.fsyncs.clone(),
        );
        r.register(
            "ferro_exporter_disk_queue_fsync_seconds",
            "Time spent syncing a disk queue's files",
            self.fsync_seconds.clone(),
        );
        r.register(
            "ferro_exporter_disk_queue_write_errors",
            "Writes to a disk queue that failed, by reason (disk_full, io_error); the pushes wait and retry",
            self.write_errors.clone(),
        );
    }
}

/// Why something about the pod cache happened.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabels {
    pub reason: &'static str,
}

/// Which Lease a figure is about (`namespace/name`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLabels {
    pub lease: String,
}

/// A Lease's figure split by what happened.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseReasonLabels {
    pub lease: String,
    pub reason: &'static str,
}

/// Figures of the process-wide Kubernetes pod cache (`ferro_k8s_*`) and of
/// the processors that read it.
#[derive(Default)]
pub struct K8sFamilies {
    pub pods_cached: Gauge,
    pub cache_bytes: Gauge,
    /// 1 once the first list of pods arrived.
    pub synced: Gauge,
    pub relists: Counter,
    pub api_errors: Family<CauseLabels, Counter>,
    pub pods_not_cached: Family<CauseLabels, Counter>,
    pub annotations_skipped: Counter,
    /// Namespaces, when namespace labels or annotations are asked for.
    pub namespaces_cached: Gauge,
    pub namespace_bytes: Gauge,
    pub namespaces_not_cached: Counter,
    pub associated: Family<ComponentLabels, Counter>,
    pub unassociated: Family<ReasonLabels, Counter>,
    /// 1 while this agent holds the leader Lease.
    pub leader: Family<LeaseLabels, Gauge>,
    pub leader_transitions: Family<LeaseReasonLabels, Counter>,
    pub lease_errors: Family<LeaseReasonLabels, Counter>,
}

impl K8sFamilies {
    fn register(&self, r: &mut Registry) {
        r.register(
            "ferro_k8s_leader",
            "1 while this agent holds the leader Lease ([kubernetes.leader]) and does the cluster's leader-only work, else 0",
            self.leader.clone(),
        );
        r.register(
            "ferro_k8s_leader_transitions",
            "Changes of this agent's leadership, by reason (acquired, lost: not renewed within renew_deadline, released: on a graceful stop)",
            self.leader_transitions.clone(),
        );
        r.register(
            "ferro_k8s_lease_errors",
            "Failed reads or writes of the leader Lease, by reason (conflict: another agent wrote first; api_error; timeout)",
            self.lease_errors.clone(),
        );
        r.register(
            "ferro_k8s_pods_cached",
            "Pods of this node in the pod cache",
            self.pods_cached.clone(),
        );
        r.register(
            "ferro_k8s_cache_bytes",
            "Approximate heap bytes the pod cache holds",
            self.cache_bytes.clone(),
        );
        r.register(
            "ferro_k8s_cache_synced",
            "1 once the pod cache holds a complete list of this node's pods",
            self.synced.clone(),
        );
        r.register(
            "ferro_k8s_watch_relists",
            "Times the pod or namespace watch started over with a full list (410 Gone, or a lost watch)",
            self.relists.clone(),
        );
        r.register(
            "ferro_k8s_api_errors",
            "Failed requests to and error events from the Kubernetes API server, by reason",
            self.api_errors.clone(),
        );
        r.register(
            "ferro_k8s_pods_not_cached",
            "Pods from the API server the cache did not take, by reason",
            self.pods_not_cached.clone(),
        );
        r.register(
            "ferro_k8s_annotations_skipped",
            "Pod and namespace annotations not kept because they are too long or only of use to kubectl",
            self.annotations_skipped.clone(),
        );
        r.register(
            "ferro_k8s_namespaces_cached",
            "Namespaces in the cache (watched only for namespace labels or annotations)",
            self.namespaces_cached.clone(),
        );
        r.register(
            "ferro_k8s_namespace_cache_bytes",
            "Approximate heap bytes the namespace cache holds",
            self.namespace_bytes.clone(),
        );
        r.register(
            "ferro_k8s_namespaces_not_cached",
            "Namespaces the cache did not take because it holds the most it may (16384)",
            self.namespaces_not_cached.clone(),
        );
        r.register(
            "ferro_k8s_attributes_associated_items",
            "Items a k8s_attributes processor found the pod of",
            self.associated.clone(),
        );
        r.register(
            "ferro_k8s_attributes_unassociated_items",
            "Items a k8s_attributes processor found no pod for, by reason",
            self.unassociated.clone(),
        );
    }
}

impl Telemetry {
    pub fn new() -> Arc<Self> {
        let t = Self {
            registry: Mutex::new(Registry::default()),
            accepted: Family::default(),
            refused: Family::default(),
            rejected_requests: Family::default(),
            dropped: Family::default(),
            sent: Family::default(),
            send_failed: Family::default(),
            retries: Family::default(),
            queue_items: Family::default(),
            queue_bytes: Family::default(),
            memory_in_flight: Gauge::default(),
            memory_limit: Gauge::default(),
            redactions: Family::default(),
            pod_logs: PodLogsFamilies::default(),
            disk_queues: DiskQueueFamilies::default(),
            host_metrics: HostMetricsFamilies::default(),
            journald: JournaldFamilies::default(),
            kubernetes_events: KubernetesEventsFamilies::default(),
            monitors: MonitorFamilies::default(),
            k8s: K8sFamilies::default(),
            tenants: TenantFamilies::default(),
            listeners: ListenerFamilies::default(),
            scrapes: ScrapeFamilies::default(),
            memory: std::sync::OnceLock::new(),
            process_rss: Gauge::default(),
            process_cpu: Counter::default(),
            process_start: Gauge::default(),
            phase: AtomicU8::new(Phase::Starting as u8),
        };
        {
            let mut r = t.registry.lock().unwrap();
            r.register(
                "ferro_receiver_accepted_items",
                "Items (spans, samples, log records, profiles) a receiver accepted into its pipelines",
                t.accepted.clone(),
            );
            r.register(
                "ferro_receiver_refused_items",
                "Items a receiver refused with a retryable answer because the pipeline or memory was full",
                t.refused.clone(),
            );
            r.register(
                "ferro_receiver_rejected_requests",
                "Requests a receiver rejected as malformed, too large or of an unsupported kind",
                t.rejected_requests.clone(),
            );
            r.register(
                "ferro_dropped_items",
                "Items ferro gave up on, by component and reason",
                t.dropped.clone(),
            );
            r.register(
                "ferro_exporter_sent_items",
                "Items an exporter delivered",
                t.sent.clone(),
            );
            r.register(
                "ferro_exporter_send_failed_items",
                "Items in failed send attempts, by reason (retried or dropped)",
                t.send_failed.clone(),
            );
            r.register(
                "ferro_exporter_retries",
                "Send attempts an exporter retried",
                t.retries.clone(),
            );
            r.register(
                "ferro_exporter_queue_items",
                "Items waiting in an exporter's queue",
                t.queue_items.clone(),
            );
            r.register(
                "ferro_exporter_queue_bytes",
                "Bytes waiting in an exporter's queue",
                t.queue_bytes.clone(),
            );
            r.register(
                "ferro_memory_in_flight_bytes",
                "Bytes of telemetry held across the process",
                t.memory_in_flight.clone(),
            );
            r.register(
                "ferro_memory_limit_bytes",
                "The memory_limit beyond which receivers refuse",
                t.memory_limit.clone(),
            );
            r.register(
                "ferro_redactions",
                "Values a redaction processor replaced, by rule (the values themselves are never logged)",
                t.redactions.clone(),
            );
            t.pod_logs.register(&mut r);
            t.disk_queues.register(&mut r);
            t.host_metrics.register(&mut r);
            t.journald.register(&mut r);
            t.kubernetes_events.register(&mut r);
            t.monitors.register(&mut r);
            t.k8s.register(&mut r);
            t.tenants.register(&mut r);
            t.listeners.register(&mut r);
            t.scrapes.register(&mut r);
            r.register(
                "process_resident_memory_bytes",
                "Resident set size of the ferro process",
                t.process_rss.clone(),
            );
            r.register(
                "process_cpu_seconds",
                "User and system CPU time of the ferro process",
                t.process_cpu.clone(),
            );
            r.register(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch",
                t.process_start.clone(),
            );
            let info: Family<VersionLabels, Gauge> = Family::default();
            info.get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
            r.register("ferro_build_info", "The running ferro version", info);
        }
        t.process_start.set(super::process::start_time_seconds());
        Arc::new(t)
    }

    /// The labels for one component carrying one signal.
    pub fn labels(kind: &'static str, id: &ComponentId, signal: Signal) -> ComponentLabels {
        ComponentLabels {
            kind,
            component: id.to_string(),
            signal: signal.as_str(),
        }
    }

    pub fn counter(family: &Family<ComponentLabels, Counter>, labels: &ComponentLabels) -> Counter {
        family.get_or_create(labels).clone()
    }

    pub fn reason_counter(
        family: &Family<ReasonLabels, Counter>,
        labels: &ComponentLabels,
        reason: &'static str,
    ) -> Counter {
        family
            .get_or_create(&ReasonLabels {
                kind: labels.kind,
                component: labels.component.clone(),
                signal: labels.signal,
                reason,
            })
            .clone()
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            1 => Phase::Ready,
            2 => Phase::Reloading,
            3 => Phase::Stopping,
            _ => Phase::Starting,
        }
    }

    /// Has `ferro_memory_in_flight_bytes` read from `limiter` each time the
    /// page is encoded.
    pub fn watch_memory(&self, limiter: Arc<crate::delivery::MemoryLimiter>) {
        let _ = self.memory.set(limiter);
    }

    /// The OpenMetrics text of every figure, with process figures read now.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Held while the process figures are brought up to date, so that two
        // scrapes at once cannot both add the same CPU time.
        let registry = self.registry.lock().unwrap();
        if let Some(limiter) = self.memory.get() {
            self.memory_in_flight.set(limiter.used() as i64);
            self.memory_limit.set(limiter.limit() as i64);
        }
        if let Some(stats) = super::process::read() {
            self.process_rss.set(stats.rss_bytes as i64);
            let delta = stats.cpu_seconds - self.process_cpu.get();
            if delta > 0.0 {
                self.process_cpu.inc_by(delta);
            }
        }
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}
