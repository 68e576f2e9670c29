//! Reading the `[KIND.TYPE.NAME]` tables of a document, each through its
//! kind's registry, and the file a document comes from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use toml::de::DeValue;

use super::ComponentId;
use super::document::{ConfigErrors, Document, Value};

/// The largest config file ferro reads.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Reads the config file at `path`, refusing one larger than any config
/// could be before reading it: such a file must not make ferro spend its
/// memory and time on it.
pub fn read_file(path: &Path) -> Result<String, ConfigErrors> {
    let origin = path.display().to_string();
    let cannot = |message: String| ConfigErrors::whole_file(origin.clone(), message);
    let file = std::fs::File::open(path).map_err(|e| cannot(format!("cannot read: {e}")))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX_CONFIG_BYTES {
        return Err(cannot(format!(
            "the file is {} MiB; a config may be at most {} MiB",
            len >> 20,
            MAX_CONFIG_BYTES >> 20
        )));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_CONFIG_BYTES + 1),
        &mut text,
    )
    .map_err(|e| cannot(format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(cannot(format!(
            "the file is larger than {} MiB, the most a config may be",
            MAX_CONFIG_BYTES >> 20
        )));
    }
    Ok(text)
}

/// A kind's reader of one `[KIND.TYPE.NAME]` table: `None` for a type it
/// does not know, `Some(None)` for a table with errors (recorded in the
/// document).
pub type ParseFn<'a, T> = fn(&str, &mut Document<'a>, &str, Value<'a>) -> Option<Option<T>>;

/// Reads `[KIND.TYPE.NAME]` tables through the kind's `parse` function,
/// noting in `declared` every name the document declares, valid or not.
pub fn components<'a, T>(
    doc: &mut Document<'a>,
    kind: &str,
    value: Option<Value<'a>>,
    parse: ParseFn<'a, T>,
    declared: &mut BTreeSet<ComponentId>,
) -> BTreeMap<ComponentId, T> {
    let mut out = BTreeMap::new();
    let Some(value) = value else { return out };
    let span = value.span();
    let DeValue::Table(types) = value.into_inner() else {
        doc.push(
            kind.to_string(),
            Some(span),
            format!("must be a table such as [{kind}.TYPE.NAME]"),
        );
        return out;
    };
    for (type_key, named) in types {
        let type_name = type_key.get_ref().to_string();
        let type_span = type_key.span();
        let named_span = named.span();
        let DeValue::Table(named) = named.into_inner() else {
            doc.push(
                format!("{kind}.{type_name}"),
                Some(named_span),
                format!("must be a table of named components such as [{kind}.{type_name}.NAME]"),
            );
            continue;
        };
        for (name_key, body) in named {
            let name = name_key.get_ref().to_string();
            let path = format!("{kind}.{type_name}.{name}");
            declared.insert(ComponentId::new(&type_name, &name));
            if !matches!(body.get_ref(), DeValue::Table(_)) {
                doc.push(
                    path,
                    Some(name_key.span()),
                    format!("must be a table: [{kind}.{type_name}.{name}]"),
                );
                continue;
            }
            match parse(&type_name, doc, &path, body) {
                None => {
                    doc.push(
                        format!("{kind}.{type_name}"),
                        Some(type_span.clone()),
                        format!("unknown {kind} type `{type_name}`"),
                    );
                    break;
                }
                Some(Some(config)) => {
                    out.insert(ComponentId::new(&type_name, &name), config);
                }
                Some(None) => {}
            }
        }
    }
    out
}

/// `key` as a dotted path writes it: quoted unless it is a bare key.
pub fn quote_key(key: &str) -> String {
    if key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        format!("\"{key}\"")
    }
}
