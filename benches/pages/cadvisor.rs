//! A page shaped like the kubelet's `/metrics/cadvisor` on a busy node:
//! cAdvisor's per-container families (CPU, memory, file system, network,
//! spec, tasks) with its label set (`container`, `id` as the container's
//! cgroup path, `image`, `name`, `namespace`, `pod`, plus `cpu`, `device`,
//! `interface`, `failure_type`, `scope`, `state` where cAdvisor has them)
//! and a millisecond timestamp on every sample, as cAdvisor writes them.
//! Shared by `benches/prom_parse.rs` and `ferro-load --shape cadvisor`.

use std::fmt::Write;

/// (name, type, help, extra label sets) of each family, per container.
const FAMILIES: &[(&str, &str, &str, &[&str])] = &[
    (
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed in seconds.",
        &["cpu=\"total\""],
    ),
    (
        "container_cpu_user_seconds_total",
        "counter",
        "Cumulative user cpu time consumed in seconds.",
        &[""],
    ),
    (
        "container_cpu_system_seconds_total",
        "counter",
        "Cumulative system cpu time consumed in seconds.",
        &[""],
    ),
    (
        "container_cpu_cfs_periods_total",
        "counter",
        "Number of elapsed enforcement period intervals.",
        &[""],
    ),
    (
        "container_cpu_cfs_throttled_periods_total",
        "counter",
        "Number of throttled period intervals.",
        &[""],
    ),
    (
        "container_cpu_cfs_throttled_seconds_total",
        "counter",
        "Total time duration the container has been throttled.",
        &[""],
    ),
    (
        "container_memory_usage_bytes",
        "gauge",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        &[""],
    ),
    (
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set in bytes.",
        &[""],
    ),
    (
        "container_memory_rss",
        "gauge",
        "Size of RSS in bytes.",
        &[""],
    ),
    (
        "container_memory_cache",
        "gauge",
        "Number of bytes of page cache memory.",
        &[""],
    ),
    (
        "container_memory_swap",
        "gauge",
        "Container swap usage in bytes.",
        &[""],
    ),
    (
        "container_memory_mapped_file",
        "gauge",
        "Size of memory mapped files in bytes.",
        &[""],
    ),
    (
        "container_memory_max_usage_bytes",
        "gauge",
        "Maximum memory usage recorded in bytes",
        &[""],
    ),
    (
        "container_memory_failcnt",
        "counter",
        "Number of memory usage hits limits",
        &[""],
    ),
    (
        "container_memory_failures_total",
        "counter",
        "Cumulative count of memory allocation failures.",
        &[
            "failure_type=\"pgfault\",scope=\"container\"",
            "failure_type=\"pgfault\",scope=\"hierarchy\"",
            "failure_type=\"pgmajfault\",scope=\"container\"",
            "failure_type=\"pgmajfault\",scope=\"hierarchy\"",
        ],
    ),
    (
        "container_fs_reads_bytes_total",
        "counter",
        "Cumulative count of bytes read",
        &["device=\"/dev/nvme0n1\""],
    ),
    (
        "container_fs_writes_bytes_total",
        "counter",
        "Cumulative count of bytes written",
        &["device=\"/dev/nvme0n1\""],
    ),
    (
        "container_fs_reads_total",
        "counter",
        "Cumulative count of reads completed",
        &["device=\"/dev/nvme0n1\""],
    ),
    (
        "container_fs_writes_total",
        "counter",
        "Cumulative count of writes completed",
        &["device=\"/dev/nvme0n1\""],
    ),
    (
        "container_fs_usage_bytes",
        "gauge",
        "Number of bytes that are consumed by the container on this filesystem.",
        &["device=\"/dev/nvme0n1p1\""],
    ),
    (
        "container_fs_limit_bytes",
        "gauge",
        "Number of bytes that can be consumed by the container on this filesystem.",
        &["device=\"/dev/nvme0n1p1\""],
    ),
    (
        "container_fs_inodes_free",
        "gauge",
        "Number of available Inodes",
        &["device=\"/dev/nvme0n1p1\""],
    ),
    (
        "container_network_receive_bytes_total",
        "counter",
        "Cumulative count of bytes received",
        &["interface=\"eth0\""],
    ),
    (
        "container_network_transmit_bytes_total",
        "counter",
        "Cumulative count of bytes transmitted",
        &["interface=\"eth0\""],
    ),
    (
        "container_network_receive_packets_total",
        "counter",
        "Cumulative count of packets received",
        &["interface=\"eth0\""],
    ),
    (
        "container_network_transmit_packets_total",
        "counter",
        "Cumulative count of packets transmitted",
        &["interface=\"eth0\""],
    ),
    (
        "container_network_receive_errors_total",
        "counter",
        "Cumulative count of errors encountered while receiving",
        &["interface=\"eth0\""],
    ),
    (
        "container_network_transmit_errors_total",
        "counter",
        "Cumulative count of errors encountered while transmitting",
        &["interface=\"eth0\""],
    ),
    (
        "container_network_receive_packets_dropped_total",
        "counter",
        "Cumulative count of packets dropped while receiving",
        &["interface=\"eth0\""],
    ),
    (
        "container_network_transmit_packets_dropped_total",
        "counter",
        "Cumulative count of packets dropped while transmitting",
        &["interface=\"eth0\""],
    ),
    (
        "container_spec_cpu_period",
        "gauge",
        "CPU period of the container.",
        &[""],
    ),
    (
        "container_spec_cpu_quota",
        "gauge",
        "CPU quota of the container.",
        &[""],
    ),
    (
        "container_spec_cpu_shares",
        "gauge",
        "CPU share of the container.",
        &[""],
    ),
    (
        "container_spec_memory_limit_bytes",
        "gauge",
        "Memory limit for the container.",
        &[""],
    ),
    (
        "container_spec_memory_reservation_limit_bytes",
        "gauge",
        "Memory reservation limit for the container.",
        &[""],
    ),
    (
        "container_spec_memory_swap_limit_bytes",
        "gauge",
        "Memory swap limit for the container.",
        &[""],
    ),
    (
        "container_last_seen",
        "gauge",
        "Last time a container was seen by the exporter",
        &[""],
    ),
    (
        "container_start_time_seconds",
        "gauge",
        "Start time of the container since unix epoch in seconds.",
        &[""],
    ),
    (
        "container_threads",
        "gauge",
        "Number of threads running inside the container",
        &[""],
    ),
    (
        "container_threads_max",
        "gauge",
        "Maximum number of threads allowed inside the container, infinity if value is zero",
        &[""],
    ),
    (
        "container_sockets",
        "gauge",
        "Number of open sockets for the container.",
        &[""],
    ),
    (
        "container_file_descriptors",
        "gauge",
        "Number of open file descriptors for the container.",
        &[""],
    ),
    (
        "container_processes",
        "gauge",
        "Number of processes running inside the container.",
        &[""],
    ),
    (
        "container_oom_events_total",
        "counter",
        "Count of out of memory events observed for the container",
        &[""],
    ),
    (
        "container_tasks_state",
        "gauge",
        "Number of tasks in given state",
        &[
            "state=\"iowaiting\"",
            "state=\"running\"",
            "state=\"sleeping\"",
            "state=\"stopped\"",
            "state=\"uninterruptible\"",
        ],
    ),
];

