//! pprof profiles on the wire: checking that bytes are a profile, reading the
//! facts ferro labels it with, and naming its type.
//!
//! Format: `perftools.profiles.Profile` (<https://github.com/google/pprof/blob/main/proto/profile.proto>),
//! gzip-compressed as Go's `net/http/pprof` serves it, or plain. The checks
//! are those a Pyroscope distributor makes before it stores a profile
//! (`pkg/validation/validate.go`: non-zero location and function ids, sample
//! types without `-`) plus the structural ones its parser relies on (string
//! table indices in range, one value per sample type per sample), so a
//! profile that ferro passes on is one Pyroscope can take. They are made by
//! a walk over the encoded profile ([`scan`]) that refuses what prost's
//! decoder would refuse, without decoding it into structs.

use bytes::Bytes;
use ferro_proto::perftools::profiles::Profile as PprofProfile;
use prost::Message;
use std::io::Read;
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
const KEPT_INFLATE_BUFFER: usize = 4 << 20;

thread_local! {
    static INFLATED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Inflates gzip `data` into `out`, refusing more than `max` bytes.
fn gunzip(data: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), PprofError> {
    // The slice is the decoder's input buffer: no copy through a `BufReader`.
    flate2::bufread::GzDecoder::new(data)
        .take(max as u64 + 1)
        .read_to_end(out)
        .map_err(|e| PprofError::Gzip(e.to_string()))?;
    if out.len() > max {
        return Err(PprofError::TooLarge(max));
    }
    Ok(())
}

/// Walks a plain profile, naming a failure as `check` does.
fn walk(plain: &[u8]) -> Result<Checked, PprofError> {
    scan::profile(plain).map_err(|fault| match fault {
        scan::Fault::Malformed(reason) => PprofError::Malformed(reason),
        scan::Fault::Wire(_) if looks_like_text(plain) => {
            let start = String::from_utf8_lossy(&plain[..plain.len().min(40)]).into_owned();
            PprofError::NotPprof(start)
        }
        scan::Fault::Wire(reason) => PprofError::Decode(reason.to_string()),
    })
}

/// Text where a protobuf should be (an HTML error page, a JSON error, the
/// pprof index page): asked only once decoding failed, to say why.
fn looks_like_text(data: &[u8]) -> bool {
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
        // tells them apart. Pyroscope files unlabelled ones as block.
        return Some("block");
    }
    if has("wall") {
        return Some("wall");
    }
    None
}

/// Encodes a profile (tests, the load harness): prost, then gzip as Go does.
pub fn encode_gzip(profile: &PprofProfile) -> Bytes {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(&profile.encode_to_vec());
    Bytes::from(gz.finish().unwrap_or_default())
}

pub mod sample;
mod scan;

#[cfg(test)]
mod tests;
