//! Host metrics against the real thing: Debian's node-exporter and ferro's
//! `host_metrics` run on the same machine; ferro's series go to a real
//! Prometheus over remote-write and are compared with node-exporter's page,
//! family by family: the same series (names and label sets, no more, no
//! fewer) and values within a stated tolerance.

mod common;

use common::prom::{node_exporter, page_samples, prometheus, query};
use common::{Ferro, WAIT, eventually, http_get};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// A series without `job` and `instance`, as sorted `(name, value)` pairs
/// with `__name__` among them, and its value.
type Page = BTreeMap<Vec<(String, String)>, f64>;

/// node-exporter's page, as series and values, as Prometheus would store
/// them.
fn node_page(addr: SocketAddr) -> Page {
    page_samples(&http_get(addr, "/metrics").1)
        .into_iter()
        .collect()
}

/// What Prometheus has now of `job="node-exporter"`, as series and values.
fn stored(prometheus: SocketAddr) -> Page {
    query(prometheus, r#"{job="node-exporter"}"#)
        .into_iter()
        .map(|(labels, value)| {
            let mut pairs: Vec<(String, String)> = labels
                .into_iter()
                .filter(|(name, _)| name != "job" && name != "instance")
                .map(|(n, v)| (n, v.as_str().unwrap().to_string()))
                .collect();
            pairs.sort();
            (pairs, value)
        })
        .collect()
}

fn name(series: &[(String, String)]) -> &str {
    &series.iter().find(|(n, _)| n == "__name__").unwrap().1
}

/// How far ferro's value may be from node-exporter's, read a moment apart
/// on a machine that may be busy: counters and gauges that move (times,
/// faults) within 10 % or an absolute step, memory in use within 1 GiB;
/// what is fixed (totals, sizes, the boot time) exactly or nearly.
fn close_enough(series: &[(String, String)], ours: f64, theirs: f64) -> bool {
    let family = name(series);
    let absolute: f64 = match family {
        "node_time_seconds" => 120.0,
        "node_boot_time_seconds" => 1.0,
        "node_load1" | "node_load5" | "node_load15" => 2.0,
        "node_procs_running" | "node_procs_blocked" => 50.0,
        "node_filefd_allocated" => 2000.0,
        f if f.starts_with("node_cpu") => 60.0,
        f if f.starts_with("node_pressure") => 60.0,
        // Socket buffer memory (pages in use, in bytes) swings by
        // megabytes with the traffic of the tests around.
        f if f.starts_with("node_sockstat") && f.ends_with("_mem_bytes") => (64u64 << 20) as f64,
        // Sockets and connections come and go with the tests around.
        f if f.starts_with("node_sockstat") || f == "node_netstat_Tcp_CurrEstab" => 500.0,
        f if f.starts_with("node_memory") && !f.contains("Total") && !f.contains("size") => {
            (1u64 << 30) as f64
        }
        // Traffic of the tests around this one.
        f if f.starts_with("node_network") => 1e9,
        // Builds and tests write gigabytes around this test.
        "node_filesystem_free_bytes" | "node_filesystem_avail_bytes" => (4u64 << 30) as f64,
        _ => 0.0,
    };
    let fixed = matches!(
        family,
        "node_memory_MemTotal_bytes"
            | "node_memory_SwapTotal_bytes"
            | "node_filefd_maximum"
            | "node_uname_info"
    );
    let relative = if fixed { 0.0 } else { 0.1 };
    (ours - theirs).abs() <= absolute.max(relative * theirs.abs())
}

#[test]
fn host_metrics_match_node_exporter_series_for_series() {
    let Some(node) = node_exporter() else { return };
    let Some(prom) = prometheus() else { return };
    let _ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.host_metrics.node]
        collection_interval = "1s"
        instance = "test-host"
        # Debian patches node_exporter's default to leave out /run, /mnt
        # and /media as well; the comparison is with Debian's.
        mount_points_exclude = "^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
        # And its netdev leaves out the loopback device.
        netdev_device_exclude = "^lo$"
        [exporters.remote_write.prom]
        endpoint = "http://{prom}/api/v1/write"
        batch_send_deadline = "100ms"
        [pipelines.metrics]
        receivers = ["host_metrics.node"]
        exporters = ["remote_write.prom"]
        "#,
        prom = prom.addr,
    ));
    let mut ours = Page::new();
    eventually("ferro's host metrics in Prometheus", WAIT, || {
        ours = stored(prom.addr);
        ours.keys().any(|s| name(s) == "node_uname_info")
            && ours.keys().any(|s| name(s) == "node_load1")
    });
    let theirs = node_page(node.addr);
    let families: BTreeSet<&str> = ours.keys().map(|s| name(s)).collect();
    for wanted in [
        "node_cpu_seconds_total",
        "node_cpu_guest_seconds_total",
        "node_intr_total",
        "node_context_switches_total",
        "node_forks_total",
        "node_boot_time_seconds",
        "node_procs_running",
        "node_load1",
        "node_memory_MemTotal_bytes",
        "node_memory_MemAvailable_bytes",
        "node_vmstat_pgfault",
        "node_filefd_allocated",
        "node_filefd_maximum",
        "node_uname_info",
        "node_time_seconds",
        "node_time_zone_offset_seconds",
        "node_disk_reads_completed_total",
        "node_disk_info",
        "node_netstat_Tcp_InSegs",
        "node_sockstat_TCP_inuse",
        "node_sockstat_sockets_used",
        "node_os_info",
        "node_filesystem_size_bytes",
        "node_filesystem_avail_bytes",
        "node_filesystem_readonly",
        "node_network_receive_bytes_total",
        "node_network_transmit_packets_total",
    ] {
        assert!(families.contains(wanted), "ferro has no {wanted}");
    }
    if std::path::Path::new("/proc/pressure/cpu").exists() {
        assert!(families.contains("node_pressure_cpu_waiting_seconds_total"));
    }
    let mut problems = Vec::new();
    for family in &families {
        let of = |page: &Page| -> BTreeSet<Vec<(String, String)>> {
            page.keys()
                .filter(|s| name(s) == *family)
                .cloned()
                .collect()
        };
        let (ours_set, theirs_set) = (of(&ours), of(&theirs));
        if theirs_set.is_empty() {
            problems.push(format!("{family}: not on node-exporter's page"));
            continue;
        }
        for extra in ours_set.difference(&theirs_set) {
            problems.push(format!("extra series {extra:?}"));
        }
        for missing in theirs_set.difference(&ours_set) {
            problems.push(format!("missing series {missing:?}"));
        }
        for series in ours_set.intersection(&theirs_set) {
            let (a, b) = (ours[series], theirs[series]);
            if !close_enough(series, a, b) {
                problems.push(format!("{series:?}: ferro {a}, node-exporter {b}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences from node-exporter:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
