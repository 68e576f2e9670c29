//! The shipped config examples validate, and `ferro validate` reports every
//! mistake of a broken file with its path and line.

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

#[test]
fn the_kubernetes_configmap_holds_a_valid_config() {
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/ferro.yaml"),
    )
    .unwrap();
    let mut lines = manifest
        .lines()
        .skip_while(|l| l.trim() != "ferro.toml: |")
        .skip(1);
    let mut toml = String::new();
    for line in lines.by_ref() {
        if !line.is_empty() && !line.starts_with("    ") {
            break;
        }
        toml.push_str(line.strip_prefix("    ").unwrap_or(""));
        toml.push('\n');
    }
    assert!(
        toml.contains("[pipelines.traces]"),
        "the ConfigMap's ferro.toml was found"
    );
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
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
