//! ServiceMonitors and PodMonitors in the Prometheus receiver
//! (`[[receivers.prometheus.NAME.monitors]]`): the monitors the config
//! honours become scrape jobs as the Prometheus Operator would write them
//! ([`generate`]), whose targets are this node's pods ([`targets`]); the
//! jobs follow the monitors as they are added, changed and deleted
//! ([`manage`]), each job alone, so the other scrapes go on.

pub mod generate;
pub mod targets;
pub mod tls;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::{Defaults, ScrapeConfig};
use super::receiver::Stops;
use super::scrape::{Job, Sender};
use crate::config::{ComponentId, FieldError, HumanDuration};
use crate::k8s::PodCache;
use crate::k8s::cluster::ClusterObjects;
use crate::k8s::monitor::{Monitor, MonitorKind};
use crate::k8s::selector::Selector;
use crate::k8s::slices::EndpointSlices;
use crate::signal::Signal;
use crate::telemetry::Telemetry;

/// `[[receivers.prometheus.NAME.monitors]]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawMonitorsConfig {
    /// `ServiceMonitor`, `PodMonitor`; both when absent.
    kinds: Option<Vec<String>>,
    /// Only monitors in these namespaces; all when empty.
    #[serde(default)]
    namespaces: Vec<String>,
    /// Only monitors with these labels (a Kubernetes label selector).
    selector: Option<RawSelector>,
    /// The interval of endpoints that set none (the Operator's default).
    scrape_interval: Option<HumanDuration>,
    /// The timeout of endpoints that set none.
    scrape_timeout: Option<HumanDuration>,
}

/// A label selector in the config: `match_labels` and `match_expressions`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawSelector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<RawRequirement>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawRequirement {
    key: String,
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

/// A checked `monitors` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorsConfig {
    pub kinds: Vec<MonitorKind>,
    pub namespaces: Vec<String>,
    pub selector: Selector,
    /// The job defaults of the endpoints: 30 s and 10 s unless set.
    pub defaults: Defaults,
}

impl RawMonitorsConfig {
    pub(super) fn check(
        self,
        at: &dyn Fn(&str) -> String,
        errors: &mut Vec<FieldError>,
    ) -> MonitorsConfig {
        let mut kinds = Vec::new();
        for (i, kind) in self
            .kinds
            .unwrap_or_else(|| vec!["ServiceMonitor".into(), "PodMonitor".into()])
            .iter()
            .enumerate()
        {
            match kind.as_str() {
                "ServiceMonitor" => kinds.push(MonitorKind::ServiceMonitor),
                "PodMonitor" => kinds.push(MonitorKind::PodMonitor),
                other => errors.push(FieldError::new(
                    at(&format!("kinds.{i}")),
                    format!("`{other}` is not ServiceMonitor or PodMonitor"),
                )),
            }
        }
        for (i, namespace) in self.namespaces.iter().enumerate() {
            if !crate::k8s::is_namespace_name(namespace) {
                errors.push(FieldError::new(
                    at(&format!("namespaces.{i}")),
                    format!("`{namespace}` is not a namespace name"),
                ));
            }
        }
        let raw = self.selector.unwrap_or_default();
        let selector = LabelSelector {
            match_labels: Some(raw.match_labels),
            match_expressions: Some(
                raw.match_expressions
                    .into_iter()
                    .map(|r| LabelSelectorRequirement {
                        key: r.key,
                        operator: r.operator,
                        values: Some(r.values),
                    })
                    .collect(),
            ),
        };
        let selector = Selector::from_label_selector(&selector).unwrap_or_else(|e| {
            errors.push(FieldError::new(at("selector"), e.to_string()));
            Selector::everything()
        });
        let scrape_interval = self
            .scrape_interval
            .map_or(Duration::from_secs(30), |d| d.get());
        let scrape_timeout = self
            .scrape_timeout
            .map_or(Duration::from_secs(10), |d| d.get());
        if scrape_interval.is_zero() {
            errors.push(FieldError::new(
                at("scrape_interval"),
                "must be more than 0",
            ));
        }
        MonitorsConfig {
            kinds,
            namespaces: self.namespaces,
            selector,
            defaults: Defaults {
                scrape_interval,
                scrape_timeout,
            },
        }
    }
}

