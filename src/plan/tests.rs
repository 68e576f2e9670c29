use super::*;
use crate::config::{
    ByteSize, ComponentId, ConfigError, ConfigErrors, HumanDuration, MAX_CONFIG_BYTES,
};
use crate::exporters::ExporterConfig;
use crate::processors::ProcessorConfig;

fn env(name: &str) -> Option<String> {
    match name {
        "TEMPO" => Some("http://tempo:4317".into()),
        _ => None,
    }
}

fn load(text: &str) -> Result<Config, ConfigErrors> {
    Config::from_str_with_env(text, "test.toml", &env)
}

fn errors(text: &str) -> Vec<ConfigError> {
    load(text).expect_err("the config is invalid").errors
}

#[test]
fn embedded_default_is_valid() {
    let config = Config::embedded().unwrap();
    assert_eq!(config.pipelines.len(), 2);
    assert_eq!(config.telemetry.listen.to_string(), "127.0.0.1:8888");
    // Sanitize first: the default redaction, then the batch stage.
    assert!(matches!(
        &config.pipelines[0].stages[0],
        Stage::Process(id, ProcessorConfig::Redact(_)) if id.to_string() == "redact.default"
    ));
    assert!(matches!(config.pipelines[0].stages[1], Stage::Batch(_)));
    assert!(config.pipelines.iter().all(|p| p.redacted));
}

#[test]
fn a_full_config_loads_typed() {
    let config = load(
        r#"
        memory_limit = "64MiB"
        shutdown_timeout = "3s"
        [receivers.otlp.default]
        grpc = "127.0.0.1:4317"
        [processors.batch.big]
        send_batch_size = 1000
        [exporters.otlp.tempo]
        endpoint = "${TEMPO}"
        protocol = "http"
        [exporters.debug.print]
        [pipelines.traces]
        receivers = ["otlp.default"]
        processors = ["batch.big"]
        exporters = ["otlp.tempo", "debug.print"]
        [pipelines."traces/copy"]
        receivers = ["otlp"]
        exporters = ["debug.print"]
        "#,
    )
    .unwrap();
    assert_eq!(config.memory_limit, ByteSize::mib(64));
    assert_eq!(config.shutdown_timeout, HumanDuration::from_secs(3));
    assert_eq!(config.pipelines.len(), 2);
    assert_eq!(config.pipelines[1].name, "traces/copy");
    assert_eq!(
        config.pipelines[1].receivers,
        vec![ComponentId::new("otlp", "default")]
    );
    let Some(ExporterConfig::Otlp(tempo)) =
        config.exporters.get(&ComponentId::new("otlp", "tempo"))
    else {
        panic!("otlp exporter");
    };
    assert_eq!(tempo.traces_url.to_string(), "http://tempo:4317/v1/traces");
    let Stage::Batch(batch) = &config.pipelines[0].stages[1] else {
        panic!("batch after the default redaction");
    };
    assert_eq!(batch.send_batch_size, 1000);
}

#[test]
fn every_pipeline_is_redacted_first_unless_it_says_redact_false() {
    let config = load(
        r#"
        [receivers.otlp.default]
        grpc = "127.0.0.1:4317"
        [processors.redact.strict]
        pii = ["email"]
        [processors.redact.default]
        deny_keys = ["x-internal-sig"]
        [exporters.debug.print]
        [pipelines.traces]
        receivers = ["otlp"]
        processors = ["batch"]
        exporters = ["debug.print"]
        [pipelines.logs]
        receivers = ["otlp"]
        processors = ["batch", "redact.strict"]
        exporters = ["debug.print"]
        [pipelines.metrics]
        receivers = ["otlp"]
        exporters = ["debug.print"]
        redact = false
        "#,
    )
    .unwrap();
    let stages = |name: &str| -> Vec<String> {
        let pipeline = config.pipelines.iter().find(|p| p.name == name).unwrap();
        pipeline
            .stages
            .iter()
            .map(|s| match s {
                Stage::Batch(_) => "batch".to_string(),
                Stage::Process(id, _) => id.to_string(),
            })
            .collect()
    };
    // The configured [processors.redact.default] is the default, placed first.
    assert_eq!(stages("traces"), ["redact.default", "batch"]);
    let Stage::Process(_, ProcessorConfig::Redact(default)) = &config
        .pipelines
        .iter()
        .find(|p| p.name == "traces")
        .unwrap()
        .stages[0]
    else {
        panic!("redaction first");
    };
    assert_eq!(default.deny_keys, ["xinternalsig"]);
    // A pipeline that names a redaction runs it where it says, and only it.
    assert_eq!(stages("logs"), ["batch", "redact.strict"]);
    assert!(stages("metrics").is_empty());
    let notes = config.redaction_notes();
    assert!(
        notes
            .iter()
            .any(|n| n == "pipeline logs: redacted by redact.strict")
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("pipeline metrics: redaction is OFF"))
    );

    let errors = errors(
        r#"
        [receivers.otlp.default]
        grpc = "127.0.0.1:4317"
        [processors.redact.mine]
        disable = ["jwt", "nonsense"]
        pii = ["shoe_size"]
        [[processors.redact.mine.rules]]
        name = "broken"
        value = "("
        [exporters.debug.print]
        [pipelines.logs]
        receivers = ["otlp"]
        processors = ["redact.mine"]
        exporters = ["debug.print"]
        redact = false
        "#,
    );
    let messages: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m
                .starts_with("processors.redact.mine.disable: `nonsense` is not a built-in rule")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m
            .starts_with("processors.redact.mine.pii: `shoe_size` is not a personal-data rule")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("processors.redact.mine.rules[0].value: invalid regex")),
        "{messages:?}"
    );
}

