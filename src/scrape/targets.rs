//! Scrape targets from discovered groups: each address labelled as
//! Prometheus does and put through `relabel_configs`; and the groups read
//! from `file_sd_configs` files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use super::StaticConfig;
use crate::prom::relabel;
use crate::signal::{Labels, LabelsBuilder};

/// A target to scrape: where, and the labels its series get.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub url: String,
    /// Labels after relabelling, without the `__` ones: `job`, `instance`, …
    pub labels: Labels,
}

/// What turns discovered addresses into targets: the parts of a scrape
/// config that Prometheus exposes to relabelling as `__*__` labels.
pub struct TargetRules<'a> {
    pub job_name: &'a str,
    pub scheme: &'a str,
    /// `None` for receivers that add their own paths (pprof): the target's
    /// URL is then `scheme://address`, with no path or query.
    pub metrics_path: Option<&'a str>,
    pub scrape_interval: std::time::Duration,
    pub scrape_timeout: std::time::Duration,
    pub params: &'a BTreeMap<String, Vec<String>>,
    pub relabel_configs: &'a [relabel::RelabelConfig],
    /// `__`-labels the receiver reads itself, kept in the target's labels
    /// after relabelling (pprof's `__profile_type__`, `__profile_path__`).
    pub keep: &'a [&'a str],
}

/// Turns discovered groups into targets, as Prometheus does: each address
/// gets `__address__`, `__scheme__`, `__metrics_path__`, `__param_*`,
/// `__scrape_interval__`, `__scrape_timeout__` and `job`, then the group's
/// labels, then `relabel_configs`; a target whose `__address__` is gone or
/// that a rule dropped is not scraped.
pub fn resolve(config: &TargetRules<'_>, groups: &[StaticConfig]) -> Vec<Target> {
    let mut out = Vec::new();
    let mut builder = LabelsBuilder::new();
    for group in groups {
        for address in &group.targets {
            builder.clear();
            builder.set("job", config.job_name);
            builder.set("__address__", address);
            builder.set("__scheme__", config.scheme);
            if let Some(path) = config.metrics_path {
                builder.set("__metrics_path__", path);
            }
            builder.set(
                "__scrape_interval__",
                &format_duration(config.scrape_interval),
            );
            builder.set(
                "__scrape_timeout__",
                &format_duration(config.scrape_timeout),
            );
            for (name, values) in config.params {
                if let Some(first) = values.first() {
                    builder.set(&format!("__param_{name}"), first);
                }
            }
            for (name, value) in &group.labels {
                builder.set(name, value);
            }
            if !relabel::process(&mut builder, config.relabel_configs) {
                continue;
            }
            let Some(address) = builder.get("__address__").map(str::to_string) else {
                continue;
            };
            if builder.get("instance").is_none() {
                builder.set("instance", &address);
            }
            let scheme = builder.get("__scheme__").unwrap_or("http").to_string();
            let path = builder
                .get("__metrics_path__")
                .unwrap_or("/metrics")
                .to_string();
            let mut query: Vec<String> = Vec::new();
            let mut params: BTreeMap<String, Vec<String>> = config.params.clone();
            for (name, value) in builder.iter() {
                if let Some(param) = name.strip_prefix("__param_") {
                    let values = params.entry(param.to_string()).or_default();
                    if values.is_empty() {
                        values.push(value.to_string());
                    } else {
                        values[0] = value.to_string();
                    }
                }
            }
            for (name, values) in &params {
                for value in values {
                    query.push(format!("{}={}", encode(name), encode(value)));
                }
            }
            let url = if config.metrics_path.is_none() {
                format!("{scheme}://{address}")
            } else if query.is_empty() {
                format!("{scheme}://{address}{path}")
            } else {
                format!("{scheme}://{address}{path}?{}", query.join("&"))
            };
            builder.retain(|name, _| !name.starts_with("__") || config.keep.contains(&name));
            out.push(Target {
                url,
                labels: builder.labels(),
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Prometheus' duration notation for `__scrape_interval__` (`15s`, `1m`, `1m30s`).
fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let (h, m, s, rest) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    if rest > 0 {
        out.push_str(&format!("{rest}ms"));
    }
    out
}

/// Percent-encoding for query parameters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Reads the target groups of `file_sd` files (JSON, or YAML by extension)
/// and remembers when each was last changed, to re-read only on change.
#[derive(Default)]
pub struct FileSd {
    seen: BTreeMap<PathBuf, SystemTime>,
    groups: BTreeMap<PathBuf, Vec<StaticConfig>>,
}

impl FileSd {
    /// Re-reads changed files among `patterns`; returns whether anything changed.
    /// A file that cannot be read or parsed keeps its previous groups (and is
    /// logged), so a half-written file never drops every target.
    pub fn refresh(&mut self, patterns: &[String]) -> bool {
        let mut paths = Vec::new();
        for pattern in patterns {
            match glob::glob(pattern) {
                Ok(found) => paths.extend(found.filter_map(Result::ok)),
                Err(e) => tracing::warn!(pattern, error = %e, "file_sd: not a valid pattern"),
            }
        }
        let mut changed = false;
        let before: Vec<PathBuf> = self.groups.keys().cloned().collect();
        for gone in before.iter().filter(|p| !paths.contains(p)) {
            self.groups.remove(gone);
            self.seen.remove(gone);
            changed = true;
        }
        for path in paths {
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            if modified.is_some() && self.seen.get(&path) == modified.as_ref() {
                continue;
            }
            match read_groups(&path) {
                Ok(groups) => {
                    self.groups.insert(path.clone(), groups);
                    changed = true;
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "file_sd: keeping the previous targets")
                }
            }
            if let Some(modified) = modified {
                self.seen.insert(path, modified);
            }
        }
        changed
    }

    pub fn groups(&self) -> impl Iterator<Item = &StaticConfig> {
        self.groups.values().flatten()
    }
}

fn read_groups(path: &std::path::Path) -> Result<Vec<StaticConfig>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let yaml = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
    if yaml {
        serde_yaml::from_str(&text).map_err(|e| format!("not a YAML list of target groups: {e}"))
    } else {
        serde_json::from_str(&text).map_err(|e| format!("not a JSON list of target groups: {e}"))
    }
}

#[cfg(test)]
mod tests;
