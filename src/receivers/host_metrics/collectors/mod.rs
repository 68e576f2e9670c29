//! The collectors: each reads its files once per collection into a buffer
//! kept across collections, and writes node_exporter's series to the page.

mod disk;
mod filesystem;
mod memory;
mod network;
mod os;
mod stat;
mod system;
pub mod uname;

use std::io::Read;
use std::path::Path;

use super::config::{Collector, HostMetricsConfig};
use super::page::Page;

/// The buffer files are read into, and the mount points whose `statfs`
/// hangs, kept across collections.
#[derive(Default)]
pub struct Files {
    buf: Vec<u8>,
    stuck: filesystem::Stuck,
}

impl Files {
    /// The whole of `path` as text (one read, for the small files of
    /// `/proc` and `/sys`); invalid UTF-8 is an error.
    pub fn read(&mut self, path: &Path) -> std::io::Result<&str> {
        self.buf.clear();
        std::fs::File::open(path)?.read_to_end(&mut self.buf)?;
        std::str::from_utf8(&self.buf)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
    }
}

/// Runs `collectors` (sorted, as the config keeps them) onto `page`; each
/// that fails is returned with its error, the others still run.
pub fn run(
    config: &HostMetricsConfig,
    page: &mut Page<'_>,
    files: &mut Files,
) -> Vec<(Collector, std::io::Error)> {
    let mut failed = Vec::new();
    let runs = |c| config.collectors.contains(&c);
    // `cpu` and `stat` share one read of /proc/stat.
    if runs(Collector::Cpu) || runs(Collector::Stat) {
        match files.read(&config.proc("stat")) {
            Ok(text) => {
                if let Err(e) =
                    stat::collect(text, runs(Collector::Cpu), runs(Collector::Stat), page)
                {
                    failed.push((Collector::Cpu, e));
                }
            }
            Err(e) => {
                for c in [Collector::Cpu, Collector::Stat] {
                    if runs(c) {
                        failed.push((c, std::io::Error::new(e.kind(), e.to_string())));
                    }
                }
            }
        }
    }
    for &collector in &config.collectors {
        let result = match collector {
            Collector::Cpu | Collector::Stat => continue,
            Collector::Loadavg => system::loadavg(config, page, files),
            Collector::Meminfo => memory::meminfo(config, page, files),
            Collector::Vmstat => memory::vmstat(config, page, files),
            Collector::Filefd => system::filefd(config, page, files),
            Collector::Pressure => system::pressure(config, page, files),
            Collector::Uname => uname::collect(page),
            Collector::Time => system::time(config, page, files),
            Collector::Diskstats => disk::diskstats(config, page, files),
            Collector::Netstat => network::netstat(config, page, files),
            Collector::Sockstat => network::sockstat(config, page, files),
            Collector::Os => os::collect(config, page, files),
            Collector::Netdev => network::netdev(config, page, files),
            Collector::Filesystem => {
                let stuck = files.stuck.clone();
                filesystem::collect(config, page, files, &stuck)
            }
        };
        if let Err(e) = result {
            failed.push((collector, e));
        }
    }
    failed
}

/// An error for a file that is not what it should be.
pub fn malformed(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("malformed {what}"))
}
