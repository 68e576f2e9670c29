//! The shipped config examples validate, and `ferro validate` reports every
//! mistake of a broken file with its path and line.

use std::io::Write as _;
use std::process::Command;

fn ferro() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferro"))
}

#[test]
fn every_example_in_config_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let output = ferro()
                .arg("validate")
                .arg("-c")
                .arg(&path)
                .env("NODE_NAME", "node-a")
                .env("POD_NAME", "ferro-x7k2p")
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{} does not validate:\n{}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(String::from_utf8_lossy(&output.stdout).starts_with("ok: "));
            checked += 1;
        }
    }
    assert!(checked >= 3, "local, daemonset and sidecar examples");
}

#[test]
fn validate_lists_every_error_and_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        r#"[receivers.otlp.default]
grpc = "127.0.0.1:4317"
max_recv_msg_size = "huge"

[exporters.otlp.tempo]
endpoint = "http://tempo:4317"
compresion = "gzip"

[pipelines.traces]
receivers = ["otlp.default"]
exporters = ["otlp.tmepo"]
"#,
    )
    .unwrap();
    let output = ferro()
        .arg("validate")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("3 errors"), "{stderr}");
    assert!(
        stderr.contains("line 3: receivers.otlp.default.max_recv_msg_size"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 7: exporters.otlp.tempo.compresion: unknown field"),
        "{stderr}"
    );
    assert!(
        stderr.contains("exporter `otlp.tmepo` is not defined"),
        "{stderr}"
    );
}

#[test]
fn version_and_missing_file() {
    let output = ferro().arg("--version").output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("ferro "));
    let output = ferro()
        .args(["validate", "-c", "/nonexistent/ferro.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read"));
}

