//! Framing of container log lines: CRI, Docker json-file and plain text, with
//! partial lines merged back into the line the application wrote.
//!
//! - CRI (containerd, CRI-O): `<RFC3339Nano> <stdout|stderr> <P|F> <content>`;
//!   the runtime splits long lines into `P` (partial) pieces ended by an `F`.
//!   <https://github.com/kubernetes/design-proposals-archive/blob/main/node/kubelet-cri-logging.md>
//! - Docker json-file: `{"log":"…","stream":"stdout","time":"…"}`; a `log`
//!   that does not end in `\n` is a piece continued by the next line.
//! - Plain: a line is an entry, timestamped when read.
//!
//! A line that does not fit its file's format is passed on whole as plain
//! text with the read time and counted; invalid UTF-8 is replaced and counted;
//! nothing here drops a line or panics on input.

use serde::Deserialize;
use std::borrow::Cow;

use super::config::FormatName;

/// The stream a container wrote a line to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StdStream {
    Stdout = 0,
    Stderr = 1,
}

impl StdStream {
    fn parse(name: &[u8]) -> Option<Self> {
        match name {
            b"stdout" => Some(Self::Stdout),
            b"stderr" => Some(Self::Stderr),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// One line as read from a file, without its `\n`. A line longer than the
/// reader's cap is `cut`: `head` is its beginning and `tail` its last bytes
/// (where a Docker line keeps its `stream` and `time`).
#[derive(Clone, Copy, Debug)]
pub struct RawLine<'a> {
    pub head: &'a [u8],
    pub tail: &'a [u8],
    pub cut: bool,
    /// File offset of the line's first byte.
    pub start: u64,
}

impl<'a> RawLine<'a> {
    pub fn whole(bytes: &'a [u8], start: u64) -> Self {
        Self {
            head: bytes,
            tail: &[],
            cut: false,
            start,
        }
    }
}

/// A finished entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub stream: Option<StdStream>,
    pub timestamp_ns: i64,
    pub text: String,
    pub truncated: bool,
    /// File offset where the entry's first piece starts.
    pub start: u64,
}

/// What went wrong with lines, for the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub truncated: u64,
    pub malformed: u64,
    pub invalid_utf8: u64,
}

/// Turns a file's raw lines into entries; keeps the pieces of partial lines
/// per stream until their last piece arrives.
pub struct Decoder {
    format: Detected,
    max_line_size: usize,
    partial: [Option<Partial>; 2],
    pub tally: Tally,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Detected {
    Unknown,
    Cri,
    Docker,
    Plain,
}

struct Partial {
    start: u64,
    timestamp_ns: i64,
    bytes: Vec<u8>,
    truncated: bool,
}

/// One line parsed by its format.
struct Parsed<'a> {
    stream: StdStream,
    timestamp_ns: i64,
    content: Cow<'a, [u8]>,
    /// More pieces follow.
    partial: bool,
}

impl Decoder {
    pub fn new(format: FormatName, max_line_size: usize) -> Self {
        Self {
            format: match format {
                FormatName::Auto => Detected::Unknown,
                FormatName::Cri => Detected::Cri,
                FormatName::Docker => Detected::Docker,
                FormatName::Plain => Detected::Plain,
            },
            max_line_size,
            partial: [None, None],
            tally: Tally::default(),
        }
    }

    /// The format in use, once known.
    pub fn format(&self) -> Option<FormatName> {
        match self.format {
            Detected::Unknown => None,
            Detected::Cri => Some(FormatName::Cri),
            Detected::Docker => Some(FormatName::Docker),
            Detected::Plain => Some(FormatName::Plain),
        }
    }

    /// Where the oldest piece still waiting for its end starts: a restart
    /// must read again from there.
    pub fn pending_start(&self) -> Option<u64> {
        self.partial.iter().flatten().map(|p| p.start).min()
    }

