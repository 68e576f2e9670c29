//! `receivers.journald`: the host's systemd journal (kubelet, containerd,
//! the kernel) into logs pipelines, one stream per unit, host and level,
//! as Alloy's `loki.source.journal` ships it.
//!
//! The journal is read through Debian's `journalctl` in follow mode with
//! the export format (<https://systemd.io/JOURNAL_EXPORT_FORMATS/>), as
//! Vector reads it: journalctl is the reference reader of the journal's
//! files (their compression, compact mode, rotation, vacuuming and
//! corruption) and follows new files as journald rotates. Each entry's
//! `MESSAGE` becomes the line, its `__REALTIME_TIMESTAMP` the timestamp,
//! its `PRIORITY` the `level` label; chosen fields become labels
//! (`field_labels`) or structured metadata.
//!
//! The cursor of the last acknowledged entry is saved under `data_dir`, so
//! a restart neither skips nor re-sends what the exporters acknowledged.

mod config;
mod cursor;
mod entries;
mod export;
mod receiver;

pub use config::{JournaldConfig, PRIORITIES, RawJournaldConfig, Source};
pub use cursor::{Cursor, cursor_path};
pub use receiver::{Start, journalctl_args, resume_point, start};

#[cfg(test)]
mod tests;