#[test]
fn every_mistake_is_reported_with_path_and_line() {
    let text = r#"memory_limt = "1MiB"
[receivers.otlp.default]
grpc = "127.0.0.1:4317"
bogus = 1

[exporters.otlp.tempo]
endpont = "http://tempo:4317"

[exporters.otlp.bad_url]
endpoint = "tempo:4317"
timeout = "5 parsecs"

[exporters.kafka.x]
brokers = []

[exporters.remote_write.mimir]
endpoint = "http://mimir/api/v1/push"

[pipelines.traces]
receivers = ["otlp.default", "otlp.missing"]
exporters = ["otlp.nope"]

[pipelines.logs]
receivers = ["otlp.default"]
exporters = ["otlp.bad_url", "remote_write.mimir"]
"#;
    let errors = errors(text);
    let rendered: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let has = |needle: &str| rendered.iter().any(|e| e.contains(needle));
    assert!(has("line 1: memory_limt: unknown field"), "{rendered:#?}");
    assert!(
        has("line 4: receivers.otlp.default.bogus: unknown field"),
        "{rendered:#?}"
    );
    assert!(has("exporters.otlp.tempo"), "{rendered:#?}");
    assert!(
        has("missing field `endpoint`") || has("endpont"),
        "{rendered:#?}"
    );
    assert!(
        has("line 11: exporters.otlp.bad_url.timeout"),
        "{rendered:#?}"
    );
    assert!(has("unknown exporters type `kafka`"), "{rendered:#?}");
    assert!(
        has("receiver `otlp.missing` is not defined"),
        "{rendered:#?}"
    );
    assert!(has("exporter `otlp.nope` is not defined"), "{rendered:#?}");
    assert!(
        has("exporter `remote_write.mimir` cannot carry logs"),
        "{rendered:#?}"
    );
    assert!(errors.len() >= 8, "{rendered:#?}");
}

#[test]
fn validation_errors_point_at_the_field() {
    let errors = errors(
        r#"
[receivers.otlp.default]
grpc = "127.0.0.1:4317"

[exporters.otlp.tempo]
endpoint = "ftp://tempo"
queue = { num_consumers = 0 }

[pipelines.traces]
receivers = ["otlp.default"]
exporters = ["otlp.tempo"]
"#,
    );
    let rendered: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        rendered
            .iter()
            .any(|e| e.starts_with("line 6: exporters.otlp.tempo.endpoint")),
        "{rendered:#?}"
    );
    assert!(
        rendered
            .iter()
            .any(|e| e.starts_with("line 7: exporters.otlp.tempo.queue.num_consumers")),
        "{rendered:#?}"
    );
}

#[test]
fn missing_variables_and_syntax_errors_are_reported() {
    let errors = errors(
        r#"
[receivers.otlp.default]
grpc = "${LISTEN}"
[exporters.debug.d]
[pipelines.traces]
receivers = ["otlp.default"]
exporters = ["debug.d"]
"#,
    );
    assert!(
        errors[0].to_string().contains(
            "line 3: receivers.otlp.default.grpc: environment variable `LISTEN` is not set"
        )
    );
    let errors = errors_of_syntax();
    assert_eq!(errors[0].line, Some(2));
    assert!(errors[0].message.starts_with("TOML syntax"));
}

fn errors_of_syntax() -> Vec<ConfigError> {
    errors("[receivers.otlp.default]\ngrpc = \n")
}

