//! `/proc/stat`: per-CPU time by mode (`cpu`), and the kernel's counters
//! of interrupts, context switches, forks, the boot time and the running
//! and blocked processes (`stat`).

use std::io;

use super::super::page::Page;
use super::malformed;
use crate::signal::metrics::MetricType;

/// The modes of a `cpuN` line, in their columns' order.
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

pub fn collect(text: &str, cpu: bool, stat: bool, page: &mut Page<'_>) -> io::Result<()> {
    let hz = clock_ticks();
    if cpu {
        page.family(
            "node_cpu_seconds_total",
            MetricType::Counter,
            "Seconds the CPUs spent in each mode.",
        );
        page.family(
            "node_cpu_guest_seconds_total",
            MetricType::Counter,
            "Seconds the CPUs spent in guests (VMs) for each mode.",
        );
    }
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        if let Some(n) = key.strip_prefix("cpu") {
            // `cpu` alone is the sum over CPUs, which node_exporter leaves out.
            if !cpu || n.is_empty() {
                continue;
            }
            // user … steal, then guest and guest_nice (absent on old kernels).
            let mut ticks = [0.0f64; 10];
            let mut read = 0;
            for (slot, field) in ticks.iter_mut().zip(fields) {
                *slot = field
                    .parse()
                    .map_err(|_| malformed("cpu line in /proc/stat"))?;
                read += 1;
            }
            if read < MODES.len() {
                return Err(malformed("cpu line in /proc/stat"));
            }
            for (mode, t) in MODES.iter().zip(&ticks) {
                page.sample(
                    "node_cpu_seconds_total",
                    &[("cpu", n), ("mode", mode)],
                    t / hz,
                );
            }
            let (guest, guest_nice) = (ticks[8], ticks[9]);
            page.sample(
                "node_cpu_guest_seconds_total",
                &[("cpu", n), ("mode", "user")],
                guest / hz,
            );
            page.sample(
                "node_cpu_guest_seconds_total",
                &[("cpu", n), ("mode", "nice")],
                guest_nice / hz,
            );
            continue;
        }
        if !stat {
            continue;
        }
        let value = || -> io::Result<f64> {
            line.split_ascii_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| malformed(&format!("{key} line in /proc/stat")))
        };
        let (name, kind, help) = match key {
            "intr" => (
                "node_intr_total",
                MetricType::Counter,
                "Total number of interrupts serviced.",
            ),
            "ctxt" => (
                "node_context_switches_total",
                MetricType::Counter,
                "Total number of context switches.",
            ),
            "btime" => (
                "node_boot_time_seconds",
                MetricType::Gauge,
                "Node boot time, in unixtime.",
            ),
            "processes" => (
                "node_forks_total",
                MetricType::Counter,
                "Total number of forks.",
            ),
            "procs_running" => (
                "node_procs_running",
                MetricType::Gauge,
                "Number of processes in runnable state.",
            ),
            "procs_blocked" => (
                "node_procs_blocked",
                MetricType::Gauge,
                "Number of processes blocked waiting for I/O to complete.",
            ),
            _ => continue,
        };
        page.family(name, kind, help);
        page.sample(name, &[], value()?);
    }
    Ok(())
}

/// Clock ticks a second (`USER_HZ`), the unit of `/proc/stat`'s times.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant of the system; it has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}
