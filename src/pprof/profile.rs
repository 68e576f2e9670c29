//! A pprof profile checked as Pyroscope checks it, and made ready to send:
//! decompressed within its cap, walked once, its sample types and time
//! range read, re-compressed when it came plain.

use bytes::Bytes;
use ferro_proto::perftools::profiles::Profile as PprofProfile;
use prost::Message;
use std::sync::Arc;

use crate::signal::profiles::SampleType;

/// Why bytes are not a profile ferro passes on; [`PprofError::reason`] is
/// the counter label.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PprofError {
    #[error("the profile is empty")]
    Empty,
    #[error("the profile is larger than {0} bytes once decompressed")]
    TooLarge(usize),
    #[error("the profile is not valid gzip: {0}")]
    Gzip(String),
    #[error("the body is not a pprof profile (it starts like HTML or text: {0:?})")]
    NotPprof(String),
    #[error("the profile does not decode as perftools.profiles.Profile: {0}")]
    Decode(String),
    #[error("the profile is malformed: {0}")]
    Malformed(&'static str),
}

impl PprofError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty_profile",
            Self::TooLarge(_) => "profile_too_large",
            Self::Gzip(_) => "bad_compression",
            Self::NotPprof(_) | Self::Decode(_) | Self::Malformed(_) => "malformed_profile",
        }
    }
}

/// What ferro learns from a profile that checks out.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub sample_types: Arc<[SampleType]>,
    /// `period_type.type`, empty when unset (`cpu` for Go CPU profiles).
    pub period_kind: String,
    /// `time_nanos`, 0 when unset.
    pub time_ns: i64,
    /// `duration_nanos`, 0 when unset.
    pub duration_ns: i64,
    pub samples: usize,
}

/// Whether `data` starts with the gzip magic number.
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
}

/// Checks that `data` (gzip or plain) is a well-formed profile of at most
/// `max_decompressed` bytes, and reads its sample types and times.
///
/// The profile is walked where it lies ([`scan`]), never decoded into
/// structs; a gzip'd one is inflated into a buffer this thread keeps for the
/// next profile.
pub fn check(data: &[u8], max_decompressed: usize) -> Result<Checked, PprofError> {
    if data.is_empty() {
        return Err(PprofError::Empty);
    }
    if !is_gzip(data) {
        if data.len() > max_decompressed {
            return Err(PprofError::TooLarge(max_decompressed));
        }
        return walk(data);
    }
    INFLATED.with(|cell| {
        // `check` does not call itself: the buffer is never borrowed twice;
        // if it somehow were, a fresh buffer does the same work.
        let mut fresh = Vec::new();
        let mut held = cell.try_borrow_mut();
        let buf = match held.as_deref_mut() {
            Ok(buf) => buf,
            Err(_) => &mut fresh,
        };
        buf.clear();
        let result = gunzip(data, max_decompressed, buf).and_then(|()| walk(buf));
        if buf.capacity() > KEPT_INFLATE_BUFFER {
            // One huge profile must not pin its size on this thread.
            *buf = Vec::new();
        }
        result
    })
}

/// The largest inflate buffer a thread keeps between profiles: the plain
/// size of a large Go CPU or heap profile. Larger ones get a buffer of their
/// own, freed once checked.
pub(super) const KEPT_INFLATE_BUFFER: usize = 4 << 20;

thread_local! {
    static INFLATED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Inflates gzip `data` (its first member, as Go writes one) into `out`,
/// refusing more than `max` bytes, and checks the member's CRC-32 and size.
///
/// One `inflate` call into a buffer sized from the gzip trailer does the
/// whole stream: no zero-filling of the buffer (as `Read::read_to_end`
/// does) and no copying into inflate's 32 KiB window between calls, which
/// together were a tenth of the cost of a check.
pub fn gunzip(data: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), PprofError> {
    use flate2::{Decompress, FlushDecompress, Status};
    let bad = |what: &str| PprofError::Gzip(what.to_string());
    let deflate = gzip_header(data).ok_or_else(|| bad("invalid gzip header"))?;
    // The trailer's size (mod 2^32) of the last member: a hint, never trusted.
    let hint = data.len().checked_sub(4).map_or(0, |at| {
        u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize
    });
    // Deflate expands at most 1032:1, so a tiny body cannot claim a huge
    // buffer by its trailer.
    out.reserve(
        hint.min(max)
            .min(data.len().saturating_mul(1032))
            .saturating_add(1),
    );
    let mut inflater = Decompress::new(false);
    loop {
        let consumed = inflater.total_in() as usize;
        let status = inflater
            .decompress_vec(&deflate[consumed..], out, FlushDecompress::Finish)
            .map_err(|e| PprofError::Gzip(e.to_string()))?;
        if out.len() > max {
            return Err(PprofError::TooLarge(max));
        }
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError if out.len() == out.capacity() => {
                // Wrong hint (or a second member): grow, at most to max + 1.
                let more = out.len().max(64 << 10).min(max + 1 - out.len());
                out.reserve_exact(more);
            }
            Status::Ok | Status::BufError => return Err(bad("truncated deflate stream")),
        }
    }
    let trailer = &deflate[inflater.total_in() as usize..];
    if trailer.len() < 8 {
        return Err(bad("truncated gzip trailer"));
    }
    let mut crc = flate2::Crc::new();
    crc.update(out);
    if crc.sum() != u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) {
        return Err(bad("CRC-32 mismatch"));
    }
    if out.len() as u32 != u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]) {
        return Err(bad("size mismatch"));
    }
    Ok(())
}

