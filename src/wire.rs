//! Reading protobuf's wire format field by field, without decoding into
//! types: what the OTLP and pprof walkers use to check a message (and count
//! what is in it) before anything is allocated for it.
//!
//! It reads as prost reads (<https://protobuf.dev/programming-guides/encoding/>):
//! varints of at most ten bytes with the tenth 0 or 1, field numbers from 1,
//! wire types 0–5, and groups skipped the way prost skips an unknown one.
//! A walker that accepts only what this reader accepts, and checks its
//! fields' types with [`Value`], accepts nothing prost would refuse.

/// Why bytes are not a protobuf message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A field's value as it is on the wire.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64,
    Fixed32,
    Len(&'a [u8]),
    /// A group, already skipped.
    Group,
}

impl<'a> Value<'a> {
    /// An embedded message's bytes.
    #[inline]
    pub fn message(self) -> Result<&'a [u8], WireError> {
        match self {
            Value::Len(bytes) => Ok(bytes),
            _ => Err(WireError("a message field has the wrong wire type")),
        }
    }

    #[inline]
    pub fn bytes(self) -> Result<&'a [u8], WireError> {
        match self {
            Value::Len(bytes) => Ok(bytes),
            _ => Err(WireError("a bytes field has the wrong wire type")),
        }
    }

    /// A string field, checked to be UTF-8.
    pub fn string(self) -> Result<&'a str, WireError> {
        match self {
            Value::Len(bytes) => std::str::from_utf8(bytes)
                .map_err(|_| WireError("a string field is not valid UTF-8")),
            _ => Err(WireError("a string field has the wrong wire type")),
        }
    }

    /// Checks a string field as [`Value::string`] does; its length. Keys,
    /// names and paths are nearly always ASCII: that check runs a word at a
    /// time, cheaper than a UTF-8 validation call.
    #[inline]
    pub fn check_string(self) -> Result<usize, WireError> {
        match self {
            Value::Len(bytes) if bytes.is_ascii() => Ok(bytes.len()),
            _ => self.string().map(str::len),
        }
    }

    #[inline]
    pub fn varint(self) -> Result<u64, WireError> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(WireError("an integer field has the wrong wire type")),
        }
    }

    #[inline]
    pub fn fixed64(self) -> Result<(), WireError> {
        match self {
            Value::Fixed64 => Ok(()),
            _ => Err(WireError("a fixed64 field has the wrong wire type")),
        }
    }

    #[inline]
    pub fn fixed32(self) -> Result<(), WireError> {
        match self {
            Value::Fixed32 => Ok(()),
            _ => Err(WireError("a fixed32 field has the wrong wire type")),
        }
    }

    /// Each value of a repeated integer field occurrence: one varint, or a
    /// packed run of them that must end exactly at its length.
    #[inline]
    pub fn each_varint(self, mut f: impl FnMut(u64)) -> Result<(), WireError> {
        match self {
            Value::Varint(v) => {
                f(v);
                Ok(())
            }
            Value::Len(bytes) => {
                let mut packed = Reader::new(bytes);
                while !packed.at_end() {
                    f(packed.varint()?);
                }
                Ok(())
            }
            _ => Err(WireError("an integer field has the wrong wire type")),
        }
    }

    /// How many values a repeated integer field occurrence holds.
    #[inline]
    pub fn count_varints(self) -> Result<u64, WireError> {
        let mut n = 0;
        self.each_varint(|_| n += 1)?;
        Ok(n)
    }
}

/// The fields of one message, in order.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// A reader of `buf` from byte `pos` on (a field found by an earlier
    /// pass).
    pub fn starting_at(buf: &'a [u8], pos: usize) -> Self {
        Self {
            buf,
            pos: pos.min(buf.len()),
        }
    }

    /// How far into the message the reader is, in bytes.
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline(always)]
    pub fn varint(&mut self) -> Result<u64, WireError> {
        // Tags, lengths, string indices and small ids fit in one byte; the
        // ids of a profile of a few thousand functions, in two.
        match self.buf.get(self.pos..self.pos + 2) {
            Some(&[b0, _]) if b0 < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b0))
            }
            Some(&[b0, b1]) if b1 < 0x80 => {
                self.pos += 2;
                Ok(u64::from(b0 & 0x7f) | u64::from(b1) << 7)
            }
            _ => self.varint_slow(),
        }
    }

    /// As prost reads one: at most ten bytes, the tenth 0 or 1; longer
    /// encodings of small values are accepted, as prost accepts them.
    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(WireError("a varint runs past the end"));
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(WireError("a varint is longer than 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError("a varint is longer than 64 bits"))
    }

    #[inline(always)]
    fn skip(&mut self, n: u64) -> Result<&'a [u8], WireError> {
        let rest = (self.buf.len() - self.pos) as u64;
        if n > rest {
            return Err(WireError("a field runs past the end of its message"));
        }
        let end = self.pos + n as usize;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// A key as prost's `decode_key` reads it: `(field, wire type)`.
    #[inline(always)]
    fn key(&mut self) -> Result<(u32, u64), WireError> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(WireError("a field key is out of range"));
        }
        let wire = key & 7;
        if wire > 5 {
            return Err(WireError("a field has an unknown wire type"));
        }
        let field = key as u32 >> 3;
        if field == 0 {
            return Err(WireError("a field number is 0"));
        }
        Ok((field, wire))
    }

    /// The next field, or `None` at the end; a group is an error (formats
    /// such as OTLP have none, and refusing one is always safe).
    #[inline(always)]
    pub fn field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        self.next_field(None)
    }

    /// The next field, or `None` at the end; a group is skipped as prost
    /// skips one, `ctx` being prost's remaining recursion budget for the
    /// fields of this message.
    #[inline(always)]
    pub fn field_skipping_groups(
        &mut self,
        ctx: u32,
    ) -> Result<Option<(u32, Value<'a>)>, WireError> {
        self.next_field(Some(ctx))
    }

    #[inline(always)]
    fn next_field(&mut self, groups: Option<u32>) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.at_end() {
            return Ok(None);
        }
        let (field, wire) = self.key()?;
        let value = match wire {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.skip(8)?;
                Value::Fixed64
            }
            2 => {
                let len = self.varint()?;
                Value::Len(self.skip(len)?)
            }
            3 => match groups {
                Some(ctx) => {
                    self.skip_group(field, ctx)?;
                    Value::Group
                }
                None => return Err(WireError("a group where this format has none")),
            },
            5 => {
                self.skip(4)?;
                Value::Fixed32
            }
            _ => return Err(WireError("an end-group tag has no group")),
        };
        Ok(Some((field, value)))
    }

    /// prost's `skip_field` for a group: fields up to the end-group tag of
    /// the same number, each costing one level of the recursion budget.
    #[cold]
    fn skip_group(&mut self, field: u32, ctx: u32) -> Result<(), WireError> {
        if ctx == 0 {
            return Err(WireError("groups are nested too deeply"));
        }
        loop {
            if self.at_end() {
                return Err(WireError("a group runs past the end of its message"));
            }
            let (inner, wire) = self.key()?;
            if wire == 4 {
                if inner != field {
                    return Err(WireError("a group ends with another field's tag"));
                }
                return Ok(());
            }
            if ctx - 1 == 0 {
                return Err(WireError("groups are nested too deeply"));
            }
            match wire {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.skip(8)?;
                }
                2 => {
                    let len = self.varint()?;
                    self.skip(len)?;
                }
                3 => self.skip_group(inner, ctx - 1)?,
                _ => {
                    self.skip(4)?;
                }
            }
        }
    }
}
