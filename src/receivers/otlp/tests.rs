use super::logs::{DEFAULT_RESOURCE_LABELS, LogsConversion};
use crate::config::ComponentId;
use crate::plan::Config;
use crate::receivers::ReceiverConfig;

const PIPELINE: &str = r#"
[exporters.debug.d]
[pipelines.logs]
receivers = ["otlp.in"]
exporters = ["debug.d"]
"#;

fn logs_conversion(receiver: &str) -> LogsConversion {
    let config = Config::from_str(&format!("{receiver}{PIPELINE}"), "test.toml")
        .unwrap_or_else(|e| panic!("{e}"));
    match &config.receivers[&ComponentId::new("otlp", "in")] {
        ReceiverConfig::Otlp(otlp) => otlp.logs.clone(),
        other => panic!("not an OTLP receiver: {other:?}"),
    }
}

fn config_errors(receiver: &str) -> Vec<String> {
    Config::from_str(&format!("{receiver}{PIPELINE}"), "test.toml")
        .expect_err("the config is invalid")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn logs_resource_labels_default_to_lokis_list() {
    let conversion = logs_conversion("[receivers.otlp.in]\ngrpc = \"127.0.0.1:0\"\n");
    assert_eq!(conversion, LogsConversion::default());
    assert_eq!(conversion.resource_labels(), DEFAULT_RESOURCE_LABELS);
}

#[test]
fn logs_resource_labels_are_configurable() {
    let conversion = logs_conversion(
        r#"
[receivers.otlp.in]
http = "127.0.0.1:0"
[receivers.otlp.in.logs]
resource_labels = ["service.name", "k8s.namespace.name", "team"]
"#,
    );
    assert_eq!(
        conversion.resource_labels(),
        ["service.name", "k8s.namespace.name", "team"]
    );
}

#[test]
fn bad_logs_resource_labels_are_reported_with_their_place() {
    let errors = config_errors(
        r#"
[receivers.otlp.in]
grpc = "127.0.0.1:0"
[receivers.otlp.in.logs]
resource_labels = [
  "service.name",
  "..",
  "service.name",
]
colour = "blue"
"#,
    );
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has(r#"line 7: receivers.otlp.in.logs.resource_labels.1: ".." has no valid label name"#),
        "{errors:#?}"
    );
    assert!(
        has(r#"line 8: receivers.otlp.in.logs.resource_labels.2: "service.name" is listed twice"#),
        "{errors:#?}"
    );
    assert!(
        has("receivers.otlp.in.logs.colour: unknown field"),
        "{errors:#?}"
    );

    let errors = config_errors(
        "[receivers.otlp.in]\ngrpc = \"127.0.0.1:0\"\nlogs = { resource_labels = [] }\n",
    );
    assert!(
        errors[0].contains("receivers.otlp.in.logs.resource_labels: list at least one"),
        "{errors:#?}"
    );
}
