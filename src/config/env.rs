//! `${VAR}` and `${VAR:-default}` interpolation in config string values.
//!
//! Only names that start with a letter or `_` are variables, so a relabelling
//! replacement such as `${1}` passes through untouched; `$$` writes a literal `$`.
//! Interpolation runs on parsed string values, never on the raw text, so a value
//! that holds a quote or a newline cannot change the shape of the document.

/// The most bytes one value may hold once its variables are expanded: a
/// variable repeated many times must not grow a config without bound.
pub const MAX_EXPANDED: usize = 1 << 20;

/// Expands the variables in `text` with `lookup`, or says which one is
/// missing or that the value would pass [`MAX_EXPANDED`].
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    interpolate_within(text, lookup, MAX_EXPANDED)
}

/// [`interpolate`], the result held to `max` bytes.
pub fn interpolate_within(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
    max: usize,
) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let too_large = |name: &str| {
        format!(
            "expanding `${{{name}}}` makes this value larger than {} KiB, the most a value may hold",
            max / 1024
        )
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
            continue;
        }
        let Some(body) = rest.strip_prefix("${") else {
            out.push('$');
            rest = &rest[1..];
            continue;
        };
        let Some(end) = body.find('}') else {
            return Err(format!("`{text}` has an unclosed `${{`"));
        };
        let inner = &body[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        if !is_variable_name(name) {
            // `${1}` and friends belong to relabelling: keep them verbatim.
            out.push_str(&rest[..end + 3]);
            rest = &body[end + 1..];
            continue;
        }
        let value = match (lookup(name).filter(|v| !v.is_empty()), default) {
            (Some(value), _) => value,
            (None, Some(default)) => default.to_string(),
            (None, None) => {
                return Err(format!(
                    "environment variable `{name}` is not set (write `${{{name}:-default}}` to give a default)"
                ));
            }
        };
        if out.len() + value.len() > max {
            return Err(too_large(name));
        }
        out.push_str(&value);
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "NODE_NAME" => Some("node-1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_and_default() {
        assert_eq!(interpolate("${NODE_NAME}", env).unwrap(), "node-1");
        assert_eq!(interpolate("a-${NODE_NAME}-b", env).unwrap(), "a-node-1-b");
        assert_eq!(
            interpolate("${MISSING:-fallback}", env).unwrap(),
            "fallback"
        );
        assert_eq!(interpolate("${EMPTY:-fallback}", env).unwrap(), "fallback");
        assert_eq!(interpolate("${MISSING:-}", env).unwrap(), "");
    }

    #[test]
    fn leaves_relabel_groups_and_escapes() {
        assert_eq!(interpolate("${1}:${2}", env).unwrap(), "${1}:${2}");
        assert_eq!(interpolate("$1 costs $$5", env).unwrap(), "$1 costs $5");
        assert_eq!(interpolate("$${NODE_NAME}", env).unwrap(), "${NODE_NAME}");
    }

    #[test]
    fn an_expansion_past_the_cap_is_an_error() {
        let big = "z".repeat(100 * 1024);
        let lookup = |name: &str| (name == "Z").then(|| big.clone());
        let text = "${Z}".repeat(200_000);
        let err = interpolate(&text, lookup).unwrap_err();
        assert!(
            err.contains("`${Z}` makes this value larger than 1024 KiB"),
            "{err}"
        );
        assert_eq!(interpolate("${Z}${Z}", lookup).unwrap().len(), 200 * 1024);
        assert!(interpolate_within("${Z}", lookup, 1000).is_err());
    }

    #[test]
    fn missing_variable_is_an_error() {
        let err = interpolate("${MISSING}", env).unwrap_err();
        assert!(err.contains("`MISSING` is not set"), "{err}");
        assert!(
            interpolate("${NODE_NAME", env)
                .unwrap_err()
                .contains("unclosed")
        );
    }
}
