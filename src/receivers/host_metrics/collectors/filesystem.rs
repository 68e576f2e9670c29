//! `node_filesystem_*`: size, free and available space, inodes and the
//! read-only flag of each mounted file system, as node_exporter reports
//! them: the mounts of the host's init (`<proc_path>/1/mounts`), less the
//! mount points and file system types its default patterns exclude.
//!
//! `statfs` on a network file system can hang. Local file systems are
//! asked inline; any other is asked on a thread of its own with a deadline,
//! and one that does not answer in time is reported with
//! `node_filesystem_device_error = 1` and not asked again until its
//! earlier call has returned.

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::super::config::HostMetricsConfig;
use super::super::page::Page;
use super::{Files, malformed};
use crate::signal::metrics::MetricType;

/// File systems whose `statfs` answers from memory and cannot hang.
const LOCAL: [&str; 10] = [
    "ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "vfat", "zfs", "f2fs", "ramfs",
];
/// How long a `statfs` of any other file system may take.
const STATFS_DEADLINE: Duration = Duration::from_secs(5);

/// The families, help texts as node_exporter's.
const FAMILIES: [(&str, &str); 7] = [
    ("node_filesystem_size_bytes", "Filesystem size in bytes."),
    (
        "node_filesystem_free_bytes",
        "Filesystem free space in bytes.",
    ),
    (
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
    ),
    ("node_filesystem_files", "Filesystem total file nodes."),
    (
        "node_filesystem_files_free",
        "Filesystem total free file nodes.",
    ),
    ("node_filesystem_readonly", "Filesystem read-only status."),
    (
        "node_filesystem_device_error",
        "Whether an error occurred while getting statistics for the given device.",
    ),
];

/// Mount points whose `statfs` has not returned yet.
#[derive(Clone, Default)]
pub struct Stuck(Arc<Mutex<HashSet<PathBuf>>>);

/// What `statfs` says of one file system.
struct Usage {
    size: f64,
    free: f64,
    avail: f64,
    files: f64,
    files_free: f64,
}

pub fn collect(
    config: &HostMetricsConfig,
    page: &mut Page<'_>,
    files: &mut Files,
    stuck: &Stuck,
) -> io::Result<()> {
    let text = match files.read(&config.proc("1/mounts")) {
        Ok(text) => text.to_string(),
        Err(_) => files.read(&config.proc("mounts"))?.to_string(),
    };
    for (name, help) in FAMILIES {
        page.family(name, MetricType::Gauge, help);
    }
    let mut seen = HashSet::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(device), Some(mount_point), Some(fs_type), Some(options)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(malformed("mounts line"));
        };
        let mount_point = unescape(mount_point);
        let mount_point = strip_root(config, &mount_point);
        if config.mount_points_exclude.is_match(&mount_point)
            || config.fs_types_exclude.is_match(fs_type)
            || !seen.insert((device.to_string(), mount_point.clone(), fs_type.to_string()))
        {
            continue;
        }
        let labels = [
            ("device", device),
            ("fstype", fs_type),
            ("mountpoint", mount_point.as_str()),
        ];
        let path = config.root_path.join(mount_point.trim_start_matches('/'));
        let usage = if LOCAL.contains(&fs_type) {
            statfs(&path).ok()
        } else {
            statfs_with_deadline(path, stuck)
        };
        let Some(usage) = usage else {
            page.sample("node_filesystem_device_error", &labels, 1.0);
            continue;
        };
        let read_only = options.split(',').any(|o| o == "ro");
        for (name, value) in [
            ("node_filesystem_size_bytes", usage.size),
            ("node_filesystem_free_bytes", usage.free),
            ("node_filesystem_avail_bytes", usage.avail),
            ("node_filesystem_files", usage.files),
            ("node_filesystem_files_free", usage.files_free),
            (
                "node_filesystem_readonly",
                if read_only { 1.0 } else { 0.0 },
            ),
            ("node_filesystem_device_error", 0.0),
        ] {
            page.sample(name, &labels, value);
        }
    }
    Ok(())
}

/// A mount point as the host sees it: without the root path a container
/// mounted the host's `/` at.
fn strip_root(config: &HostMetricsConfig, mount_point: &str) -> String {
    let root = config.root_path.to_string_lossy();
    let root = root.trim_end_matches('/');
    match mount_point.strip_prefix(root) {
        Some("") if !root.is_empty() => "/".to_string(),
        Some(rest) if !root.is_empty() && rest.starts_with('/') => rest.to_string(),
        _ => mount_point.to_string(),
    }
}

/// `\040` and `\011` in a mounts field as the space and tab they stand for.
fn unescape(field: &str) -> String {
    field.replace("\\040", " ").replace("\\011", "\t")
}

fn statfs(path: &std::path::Path) -> io::Result<Usage> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a mount point"))?;
    // SAFETY: `buf` is plain data that statfs fills; `path` is NUL-terminated.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::statfs(path.as_ptr(), &mut buf) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let block = buf.f_bsize as f64;
    Ok(Usage {
        size: buf.f_blocks as f64 * block,
        free: buf.f_bfree as f64 * block,
        avail: buf.f_bavail as f64 * block,
        files: buf.f_files as f64,
        files_free: buf.f_ffree as f64,
    })
}

/// `statfs` on a thread of its own, given [`STATFS_DEADLINE`]; `None` on
/// an error, a timeout, or while an earlier call on `path` is still out.
fn statfs_with_deadline(path: PathBuf, stuck: &Stuck) -> Option<Usage> {
    if stuck.0.lock().unwrap().contains(&path) {
        return None;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let stuck_set = stuck;
    let stuck = stuck.clone();
    let asked = path.clone();
    let spawned = std::thread::Builder::new()
        .name("ferro-statfs".into())
        .spawn(move || {
            let result = statfs(&asked);
            // Under the lock, so that the asker's giving up and this answer
            // cannot cross: a late answer frees the mount point.
            let mut set = stuck.0.lock().unwrap();
            if tx.send(result).is_err() {
                set.remove(&asked);
            }
        });
    if spawned.is_err() {
        return None;
    }
    match rx.recv_timeout(STATFS_DEADLINE) {
        Ok(result) => result.ok(),
        Err(_) => {
            let mut set = stuck_set.0.lock().unwrap();
            if let Ok(result) = rx.try_recv() {
                return result.ok();
            }
            drop(rx);
            tracing::warn!(mount_point = %path.display(), "statfs did not answer in time; a device error until it does");
            set.insert(path);
            None
        }
    }
}
