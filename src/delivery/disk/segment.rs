//! One segment file of a disk queue: a header naming the format, then
//! records, each framed as
//!
//! ```text
//! magic (4 bytes) | length (u32 LE) | CRC32 of length and payload (u32 LE) | payload
//! ```
//!
//! Reading checks each frame and, past a damaged one (flipped bytes, a
//! zeroed block, a record cut off by a crash), finds the next magic and
//! goes on from there: every intact record is read, whatever is around it.

use std::fs::{File, OpenOptions};
use std::io;
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The first bytes of every segment: the format and its version.
pub const SEGMENT_HEADER: [u8; 8] = *b"FERROQ\x01\x00";
/// Where the first record of a segment starts.
pub const FIRST_RECORD: u64 = SEGMENT_HEADER.len() as u64;
/// The bytes in front of every record's payload.
pub const FRAME_LEN: usize = 12;
const MAGIC: [u8; 4] = *b"\xE5FQr";
/// A length past this is damage, not a record: no batch gets near it.
pub const MAX_RECORD: usize = 512 << 20;
/// How much is read at a time while looking for the next record.
const RESYNC_CHUNK: usize = 64 << 10;

/// A segment's file name: its id, zero-padded so names sort as ids do.
pub fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// The id of a segment file name, or `None` for any other file.
pub fn id_of(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Appends `payload` to `out` as one framed record.
#[cfg(test)]
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_LEN]);
    out.extend_from_slice(payload);
    seal(&mut out[start..]);
}

/// Fills in the frame of `record`: its first [`FRAME_LEN`] bytes were left
/// for it, the payload follows. Framing in place spares a copy of a batch.
pub fn seal(record: &mut [u8]) {
    let (frame, payload) = record.split_at_mut(FRAME_LEN);
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(payload);
    frame[..4].copy_from_slice(&MAGIC);
    frame[4..8].copy_from_slice(&len);
    frame[8..].copy_from_slice(&crc.finalize().to_le_bytes());
}

/// Why bytes of a segment were skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// A frame whose checksum, length or magic is wrong.
    Checksum,
    /// A record cut off at the end of a segment (a crash while writing).
    Truncated,
}

impl Damage {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Checksum => "checksum",
            Self::Truncated => "truncated",
        }
    }
}

/// What is at an offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// An intact record, and where the next one starts.
    Record { payload: Vec<u8>, next: u64 },
    /// The end of what the segment holds.
    End,
    /// Damaged bytes, and where reading goes on.
    Damaged { damage: Damage, next: u64 },
}

/// Reads what is at `offset` of `file`, whose records end at `limit`.
pub fn read_at(file: &File, offset: u64, limit: u64) -> io::Result<Found> {
    if offset >= limit {
        return Ok(Found::End);
    }
    let Some((len, header)) = frame_at(file, offset, limit)? else {
        return damaged(file, offset, limit);
    };
    let mut payload = vec![0; len];
    file.read_exact_at(&mut payload, offset + FRAME_LEN as u64)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[4..8]);
    crc.update(&payload);
    if crc.finalize().to_le_bytes() != header[8..12] {
        return damaged(file, offset, limit);
    }
    Ok(Found::Record {
        payload,
        next: offset + (FRAME_LEN + len) as u64,
    })
}

/// The payload length and frame of the record at `offset`, if its magic is
/// right and its payload fits before `limit`; `None` otherwise.
fn frame_at(file: &File, offset: u64, limit: u64) -> io::Result<Option<(usize, [u8; FRAME_LEN])>> {
    if limit - offset < FRAME_LEN as u64 {
        return Ok(None);
    }
    let mut header = [0; FRAME_LEN];
    file.read_exact_at(&mut header, offset)?;
    if header[..4] != MAGIC {
        return Ok(None);
    }
    let len = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
    let fits = len <= MAX_RECORD && offset + (FRAME_LEN + len) as u64 <= limit;
    Ok(fits.then_some((len, header)))
}

/// The damage at `offset`: reading goes on at the next magic, or at the
/// end if there is none (then the damage is a cut-off tail).
fn damaged(file: &File, offset: u64, limit: u64) -> io::Result<Found> {
    Ok(match next_magic(file, offset + 1, limit)? {
        Some(next) => Found::Damaged {
            damage: Damage::Checksum,
            next,
        },
        None => Found::Damaged {
            damage: Damage::Truncated,
            next: limit,
        },
    })
}

/// The offset of the first magic at or after `from`, before `limit`.
fn next_magic(file: &File, mut from: u64, limit: u64) -> io::Result<Option<u64>> {
    let finder = memchr::memmem::Finder::new(&MAGIC);
    let mut chunk = vec![0; RESYNC_CHUNK];
    while from < limit {
        let n = ((limit - from) as usize).min(RESYNC_CHUNK);
        file.read_exact_at(&mut chunk[..n], from)?;
        if let Some(at) = finder.find(&chunk[..n]) {
            return Ok(Some(from + at as u64));
        }
        if n < MAGIC.len() {
            return Ok(None);
        }
        // Overlap by the magic's length less one: a magic across two chunks.
        from += (n - (MAGIC.len() - 1)) as u64;
        if n < RESYNC_CHUNK {
            return Ok(None);
        }
    }
    Ok(None)
}

/// Reads the first `len` bytes of each record's payload from `offset` to
/// `limit` without reading the rest or checking checksums: what an opening
/// queue learns of its backlog (records, items, age) cheaply. Damaged
/// stretches are stepped over as [`read_at`] would.
pub fn scan_heads(
    file: &File,
    mut offset: u64,
    limit: u64,
    len: usize,
    mut each: impl FnMut(&[u8]),
) -> io::Result<()> {
    let mut head = vec![0; len];
    while offset < limit {
        match frame_at(file, offset, limit)? {
            Some((payload_len, _)) => {
                let n = payload_len.min(len);
                file.read_exact_at(&mut head[..n], offset + FRAME_LEN as u64)?;
                each(&head[..n]);
                offset += (FRAME_LEN + payload_len) as u64;
            }
            None => match next_magic(file, offset + 1, limit)? {
                Some(next) => offset = next,
                None => break,
            },
        }
    }
    Ok(())
}

