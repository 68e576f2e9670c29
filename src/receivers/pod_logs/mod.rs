//! The pod log receiver: tails container log files on a Kubernetes node
//! (kubelet's `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log`)
//! and turns them into Loki streams.
//!
//! The promise: no line is lost or skipped, a restart re-sends at most the
//! unacknowledged tail, and memory stays flat under any volume.
//!
//! - [`discover`]: globs, rescans, inotify as a wake-up hint, path → labels.
//! - [`tail`]: one task per file: bounded reads, batches, backpressure, and
//!   positions that move only when the exporters acknowledge.
//! - [`formats`]: CRI, Docker json-file and plain lines; partial lines merged.
//! - [`multiline`]: optional joining of continuation lines.
//! - [`positions`]: the positions file, replaced atomically.
//!
//! Rotation is followed as kubelet and logrotate do it: a renamed file is
//! read to its end through the open descriptor while the new file at the path
//! is read from its start; a file truncated in place (copytruncate) is read
//! again from 0; a deleted file is read to its end and closed. Files are known
//! by device, inode and a fingerprint of their first bytes, so a new file that
//! reuses a deleted file's inode is not mistaken for it.

mod config;
pub mod discover;
mod expand;
pub mod formats;
pub mod multiline;
pub mod positions;
pub mod reader;
mod receiver;
pub mod tail;

pub use config::{FormatName, MultilineConfig, PodLogsConfig, RawPodLogsConfig, StartAt};
pub use receiver::*;

#[cfg(test)]
mod tests;
