//! Block devices: `/proc/diskstats` (`node_disk_*`), with node_exporter's
//! default exclusion of partitions and pseudo-devices, and `node_disk_info`
//! from udev's database where it is.

use std::io;
use std::sync::LazyLock;

use super::super::config::HostMetricsConfig;
use super::super::page::Page;
use super::{Files, malformed};
use crate::signal::metrics::MetricType;

/// node_exporter's default `--collector.diskstats.device-exclude`:
/// RAM disks, loop devices, floppies and partitions.
static EXCLUDED: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$").expect("a valid pattern")
});

/// The counters of a `/proc/diskstats` line, in column order after the
/// device name: name, type, help, and the factor to node_exporter's unit
/// (sectors of 512 bytes to bytes, milliseconds to seconds).
const COLUMNS: [(&str, MetricType, &str, f64); 17] = [
    (
        "node_disk_reads_completed_total",
        MetricType::Counter,
        "The total number of reads completed successfully.",
        1.0,
    ),
    (
        "node_disk_reads_merged_total",
        MetricType::Counter,
        "The total number of reads merged.",
        1.0,
    ),
    (
        "node_disk_read_bytes_total",
        MetricType::Counter,
        "The total number of bytes read successfully.",
        512.0,
    ),
    (
        "node_disk_read_time_seconds_total",
        MetricType::Counter,
        "The total number of seconds spent by all reads.",
        0.001,
    ),
    (
        "node_disk_writes_completed_total",
        MetricType::Counter,
        "The total number of writes completed successfully.",
        1.0,
    ),
    (
        "node_disk_writes_merged_total",
        MetricType::Counter,
        "The number of writes merged.",
        1.0,
    ),
    (
        "node_disk_written_bytes_total",
        MetricType::Counter,
        "The total number of bytes written successfully.",
        512.0,
    ),
    (
        "node_disk_write_time_seconds_total",
        MetricType::Counter,
        "This is the total number of seconds spent by all writes.",
        0.001,
    ),
    (
        "node_disk_io_now",
        MetricType::Gauge,
        "The number of I/Os currently in progress.",
        1.0,
    ),
    (
        "node_disk_io_time_seconds_total",
        MetricType::Counter,
        "Total seconds spent doing I/Os.",
        0.001,
    ),
    (
        "node_disk_io_time_weighted_seconds_total",
        MetricType::Counter,
        "The weighted # of seconds spent doing I/Os.",
        0.001,
    ),
    (
        "node_disk_discards_completed_total",
        MetricType::Counter,
        "The total number of discards completed successfully.",
        1.0,
    ),
    (
        "node_disk_discards_merged_total",
        MetricType::Counter,
        "The total number of discards merged.",
        1.0,
    ),
    (
        "node_disk_discarded_sectors_total",
        MetricType::Counter,
        "The total number of sectors discarded successfully.",
        1.0,
    ),
    (
        "node_disk_discard_time_seconds_total",
        MetricType::Counter,
        "This is the total number of seconds spent by all discards.",
        0.001,
    ),
    (
        "node_disk_flush_requests_total",
        MetricType::Counter,
        "The total number of flush requests completed successfully",
        1.0,
    ),
    (
        "node_disk_flush_requests_time_seconds_total",
        MetricType::Counter,
        "This is the total number of seconds spent by all flush requests.",
        0.001,
    ),
];

/// udev's properties behind `node_disk_info`'s labels.
const UDEV: [(&str, &str); 5] = [
    ("path", "ID_PATH="),
    ("wwn", "ID_WWN="),
    ("model", "ID_MODEL="),
    ("serial", "ID_SERIAL_SHORT="),
    ("revision", "ID_REVISION="),
];

pub fn diskstats(
    config: &HostMetricsConfig,
    page: &mut Page<'_>,
    files: &mut Files,
) -> io::Result<()> {
    let text = files.read(&config.proc("diskstats"))?.to_string();
    for (name, kind, help, _) in COLUMNS {
        page.family(name, kind, help);
    }
    page.family(
        "node_disk_info",
        MetricType::Gauge,
        "Info of /sys/block/<block_device>.",
    );
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(major), Some(minor), Some(device)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(malformed("/proc/diskstats line"));
        };
        if EXCLUDED.is_match(device) {
            continue;
        }
        let labels = [("device", device)];
        for ((name, _, _, factor), value) in COLUMNS.iter().zip(fields) {
            let value: f64 = value
                .parse()
                .map_err(|_| malformed("/proc/diskstats value"))?;
            page.sample(name, &labels, value * factor);
        }
        let udev = udev_properties(config, files, major, minor);
        let find = |key: &str| {
            udev.lines()
                .find_map(|l| l.strip_prefix("E:").and_then(|l| l.strip_prefix(key)))
                .unwrap_or("")
        };
        let mut info = vec![("device", device), ("major", major), ("minor", minor)];
        info.extend(UDEV.iter().map(|(label, key)| (*label, find(key))));
        page.sample("node_disk_info", &info, 1.0);
    }
    Ok(())
}

/// udev's database entry of block device `major:minor` (`/run/udev/data/b8:0`
/// under the root path), or nothing when there is none.
fn udev_properties(
    config: &HostMetricsConfig,
    files: &mut Files,
    major: &str,
    minor: &str,
) -> String {
    let path = config
        .root_path
        .join(format!("run/udev/data/b{major}:{minor}"));
    files.read(&path).map(str::to_string).unwrap_or_default()
}
