//! Every key a component accepts is on its page in `docs/`, and every
//! top-level key on `docs/configuration.md`: a key cannot be added without
//! being documented. The keys come from the components' own config types
//! (see `ferro::config::keys`); a key counts as documented when its name
//! appears on the page in backticks or as a TOML key (`name =`).

use std::collections::BTreeSet;
use std::path::Path;

use ferro::exporters::ExporterConfig;
use ferro::processors::ProcessorConfig;
use ferro::receivers::ReceiverConfig;

/// A kind's directory under `docs/`, and its types with their keys.
type Kind = (&'static str, &'static [ferro::config::keys::TypeKeys]);

/// The keys of `keys` missing from the page at `page`.
fn undocumented(page: &str, keys: &BTreeSet<String>) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(page);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{page}: {e} (every component has a page in docs/)"));
    keys.iter()
        .filter(|key| {
            let name = key.rsplit('.').next().unwrap_or(key);
            let written = [
                format!("`{name}`"),
                format!("`{key}`"),
                format!("{name} ="),
                format!("`{name} ="),
                format!("[{key}]"),
                format!("[[{key}]]"),
                format!(".{name}`"),
                format!("{name}."),
            ];
            !written.iter().any(|w| text.contains(w.as_str()))
        })
        .cloned()
        .collect()
}

#[test]
fn every_component_key_is_on_its_page() {
    let mut missing = Vec::new();
    let kinds: [Kind; 3] = [
        ("receivers", ReceiverConfig::TYPES),
        ("processors", ProcessorConfig::TYPES),
        ("exporters", ExporterConfig::TYPES),
    ];
    let mut counted = 0;
    for (kind, types) in kinds {
        for (type_name, keys) in types {
            let keys = keys();
            assert!(!keys.is_empty(), "{kind}.{type_name} has no keys?");
            counted += keys.len();
            let page = format!("docs/{kind}/{type_name}.md");
            for key in undocumented(&page, &keys) {
                missing.push(format!("{page}: `{key}`"));
            }
        }
    }
    assert!(
        counted > 100,
        "only {counted} keys found: is the key lister broken?"
    );
    assert!(
        missing.is_empty(),
        "keys the components accept that their page does not mention:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_top_level_key_is_on_the_configuration_page() {
    let keys = ferro::plan::top_level_keys();
    for expected in [
        "data_dir",
        "memory_limit",
        "telemetry.listen",
        "pipelines.*.redact",
    ] {
        assert!(keys.contains(expected), "{expected} not among {keys:?}");
    }
    let missing = undocumented("docs/configuration.md", &keys);
    assert!(
        missing.is_empty(),
        "top-level keys docs/configuration.md does not mention: {missing:?}"
    );
}