/// The deflate stream after a gzip member's header (RFC 1952 §2.3), or
/// `None` if the header is not one.
pub(super) fn gzip_header(data: &[u8]) -> Option<&[u8]> {
    const FHCRC: u8 = 1 << 1;
    const FEXTRA: u8 = 1 << 2;
    const FNAME: u8 = 1 << 3;
    const FCOMMENT: u8 = 1 << 4;
    let (fixed, mut rest) = data.split_at_checked(10)?;
    let flags = fixed[3];
    if fixed[..3] != [0x1f, 0x8b, 8] || flags & 0xe0 != 0 {
        return None;
    }
    if flags & FEXTRA != 0 {
        let (len, after) = rest.split_at_checked(2)?;
        rest = after.get(u16::from_le_bytes([len[0], len[1]]) as usize..)?;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let end = rest.iter().position(|&b| b == 0)?;
            rest = &rest[end + 1..];
        }
    }
    if flags & FHCRC != 0 {
        rest = rest.get(2..)?;
    }
    Some(rest)
}

/// Walks a plain profile, naming a failure as `check` does.
pub(super) fn walk(plain: &[u8]) -> Result<Checked, PprofError> {
    super::scan::profile(plain).map_err(|fault| match fault {
        super::scan::Fault::Malformed(reason) => PprofError::Malformed(reason),
        super::scan::Fault::Wire(_) if looks_like_text(plain) => {
            let start = String::from_utf8_lossy(&plain[..plain.len().min(40)]).into_owned();
            PprofError::NotPprof(start)
        }
        super::scan::Fault::Wire(reason) => PprofError::Decode(reason.to_string()),
    })
}

/// Text where a protobuf should be (an HTML error page, a JSON error, the
/// pprof index page): asked only once decoding failed, to say why.
pub(super) fn looks_like_text(data: &[u8]) -> bool {
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    matches!(first, Some(b'<' | b'{' | b'['))
        || data.len() >= 4
            && data[..data.len().min(64)]
                .iter()
                .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
}

/// The Pyroscope profile type (`__name__`) of a profile from its sample
/// types, as Pyroscope's own ingestion names Go and SDK profiles; `None` if
/// they say nothing ferro recognises.
pub fn type_name(checked: &Checked) -> Option<&'static str> {
    let has = |kind: &str| checked.sample_types.iter().any(|st| st.kind == kind);
    if has("cpu") || checked.period_kind == "cpu" {
        return Some("process_cpu");
    }
    if has("inuse_space") || has("alloc_space") || has("alloc_objects") {
        return Some("memory");
    }
    if has("goroutine") || has("goroutines") {
        return Some("goroutine");
    }
    if has("contentions") || has("delay") {
        // Go's mutex and block profiles have the same sample and period
        // types; only where it was fetched from (or the client's labels)
        // tells them apart. Pyroscope's default mapping files unlabelled
        // ones as mutex.
        return Some("mutex");
    }
    if has("wall") {
        return Some("wall");
    }
    None
}

/// The display names Pyroscope's `/ingest` gives sample types when the
/// client sends no `sample_type_config` (its `DefaultSampleTypeMapping`):
/// a Go contention profile sent bare is a mutex profile there.
pub const DEFAULT_DISPLAY_NAMES: &[(&str, &str)] = &[
    ("samples", "cpu"),
    ("goroutine", "goroutines"),
    ("contentions", "mutex_count"),
    ("delay", "mutex_duration"),
];

/// The profile type (`__name__`) Pyroscope's `/ingest` gives a pprof sent
/// with a `sample_type_config`: `wall` if any sample type is `wall`, else
/// the first sample type whose display name (`display_name` of its type,
/// else the type itself) says what it measures; `None` when none does.
/// The config is how Go SDKs tell a mutex profile from a block profile,
/// whose sample types are the same (`contentions`, `delay`).
pub fn type_name_displayed<'a>(
    checked: &Checked,
    display_name: impl Fn(&str) -> Option<&'a str>,
) -> Option<&'static str> {
    if checked.sample_types.iter().any(|st| st.kind == "wall") {
        return Some("wall");
    }
    checked.sample_types.iter().find_map(|st| {
        let shown = display_name(&st.kind).unwrap_or(&st.kind);
        Some(if shown.contains("cpu") {
            "process_cpu"
        } else if shown.contains("alloc_")
            || shown.contains("inuse_")
            || shown == "space"
            || shown == "objects"
        {
            "memory"
        } else if shown.contains("mutex_") {
            "mutex"
        } else if shown.contains("block_") {
            "block"
        } else if shown.contains("goroutines") {
            "goroutines"
        } else {
            return None;
        })
    })
}

/// Encodes a profile (tests, the load harness): prost, then gzip as Go does.
pub fn encode_gzip(profile: &PprofProfile) -> Bytes {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(&profile.encode_to_vec());
    Bytes::from(gz.finish().unwrap_or_default())
}