#[test]
fn pipeline_names_and_references_are_checked() {
    let base = r#"
[receivers.otlp.default]
grpc = "127.0.0.1:4317"
[exporters.debug.d]
"#;
    let e = errors(&format!(
        "{base}[pipelines.trace]\nreceivers = [\"otlp\"]\nexporters = [\"debug.d\"]\n"
    ));
    assert!(e[0].message.contains("`trace` is not a signal"), "{e:?}");
    let e = errors(&format!(
        "{base}[pipelines.traces]\nreceivers = [\"otlp\"]\nexporters = []\n"
    ));
    assert!(
        e.iter()
            .any(|e| e.message.contains("at least one exporter")),
        "{e:?}"
    );
    let e = errors(&format!(
        "{base}[pipelines.traces]\nreceivers = [\"otlp\"]\nprocessors = [\"batch\", \"batch\"]\nexporters = [\"debug.d\"]\n"
    ));
    assert!(
        e.iter()
            .any(|e| e.message.contains("at most one batch stage")),
        "{e:?}"
    );
    let e = errors(&format!(
        "{base}[pipelines.traces]\nreceivers = [\"otlp\"]\nprocessors = [\"redact.x\"]\nexporters = [\"debug.d\"]\n"
    ));
    assert!(
        e.iter()
            .any(|e| e.message.contains("processor `redact.x` is not defined")),
        "{e:?}"
    );
    let e = errors(base);
    assert!(
        e.iter()
            .any(|e| e.message.contains("not used by any pipeline")),
        "{e:?}"
    );
}

#[test]
fn duplicate_listen_ports_and_empty_receivers_are_refused() {
    let e = errors(
        r#"
[receivers.otlp.default]
grpc = "127.0.0.1:4317"
http = "127.0.0.1:4317"
[receivers.otlp.none]
[exporters.debug.d]
[pipelines.traces]
receivers = ["otlp.default", "otlp.none"]
exporters = ["debug.d"]
"#,
    );
    assert!(
        e.iter().any(|e| e.path == "receivers.otlp.default.http"),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|e| e.path == "receivers.otlp.none" && e.message.contains("set `grpc`")),
        "{e:?}"
    );
}

#[test]
fn many_errors_are_kept_up_to_a_cap_and_counted_beyond_it() {
    let mut text = String::new();
    for i in 0..40_000 {
        text.push_str(&format!("unknown_{i} = 1\n"));
    }
    let found = load(&text).expect_err("the config is invalid");
    assert_eq!(found.errors.len(), crate::config::document::MAX_ERRORS);
    assert_eq!(found.errors.len() + found.more, 40_000);
    // Each at its own line (from the index of line starts), in file order.
    for error in &found.errors {
        let n: usize = error
            .path
            .strip_prefix("unknown_")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(error.line, Some(n + 1), "{error}");
    }
    assert!(found.errors.windows(2).all(|w| w[0].line < w[1].line));
    let report = found.to_string();
    assert!(report.starts_with("test.toml: 40000 errors\n"), "{report}");
    assert_eq!(
        report.lines().count(),
        1 + crate::config::document::SHOWN_ERRORS + 1
    );
    assert!(report.ends_with("  … and 39900 more\n"), "{report}");
}

#[test]
fn expansion_is_capped_per_value_and_per_document() {
    let big = "z".repeat(100 * 1024);
    let lookup = |name: &str| (name == "Z").then(|| big.clone());
    // One value that would grow to 20 GB.
    let text = format!("data_dir = \"{}\"\n", "${Z}".repeat(200_000));
    let found = Config::from_str_with_env(&text, "test.toml", &lookup).unwrap_err();
    assert_eq!(found.errors.len(), 1);
    assert!(
        found.errors[0].message.contains("larger than 1024 KiB"),
        "{found}"
    );
    // Many values each under the cap, together past the document's.
    let mut text = String::from("[log]\n");
    for i in 0..40 {
        text.push_str(&format!("x{i} = \"{}\"\n", "${Z}".repeat(9)));
    }
    let found = Config::from_str_with_env(&text, "test.toml", &lookup).unwrap_err();
    assert!(
        found
            .errors
            .iter()
            .any(|e| e.message.contains("the most a value may hold")),
        "{found}"
    );
}

#[test]
fn a_file_larger_than_any_config_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.toml");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(MAX_CONFIG_BYTES + 1).unwrap();
    let found = Config::from_file(&path).unwrap_err();
    assert!(
        found.errors[0].message.contains("at most 16 MiB"),
        "{found}"
    );
}

#[test]
fn a_queue_is_a_type_name_or_a_table_whose_unknown_keys_are_reported() {
    let text = r#"
[exporters.loki.disk]
endpoint = "http://loki:3100/loki/api/v1/push"
queue = "disk"

[exporters.loki.typo]
endpoint = "http://loki:3100/loki/api/v1/push"
queue = { type = "disk", max_sise = "1GiB" }

[exporters.loki.bad]
endpoint = "http://loki:3100/loki/api/v1/push"
queue = { fsync = "sometimes" }

[pipelines.logs]
receivers = ["otlp.in"]
exporters = ["loki.disk", "loki.typo", "loki.bad"]

[receivers.otlp.in]
grpc = "127.0.0.1:4317"
"#;
    let rendered: Vec<String> = errors(text).iter().map(|e| e.to_string()).collect();
    let has = |needle: &str| rendered.iter().any(|e| e.contains(needle));
    assert!(
        has("exporters.loki.typo.queue.max_sise: unknown field"),
        "{rendered:#?}"
    );
    assert!(has("sometimes"), "{rendered:#?}");
    assert!(!has("loki.disk"), "{rendered:#?}");
}