/// Series one container has on the page.
pub fn series_per_container() -> usize {
    FAMILIES.iter().map(|(_, _, _, sets)| sets.len()).sum()
}

/// The page for enough containers to reach `series` series; returns it and
/// the number of series it has.
pub fn page(series: usize, timestamp_ms: i64) -> (String, usize) {
    let containers = series.div_ceil(series_per_container()).max(1);
    let labels: Vec<String> = (0..containers)
        .map(|c| {
            let pod_uid = format!("{:08x}_{:04x}_4{:03x}_8{:03x}_{:012x}", c * 2654435761 % (1 << 32), c % 65536, c % 4096, (c * 7) % 4096, c * 97);
            let container_id = format!("{:016x}{:016x}{:016x}{:016x}", c * 11, c * 13, c * 17, c * 19);
            format!(
                "container=\"app-{k}\",id=\"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod_uid}.slice/cri-containerd-{container_id}.scope\",image=\"registry.example.com/team-{t}/app-{k}:v1.{v}.0\",name=\"{container_id}\",namespace=\"team-{t}\",pod=\"app-{k}-7d9c6b5f4-{r:05x}\"",
                k = c % 300,
                t = c % 25,
                v = c % 40,
                r = c * 31 % 1_048_576,
            )
        })
        .collect();
    let mut page = String::with_capacity(containers * series_per_container() * 330);
    let mut written = 0;
    for (f, (name, kind, help, sets)) in FAMILIES.iter().enumerate() {
        let _ = writeln!(page, "# HELP {name} {help}");
        let _ = writeln!(page, "# TYPE {name} {kind}");
        for (c, container) in labels.iter().enumerate() {
            for extra in *sets {
                let value = (c * 1_000 + f * 17) as f64 * 1.25 + 0.5;
                let sep = if extra.is_empty() { "" } else { "," };
                let _ = writeln!(
                    page,
                    "{name}{{{container}{sep}{extra}}} {value} {timestamp_ms}"
                );
                written += 1;
            }
        }
    }
    (page, written)
}
