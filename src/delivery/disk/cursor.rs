//! Where delivery stands, saved beside the segments: the segment and
//! offset of the first record not yet done, with a checksum.

use std::io;
use std::path::Path;

use super::segment::FIRST_RECORD;

/// `cursor`: segment id, offset, and a checksum of both.
const CURSOR_FILE: &str = "cursor";

pub(super) fn save(dir: &Path, (segment, offset): (u64, u64)) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(20);
    bytes.extend_from_slice(&segment.to_le_bytes());
    bytes.extend_from_slice(&offset.to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
    let tmp = dir.join("cursor.tmp");
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, dir.join(CURSOR_FILE))
}

/// The saved cursor; `Ok(None)` if there is none, `Err` if it is damaged.
pub(super) fn read(dir: &Path) -> Result<Option<(u64, u64)>, ()> {
    let bytes = match std::fs::read(dir.join(CURSOR_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(_) => return Err(()),
    };
    if bytes.len() != 20 || crc32fast::hash(&bytes[..16]).to_le_bytes() != bytes[16..20] {
        return Err(());
    }
    let segment = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let offset = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    Ok(Some((segment, offset.max(FIRST_RECORD))))
}
