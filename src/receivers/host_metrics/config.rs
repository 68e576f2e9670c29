use serde::Deserialize;
use std::path::PathBuf;

use crate::config::{FieldError, HumanDuration, Validate};

/// One collector: what it reads and the node_exporter collector it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Collector {
    /// `node_cpu_seconds_total`, `node_cpu_guest_seconds_total` (`/proc/stat`).
    Cpu,
    /// Interrupts, context switches, forks, boot time, running and blocked
    /// processes (`/proc/stat`).
    Stat,
    /// `node_load1`, `node_load5`, `node_load15` (`/proc/loadavg`).
    Loadavg,
    /// `node_memory_*` (`/proc/meminfo`).
    Meminfo,
    /// `node_vmstat_*`: page faults, paging, swapping, OOM kills (`/proc/vmstat`).
    Vmstat,
    /// `node_filefd_*` (`/proc/sys/fs/file-nr`).
    Filefd,
    /// `node_pressure_*` (`/proc/pressure/{cpu,io,memory}`).
    Pressure,
    /// `node_uname_info` (the uname system call).
    Uname,
    /// `node_time_*`: the clock, the time zone, the clock sources.
    Time,
    /// `node_disk_*` (`/proc/diskstats`, udev's database for `node_disk_info`).
    Diskstats,
    /// `node_netstat_*` (`/proc/net/{netstat,snmp,snmp6}`).
    Netstat,
    /// `node_sockstat_*` (`/proc/net/sockstat{,6}`).
    Sockstat,
    /// `node_os_info`, `node_os_version` (`/etc/os-release`).
    Os,
    /// `node_filesystem_*` (the mounts of the host's init, `statfs`).
    Filesystem,
    /// `node_network_{receive,transmit}_*_total` (`/proc/net/dev`).
    Netdev,
}

impl Collector {
    /// Every collector, in the order they run.
    pub const ALL: &[Collector] = &[
        Self::Cpu,
        Self::Stat,
        Self::Loadavg,
        Self::Meminfo,
        Self::Vmstat,
        Self::Filefd,
        Self::Pressure,
        Self::Uname,
        Self::Time,
        Self::Diskstats,
        Self::Netstat,
        Self::Sockstat,
        Self::Os,
        Self::Filesystem,
        Self::Netdev,
    ];

    /// Its name in `collectors = [...]`, node_exporter's collector name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Stat => "stat",
            Self::Loadavg => "loadavg",
            Self::Meminfo => "meminfo",
            Self::Vmstat => "vmstat",
            Self::Filefd => "filefd",
            Self::Pressure => "pressure",
            Self::Uname => "uname",
            Self::Time => "time",
            Self::Diskstats => "diskstats",
            Self::Netstat => "netstat",
            Self::Sockstat => "sockstat",
            Self::Os => "os",
            Self::Filesystem => "filesystem",
            Self::Netdev => "netdev",
        }
    }

    fn named(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }
}

/// `[receivers.host_metrics.NAME]` as written.
#[derive(Deserialize)]
pub struct RawHostMetricsConfig {
    /// How often the collectors run.
    collection_interval: Option<HumanDuration>,
    /// Where the host's file system is: `/host` when ferro runs in a
    /// container with the host's `/` mounted there.
    root_path: Option<PathBuf>,
    /// The host's `/proc`; by default `<root_path>/proc`.
    proc_path: Option<PathBuf>,
    /// The host's `/sys`; by default `<root_path>/sys`.
    sys_path: Option<PathBuf>,
    /// The collectors to run; by default all of them.
    collectors: Option<Vec<String>>,
    /// The `job` label of every series, as a scrape of node_exporter gives it.
    job: Option<String>,
    /// The `instance` label; by default the host name.
    instance: Option<String>,
    /// Mount points the filesystem collector leaves out (a regex).
    mount_points_exclude: Option<String>,
    /// File system types the filesystem collector leaves out (a regex).
    fs_types_exclude: Option<String>,
    /// Network devices the netdev collector leaves out (a regex); none by
    /// default, as node_exporter.
    netdev_device_exclude: Option<String>,
}

/// node_exporter's default `--collector.filesystem.mount-points-exclude`.
pub const MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter's default `--collector.filesystem.fs-types-exclude`.
pub const FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";

