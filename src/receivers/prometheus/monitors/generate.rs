//! A monitor's endpoint as a scrape job, generated as the Prometheus
//! Operator generates it (`pkg/prometheus/promcfg.go`): the job name, the
//! relabel rules in the Operator's order (selector, port, the standard
//! target labels, the running filter, `targetLabels`/`podTargetLabels`,
//! `job`, `endpoint`, then the user's `relabelings`), and every endpoint
//! field ferro supports. The result goes through the same checks as a
//! written `scrape_config`, so a bad regex is refused the same way.
//!
//! Left out on purpose: the Operator's sharding rules (`__tmp_hash`), since
//! each agent scrapes only its node's targets; and `$(SHARD)`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::path::PathBuf;

use super::super::config::{Defaults, RawScrapeConfig, ScrapeConfig};
use super::MonitorSource;
use crate::config::{ByteSize, FieldError, HumanDuration, parse_byte_size, parse_duration};
use crate::k8s::discovery::sanitize;
use crate::k8s::monitor::{Endpoint, IntOrString, Monitor, MonitorKind, Relabeling};
use crate::net::tls::TlsConfig;
use crate::prom::relabel::RawRelabelConfig;

/// The job of endpoint `index` of `monitor`, checked; the errors name the
/// monitor's fields.
pub fn scrape_config(
    monitor: &std::sync::Arc<Monitor>,
    index: usize,
    defaults: &Defaults,
    files: &super::tls::Files,
) -> Result<ScrapeConfig, Vec<FieldError>> {
    let endpoint = &monitor.endpoints[index];
    let field = |name: &str| {
        let list = match monitor.kind {
            MonitorKind::ServiceMonitor => "endpoints",
            MonitorKind::PodMonitor => "podMetricsEndpoints",
        };
        format!("spec.{list}[{index}].{name}")
    };
    let mut errors = Vec::new();
    let mut duration = |name: &str, value: &Option<String>| {
        value
            .as_deref()
            .and_then(|text| match parse_duration(text) {
                Ok(d) => Some(HumanDuration(d)),
                Err(e) => {
                    errors.push(FieldError::new(field(name), e));
                    None
                }
            })
    };
    let scrape_interval = duration("interval", &endpoint.interval);
    let scrape_timeout = duration("scrapeTimeout", &endpoint.scrape_timeout);
    let body_size_limit =
        monitor
            .body_size_limit
            .as_deref()
            .and_then(|text| match parse_byte_size(text) {
                Ok(n) => Some(ByteSize(n)),
                Err(e) => {
                    errors.push(FieldError::new("spec.bodySizeLimit", e));
                    None
                }
            });
    // The user's rules alone first, so that an error names their index
    // (among the relabel_configs they follow the Operator's own).
    let user_rules: Vec<RawRelabelConfig> = endpoint.relabelings.iter().map(rule).collect();
    if let Err(found) = crate::prom::relabel::validate_all(user_rules, &field("relabelings")) {
        errors.extend(found);
    }
    let tls = endpoint.tls_config.clone().unwrap_or_default();
    let raw = RawScrapeConfig {
        job_name: format!(
            "{}/{}/{}/{index}",
            monitor.kind.job_prefix(),
            monitor.namespace,
            monitor.name
        ),
        scrape_interval,
        scrape_timeout,
        metrics_path: endpoint.path.clone().filter(|p| !p.is_empty()),
        scheme: endpoint.scheme.as_ref().map(|s| s.to_lowercase()),
        params: endpoint.params.clone(),
        bearer_token_file: endpoint.bearer_token_file.as_ref().map(PathBuf::from),
        tls_config: TlsConfig {
            ca_file: files.ca_file.clone().or(tls.ca_file.map(PathBuf::from)),
            cert_file: files.cert_file.clone().or(tls.cert_file.map(PathBuf::from)),
            key_file: files.key_file.clone().or(tls.key_file.map(PathBuf::from)),
            insecure_skip_verify: tls.insecure_skip_verify,
            server_name: tls.server_name,
        },
        honor_labels: endpoint.honor_labels,
        honor_timestamps: endpoint.honor_timestamps,
        sample_limit: limit(monitor.sample_limit),
        target_limit: limit(monitor.target_limit),
        label_limit: limit(monitor.label_limit),
        label_name_length_limit: limit(monitor.label_name_length_limit),
        label_value_length_limit: limit(monitor.label_value_length_limit),
        body_size_limit,
        relabel_configs: relabel_configs(monitor, endpoint),
        metric_relabel_configs: endpoint.metric_relabelings.iter().map(rule).collect(),
        ..RawScrapeConfig::default()
    };
    let mut jobs = Vec::new();
    let at = |name: &str| match name {
        "scrape_interval" => field("interval"),
        "scrape_timeout" => field("scrapeTimeout"),
        "metrics_path" => field("path"),
        "scheme" => field("scheme"),
        other if other.starts_with("relabel_configs") => field("relabelings"),
        other if other.starts_with("metric_relabel_configs") => field("metricRelabelings"),
        other if other.starts_with("tls_config") => field("tlsConfig"),
        other => field(other),
    };
    let checked_before = errors.len();
    let mut config = defaults.check(raw, &mut jobs, &at, &mut errors);
    // The user's relabelings were checked above: not twice.
    let mut i = checked_before;
    while i < errors.len() {
        if errors[i].field.starts_with(&field("relabelings")) && checked_before > 0 {
            errors.remove(i);
        } else {
            i += 1;
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // What the job scrapes depends on the monitor beyond its scrape
    // config (its selector and namespaces): a change there is a change of
    // the job.
    config.extend_fingerprint(&format!(
        "{:?}|{:?}|{:?}",
        monitor.kind, monitor.selector, monitor.namespaces
    ));
    config.monitor = Some(MonitorSource {
        monitor: monitor.clone(),
        endpoint: index,
    });
    Ok(config)
}

fn limit(value: Option<u64>) -> usize {
    value.map_or(0, |v| usize::try_from(v).unwrap_or(usize::MAX))
}

/// A CRD relabelling as a scrape config's (the action lower-cased, as
/// the Operator writes it).
fn rule(r: &Relabeling) -> RawRelabelConfig {
    RawRelabelConfig {
        source_labels: r.source_labels.clone(),
        separator: r.separator.clone(),
        target_label: r.target_label.clone(),
        regex: r.regex.clone(),
        modulus: r.modulus,
        replacement: r.replacement.clone(),
        action: r.action.as_ref().map(|a| a.to_lowercase()),
    }
}

/// A rule from its parts.
fn make(
    action: Option<&str>,
    source_labels: &[&str],
    regex: Option<&str>,
    target_label: Option<&str>,
    replacement: Option<&str>,
) -> RawRelabelConfig {
    RawRelabelConfig {
        source_labels: (!source_labels.is_empty())
            .then(|| source_labels.iter().map(|s| s.to_string()).collect()),
        separator: None,
        target_label: target_label.map(str::to_string),
        regex: regex.map(str::to_string),
        modulus: None,
        replacement: replacement.map(str::to_string),
        action: action.map(str::to_string),
    }
}

/// The selector as keep/drop rules on `prefix` (`service` or `pod`):
/// `matchLabels` in key order, then `matchExpressions` in list order.
fn selector_rules(selector: &LabelSelector, prefix: &str, out: &mut Vec<RawRelabelConfig>) {
    let label = |key: &str| format!("__meta_kubernetes_{prefix}_label_{}", sanitize(key));
    let present = |key: &str| format!("__meta_kubernetes_{prefix}_labelpresent_{}", sanitize(key));
    for (key, value) in selector.match_labels.iter().flatten() {
        let regex = format!("({value});true");
        out.push(make(
            Some("keep"),
            &[&label(key), &present(key)],
            Some(&regex),
            None,
            None,
        ));
    }
    for expression in selector.match_expressions.iter().flatten() {
        let key = &expression.key;
        let values = expression.values.clone().unwrap_or_default().join("|");
        let regex = format!("({values});true");
        let rule = match expression.operator.as_str() {
            "In" => make(
                Some("keep"),
                &[&label(key), &present(key)],
                Some(&regex),
                None,
                None,
            ),
            "NotIn" => make(
                Some("drop"),
                &[&label(key), &present(key)],
                Some(&regex),
                None,
                None,
            ),
            "Exists" => make(Some("keep"), &[&present(key)], Some("true"), None, None),
            _ => make(Some("drop"), &[&present(key)], Some("true"), None, None),
        };
        out.push(rule);
    }
}

/// The Operator's `relabel_configs` for one endpoint, in its order.
fn relabel_configs(monitor: &Monitor, endpoint: &Endpoint) -> Vec<RawRelabelConfig> {
    let mut out = vec![make(
        None,
        &["job"],
        None,
        Some("__tmp_prometheus_job_name"),
        None,
    )];
    let running = make(
        Some("drop"),
        &["__meta_kubernetes_pod_phase"],
        Some("(Failed|Succeeded)"),
        None,
        None,
    );
    let filter_running = endpoint.filter_running != Some(false);
    let container_port = |port: &IntOrString| match port {
        IntOrString::String(name) => make(
            Some("keep"),
            &["__meta_kubernetes_pod_container_port_name"],
            Some(name),
            None,
            None,
        ),
        IntOrString::Int(n) => make(
            Some("keep"),
            &["__meta_kubernetes_pod_container_port_number"],
            Some(&n.to_string()),
            None,
            None,
        ),
    };
    let target_label = |prefix: &str, label: &str| {
        make(
            None,
            &[&format!(
                "__meta_kubernetes_{prefix}_label_{}",
                sanitize(label)
            )],
            Some("(.+)"),
            Some(&sanitize(label)),
            Some("${1}"),
        )
    };
    match monitor.kind {
        MonitorKind::ServiceMonitor => {
            selector_rules(&monitor.selector, "service", &mut out);
            if let Some(port) = endpoint.port.as_deref().filter(|p| !p.is_empty()) {
                out.push(make(
                    Some("keep"),
                    &["__meta_kubernetes_endpoint_port_name"],
                    Some(port),
                    None,
                    None,
                ));
            } else if let Some(port) = endpoint.target_port.as_ref().filter(|p| !is_zero(p)) {
                out.push(container_port(port));
            }
            let kind_name = [
                "__meta_kubernetes_endpoint_address_target_kind",
                "__meta_kubernetes_endpoint_address_target_name",
            ];
            for (kind, label) in [("Node", "node"), ("Pod", "pod")] {
                let mut rule = make(
                    None,
                    &kind_name,
                    Some(&format!("{kind};(.*)")),
                    Some(label),
                    Some("${1}"),
                );
                rule.separator = Some(";".into());
                out.push(rule);
            }
            for (source, label) in [
                ("__meta_kubernetes_namespace", "namespace"),
                ("__meta_kubernetes_service_name", "service"),
                ("__meta_kubernetes_pod_name", "pod"),
                ("__meta_kubernetes_pod_container_name", "container"),
            ] {
                out.push(make(None, &[source], None, Some(label), None));
            }
            if filter_running {
                out.push(running);
            }
            for label in &monitor.target_labels {
                out.push(target_label("service", label));
            }
            for label in &monitor.pod_target_labels {
                out.push(target_label("pod", label));
            }
            out.push(make(
                None,
                &["__meta_kubernetes_service_name"],
                None,
                Some("job"),
                Some("${1}"),
            ));
            if let Some(label) = &monitor.job_label {
                out.push(target_label("service", label).with_target("job"));
            }
        }
        MonitorKind::PodMonitor => {
            if filter_running {
                out.push(running);
            }
            selector_rules(&monitor.selector, "pod", &mut out);
            if let Some(port) = endpoint.port.as_deref().filter(|p| !p.is_empty()) {
                out.push(container_port(&IntOrString::String(port.to_string())));
            } else if let Some(number) = endpoint.port_number.filter(|n| *n > 0) {
                out.push(container_port(&IntOrString::Int(i64::from(number))));
            } else if let Some(port) = endpoint.target_port.as_ref().filter(|p| !is_zero(p)) {
                out.push(container_port(port));
            }
            for (source, label) in [
                ("__meta_kubernetes_namespace", "namespace"),
                ("__meta_kubernetes_pod_container_name", "container"),
                ("__meta_kubernetes_pod_name", "pod"),
            ] {
                out.push(make(None, &[source], None, Some(label), None));
            }
            for label in &monitor.pod_target_labels {
                out.push(target_label("pod", label));
            }
            let job = format!("{}/{}", monitor.namespace, monitor.name);
            out.push(make(None, &[], None, Some("job"), Some(&job)));
            if let Some(label) = &monitor.job_label {
                out.push(target_label("pod", label).with_target("job"));
            }
        }
    }
    let endpoint_label = match (endpoint.port.as_deref(), &endpoint.target_port) {
        (Some(port), _) if !port.is_empty() => Some(port.to_string()),
        (_, Some(target)) if !is_zero(target) => Some(target.to_string()),
        _ => None,
    };
    if let Some(value) = endpoint_label {
        out.push(make(None, &[], None, Some("endpoint"), Some(&value)));
    }
    out.extend(endpoint.relabelings.iter().map(rule));
    out
}

fn is_zero(port: &IntOrString) -> bool {
    match port {
        IntOrString::Int(n) => *n == 0,
        IntOrString::String(s) => s.is_empty(),
    }
}

trait WithTarget {
    fn with_target(self, label: &str) -> Self;
}

impl WithTarget for RawRelabelConfig {
    fn with_target(mut self, label: &str) -> Self {
        self.target_label = Some(label.to_string());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn monitor(kind: MonitorKind, spec: serde_json::Value) -> Arc<Monitor> {
        let object = json!({"metadata": {"name": "testservicemonitor1", "namespace": "default"}, "spec": spec});
        Arc::new(Monitor::from_object(kind, &object).unwrap())
    }

    /// A rule as the Operator's golden YAML writes it, field by field.
    fn rule_text(r: &RawRelabelConfig) -> String {
        let mut parts = Vec::new();
        if let Some(a) = &r.action {
            parts.push(format!("action={a}"));
        }
        if let Some(s) = &r.source_labels {
            parts.push(format!("source_labels={}", s.join(",")));
        }
        if let Some(s) = &r.separator {
            parts.push(format!("separator={s}"));
        }
        if let Some(s) = &r.regex {
            parts.push(format!("regex={s}"));
        }
        if let Some(s) = &r.replacement {
            parts.push(format!("replacement={s}"));
        }
        if let Some(s) = &r.target_label {
            parts.push(format!("target_label={s}"));
        }
        parts.join(" ")
    }

    /// The Operator's golden `SettingHonorLabels` (port `web`, targetLabels
    /// `example` and `env`), without its sharding rules.
    #[test]
    fn a_service_monitor_endpoint_relabels_as_the_operator_writes_it() {
        let m = monitor(
            MonitorKind::ServiceMonitor,
            json!({"endpoints": [{"port": "web", "interval": "30s", "honorLabels": true}],
                   "targetLabels": ["example", "env"]}),
        );
        let rules: Vec<String> = relabel_configs(&m, &m.endpoints[0])
            .iter()
            .map(rule_text)
            .collect();
        assert_eq!(
            rules,
            [
                "source_labels=job target_label=__tmp_prometheus_job_name",
                "action=keep source_labels=__meta_kubernetes_endpoint_port_name regex=web",
                "source_labels=__meta_kubernetes_endpoint_address_target_kind,__meta_kubernetes_endpoint_address_target_name separator=; regex=Node;(.*) replacement=${1} target_label=node",
                "source_labels=__meta_kubernetes_endpoint_address_target_kind,__meta_kubernetes_endpoint_address_target_name separator=; regex=Pod;(.*) replacement=${1} target_label=pod",
                "source_labels=__meta_kubernetes_namespace target_label=namespace",
                "source_labels=__meta_kubernetes_service_name target_label=service",
                "source_labels=__meta_kubernetes_pod_name target_label=pod",
                "source_labels=__meta_kubernetes_pod_container_name target_label=container",
                "action=drop source_labels=__meta_kubernetes_pod_phase regex=(Failed|Succeeded)",
                "source_labels=__meta_kubernetes_service_label_example regex=(.+) replacement=${1} target_label=example",
                "source_labels=__meta_kubernetes_service_label_env regex=(.+) replacement=${1} target_label=env",
                "source_labels=__meta_kubernetes_service_name replacement=${1} target_label=job",
                "replacement=web target_label=endpoint",
            ]
        );
        let defaults = Defaults {
            scrape_interval: std::time::Duration::from_secs(60),
            scrape_timeout: std::time::Duration::from_secs(10),
        };
        let job = scrape_config(&m, 0, &defaults, &Default::default()).unwrap();
        assert_eq!(
            job.job.job_name,
            "serviceMonitor/default/testservicemonitor1/0"
        );
        assert_eq!(job.job.scrape_interval, std::time::Duration::from_secs(30));
        assert!(job.honor_labels);
        assert_eq!(job.metrics_path, "/metrics");
    }

    /// The golden `EnforcedNamespaceLabelServiceMonitor`'s selector rules:
    /// `foo: bar` and `alpha In [beta, gamma]`.
    #[test]
    fn selectors_become_keep_and_drop_rules_in_the_operators_order() {
        let m = monitor(
            MonitorKind::ServiceMonitor,
            json!({"selector": {"matchLabels": {"foo": "bar"},
                                "matchExpressions": [{"key": "alpha", "operator": "In", "values": ["beta", "gamma"]},
                                                     {"key": "app.kubernetes.io/part-of", "operator": "DoesNotExist"}]},
                   "endpoints": [{"port": "web"}]}),
        );
        let rules: Vec<String> = relabel_configs(&m, &m.endpoints[0])
            .iter()
            .map(rule_text)
            .collect();
        assert_eq!(
            &rules[1..4],
            [
                "action=keep source_labels=__meta_kubernetes_service_label_foo,__meta_kubernetes_service_labelpresent_foo regex=(bar);true",
                "action=keep source_labels=__meta_kubernetes_service_label_alpha,__meta_kubernetes_service_labelpresent_alpha regex=(beta|gamma);true",
                "action=drop source_labels=__meta_kubernetes_service_labelpresent_app_kubernetes_io_part_of regex=true",
            ]
        );
    }

    #[test]
    fn a_pod_monitor_endpoint_relabels_as_the_operator_writes_it() {
        let m = monitor(
            MonitorKind::PodMonitor,
            json!({"selector": {"matchLabels": {"app": "web"}},
                   "jobLabel": "team",
                   "podTargetLabels": ["version", "app.kubernetes.io/name"],
                   "podMetricsEndpoints": [{"port": "metrics", "filterRunning": false,
                                            "relabelings": [{"action": "Drop", "sourceLabels": ["__meta_kubernetes_pod_label_canary"], "regex": "true"}]},
                                           {"portNumber": 9102}]}),
        );
        let rules: Vec<String> = relabel_configs(&m, &m.endpoints[0])
            .iter()
            .map(rule_text)
            .collect();
        assert_eq!(
            rules,
            [
                "source_labels=job target_label=__tmp_prometheus_job_name",
                "action=keep source_labels=__meta_kubernetes_pod_label_app,__meta_kubernetes_pod_labelpresent_app regex=(web);true",
                "action=keep source_labels=__meta_kubernetes_pod_container_port_name regex=metrics",
                "source_labels=__meta_kubernetes_namespace target_label=namespace",
                "source_labels=__meta_kubernetes_pod_container_name target_label=container",
                "source_labels=__meta_kubernetes_pod_name target_label=pod",
                "source_labels=__meta_kubernetes_pod_label_version regex=(.+) replacement=${1} target_label=version",
                "source_labels=__meta_kubernetes_pod_label_app_kubernetes_io_name regex=(.+) replacement=${1} target_label=app_kubernetes_io_name",
                "replacement=default/testservicemonitor1 target_label=job",
                "source_labels=__meta_kubernetes_pod_label_team regex=(.+) replacement=${1} target_label=job",
                "replacement=metrics target_label=endpoint",
                "action=drop source_labels=__meta_kubernetes_pod_label_canary regex=true",
            ]
        );
        // portNumber: a keep on the number, and no endpoint label.
        let second: Vec<String> = relabel_configs(&m, &m.endpoints[1])
            .iter()
            .map(rule_text)
            .collect();
        assert!(
            second.contains(
                &"action=keep source_labels=__meta_kubernetes_pod_container_port_number regex=9102"
                    .to_string()
            )
        );
        assert!(
            second[1].contains("pod_phase"),
            "the running filter comes first for pods"
        );
        assert!(!second.iter().any(|r| r.contains("target_label=endpoint")));
    }

    #[test]
    fn a_bad_endpoint_is_refused_with_the_monitors_field() {
        let m = monitor(
            MonitorKind::ServiceMonitor,
            json!({"endpoints": [
                {"port": "a", "interval": "soon"},
                {"port": "b", "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "go_(", "action": "drop"}]},
                {"port": "c", "interval": "5s", "scrapeTimeout": "10s"},
                {"port": "d", "scheme": "ftp"},
                {"port": "e", "relabelings": [{"targetLabel": "x"}, {"action": "teleport"}]}
            ]}),
        );
        let defaults = Defaults {
            scrape_interval: std::time::Duration::from_secs(30),
            scrape_timeout: std::time::Duration::from_secs(10),
        };
        let fields = |i| -> Vec<String> {
            scrape_config(&m, i, &defaults, &Default::default())
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(0), ["spec.endpoints[0].interval"]);
        assert_eq!(fields(1), ["spec.endpoints[1].metricRelabelings.0.regex"]);
        assert_eq!(fields(2), ["spec.endpoints[2].scrapeTimeout"]);
        assert_eq!(fields(3), ["spec.endpoints[3].scheme"]);
        assert_eq!(fields(4), ["spec.endpoints[4].relabelings.1.action"]);
    }
}
