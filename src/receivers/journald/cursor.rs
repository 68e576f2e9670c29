//! The journal cursor, saved under `data_dir` once the entries up to it
//! are acknowledged: `<data_dir>/journald/<NAME>.cursor` holds the cursor
//! of the last entry every exporter is done with (journalctl's
//! `__CURSOR`, e.g. `s=…;i=…;b=…;m=…;t=…;x=…`). A restart passes it to
//! `journalctl --after-cursor`, which finds the place even when the file
//! that held the entry was rotated away or vacuumed.

use std::io;
use std::path::{Path, PathBuf};

/// A cursor as journalctl writes them; what is saved is checked to be one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(String);

/// The longest cursor accepted (journald's are about 140 bytes).
const MAX_LEN: usize = 512;

impl Cursor {
    /// `text` if it has a journal cursor's shape: `key=value` parts
    /// separated by `;`, keys among journald's, values lower-case hex.
    pub fn parse(text: &str) -> Option<Cursor> {
        let text = text.trim();
        if text.is_empty() || text.len() > MAX_LEN {
            return None;
        }
        for part in text.split(';') {
            let (key, value) = part.split_once('=')?;
            let hex = !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !matches!(key, "s" | "i" | "b" | "m" | "t" | "x") || !hex {
                return None;
            }
        }
        Some(Cursor(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The entry's wall-clock time in microseconds since the Unix epoch
    /// (the cursor's `t=`), if it has one.
    pub fn realtime_us(&self) -> Option<u64> {
        self.0
            .split(';')
            .find_map(|part| part.strip_prefix("t="))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
    }
}

/// Where the receiver `name` keeps its cursor under `data_dir`.
pub fn cursor_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("journald").join(format!("{name}.cursor"))
}

/// Why a saved cursor could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, io::Error),
    #[error("{0} does not hold a journal cursor")]
    Corrupt(PathBuf),
}

/// The saved cursor; `Ok(None)` on a first start.
pub fn load(path: &Path) -> Result<Option<Cursor>, LoadError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LoadError::Io(path.to_path_buf(), e)),
    };
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(Cursor::parse)
        .map(Some)
        .ok_or_else(|| LoadError::Corrupt(path.to_path_buf()))
}

/// Replaces the saved cursor, atomically and durably.
pub fn save(path: &Path, cursor: &Cursor) -> io::Result<()> {
    crate::delivery::checkpoint::replace(path, format!("{}\n", cursor.0).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = "s=4a6aebf0845444528eee9627f2d6af12;i=2;b=0123456789abcdef0123456789abcdef;m=3e9;t=6620ee92562c3;x=2e7636ab35db7f6f";

    #[test]
    fn a_real_cursor_is_accepted_and_its_time_read() {
        let cursor = Cursor::parse(REAL).unwrap();
        assert_eq!(cursor.realtime_us(), Some(0x6620ee92562c3));
        assert!(Cursor::parse(&format!("{REAL}\n")).is_some());
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "garbage",
            "s=xyz",
            "s=12;q=3",
            "s=12;;i=3",
            "s=12 ;i=3",
            "s=ABC",
            "--after-cursor=1",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Cursor::parse(&"s=1;".repeat(200)), None);
    }

    #[test]
    fn saved_then_loaded_and_a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = cursor_path(dir.path(), "node");
        assert!(load(&path).unwrap().is_none());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let cursor = Cursor::parse(REAL).unwrap();
        save(&path, &cursor).unwrap();
        assert_eq!(load(&path).unwrap(), Some(cursor));
        std::fs::write(&path, b"\xff\xfe not a cursor").unwrap();
        assert!(matches!(load(&path), Err(LoadError::Corrupt(_))));
    }
}
