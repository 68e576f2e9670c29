//! journald's export format, as `journalctl --output=export` writes it
//! (<https://systemd.io/JOURNAL_EXPORT_FORMATS/>), read as it streams in.
//!
//! An entry is a run of fields ended by an empty line. A field is either
//! `NAME=value\n` (text without a newline) or `NAME\n` followed by the
//! value's length as a little-endian u64, the value's bytes and `\n`
//! (binary: values with newlines or other control characters).
//!
//! The reader keeps only the fields it was asked for, each cut to a byte
//! cap, and skips the rest without holding them: memory stays bounded
//! whatever size the journal's fields have. Input that breaks the format
//! is an error; what was read before it stands.

/// A field name longer than this is not the export format (journald's
/// limit is 64).
const MAX_NAME: usize = 256;
/// A binary value longer than this is not the export format (journald
/// refuses entries beyond 768 MiB).
const MAX_VALUE: u64 = 1 << 30;

/// Where the reader stands in the stream.
#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// At the start of a field name, or of the empty line ending an entry.
    Name,
    /// In a text field's value, up to `\n`.
    Text,
    /// In a binary field's length: `have` of its 8 bytes read.
    Length { have: usize },
    /// In a binary field's value: `left` bytes to go.
    Data { left: u64 },
    /// After a binary value: its `\n`.
    DataEnd,
}

/// Why the stream is not the export format.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("a field name longer than {MAX_NAME} bytes")]
    NameTooLong,
    #[error("a binary field `{0}` not ended by a newline")]
    UnterminatedBinary(String),
    #[error("a field name with a character that is not allowed in one")]
    BadName,
    #[error("a binary field of {0} bytes, more than the journal allows")]
    ValueTooLong(u64),
}

/// One entry: the value of each wanted field it had (cut to the cap), and
/// whether a cut happened.
#[derive(Debug, Default)]
pub struct Fields {
    values: Vec<Vec<u8>>,
    present: Vec<bool>,
    cut: Vec<bool>,
}

impl Fields {
    fn with_slots(n: usize) -> Self {
        Self {
            values: vec![Vec::new(); n],
            present: vec![false; n],
            cut: vec![false; n],
        }
    }

    /// The value of the wanted field at `slot`, if the entry had it.
    pub fn get(&self, slot: usize) -> Option<&[u8]> {
        self.present
            .get(slot)
            .copied()
            .unwrap_or(false)
            .then(|| &self.values[slot][..])
    }

    /// Whether the value at `slot` was longer than the cap and cut.
    pub fn was_cut(&self, slot: usize) -> bool {
        self.cut.get(slot).copied().unwrap_or(false)
    }

    /// Forgets the entry; the values' buffers are kept for the next one.
    fn clear(&mut self) {
        self.values.iter_mut().for_each(Vec::clear);
        self.present.iter_mut().for_each(|p| *p = false);
        self.cut.iter_mut().for_each(|c| *c = false);
    }
}

/// Reads the export format chunk by chunk and hands out complete entries.
pub struct ExportReader {
    /// The field names wanted, in slot order.
    wanted: Vec<Vec<u8>>,
    /// The cap of each slot's value.
    caps: Vec<usize>,
    state: State,
    /// The name being read, while in [`State::Name`].
    name: Vec<u8>,
    /// The name of the field whose value is being read.
    field: Vec<u8>,
    /// The slot of the field being read, if it is wanted.
    slot: Option<usize>,
    length: [u8; 8],
    /// The entry being read.
    fields: Fields,
    /// Fields read in the entry being read (an empty line with none is not an entry).
    field_count: usize,
}

impl ExportReader {
    /// A reader keeping the fields `wanted` (name, cap on its value's bytes).
    pub fn new(wanted: &[(&str, usize)]) -> Self {
        let n = wanted.len();
        Self {
            wanted: wanted.iter().map(|(n, _)| n.as_bytes().to_vec()).collect(),
            caps: wanted.iter().map(|(_, cap)| *cap).collect(),
            state: State::Name,
            name: Vec::new(),
            field: Vec::new(),
            slot: None,
            length: [0; 8],
            fields: Fields::with_slots(n),
            field_count: 0,
        }
    }