#[test]
fn the_leader_section_is_checked_and_defaults_to_client_go() {
    let base = r#"
[kubernetes]
node_name = "node-a"
[kubernetes.leader]
LEADER
[receivers.otlp.in]
grpc = "127.0.0.1:4317"
[exporters.debug.out]
[pipelines.traces]
receivers = ["otlp.in"]
exporters = ["debug.out"]
"#;
    let config = load(&base.replace("LEADER", "")).unwrap_or_else(|e| panic!("{e}"));
    let leader = config.kubernetes.unwrap().leader.unwrap();
    assert_eq!(leader.lease_name, "ferro-leader");
    // The node's name and a suffix drawn once per process, by default.
    assert!(
        leader.identity.starts_with("node-a_"),
        "{}",
        leader.identity
    );
    assert_eq!(leader.identity.len(), "node-a_".len() + 8);
    let again = load(&base.replace("LEADER", "")).unwrap();
    assert_eq!(
        again.kubernetes.unwrap().leader.unwrap().identity,
        leader.identity
    );
    assert_eq!(leader.lease_namespace, None);
    assert_eq!(
        (
            leader.lease_duration,
            leader.renew_deadline,
            leader.retry_period
        ),
        (
            std::time::Duration::from_secs(15),
            std::time::Duration::from_secs(10),
            std::time::Duration::from_secs(2)
        )
    );
    let rendered: Vec<String> = errors(&base.replace(
        "LEADER",
        r#"lease_name = "Ferro_Leader"
lease_namespace = "a.b"
lease_duration = "1500ms"
renew_deadline = "20s"
retry_period = "50ms""#,
    ))
    .iter()
    .map(|e| e.to_string())
    .collect();
    for key in [
        "kubernetes.leader.lease_name",
        "kubernetes.leader.lease_namespace",
        "kubernetes.leader.lease_duration",
        "kubernetes.leader.renew_deadline",
        "kubernetes.leader.retry_period",
    ] {
        assert!(
            rendered.iter().any(|e| e.contains(key)),
            "no error for {key}: {rendered:#?}"
        );
    }
    // renew_deadline must leave room for more than one renewal.
    let rendered: Vec<String> =
        errors(&base.replace("LEADER", "renew_deadline = \"2s\"\nretry_period = \"2s\""))
            .iter()
            .map(|e| e.to_string())
            .collect();
    assert!(
        rendered
            .iter()
            .any(|e| e.contains("kubernetes.leader.retry_period")),
        "{rendered:#?}"
    );
}

#[test]
fn kubernetes_events_need_the_api_and_by_default_the_leader() {
    let pipeline = r#"
[exporters.loki.out]
endpoint = "http://loki:3100/loki/api/v1/push"
[pipelines.logs]
receivers = ["kubernetes_events.cluster"]
exporters = ["loki.out"]
"#;
    let rendered =
        |text: String| -> Vec<String> { errors(&text).iter().map(|e| e.to_string()).collect() };
    let no_api = rendered(format!("[receivers.kubernetes_events.cluster]\n{pipeline}"));
    assert!(
        no_api.iter().any(
            |e| e.contains("receivers.kubernetes_events.cluster") && e.contains("[kubernetes]")
        ),
        "{no_api:#?}"
    );
    let kubernetes = "[kubernetes]\nnode_name = \"node-a\"\n";
    let no_leader = rendered(format!(
        "{kubernetes}[receivers.kubernetes_events.cluster]\n{pipeline}"
    ));
    assert!(
        no_leader
            .iter()
            .any(|e| e.contains("leader_only") && e.contains("[kubernetes.leader]")),
        "{no_leader:#?}"
    );
    // One agent on its own, or with the leader: fine.
    load(&format!(
        "{kubernetes}[receivers.kubernetes_events.cluster]\nleader_only = false\n{pipeline}"
    ))
    .unwrap();
    load(&format!(
        "{kubernetes}[kubernetes.leader]\n[receivers.kubernetes_events.cluster]\n{pipeline}"
    ))
    .unwrap();
    // A receiver name that cannot name a ConfigMap asks for one.
    let bad_name = rendered(format!(
        "{kubernetes}[kubernetes.leader]\n[receivers.kubernetes_events.Cluster]\n{}",
        pipeline.replace("kubernetes_events.cluster", "kubernetes_events.Cluster")
    ));
    assert!(
        bad_name.iter().any(|e| e.contains("state_configmap")),
        "{bad_name:#?}"
    );
}