    /// Decodes one raw line; `None` while the entry it belongs to continues.
    pub fn push(&mut self, raw: RawLine<'_>, now_ns: i64) -> Option<Decoded> {
        if self.format == Detected::Unknown {
            self.format = detect(raw);
        }
        let parsed = match self.format {
            Detected::Cri => parse_cri(raw),
            Detected::Docker => parse_docker(raw),
            Detected::Plain | Detected::Unknown => {
                let mut head = raw.head;
                if !raw.cut && head.last() == Some(&b'\r') {
                    head = &head[..head.len() - 1];
                }
                return Some(self.finish(None, now_ns, head, raw.cut, raw.start));
            }
        };
        let Some(parsed) = parsed else {
            self.tally.malformed += 1;
            return Some(self.finish(None, now_ns, raw.head, raw.cut, raw.start));
        };
        let slot = &mut self.partial[parsed.stream as usize];
        let cap = self.max_line_size + 4;
        match slot {
            Some(piece) => {
                append_capped(&mut piece.bytes, &parsed.content, cap, &mut piece.truncated);
                piece.truncated |= raw.cut;
                if parsed.partial {
                    return None;
                }
                let piece = slot.take()?;
                Some(self.finish(
                    Some(parsed.stream),
                    piece.timestamp_ns,
                    &piece.bytes,
                    piece.truncated,
                    piece.start,
                ))
            }
            None if parsed.partial => {
                let mut piece = Partial {
                    start: raw.start,
                    timestamp_ns: parsed.timestamp_ns,
                    bytes: Vec::new(),
                    truncated: raw.cut,
                };
                append_capped(&mut piece.bytes, &parsed.content, cap, &mut piece.truncated);
                *slot = Some(piece);
                None
            }
            None => Some(self.finish(
                Some(parsed.stream),
                parsed.timestamp_ns,
                &parsed.content,
                raw.cut,
                raw.start,
            )),
        }
    }

    /// Ends every entry still waiting for pieces (the file is done or was
    /// truncated): what was read of them is passed on, not lost.
    pub fn flush(&mut self) -> Vec<Decoded> {
        let mut out = Vec::new();
        for (i, slot) in self.partial.iter_mut().enumerate() {
            if let Some(piece) = slot.take() {
                out.push((i, piece));
            }
        }
        out.sort_by_key(|(_, p)| p.start);
        out.into_iter()
            .map(|(i, p)| {
                let stream = if i == 0 {
                    StdStream::Stdout
                } else {
                    StdStream::Stderr
                };
                self.finish(Some(stream), p.timestamp_ns, &p.bytes, p.truncated, p.start)
            })
            .collect()
    }

    /// Makes the text: invalid UTF-8 replaced, cut to `max_line_size` on a
    /// character boundary, both counted.
    fn finish(
        &mut self,
        stream: Option<StdStream>,
        timestamp_ns: i64,
        bytes: &[u8],
        truncated: bool,
        start: u64,
    ) -> Decoded {
        // Checked with `from_utf8` first: it is much faster than the lossy
        // walk, which is only needed for the rare line that is not UTF-8.
        let mut text = match std::str::from_utf8(bytes) {
            Ok(valid) => valid.to_string(),
            Err(_) => {
                self.tally.invalid_utf8 += 1;
                String::from_utf8_lossy(bytes).into_owned()
            }
        };
        let mut truncated = truncated;
        if text.len() > self.max_line_size {
            let mut end = self.max_line_size;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            truncated = true;
        }
        if truncated {
            self.tally.truncated += 1;
        }
        Decoded {
            stream,
            timestamp_ns,
            text,
            truncated,
            start,
        }
    }
}

/// Appends up to `cap` bytes in all; notes when something was left out.
fn append_capped(into: &mut Vec<u8>, piece: &[u8], cap: usize, truncated: &mut bool) {
    let room = cap.saturating_sub(into.len());
    if piece.len() > room {
        *truncated = true;
    }
    into.extend_from_slice(&piece[..piece.len().min(room)]);
}

fn detect(raw: RawLine<'_>) -> Detected {
    if parse_cri(raw).is_some() {
        Detected::Cri
    } else if raw.head.first() == Some(&b'{') && parse_docker(raw).is_some() {
        Detected::Docker
    } else {
        Detected::Plain
    }
}

