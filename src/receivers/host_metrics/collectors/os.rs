//! `node_os_info` and `node_os_version` from the host's os-release.

use std::io;

use super::super::config::HostMetricsConfig;
use super::super::page::Page;
use super::Files;
use crate::signal::metrics::MetricType;

/// os-release's keys behind `node_os_info`'s labels, as node_exporter has them.
const INFO: [(&str, &str); 12] = [
    ("build_id", "BUILD_ID"),
    ("id", "ID"),
    ("id_like", "ID_LIKE"),
    ("image_id", "IMAGE_ID"),
    ("image_version", "IMAGE_VERSION"),
    ("name", "NAME"),
    ("pretty_name", "PRETTY_NAME"),
    ("variant", "VARIANT"),
    ("variant_id", "VARIANT_ID"),
    ("version", "VERSION"),
    ("version_codename", "VERSION_CODENAME"),
    ("version_id", "VERSION_ID"),
];

pub fn collect(
    config: &HostMetricsConfig,
    page: &mut Page<'_>,
    files: &mut Files,
) -> io::Result<()> {
    let text = match files.read(&config.root_path.join("etc/os-release")) {
        Ok(text) => text.to_string(),
        Err(_) => files
            .read(&config.root_path.join("usr/lib/os-release"))?
            .to_string(),
    };
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').trim_matches('\''))
            .unwrap_or("")
    };
    page.family(
        "node_os_info",
        MetricType::Gauge,
        "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
    );
    let info: Vec<(&str, &str)> = INFO
        .iter()
        .map(|(label, key)| (*label, value(key)))
        .collect();
    page.sample("node_os_info", &info, 1.0);
    // The major.minor of VERSION_ID, as a number.
    let version_id = value("VERSION_ID");
    let mut parts = version_id.split('.');
    let major = parts.next().unwrap_or("");
    let number = match parts.next() {
        Some(minor) => format!("{major}.{minor}"),
        None => major.to_string(),
    };
    if let Ok(version) = number.parse::<f64>() {
        page.family(
            "node_os_version",
            MetricType::Gauge,
            "Metric containing the major.minor part of the OS version.",
        );
        page.sample(
            "node_os_version",
            &[
                ("id", value("ID")),
                ("id_like", value("ID_LIKE")),
                ("name", value("NAME")),
            ],
            version,
        );
    }
    Ok(())
}
