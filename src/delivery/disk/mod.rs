//! An exporter queue on disk (`queue = "disk"`): batches written to an
//! append-only log of segments, read back in order by the exporter's
//! senders, and deleted a segment at a time once the backend has every
//! record in it.
//!
//! - **Accepted means on disk.** A push returns once its record is written
//!   (and, with `fsync = "batch"`, synced); the batch is then dropped, which
//!   acknowledges it to its sender (an OTLP client, a log tailer's
//!   position), so a `kill -9` of ferro loses nothing a sender was told was
//!   taken. A record read back carries an acknowledgement of its own: when
//!   its delivery ends (delivered, or dropped for good) it is done; when a
//!   shutdown interrupts it, it stays for the next start.
//! - **Where delivery stands** is a cursor, the position of the first record
//!   not yet done, kept in `cursor` beside the segments (written a few times
//!   a second and at close; a crash re-sends at most what was done since).
//! - **Damage is skipped, never fatal**: a bad checksum, a record cut off by
//!   a crash, a zeroed block, a segment of an unknown format, an unreadable
//!   cursor. Each is counted and reading goes on with the next intact record.
//! - **Bounded**: in bytes on disk (`max_size`; then the push waits, or with
//!   `on_full = "drop_oldest"` the oldest segment goes), and in memory: one
//!   record is read at a time, per sender.
//! - **A full disk** stops the writes (counted), holds the pushes as a full
//!   queue does, and writing resumes by itself once there is room.

mod cursor;
mod keeper;
mod queue;
mod record;
mod segment;

pub use queue::DiskQueue;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use segment::Damage;

/// When a disk queue syncs what it wrote to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Before a push returns (pushes waiting together share one sync): a
    /// power loss loses nothing acknowledged.
    Batch,
    /// Every `fsync_interval`: a power loss loses at most the interval.
    Interval,
    /// When the kernel decides. A crash of ferro alone never loses what a
    /// push wrote, with any policy: the kernel holds it.
    Never,
}

/// How a disk queue is bounded and synced.
#[derive(Clone, Debug, PartialEq)]
pub struct DiskSettings {
    pub max_size: u64,
    pub fsync: Fsync,
    pub fsync_interval: Duration,
    /// When full, delete the oldest segment (counted) instead of waiting.
    pub drop_oldest: bool,
}

impl DiskSettings {
    /// A sixteenth of the queue, between 64KiB and 64MiB: small enough that
    /// acknowledged records leave the disk soon, large enough that files are few.
    fn segment_size(&self) -> u64 {
        (self.max_size / 16).clamp(64 << 10, 64 << 20)
    }
}

/// The figures a disk queue keeps (handles from the exporter's telemetry).
#[derive(Clone, Default)]
pub struct DiskMetrics {
    /// Bytes of the queue's segment files.
    pub bytes: Gauge,
    /// Records written and not yet done.
    pub records: Gauge,
    /// Bytes appended to segments (records with their frames).
    pub written_bytes: Counter,
    /// Age of the oldest record not yet done, in seconds (0 when empty).
    pub oldest_age: Gauge<f64, AtomicU64>,
    /// Records read back that an earlier run wrote.
    pub replayed: Counter,
    /// Damage skipped, by kind (checksum, truncated, unreadable_segment,
    /// undecodable, cursor).
    pub damaged: DamageCounters,
    /// Bytes skipped as damaged.
    pub damaged_bytes: Counter,
    pub fsyncs: Counter,
    pub fsync_seconds: prometheus_client::metrics::counter::Counter<f64, AtomicU64>,
    /// Writes that failed: the disk is full, or another I/O error.
    pub disk_full: Counter,
    pub write_errors: Counter,
    /// Items of records deleted unsent by `on_full = "drop_oldest"`.
    pub dropped_oldest: Counter,
}

/// One counter per kind of damage.
#[derive(Clone, Default)]
pub struct DamageCounters {
    pub checksum: Counter,
    pub truncated: Counter,
    pub unreadable_segment: Counter,
    pub undecodable: Counter,
    pub cursor: Counter,
}

impl DamageCounters {
    fn of(&self, damage: Damage) -> &Counter {
        match damage {
            Damage::Checksum => &self.checksum,
            Damage::Truncated => &self.truncated,
        }
    }
}

/// Why a disk queue cannot open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("data_dir {0} does not exist or is not a directory")]
    NoDataDir(PathBuf),
    #[error("the disk queue at {0} is in use by another ferro process")]
    InUse(PathBuf),
    #[error("cannot use the disk queue at {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

#[cfg(test)]
mod tests;