    /// The `__CURSOR` of the entry being read, if it came already (it is
    /// the first field journalctl writes) and is wanted at slot 0.
    pub fn current_cursor(&self) -> Option<&str> {
        self.fields
            .get(0)
            .filter(|_| self.wanted.first().is_some_and(|w| w == b"__CURSOR"))
            .and_then(|c| std::str::from_utf8(c).ok())
    }

    /// Reads `chunk`, calling `entry` for each entry it completes. On an
    /// error the reader is left unusable; entries before it were handed out.
    pub fn push(
        &mut self,
        mut chunk: &[u8],
        mut entry: impl FnMut(&Fields),
    ) -> Result<(), ExportError> {
        while !chunk.is_empty() {
            match self.state {
                State::Name => {
                    let Some(end) = memchr::memchr2(b'=', b'\n', chunk) else {
                        self.take_name(chunk)?;
                        return Ok(());
                    };
                    self.take_name(&chunk[..end])?;
                    let delimiter = chunk[end];
                    chunk = &chunk[end + 1..];
                    if delimiter == b'\n' && self.name.is_empty() {
                        self.end_entry(&mut entry);
                        continue;
                    }
                    self.start_field()?;
                    self.state = if delimiter == b'=' {
                        State::Text
                    } else {
                        State::Length { have: 0 }
                    };
                }
                State::Text => {
                    let end = memchr::memchr(b'\n', chunk);
                    let value = &chunk[..end.unwrap_or(chunk.len())];
                    self.take_value(value);
                    match end {
                        Some(end) => {
                            chunk = &chunk[end + 1..];
                            self.state = State::Name;
                        }
                        None => return Ok(()),
                    }
                }
                State::Length { have } => {
                    let n = (8 - have).min(chunk.len());
                    self.length[have..have + n].copy_from_slice(&chunk[..n]);
                    chunk = &chunk[n..];
                    self.state = if have + n == 8 {
                        let left = u64::from_le_bytes(self.length);
                        if left > MAX_VALUE {
                            return Err(ExportError::ValueTooLong(left));
                        }
                        State::Data { left }
                    } else {
                        State::Length { have: have + n }
                    };
                }
                State::Data { left } => {
                    let n = (left.min(chunk.len() as u64)) as usize;
                    self.take_value(&chunk[..n]);
                    chunk = &chunk[n..];
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data { left }
                    };
                }
                State::DataEnd => {
                    if chunk[0] != b'\n' {
                        return Err(ExportError::UnterminatedBinary(
                            String::from_utf8_lossy(&self.field).into_owned(),
                        ));
                    }
                    chunk = &chunk[1..];
                    self.state = State::Name;
                }
            }
        }
        Ok(())
    }

    fn take_name(&mut self, part: &[u8]) -> Result<(), ExportError> {
        if self.name.len() + part.len() > MAX_NAME {
            return Err(ExportError::NameTooLong);
        }
        self.name.extend_from_slice(part);
        Ok(())
    }

    /// A field's name is complete: is it wanted?
    fn start_field(&mut self) -> Result<(), ExportError> {
        std::mem::swap(&mut self.name, &mut self.field);
        self.name.clear();
        if !is_field_name(&self.field) {
            return Err(ExportError::BadName);
        }
        self.slot = self.wanted.iter().position(|w| *w == self.field);
        self.field_count += 1;
        if let Some(slot) = self.slot {
            // A field given twice keeps its first value, as journalctl's
            // single-value views do.
            if self.fields.present[slot] {
                self.slot = None;
            } else {
                self.fields.present[slot] = true;
            }
        }
        Ok(())
    }

    fn take_value(&mut self, part: &[u8]) {
        let Some(slot) = self.slot else {
            return;
        };
        let cap = self.caps[slot];
        let value = &mut self.fields.values[slot];
        let room = cap.saturating_sub(value.len());
        if part.len() > room {
            self.fields.cut[slot] = true;
        }
        value.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn end_entry(&mut self, entry: &mut impl FnMut(&Fields)) {
        if self.field_count == 0 {
            return;
        }
        entry(&self.fields);
        self.fields.clear();
        self.field_count = 0;
    }
}

/// A journal field name as journald allows them: upper-case letters,
/// digits and `_`, not starting with a digit (the export format adds the
/// `__CURSOR`-style addresses, which fit the same rule).
pub fn is_field_name(name: &[u8]) -> bool {
    !name.is_empty()
        && !name[0].is_ascii_digit()
        && name
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}
