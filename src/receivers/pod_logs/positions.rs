//! Where each file has been read to and acknowledged: the positions file.
//!
//! `<data_dir>/pod_logs/<NAME>.positions.json` holds, per file identity
//! (device, inode, and a fingerprint of its first bytes), the offset up to
//! which every line has been delivered or given up on by the exporters. It is
//! replaced atomically (write a temp file, fsync, rename, fsync the
//! directory: [`crate::delivery::checkpoint`]), so a crash leaves the
//! previous or the next version, never half of one.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How many leading bytes identify a file's content, with its device and inode.
pub const FINGERPRINT_BYTES: u64 = 1024;

/// A file's device and inode: what stays the same across a rename.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

impl FileKey {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// An xxh3 hash of a file's first `len` bytes (up to [`FINGERPRINT_BYTES`]):
/// a new file that got a deleted file's inode has other first bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub len: u64,
    pub hash: u64,
}

impl Fingerprint {
    /// The fingerprint of `file` as it is now (of up to `FINGERPRINT_BYTES`).
    pub fn read(file: &File, size: u64) -> io::Result<Self> {
        Self::read_len(file, size.min(FINGERPRINT_BYTES))
    }

    /// The fingerprint of exactly the first `len` bytes; shorter if the file is.
    pub fn read_len(file: &File, len: u64) -> io::Result<Self> {
        let mut buf = vec![0; len as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        Ok(Self {
            len: filled as u64,
            hash: xxhash_rust::xxh3::xxh3_64(&buf),
        })
    }

    /// Whether `file` still starts with the bytes this fingerprint was taken of.
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        Ok(Self::read_len(file, self.len)? == *self)
    }

    pub fn is_complete(&self) -> bool {
        self.len >= FINGERPRINT_BYTES
    }
}

/// One file's saved position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The path the file had when last seen under the include globs.
    pub path: PathBuf,
    pub key: FileKey,
    pub fingerprint: Fingerprint,
    /// Everything before this offset has been acknowledged.
    pub offset: u64,
}

/// The positions of every file being tailed, shared by the tailers and
/// written out by the receiver.
#[derive(Debug, Default)]
pub struct Positions {
    entries: HashMap<FileKey, Position>,
    dirty: bool,
}

impl Positions {
    pub fn insert(&mut self, position: Position) {
        self.entries.insert(position.key, position);
        self.dirty = true;
    }

    pub fn get(&self, key: &FileKey) -> Option<&Position> {
        self.entries.get(key)
    }

    /// Moves a file's acknowledged offset.
    pub fn set_offset(&mut self, key: FileKey, offset: u64) {
        if let Some(p) = self.entries.get_mut(&key)
            && p.offset != offset
        {
            p.offset = offset;
            self.dirty = true;
        }
    }

    pub fn set_fingerprint(&mut self, key: FileKey, fingerprint: Fingerprint) {
        if let Some(p) = self.entries.get_mut(&key)
            && p.fingerprint != fingerprint
        {
            p.fingerprint = fingerprint;
            self.dirty = true;
        }
    }

    pub fn set_path(&mut self, key: FileKey, path: &Path) {
        if let Some(p) = self.entries.get_mut(&key)
            && p.path != path
        {
            p.path = path.to_path_buf();
            self.dirty = true;
        }
    }

    pub fn remove(&mut self, key: &FileKey) {
        if self.entries.remove(key).is_some() {
            self.dirty = true;
        }
    }

    /// Asks for the next write even if nothing changed (the last one failed,
    /// or a start decided new positions).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries to write if anything changed since the last call.
    pub fn take_changes(&mut self) -> Option<Vec<Position>> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        Some(self.snapshot())
    }

    /// Every entry, sorted by path for a stable file.
    pub fn snapshot(&self) -> Vec<Position> {
        let mut all: Vec<Position> = self.entries.values().cloned().collect();
        all.sort_by(|a, b| a.path.cmp(&b.path).then(a.key.cmp(&b.key)));
        all
    }
}

#[derive(Serialize, Deserialize)]
struct FileJson {
    version: u32,
    files: Vec<EntryJson>,
}

#[derive(Serialize, Deserialize)]
struct EntryJson {
    path: String,
    dev: u64,
    inode: u64,
    /// xxh3 of the first `fingerprint_len` bytes, as 16 hex digits.
    fingerprint: String,
    fingerprint_len: u64,
    offset: u64,
}

const VERSION: u32 = 1;

/// Why a positions file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, io::Error),
    #[error("{0} is not a positions file: {1}")]
    Corrupt(PathBuf, String),
}

/// Reads the positions file; `Ok(None)` when there is none yet (a first start).
pub fn load(path: &Path) -> Result<Option<Vec<Position>>, LoadError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LoadError::Io(path.to_path_buf(), e)),
    };
    let file: FileJson = serde_json::from_slice(&bytes)
        .map_err(|e| LoadError::Corrupt(path.to_path_buf(), e.to_string()))?;
    if file.version != VERSION {
        return Err(LoadError::Corrupt(
            path.to_path_buf(),
            format!("version {} (this ferro writes {VERSION})", file.version),
        ));
    }
    file.files
        .into_iter()
        .map(|e| {
            let hash = u64::from_str_radix(&e.fingerprint, 16).map_err(|_| {
                LoadError::Corrupt(
                    path.to_path_buf(),
                    format!("fingerprint `{}` is not hex", e.fingerprint),
                )
            })?;
            Ok(Position {
                path: PathBuf::from(e.path),
                key: FileKey {
                    dev: e.dev,
                    ino: e.inode,
                },
                fingerprint: Fingerprint {
                    len: e.fingerprint_len.min(FINGERPRINT_BYTES),
                    hash,
                },
                offset: e.offset,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Replaces the positions file with `positions`, atomically.
pub fn save(path: &Path, positions: &[Position]) -> io::Result<()> {
    let doc = FileJson {
        version: VERSION,
        files: positions
            .iter()
            .map(|p| EntryJson {
                path: p.path.to_string_lossy().into_owned(),
                dev: p.key.dev,
                inode: p.key.ino,
                fingerprint: format!("{:016x}", p.fingerprint.hash),
                fingerprint_len: p.fingerprint.len,
                offset: p.offset,
            })
            .collect(),
    };
    let mut text = serde_json::to_vec_pretty(&doc).map_err(io::Error::other)?;
    text.push(b'\n');
    crate::delivery::checkpoint::replace(path, &text)
}

#[cfg(test)]
mod tests;
