//! Resident memory and CPU time of this process, read from `/proc` (Linux).

pub struct ProcessStats {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

/// Clock ticks per second of `/proc/*/stat` times; 100 on every Linux ferro targets.
const CLOCK_TICKS: f64 = 100.0;

pub fn read() -> Option<ProcessStats> {
    read_pid("self")
}

/// Reads RSS and CPU of any process: the load harness measures ferro this way.
pub fn read_pid(pid: &str) -> Option<ProcessStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = field_kib(&status, "VmRSS:")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its closing paren.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(ProcessStats {
        rss_bytes: rss_kib * 1024,
        cpu_seconds: (utime + stime) / CLOCK_TICKS,
    })
}

/// Peak resident set size (`VmHWM`) of a process, in bytes.
pub fn peak_rss(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    field_kib(&status, "VmHWM:").map(|k| k * 1024)
}

fn field_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

pub fn start_time_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let stats = super::read().expect("/proc is readable");
        assert!(
            stats.rss_bytes > 1024 * 1024,
            "a test binary holds more than 1 MiB"
        );
        assert!(super::peak_rss("self").unwrap() >= stats.rss_bytes);
    }
}
