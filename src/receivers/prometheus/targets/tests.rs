use super::*;
use crate::config::Validate;
use crate::receivers::prometheus::RawPrometheusConfig;

fn scrape_config(toml_text: &str) -> ScrapeConfig {
    let raw: RawPrometheusConfig = toml::from_str(toml_text).unwrap();
    raw.validate().unwrap().scrape_configs.remove(0)
}

#[test]
fn static_targets_get_job_instance_and_url() {
    let config = scrape_config(
        r#"
        [[scrape_configs]]
        job_name = "node"
        metrics_path = "/probe"
        params = { module = ["http_2xx"] }
        static_configs = [{ targets = ["10.0.0.1:9100", "10.0.0.2:9100"], labels = { env = "prod" } }]
        "#,
    );
    let found = targets(&config, &config.job.static_configs);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].url, "http://10.0.0.1:9100/probe?module=http_2xx");
    let labels: Vec<_> = found[0].labels.iter().collect();
    assert_eq!(
        labels,
        vec![
            ("env", "prod"),
            ("instance", "10.0.0.1:9100"),
            ("job", "node")
        ]
    );
}

#[test]
fn relabelling_can_drop_rewrite_and_set_params() {
    let config = scrape_config(
        r#"
        [[scrape_configs]]
        job_name = "blackbox"
        static_configs = [{ targets = ["https://example.com", "http://skip.me"] }]
        [[scrape_configs.relabel_configs]]
        source_labels = ["__address__"]
        regex = "http://skip.*"
        action = "drop"
        [[scrape_configs.relabel_configs]]
        source_labels = ["__address__"]
        target_label = "__param_target"
        [[scrape_configs.relabel_configs]]
        source_labels = ["__param_target"]
        target_label = "instance"
        [[scrape_configs.relabel_configs]]
        target_label = "__address__"
        replacement = "127.0.0.1:9115"
        "#,
    );
    let found = targets(&config, &config.job.static_configs);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].url,
        "http://127.0.0.1:9115/metrics?target=https%3A%2F%2Fexample.com"
    );
    assert_eq!(found[0].labels.get("instance"), Some("https://example.com"));
    assert_eq!(
        found[0].labels.get("__param_target"),
        None,
        "__ labels are not target labels"
    );
}

#[test]
fn config_errors_name_the_field() {
    let raw: RawPrometheusConfig = toml::from_str(
        r#"
        [[scrape_configs]]
        job_name = "a"
        scrape_interval = "10s"
        scrape_timeout = "20s"
        scheme = "ftp"
        [[scrape_configs]]
        job_name = "a"
        "#,
    )
    .unwrap();
    let errors = raw.validate().unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert!(
        fields.contains(&"scrape_configs.0.scrape_timeout"),
        "{errors:?}"
    );
    assert!(fields.contains(&"scrape_configs.0.scheme"), "{errors:?}");
    assert!(fields.contains(&"scrape_configs.1.job_name"), "{errors:?}");
}

#[test]
fn the_node_role_scrapes_this_nodes_kubelet_as_kube_prometheus_does() {
    use crate::k8s::{KubernetesConfig, PodCache, Relist};
    let config = scrape_config(
        r#"
        [[scrape_configs]]
        job_name = "kubelet"
        scheme = "https"
        metrics_path = "/metrics/cadvisor"
        kubernetes_sd_configs = [{ role = "node" }]
        relabel_configs = [
          { source_labels = ["__meta_kubernetes_node_name"], target_label = "node" },
          { source_labels = ["__metrics_path__"], target_label = "metrics_path" },
        ]
        "#,
    );
    assert_eq!(
        config.kubernetes_sd_configs,
        [crate::receivers::prometheus::KubernetesSdConfig::Node]
    );
    let cache = PodCache::empty(
        KubernetesConfig {
            node_name: "node-a".into(),
            api_server: None,
            namespaces: None,
            watch_node: true,
            leader: None,
        },
        &crate::telemetry::Telemetry::new(),
    );
    let sources = crate::receivers::prometheus::sources(&config, Some(cache.clone()), None);
    assert!(sources.groups_now().is_empty(), "no node object yet");
    let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "node-a"},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "10.0.0.7"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}
        }
    }))
    .unwrap();
    cache.apply_node(
        kube::runtime::watcher::Event::Apply(node),
        &mut Relist::default(),
    );
    let found = targets(&config, &sources.groups_now());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].url, "https://10.0.0.7:10250/metrics/cadvisor");
    let labels: Vec<(String, String)> = found[0]
        .labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        labels,
        [
            ("instance", "node-a"),
            ("job", "kubelet"),
            ("metrics_path", "/metrics/cadvisor"),
            ("node", "node-a"),
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()))
    );
}
