//! Small files of `/proc` and `/sys`: the load average, file descriptors,
//! pressure stall information, and the clock.

use std::io;

use super::super::config::HostMetricsConfig;
use super::super::page::Page;
use super::{Files, malformed};
use crate::signal::metrics::MetricType;

/// `node_load1`, `node_load5`, `node_load15` from `/proc/loadavg`.
pub fn loadavg(
    config: &HostMetricsConfig,
    page: &mut Page<'_>,
    files: &mut Files,
) -> io::Result<()> {
    let text = files.read(&config.proc("loadavg"))?;
    let mut fields = text.split_ascii_whitespace();
    for (name, help) in [
        ("node_load1", "1m load average."),
        ("node_load5", "5m load average."),
        ("node_load15", "15m load average."),
    ] {
        let value: f64 = fields
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| malformed("/proc/loadavg"))?;
        page.family(name, MetricType::Gauge, help);
        page.sample(name, &[], value);
    }
    Ok(())
}

/// `node_filefd_allocated` and `node_filefd_maximum` from
/// `/proc/sys/fs/file-nr` (allocated, free, maximum).
pub fn filefd(
    config: &HostMetricsConfig,
    page: &mut Page<'_>,
    files: &mut Files,
) -> io::Result<()> {
    let text = files.read(&config.proc("sys/fs/file-nr"))?;
    let mut fields = text.split_ascii_whitespace().map(str::parse::<f64>);
    let (Some(Ok(allocated)), Some(Ok(_)), Some(Ok(maximum))) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed("/proc/sys/fs/file-nr"));
    };
    page.family(
        "node_filefd_allocated",
        MetricType::Gauge,
        "File descriptor statistics: allocated.",
    );
    page.sample("node_filefd_allocated", &[], allocated);
    page.family(
        "node_filefd_maximum",
        MetricType::Gauge,
        "File descriptor statistics: maximum.",
    );
    page.sample("node_filefd_maximum", &[], maximum);
    Ok(())
}

/// Pressure stall information, `/proc/pressure/{cpu,io,memory}`: the
/// `total` (µs) of the `some` line as `waiting`, of `full` as `stalled`
/// (not for cpu, as node_exporter).
pub fn pressure(
    config: &HostMetricsConfig,
    page: &mut Page<'_>,
    files: &mut Files,
) -> io::Result<()> {
    /// A resource, the help of its `waiting` series, and the name and help
    /// of its `stalled` series (none for cpu).
    struct Resource {
        name: &'static str,
        waiting: &'static str,
        stalled: Option<(&'static str, &'static str)>,
    }
    const RESOURCES: [Resource; 3] = [
        Resource {
            name: "cpu",
            waiting: "Total time in seconds that processes have waited for CPU time",
            stalled: None,
        },
        Resource {
            name: "io",
            waiting: "Total time in seconds that processes have waited due to IO congestion",
            stalled: Some((
                "node_pressure_io_stalled_seconds_total",
                "Total time in seconds no process could make progress due to IO congestion",
            )),
        },
        Resource {
            name: "memory",
            waiting: "Total time in seconds that processes have waited for memory",
            stalled: Some((
                "node_pressure_memory_stalled_seconds_total",
                "Total time in seconds no process could make progress due to memory congestion",
            )),
        },
    ];
    let mut name = String::with_capacity(48);
    for Resource {
        name: resource,
        waiting: waiting_help,
        stalled,
    } in RESOURCES
    {
        let path = config.proc_path.join("pressure").join(resource);
        let text = files.read(&path)?;
        let total = |kind: &str| -> io::Result<Option<f64>> {
            let Some(line) = text.lines().find(|l| l.starts_with(kind)) else {
                return Ok(None);
            };
            line.split_ascii_whitespace()
                .find_map(|f| f.strip_prefix("total="))
                .and_then(|v| v.parse::<f64>().ok())
                .map(|us| Some(us / 1e6))
                .ok_or_else(|| malformed("pressure line"))
        };
        name.clear();
        name.push_str("node_pressure_");
        name.push_str(resource);
        name.push_str("_waiting_seconds_total");
        if let Some(waiting) = total("some ")? {
            page.family(&name, MetricType::Counter, waiting_help);
            page.sample(&name, &[], waiting);
        }
        if let Some((stalled_name, stalled_help)) = stalled
            && let Some(stalled) = total("full ")?
        {
            page.family(stalled_name, MetricType::Counter, stalled_help);
            page.sample(stalled_name, &[], stalled);
        }
    }
    Ok(())
}

/// The clock: `node_time_seconds`, the time zone's offset, and the clock
/// sources of `/sys/devices/system/clocksource`.
pub fn time(config: &HostMetricsConfig, page: &mut Page<'_>, files: &mut Files) -> io::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(io::Error::other)?;
    page.family(
        "node_time_seconds",
        MetricType::Gauge,
        "System time in seconds since epoch (1970).",
    );
    page.sample("node_time_seconds", &[], now.as_secs_f64());
    let (zone, offset) = time_zone(now.as_secs() as libc::time_t);
    page.family(
        "node_time_zone_offset_seconds",
        MetricType::Gauge,
        "System time zone offset in seconds.",
    );
    page.sample(
        "node_time_zone_offset_seconds",
        &[("time_zone", &zone)],
        offset,
    );
    let sources = config.sys("devices/system/clocksource");
    let Ok(devices) = std::fs::read_dir(&sources) else {
        // No clock sources (not Linux, or /sys not mounted): the clock alone.
        return Ok(());
    };
    let mut devices: Vec<(String, std::path::PathBuf)> = devices
        .filter_map(Result::ok)
        .filter_map(|d| {
            let name = d.file_name().to_str()?.to_string();
            let n = name.strip_prefix("clocksource")?.to_string();
            Some((n, d.path()))
        })
        .collect();
    devices.sort();
    for (device, path) in devices {
        for (file, name, help) in [
            (
                "available_clocksource",
                "node_time_clocksource_available_info",
                "Available clocksources read from '/sys/devices/system/clocksource'.",
            ),
            (
                "current_clocksource",
                "node_time_clocksource_current_info",
                "Current clocksource read from '/sys/devices/system/clocksource'.",
            ),
        ] {
            let text = files.read(&path.join(file))?;
            page.family(name, MetricType::Gauge, help);
            for source in text.split_ascii_whitespace() {
                page.sample(name, &[("clocksource", source), ("device", &device)], 1.0);
            }
        }
    }
    Ok(())
}

/// The local time zone's abbreviation and offset from UTC in seconds, at `now`.
fn time_zone(now: libc::time_t) -> (String, f64) {
    // SAFETY: `tm` is plain data that localtime_r fills; `now` is a valid time.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() || tm.tm_zone.is_null() {
        return ("UTC".into(), 0.0);
    }
    // SAFETY: tm_zone points at a NUL-terminated name kept by the C library.
    let zone = unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
        .to_string_lossy()
        .into_owned();
    (zone, tm.tm_gmtoff as f64)
}