fn parse_cri(raw: RawLine<'_>) -> Option<Parsed<'_>> {
    let line = raw.head;
    let mut fields = line.splitn(4, |&b| b == b' ');
    let timestamp_ns = parse_rfc3339(fields.next()?)?;
    let stream = StdStream::parse(fields.next()?)?;
    // Tags are `:`-separated; the first is P or F. Later ones are reserved.
    let tag = fields.next()?;
    let partial = match tag.split(|&b| b == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    let content = fields.next().unwrap_or_default();
    Some(Parsed {
        stream,
        timestamp_ns,
        content: Cow::Borrowed(content),
        partial,
    })
}

#[derive(Deserialize)]
struct DockerLine<'a> {
    #[serde(borrow, default)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

fn parse_docker(raw: RawLine<'_>) -> Option<Parsed<'_>> {
    if raw.cut {
        return parse_docker_cut(raw);
    }
    let line: DockerLine<'_> = serde_json::from_slice(raw.head).ok()?;
    let stream = StdStream::parse(line.stream.as_bytes())?;
    let timestamp_ns = parse_rfc3339(line.time.as_bytes())?;
    let (content, partial) = match line.log {
        Cow::Borrowed(s) => match s.strip_suffix('\n') {
            Some(s) => (Cow::Borrowed(s.as_bytes()), false),
            None => (Cow::Borrowed(s.as_bytes()), true),
        },
        Cow::Owned(mut s) => {
            let partial = !s.ends_with('\n');
            if !partial {
                s.pop();
            }
            (Cow::Owned(s.into_bytes()), partial)
        }
    };
    Some(Parsed {
        stream,
        timestamp_ns,
        content,
        partial,
    })
}

/// A Docker line too long to keep whole: the `log` string is decoded as far
/// as the head goes; `stream` and `time` come from the tail, where Docker
/// writes them after `log`.
fn parse_docker_cut(raw: RawLine<'_>) -> Option<Parsed<'_>> {
    const OPEN: &[u8] = b"{\"log\":\"";
    let body = raw.head.strip_prefix(OPEN)?;
    let (content, _) = unescape_json_prefix(body);
    let tail = raw.tail;
    let stream_key = b"\",\"stream\":\"";
    let at = memchr::memmem::rfind(tail, stream_key)?;
    let rest = &tail[at + stream_key.len()..];
    let stream = StdStream::parse(&rest[..memchr::memchr(b'"', rest)?])?;
    let time_key = b"\"time\":\"";
    let t = memchr::memmem::rfind(tail, time_key)?;
    let rest = &tail[t + time_key.len()..];
    let timestamp_ns = parse_rfc3339(&rest[..memchr::memchr(b'"', rest)?])?;
    // The log string ends just before `","stream"`: a final `\n` escape (an
    // odd run of backslashes before the `n`) means the line is complete.
    let before = &tail[..at];
    let partial = !(before.ends_with(b"\\n")
        && before[..before.len() - 1]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count()
            % 2
            == 1);
    Some(Parsed {
        stream,
        timestamp_ns,
        content: Cow::Owned(content),
        partial,
    })
}

/// Decodes a JSON string body up to its closing quote or the end of the
/// input (an escape cut in the middle is left out). Returns the bytes and
/// whether the closing quote was found.
fn unescape_json_prefix(input: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        match b {
            b'"' => return (out, true),
            b'\\' => {
                let Some(&e) = input.get(i + 1) else { break };
                let simple = match e {
                    b'"' => Some(b'"'),
                    b'\\' => Some(b'\\'),
                    b'/' => Some(b'/'),
                    b'b' => Some(0x08),
                    b'f' => Some(0x0c),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    _ => None,
                };
                if let Some(c) = simple {
                    out.push(c);
                    i += 2;
                    continue;
                }
                if e != b'u' {
                    // Not JSON; keep it as written.
                    out.push(b'\\');
                    i += 1;
                    continue;
                }
                let Some(unit) = hex4(input.get(i + 2..i + 6)) else {
                    break;
                };
                i += 6;
                let code = if (0xd800..0xdc00).contains(&unit) {
                    match (input.get(i..i + 2), hex4(input.get(i + 2..i + 6))) {
                        (Some(b"\\u"), Some(low)) if (0xdc00..0xe000).contains(&low) => {
                            i += 6;
                            0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
                        }
                        _ => 0xfffd,
                    }
                } else {
                    unit
                };
                let c = char::from_u32(code).unwrap_or('\u{fffd}');
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    (out, false)
}

fn hex4(digits: Option<&[u8]>) -> Option<u32> {
    let digits = digits?;
    if digits.len() != 4 {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// Parses an RFC 3339 timestamp with optional fraction (up to nanoseconds)
/// and a `Z` or `±hh:mm` offset, into nanoseconds since the Unix epoch.
pub fn parse_rfc3339(text: &[u8]) -> Option<i64> {
    fn num(bytes: &[u8]) -> Option<i64> {
        if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            bytes
                .iter()
                .fold(0i64, |n, &b| n * 10 + i64::from(b - b'0')),
        )
    }
    if text.len() < 20 {
        return None;
    }
    let (date, rest) = text.split_at(10);
    if date[4] != b'-' || date[7] != b'-' || !matches!(rest[0], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(&date[..4])?, num(&date[5..7])?, num(&date[8..10])?);
    let time = &rest[1..];
    if time.len() < 9 || time[2] != b':' || time[5] != b':' {
        return None;
    }
    let (hour, minute, second) = (num(&time[..2])?, num(&time[3..5])?, num(&time[6..8])?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &time[8..];
    let mut nanos = 0i64;
    if rest.first() == Some(&b'.') {
        let digits = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (i, &b) in rest[1..1 + digits].iter().enumerate() {
            if i < 9 {
                nanos = nanos * 10 + i64::from(b - b'0');
            }
        }
        for _ in digits..9 {
            nanos *= 10;
        }
        rest = &rest[1 + digits..];
    }
    let offset_secs = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let secs = num(&[*h1, *h2])? * 3600 + num(&[*m1, *m2])? * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
