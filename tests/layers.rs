//! The module graph points one way (see `src/lib.rs`): a module imports only
//! from layers below its own, and a component never reaches into another
//! component. This test reads the sources and fails on an import that goes
//! the wrong way, naming the file and the import.
//!
//! Tests are exempt (`tests.rs`, files under a `tests/` folder, inline
//! `mod tests` blocks): a unit test may load a whole config.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and its layer, lowest first. A module may
/// import from lower layers only; modules of one layer do not import each
/// other.
const LAYERS: &[(&str, u32)] = &[
    ("config", 0),
    ("wire", 0),
    ("otlp", 1),
    ("signal", 2),
    ("pprof", 3),
    ("prom", 3),
    ("delivery", 3),
    ("telemetry", 4),
    ("net", 5),
    ("k8s", 5),
    ("scrape", 6),
    ("receivers", 7),
    ("processors", 7),
    ("exporters", 7),
    ("plan", 8),
    ("topology", 9),
    ("app", 10),
];

/// The kinds of component: each folder under one of these is a component.
const KINDS: &[&str] = &["receivers", "processors", "exporters"];

/// Folders under a kind that are not components but what its components
/// share.
const SHARED: &[&str] = &["exporters/http"];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its inline test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a` or `crate::a::b` the code names, as `(a, b)`: in paths
/// and in `use crate::{a::…, b, …}` groups.
fn references(code: &str) -> BTreeSet<(String, Option<String>)> {
    let ident = |s: &str| -> Option<String> {
        let name: String = s
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        (!name.is_empty()).then_some(name)
    };
    let mut out = BTreeSet::new();
    let mut push_path = |path: &str| {
        let mut parts = path.split("::").map(str::trim);
        if let Some(first) = parts.next().and_then(ident) {
            let second = parts.next().and_then(ident);
            out.insert((first, second));
        }
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // A `use crate::{…}` group: split its top-level items.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        push_path(&item);
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            push_path(&item);
        } else {
            push_path(rest);
        }
    }
    out
}

#[test]
fn imports_point_down_the_layers_and_components_stay_apart() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    let mut checked = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let parts: Vec<&str> = relative.iter().map(|p| p.to_str().unwrap()).collect();
        let is_test = parts.last() == Some(&"tests.rs") || parts.contains(&"tests");
        if parts.len() < 2 || parts[0] == "bin" || is_test {
            continue;
        }
        let top = parts[0];
        let own = layer(top).unwrap_or_else(|| {
            panic!("src/{top} has no layer: add it to LAYERS (and to the layout in src/lib.rs)")
        });
        // A component: a folder under a kind (`receivers/otlp/…`).
        let component = (KINDS.contains(&top) && parts.len() > 2).then(|| parts[1]);
        let text = std::fs::read_to_string(file).unwrap();
        checked += 1;
        for (module, inner) in references(&code(&text)) {
            let shown = match &inner {
                Some(inner) => format!("crate::{module}::{inner}"),
                None => format!("crate::{module}"),
            };
            if module == top {
                let into_other_component = component.is_some()
                    && inner.as_deref().is_some_and(|i| {
                        Some(i) != component
                            && src.join(top).join(i).is_dir()
                            && !SHARED.contains(&format!("{top}/{i}").as_str())
                    });
                if into_other_component {
                    wrong.push(format!(
                        "{}: the component {top}/{} imports another component: {shown}",
                        relative.display(),
                        component.unwrap()
                    ));
                }
                continue;
            }
            let Some(theirs) = layer(&module) else {
                continue;
            };
            if theirs >= own {
                wrong.push(format!(
                    "{}: {top} (layer {own}) imports {shown} (layer {theirs})",
                    relative.display()
                ));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} source files found under {src:?}"
    );
    assert!(
        wrong.is_empty(),
        "imports that go the wrong way:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_grouped_and_nested_imports() {
    let found = references(
        "use crate::{config::ComponentId, signal::{Logs, Traces}, wire};\nlet x = crate::topology::Topology::start();",
    );
    let has = |a: &str, b: Option<&str>| found.contains(&(a.to_string(), b.map(str::to_string)));
    assert!(has("config", None));
    assert!(has("signal", None));
    assert!(has("wire", None));
    assert!(has("topology", None));
    assert_eq!(
        code("use crate::app; // crate::topology\n"),
        "use crate::app; "
    );
}