/// A checked regex, equal to another of the same text (for reloads).
#[derive(Clone, Debug)]
pub struct Pattern(regex::Regex);

impl Pattern {
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// A checked host metrics receiver.
#[derive(Clone, Debug, PartialEq)]
pub struct HostMetricsConfig {
    pub collection_interval: std::time::Duration,
    /// The host's `/`: where `etc/os-release` and udev's database are.
    pub root_path: PathBuf,
    pub proc_path: PathBuf,
    pub sys_path: PathBuf,
    pub collectors: Vec<Collector>,
    pub job: String,
    pub instance: String,
    pub mount_points_exclude: Pattern,
    pub fs_types_exclude: Pattern,
    pub netdev_device_exclude: Option<Pattern>,
}

impl Validate for RawHostMetricsConfig {
    type Valid = HostMetricsConfig;

    fn validate(self) -> Result<HostMetricsConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let collection_interval = self
            .collection_interval
            .map_or(std::time::Duration::from_secs(15), |d| d.get());
        if collection_interval < std::time::Duration::from_millis(100) {
            errors.push(FieldError::new(
                "collection_interval",
                "must be at least 100ms",
            ));
        }
        let root = self.root_path.unwrap_or_else(|| PathBuf::from("/"));
        let proc_path = self.proc_path.unwrap_or_else(|| root.join("proc"));
        let sys_path = self.sys_path.unwrap_or_else(|| root.join("sys"));
        let mut collectors = Vec::new();
        match self.collectors {
            None => collectors.extend_from_slice(Collector::ALL),
            Some(names) => {
                for (i, name) in names.iter().enumerate() {
                    match Collector::named(name) {
                        Some(c) if !collectors.contains(&c) => collectors.push(c),
                        Some(_) => {}
                        None => errors.push(FieldError::new(
                            format!("collectors.{i}"),
                            format!(
                                "`{name}` is not a collector; there are: {}",
                                Collector::ALL
                                    .iter()
                                    .map(|c| c.name())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )),
                    }
                }
                if names.is_empty() {
                    errors.push(FieldError::new(
                        "collectors",
                        "list at least one collector, or leave it out for all",
                    ));
                }
            }
        }
        collectors.sort();
        let job = self.job.unwrap_or_else(|| "node-exporter".into());
        if job.is_empty() {
            errors.push(FieldError::new("job", "must not be empty"));
        }
        let instance = self.instance.unwrap_or_else(host_name);
        if instance.is_empty() {
            errors.push(FieldError::new("instance", "must not be empty"));
        }
        let mut pattern = |key: &str, written: Option<String>, default: &str| {
            let text = written.unwrap_or_else(|| default.to_string());
            match regex::Regex::new(&text) {
                Ok(regex) => Some(Pattern(regex)),
                Err(e) => {
                    errors.push(FieldError::new(key, format!("not a regex: {e}")));
                    None
                }
            }
        };
        let mount_points_exclude = pattern(
            "mount_points_exclude",
            self.mount_points_exclude,
            MOUNT_POINTS_EXCLUDE,
        );
        let fs_types_exclude = pattern("fs_types_exclude", self.fs_types_exclude, FS_TYPES_EXCLUDE);
        let netdev_device_exclude = self
            .netdev_device_exclude
            .map(|text| pattern("netdev_device_exclude", Some(text), ""));
        if let (true, Some(mount_points_exclude), Some(fs_types_exclude)) =
            (errors.is_empty(), mount_points_exclude, fs_types_exclude)
        {
            Ok(HostMetricsConfig {
                netdev_device_exclude: netdev_device_exclude.flatten(),
                mount_points_exclude,
                fs_types_exclude,
                collection_interval,
                root_path: root,
                proc_path,
                sys_path,
                collectors,
                job,
                instance,
            })
        } else {
            Err(errors)
        }
    }
}

/// This machine's host name (`uname`'s node name).
fn host_name() -> String {
    super::collectors::uname::host_name().unwrap_or_else(|| "localhost".into())
}

impl HostMetricsConfig {
    /// A file under the host's `/proc`.
    pub fn proc(&self, file: &str) -> PathBuf {
        self.proc_path.join(file)
    }

    /// A file under the host's `/sys`.
    pub fn sys(&self, file: &str) -> PathBuf {
        self.sys_path.join(file)
    }
}