impl MonitorsConfig {
    /// Whether this entry honours `monitor`.
    pub fn honours(&self, monitor: &Monitor) -> bool {
        self.kinds.contains(&monitor.kind)
            && (self.namespaces.is_empty() || self.namespaces.contains(&monitor.namespace))
            && self.selector.matches(&monitor.labels)
    }
}

/// Where a monitor's job finds its targets: endpoint `endpoint` of
/// `monitor`.
#[derive(Clone, Debug)]
pub struct MonitorSource {
    pub monitor: Arc<Monitor>,
    pub endpoint: usize,
}

/// The receiver's counters for monitors.
struct Counters {
    jobs: prometheus_client::metrics::gauge::Gauge,
    invalid: Counter,
    invalid_endpoint: Counter,
    unsupported: Counter,
    tls_unreadable: Counter,
}

impl Counters {
    fn new(telemetry: &Telemetry, id: &ComponentId) -> Self {
        let labels = Telemetry::labels("receiver", id, Signal::Metrics);
        let m = &telemetry.monitors;
        Self {
            jobs: m.jobs.get_or_create(&labels).clone(),
            invalid: Telemetry::reason_counter(&m.problems, &labels, "invalid"),
            invalid_endpoint: Telemetry::reason_counter(&m.problems, &labels, "invalid_endpoint"),
            unsupported: Telemetry::reason_counter(&m.problems, &labels, "unsupported_field"),
            tls_unreadable: Telemetry::reason_counter(&m.problems, &labels, "tls_unreadable"),
        }
    }
}

/// A job running for a monitor's endpoint.
struct Running {
    config: ScrapeConfig,
    stop: CancellationToken,
    next: Arc<OnceLock<BTreeSet<crate::scrape::Target>>>,
    task: JoinHandle<()>,
}

/// What a monitor's job reads besides this node's pods: the cluster's
/// Services and, on the leader, the EndpointSlices of the endpoints that
/// are not pods.
#[derive(Clone)]
pub struct World {
    pub cluster: ClusterObjects,
    pub slices: Option<EndpointSlices>,
}

/// What [`manage`] needs.
pub struct Manager {
    pub id: ComponentId,
    pub configs: Vec<MonitorsConfig>,
    pub cluster: ClusterObjects,
    /// Whether this agent leads (`[kubernetes.leader]`): the leader also
    /// scrapes the monitored Services' endpoints that are not pods.
    pub leading: Option<tokio::sync::watch::Receiver<bool>>,
    pub pods: PodCache,
    pub sender: Arc<Sender>,
    pub telemetry: Arc<Telemetry>,
    /// Where the Secret and ConfigMap keys of monitors' `tlsConfig` are
    /// written for the jobs to read.
    pub tls_dir: std::path::PathBuf,
    pub stop: CancellationToken,
}

/// How long monitor changes are gathered before the jobs follow: an
/// `kubectl apply` of a chart writes several at once.
const SETTLE: Duration = Duration::from_millis(500);

