//! `/proc/meminfo` (`node_memory_*`) and `/proc/vmstat` (`node_vmstat_*`).

use std::io;

use super::super::config::HostMetricsConfig;
use super::super::page::Page;
use super::{Files, malformed};
use crate::signal::metrics::MetricType;

/// `node_memory_<Field>_bytes` for each `Field: N kB` line (the value in
/// bytes), `node_memory_<Field>` for a count (`HugePages_Total: 0`).
/// Parentheses go as node_exporter has them: `Active(anon)` is `Active_anon`.
pub fn meminfo(
    config: &HostMetricsConfig,
    page: &mut Page<'_>,
    files: &mut Files,
) -> io::Result<()> {
    let text = files.read(&config.proc("meminfo"))?;
    let mut name = String::with_capacity(64);
    let mut help = String::with_capacity(96);
    for line in text.lines() {
        let Some((field, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_ascii_whitespace();
        let value: f64 = parts
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| malformed("/proc/meminfo line"))?;
        let kb = parts.next() == Some("kB");
        name.clear();
        name.push_str("node_memory_");
        for c in field.chars() {
            match c {
                '(' => name.push('_'),
                ')' => {}
                c => name.push(c),
            }
        }
        if kb {
            name.push_str("_bytes");
        }
        help.clear();
        help.push_str("Memory information field ");
        help.push_str(&name["node_memory_".len()..]);
        help.push('.');
        page.family(&name, MetricType::Gauge, &help);
        page.sample(&name, &[], if kb { value * 1024.0 } else { value });
    }
    Ok(())
}

/// The `/proc/vmstat` fields node_exporter exports by default: OOM kills,
/// paging (`pgpg*`), swapping (`pswp*`) and page faults (`pg*fault`).
pub fn vmstat(
    config: &HostMetricsConfig,
    page: &mut Page<'_>,
    files: &mut Files,
) -> io::Result<()> {
    let text = files.read(&config.proc("vmstat"))?;
    let mut name = String::with_capacity(48);
    let mut help = String::with_capacity(80);
    for line in text.lines() {
        let Some((field, value)) = line.split_once(' ') else {
            continue;
        };
        let wanted = field.starts_with("oom_kill")
            || field.starts_with("pgpg")
            || field.starts_with("pswp")
            || (field.starts_with("pg") && field.contains("fault"));
        if !wanted {
            continue;
        }
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| malformed("/proc/vmstat line"))?;
        name.clear();
        name.push_str("node_vmstat_");
        name.push_str(field);
        help.clear();
        help.push_str("/proc/vmstat information field ");
        help.push_str(field);
        help.push('.');
        page.family(&name, MetricType::Unknown, &help);
        page.sample(&name, &[], value);
    }
    Ok(())
}