/// Checks a segment's header: `false` for a file of another format or a
/// later version of this one (which this build must not guess at).
pub fn header_ok(file: &File) -> io::Result<bool> {
    let mut header = [0; SEGMENT_HEADER.len()];
    match file.read_exact_at(&mut header, 0) {
        Ok(()) => Ok(header == SEGMENT_HEADER),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn create(dir: &Path, id: u64) -> io::Result<File> {
    let path = path(dir, id);
    // Append mode: after a failed write is cut off, the next lands at the end.
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)?;
    file.set_len(0)?;
    (&file).write_all(&SEGMENT_HEADER)?;
    Ok(file)
}

pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(id) = entry.file_name().to_str().and_then(id_of) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn segment(records: &[&[u8]]) -> (tempfile::NamedTempFile, Vec<u64>) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let mut bytes = SEGMENT_HEADER.to_vec();
        let mut starts = Vec::new();
        for r in records {
            starts.push(bytes.len() as u64);
            frame(r, &mut bytes);
        }
        file.write_all(&bytes).unwrap();
        (file, starts)
    }

    fn read_all(file: &File) -> (Vec<Vec<u8>>, Vec<Damage>) {
        let limit = file.metadata().unwrap().len();
        let (mut records, mut damage) = (Vec::new(), Vec::new());
        let mut offset = FIRST_RECORD;
        loop {
            match read_at(file, offset, limit).unwrap() {
                Found::Record { payload, next } => {
                    records.push(payload);
                    offset = next;
                }
                Found::Damaged { damage: d, next } => {
                    damage.push(d);
                    offset = next;
                }
                Found::End => return (records, damage),
            }
        }
    }

    #[test]
    fn records_read_back_in_order() {
        let (file, _) = segment(&[b"one", b"", b"three"]);
        let (records, damage) = read_all(file.as_file());
        assert_eq!(records, [&b"one"[..], b"", b"three"]);
        assert!(damage.is_empty());
        assert!(header_ok(file.as_file()).unwrap());
    }

    #[test]
    fn a_flipped_byte_loses_only_its_record() {
        let (file, starts) = segment(&[b"first record", b"second record", b"third record"]);
        file.as_file()
            .write_all_at(b"X", starts[1] + FRAME_LEN as u64 + 2)
            .unwrap();
        let (records, damage) = read_all(file.as_file());
        assert_eq!(records, [&b"first record"[..], b"third record"]);
        assert_eq!(damage, [Damage::Checksum]);
    }

    #[test]
    fn a_flipped_length_or_magic_loses_only_its_record() {
        for at in [0, 5] {
            let (file, starts) = segment(&[b"a", b"b", b"c"]);
            file.as_file()
                .write_all_at(&[0xff], starts[1] + at)
                .unwrap();
            let (records, _) = read_all(file.as_file());
            assert_eq!(records, [&b"a"[..], b"c"], "byte {at} of the frame");
        }
    }

    #[test]
    fn a_zeroed_block_loses_only_the_records_in_it() {
        let records: Vec<Vec<u8>> = (0..200).map(|i| vec![i as u8; 100]).collect();
        let refs: Vec<&[u8]> = records.iter().map(|r| &r[..]).collect();
        let (file, starts) = segment(&refs);
        file.as_file().write_all_at(&[0; 4096], 4096).unwrap();
        let (read, damage) = read_all(file.as_file());
        let lost: Vec<usize> = (0..200)
            .filter(|&i| starts[i] + 112 > 4096 && starts[i] < 8192)
            .collect();
        let kept: Vec<Vec<u8>> = (0..200)
            .filter(|i| !lost.contains(i))
            .map(|i| records[i].clone())
            .collect();
        assert_eq!(read, kept);
        assert_eq!(damage, [Damage::Checksum]);
    }

    #[test]
    fn a_cut_off_tail_is_truncation() {
        let (file, _) = segment(&[b"whole", b"cut off here"]);
        let len = file.as_file().metadata().unwrap().len();
        file.as_file().set_len(len - 3).unwrap();
        let (records, damage) = read_all(file.as_file());
        assert_eq!(records, [&b"whole"[..]]);
        assert_eq!(damage, [Damage::Truncated]);
    }

    #[test]
    fn a_header_of_another_version_is_refused() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"FERROQ\x02\x00").unwrap();
        assert!(!header_ok(file.as_file()).unwrap());
        let empty = tempfile::NamedTempFile::new().unwrap();
        assert!(!header_ok(empty.as_file()).unwrap());
    }

    #[test]
    fn heads_are_scanned_without_reading_payloads() {
        let (file, _) = segment(&[b"abcdef", b"xy", b"123456789"]);
        let limit = file.as_file().metadata().unwrap().len();
        let mut heads = Vec::new();
        scan_heads(file.as_file(), FIRST_RECORD, limit, 4, |h| {
            heads.push(h.to_vec())
        })
        .unwrap();
        assert_eq!(heads, [&b"abcd"[..], b"xy", b"1234"]);
    }

    #[test]
    fn names_and_ids() {
        let dir = Path::new("/q");
        let p = path(dir, 42);
        assert_eq!(id_of(p.file_name().unwrap().to_str().unwrap()), Some(42));
        assert_eq!(id_of("42.seg"), None);
        assert_eq!(id_of("cursor"), None);
    }
}