/// Keeps one job per honoured monitor endpoint running, in step with the
/// monitors; stops them all with the receiver.
pub async fn manage(mut m: Manager) {
    let counters = Counters::new(&m.telemetry, &m.id);
    let mut changes = m.cluster.monitor_changes();
    let mut service_changes = m.cluster.service_changes();
    let services_monitored = m
        .configs
        .iter()
        .any(|c| c.kinds.contains(&MonitorKind::ServiceMonitor));
    let slices = match &m.leading {
        Some(_) if services_monitored => {
            match EndpointSlices::new(m.cluster.config(), &m.telemetry).await {
                Ok(slices) => Some(slices),
                Err(e) => {
                    tracing::warn!(receiver = %m.id, error = %e, "cannot read EndpointSlices; endpoints that are not pods are not scraped");
                    None
                }
            }
        }
        _ => None,
    };
    let world = World {
        cluster: m.cluster.clone(),
        slices: slices.clone(),
    };
    let mut tls = match crate::k8s::cache::client(m.cluster.config()).await {
        Ok(client) => Some(tls::TlsFiles::new(client, &m.tls_dir)),
        Err(e) => {
            tracing::warn!(receiver = %m.id, error = %e, "cannot read Secrets and ConfigMaps; monitor endpoints whose tlsConfig names them are not scraped");
            None
        }
    };
    let mut refresh = tokio::time::interval(tls::REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    refresh.tick().await;
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    // What was said about each monitor version, so it is said once.
    let mut told: HashSet<(String, String)> = HashSet::new();
    loop {
        let wanted = wanted_jobs(&m, &counters, &mut told, tls.as_mut()).await;
        // Only the monitor versions that exist are remembered.
        let current: HashSet<(String, String)> =
            [MonitorKind::ServiceMonitor, MonitorKind::PodMonitor]
                .into_iter()
                .flat_map(|kind| m.cluster.monitors(kind))
                .map(|e| (e.key, e.resource_version))
                .collect();
        told.retain(|k| current.contains(k));
        if let Some(slices) = &slices {
            let leads = m.leading.as_ref().is_some_and(|l| *l.borrow());
            let names = if leads {
                monitored_services(&wanted, &m.cluster)
            } else {
                BTreeSet::new()
            };
            slices.follow(names);
        }
        let names: Vec<String> = running.keys().cloned().collect();
        for name in names {
            let keep = wanted
                .get(&name)
                .is_some_and(|w| *w == running[&name].config);
            if !keep {
                let old = running.remove(&name).expect("listed");
                // A target the job that replaces it still scrapes goes on
                // (its series are not ended); the others end theirs, as a
                // reload does.
                let next: BTreeSet<crate::scrape::Target> = match wanted.get(&name) {
                    Some(config) => {
                        let sources = super::receiver::sources(
                            config,
                            Some(m.pods.clone()),
                            Some(world.clone()),
                        );
                        super::targets::targets(config, &sources.groups_now())
                            .into_iter()
                            .collect()
                    }
                    None => BTreeSet::new(),
                };
                let _ = old.next.set(next);
                old.stop.cancel();
                let _ = old.task.await;
                tracing::info!(receiver = %m.id, job = %name, "monitor job stopped");
            }
        }
        for (name, config) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            match start_job(&m, &world, config.clone()) {
                Ok((stop, next, task)) => {
                    tracing::info!(receiver = %m.id, job = %name, "monitor job started");
                    running.insert(
                        name,
                        Running {
                            config,
                            stop,
                            next,
                            task,
                        },
                    );
                }
                Err(e) => {
                    counters.invalid_endpoint.inc();
                    tracing::warn!(receiver = %m.id, job = %name, error = %e, "cannot start the monitor's job");
                }
            }
        }
        counters.jobs.set(running.len() as i64);
        if let Some(tls) = tls.as_mut() {
            let keep: HashSet<std::path::PathBuf> = running
                .values()
                .flat_map(|r| {
                    let t = &r.config.job.tls;
                    [t.ca_file.clone(), t.cert_file.clone(), t.key_file.clone()]
                })
                .flatten()
                .collect();
            tls.prune(&keep);
        }
        let leading = async {
            match m.leading.as_mut() {
                Some(leading) if slices.is_some() => leading.changed().await.is_ok(),
                _ => std::future::pending().await,
            }
        };
        let services_changed = async {
            match &slices {
                Some(_) => service_changes.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let going_on = tokio::select! {
            _ = m.stop.cancelled() => false,
            // Secrets and ConfigMaps read again (a rotated certificate).
            _ = refresh.tick() => true,
            changed = changes.changed() => changed.is_ok(),
            changed = leading => changed,
            changed = services_changed => changed,
        };
        if !going_on {
            if !m.stop.is_cancelled() {
                m.stop.cancelled().await;
            }
            break;
        }
        tokio::select! {
            _ = m.stop.cancelled() => break,
            _ = tokio::time::sleep(SETTLE) => {}
        }
    }
    if let Some(slices) = &slices {
        slices.follow(BTreeSet::new());
    }
    for job in running.values() {
        job.stop.cancel();
    }
    for (_, job) in running {
        let _ = job.task.await;
    }
}

/// The jobs the honoured monitors ask for now, by job name; problems
/// logged (once per monitor version) and counted.
async fn wanted_jobs(
    m: &Manager,
    counters: &Counters,
    told: &mut HashSet<(String, String)>,
    mut tls: Option<&mut tls::TlsFiles>,
) -> BTreeMap<String, ScrapeConfig> {
    let mut wanted = BTreeMap::new();
    let mut kinds: Vec<MonitorKind> = m.configs.iter().flat_map(|c| c.kinds.clone()).collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        for entry in m.cluster.monitors(kind) {
            let first_time = told.insert((entry.key.clone(), entry.resource_version.clone()));
            let monitor = match &entry.monitor {
                Ok(monitor) => monitor,
                Err(error) => {
                    if first_time {
                        counters.invalid.inc();
                        tracing::warn!(receiver = %m.id, kind = kind.as_str(), monitor = %entry.key, %error, "monitor cannot be read; its targets are not scraped");
                    }
                    continue;
                }
            };
            let Some(config) = m.configs.iter().find(|c| c.honours(monitor)) else {
                continue;
            };
            if first_time && !monitor.unsupported.is_empty() {
                counters
                    .unsupported
                    .inc_by(monitor.unsupported.len() as u64);
                tracing::warn!(receiver = %m.id, kind = kind.as_str(), monitor = %entry.key, fields = ?monitor.unsupported, "monitor sets fields ferro does not act on; scraping without them");
            }
            for (index, endpoint) in monitor.endpoints.iter().enumerate() {
                let files = match (&endpoint.tls_config, tls.as_deref_mut()) {
                    (Some(endpoint_tls), Some(reader)) => {
                        reader.files(&monitor.namespace, endpoint_tls).await
                    }
                    (Some(t), None)
                        if t.ca.is_some() || t.cert.is_some() || t.key_secret.is_some() =>
                    {
                        Err("Secrets and ConfigMaps cannot be read".to_string())
                    }
                    _ => Ok(tls::Files::default()),
                };
                let files = match files {
                    Ok(files) => files,
                    Err(error) => {
                        if first_time {
                            counters.tls_unreadable.inc();
                            tracing::warn!(receiver = %m.id, kind = kind.as_str(), monitor = %entry.key, endpoint = index, %error, "the endpoint's tlsConfig cannot be read; it is not scraped until it can");
                        }
                        continue;
                    }
                };
                match generate::scrape_config(monitor, index, &config.defaults, &files) {
                    Ok(job) => {
                        wanted.insert(job.job.job_name.clone(), job);
                    }
                    Err(errors) => {
                        if first_time {
                            counters.invalid_endpoint.inc();
                            let errors: Vec<String> = errors
                                .iter()
                                .map(|e| format!("{}: {}", e.field, e.message))
                                .collect();
                            tracing::warn!(receiver = %m.id, kind = kind.as_str(), monitor = %entry.key, endpoint = index, ?errors, "monitor endpoint refused; the monitor's other endpoints are scraped");
                        }
                    }
                }
            }
        }
    }
    wanted
}

/// The names of the Services the ServiceMonitor jobs in `jobs` select.
fn monitored_services(
    jobs: &BTreeMap<String, ScrapeConfig>,
    cluster: &ClusterObjects,
) -> BTreeSet<String> {
    let monitors: Vec<&Arc<Monitor>> = jobs
        .values()
        .filter_map(|j| j.monitor.as_ref())
        .map(|s| &s.monitor)
        .filter(|m| m.kind == MonitorKind::ServiceMonitor)
        .collect();
    cluster
        .services()
        .iter()
        .filter(|s| {
            monitors
                .iter()
                .any(|m| m.namespaces.contains(&s.namespace) && m.selects.matches(&s.labels))
        })
        .map(|s| s.name.clone())
        .collect()
}

type Started = (
    CancellationToken,
    Arc<OnceLock<BTreeSet<crate::scrape::Target>>>,
    JoinHandle<()>,
);

fn start_job(m: &Manager, world: &World, config: ScrapeConfig) -> std::io::Result<Started> {
    let job = Arc::new(Job::new(
        config.clone(),
        &config.job.tls,
        &config.job.credentials,
    )?);
    let stop = m.stop.child_token();
    let next = Arc::new(OnceLock::new());
    let stops = Stops {
        receiver: stop.clone(),
        next: next.clone(),
    };
    let task = tokio::spawn(super::receiver::manage(
        job,
        m.sender.clone(),
        Some(m.pods.clone()),
        Some(world.clone()),
        stops,
    ));
    Ok((stop, next, task))
}