/// The documents of every manifest in `deploy/kubernetes/`, by file name.
fn manifests() -> Vec<(String, String, Vec<serde_yaml::Value>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let docs = serde_yaml::Deserializer::from_str(&text)
                .map(|d| {
                    serde::Deserialize::deserialize(d)
                        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
                })
                .collect();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, text, docs));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_configmap_in_deploy_holds_a_valid_config() {
    let mut checked = 0;
    for (file, _, docs) in manifests() {
        for doc in docs.iter().filter(|d| d["kind"] == "ConfigMap") {
            let toml = doc["data"]["ferro.toml"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: a ConfigMap with ferro.toml"));
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("configmap.toml");
            std::fs::write(&path, toml).unwrap();
            let output = ferro()
                .arg("validate")
                .arg("-c")
                .arg(&path)
                .env("TEMPO_ENDPOINT", "http://tempo:4317")
                .env("MIMIR_ENDPOINT", "http://mimir:8080/api/v1/push")
                .env("LOKI_ENDPOINT", "http://loki:3100/loki/api/v1/push")
                .env("PYROSCOPE_ENDPOINT", "http://pyroscope:4040")
                .env("OTLP_UPSTREAM", "http://tempo:4317")
                .env("NODE_NAME", "node-a")
                .env("POD_NAME", "ferro-x7k2p")
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{file}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "the DaemonSet's and the sidecar example's");
}

/// What `kubectl apply --dry-run=client` checks offline, and what the
/// DaemonSet must have: kubectl itself needs an API server for discovery.
#[test]
fn the_manifests_are_well_formed_and_least_privileged() {
    let all = manifests();
    let mut kinds = Vec::new();
    for (file, _, docs) in &all {
        for doc in docs {
            for field in ["apiVersion", "kind"] {
                assert!(doc[field].is_string(), "{file}: {field} in {doc:?}");
            }
            assert!(doc["metadata"]["name"].is_string(), "{file}: metadata.name");
            kinds.push(doc["kind"].as_str().unwrap().to_string());
        }
    }
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "DaemonSet",
        "Deployment",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let docs: Vec<&serde_yaml::Value> = all.iter().flat_map(|(_, _, d)| d).collect();
    let role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
    let rules = role["rules"].as_sequence().unwrap();
    let verbs_on = |resource: &str| -> Vec<String> {
        rules
            .iter()
            .filter(|r| {
                r["resources"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|x| x == resource)
            })
            .flat_map(|r| r["verbs"].as_sequence().unwrap().clone())
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(verbs_on("pods"), ["get", "list", "watch"]);
    assert_eq!(verbs_on("nodes"), ["get", "list", "watch"]);
    assert_eq!(
        verbs_on("nodes/metrics"),
        ["get"],
        "the kubelet's metrics, read only"
    );
    assert_eq!(
        verbs_on("events"),
        ["list", "watch"],
        "the cluster's events, for the leader"
    );
    assert_eq!(verbs_on("services"), ["get", "list", "watch"]);
    assert_eq!(verbs_on("servicemonitors"), ["get", "list", "watch"]);
    assert_eq!(verbs_on("podmonitors"), ["get", "list", "watch"]);
    assert_eq!(
        verbs_on("endpointslices"),
        ["list", "watch"],
        "the leader's non-pod targets"
    );
    assert_eq!(
        rules.len(),
        7,
        "pods, nodes, nodes/metrics, events, services, monitors, endpointslices: nothing else"
    );
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRoleBinding")
        .unwrap();
    assert_eq!(binding["roleRef"]["name"], "ferro");
    assert_eq!(binding["subjects"][0]["name"], "ferro");
    // The leader Lease: a namespaced Role, leases only, no delete or list.
    let lease_role = docs
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == "ferro-leader")
        .expect("a Role for the leader Lease");
    assert_eq!(lease_role["metadata"]["namespace"], "ferro");
    let lease_rules = lease_role["rules"].as_sequence().unwrap();
    assert_eq!(lease_rules.len(), 3);
    assert_eq!(lease_rules[0]["resources"][0], "leases");
    assert_eq!(
        lease_rules[0]["verbs"],
        serde_yaml::to_value(["get", "create", "update"]).unwrap()
    );
    // The events' state ConfigMap: read and written by name only.
    assert_eq!(lease_rules[2]["resources"][0], "configmaps");
    assert_eq!(lease_rules[2]["resourceNames"][0], "ferro-events-cluster");
    assert_eq!(
        lease_rules[2]["verbs"],
        serde_yaml::to_value(["get", "update"]).unwrap()
    );
    assert!(docs.iter().any(|d| d["kind"] == "RoleBinding"
        && d["roleRef"]["name"] == "ferro-leader"
        && d["subjects"][0]["name"] == "ferro"));

    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "ferro");
    let container = &pod["containers"][0];
    let env = container["env"].as_sequence().unwrap();
    assert!(
        env.iter().any(|e| e["name"] == "NODE_NAME"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"),
        "NODE_NAME from the downward API"
    );
    for (name, field) in [("NODE_IP", "status.hostIP"), ("POD_NAME", "metadata.name")] {
        assert!(
            env.iter()
                .any(|e| e["name"] == name && e["valueFrom"]["fieldRef"]["fieldPath"] == field),
            "{name} from the downward API"
        );
    }
    for what in ["requests", "limits"] {
        assert!(
            container["resources"][what]["memory"].is_string(),
            "memory {what}"
        );
    }
    let host_paths: Vec<&str> = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str())
        .collect();
    assert!(host_paths.contains(&"/var/log/pods"), "{host_paths:?}");
    assert!(
        host_paths.contains(&"/var/lib/ferro"),
        "positions and queues on the host"
    );
    assert!(host_paths.contains(&"/"), "the host's / for host_metrics");
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    for read_only in ["/var/log/pods", "/host"] {
        assert!(
            mounts
                .iter()
                .any(|m| m["mountPath"] == read_only && m["readOnly"] == true),
            "{read_only} mounted read-only"
        );
    }

    let sidecar = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &sidecar["spec"]["template"]["spec"];
    assert_eq!(
        pod["automountServiceAccountToken"], false,
        "a sidecar needs no API access"
    );
    let ferro_container = pod["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ferro")
        .unwrap();
    let env: Vec<&str> = ferro_container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for var in ["POD_NAME", "POD_NAMESPACE", "POD_UID", "NODE_NAME"] {
        assert!(env.contains(&var), "{var} in {env:?}");
    }
}

/// `kubectl apply --dry-run=client` on `deploy/kubernetes/`, through
/// `scripts/kubectl-dry-run` (a local discovery stub stands in for the API
/// server kubectl asks which resource each kind is). Runs where kubectl is
/// installed, as it is on the machines ferro is developed on; elsewhere the
/// structural test above is what checks the manifests.
#[test]
fn kubectl_takes_the_manifests_in_a_client_dry_run() {
    let runs = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    // kubectl, and python3 for the discovery stub. kubectl is in none of
    // the package registries scripts/test installs from, so it is not
    // required even under FERRO_TESTS_REQUIRE_ALL: the structural test
    // above checks the manifests wherever this one cannot run.
    if !runs("kubectl", &["version", "--client"]) || !runs("python3", &["--version"]) {
        // Straight to stderr, past the test harness's capture.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: kubectl_takes_the_manifests_in_a_client_dry_run needs kubectl and python3, which are not installed; the structural test checks the manifests"
        );
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(root.join("scripts/kubectl-dry-run"))
        .output()
        .expect("scripts/kubectl-dry-run runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for object in [
        "clusterrole.rbac.authorization.k8s.io/ferro",
        "configmap/ferro",
        "daemonset.apps/ferro",
        "role.rbac.authorization.k8s.io/ferro-leader",
        "rolebinding.rbac.authorization.k8s.io/ferro-leader",
        "deployment.apps/shop-web",
    ] {
        assert!(
            stdout.contains(&format!("{object} created (dry run)")),
            "{object} in {stdout}"
        );
    }
}

#[test]
fn a_token_file_is_looked_for_where_ferro_runs_not_where_it_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ferro.toml");
    let missing = dir.path().join("serviceaccount/token");
    std::fs::write(
        &config,
        format!(
            r#"
            data_dir = "{data}"
            [telemetry]
            listen = "127.0.0.1:0"
            [[receivers.prometheus.kubelet.scrape_configs]]
            job_name = "kubelet"
            bearer_token_file = "{missing}"
            static_configs = [{{ targets = ["127.0.0.1:1"] }}]
            [exporters.debug.out]
            [pipelines.metrics]
            receivers = ["prometheus.kubelet"]
            exporters = ["debug.out"]
            "#,
            data = dir.path().display(),
            missing = missing.display(),
        ),
    )
    .unwrap();
    let validated = ferro()
        .arg("validate")
        .arg("-c")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        validated.status.success(),
        "{}",
        String::from_utf8_lossy(&validated.stderr)
    );
    // Running it where the file is missing fails at once, naming the file.
    let run = ferro()
        .args(["run", "--log-format", "json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let logs = String::from_utf8_lossy(&run.stderr);
    assert!(
        logs.contains("bearer_token_file") && logs.contains("serviceaccount/token"),
        "{logs}"
    );
}
