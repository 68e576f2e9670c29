//! pprof profiles on the wire: checking that bytes are a profile, reading the
//! facts ferro labels it with, and naming its type.
//!
//! Format: `perftools.profiles.Profile` (<https://github.com/google/pprof/blob/main/proto/profile.proto>),
//! gzip-compressed as Go's `net/http/pprof` serves it, or plain. The checks
//! are those a Pyroscope distributor makes before it stores a profile
//! (`pkg/validation/validate.go`: non-zero location and function ids, sample
//! types without `-`) plus the structural ones its parser relies on (string
//! table indices in range, one value per sample type per sample), so a
//! profile that ferro passes on is one Pyroscope can take.

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
pub fn check(data: &[u8], max_decompressed: usize) -> Result<Checked, PprofError> {
    if data.is_empty() {
        return Err(PprofError::Empty);
    }
    let plain: std::borrow::Cow<[u8]> = if is_gzip(data) {
        let mut out = Vec::with_capacity((data.len() * 4).min(max_decompressed));
        flate2::read::GzDecoder::new(data)
            .take(max_decompressed as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| PprofError::Gzip(e.to_string()))?;
        if out.len() > max_decompressed {
            return Err(PprofError::TooLarge(max_decompressed));
        }
        out.into()
    } else {
        if data.len() > max_decompressed {
            return Err(PprofError::TooLarge(max_decompressed));
        }
        data.into()
    };
    let profile = PprofProfile::decode(plain.as_ref()).map_err(|e| {
        if looks_like_text(&plain) {
            let start = String::from_utf8_lossy(&plain[..plain.len().min(40)]).into_owned();
            PprofError::NotPprof(start)
        } else {
            PprofError::Decode(e.to_string())
        }
    })?;
    structure(&profile)
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

fn structure(p: &PprofProfile) -> Result<Checked, PprofError> {
    let strings = &p.string_table;
    if strings.first().is_none_or(|s| !s.is_empty()) {
        return Err(PprofError::Malformed(
            "string_table[0] must be the empty string",
        ));
    }
    let text = |i: i64| -> Result<&str, PprofError> {
        usize::try_from(i)
            .ok()
            .and_then(|i| strings.get(i))
            .map(String::as_str)
            .ok_or(PprofError::Malformed("a string index is out of range"))
    };
    if p.sample_type.is_empty() {
        return Err(PprofError::Malformed("the profile has no sample types"));
    }
    let mut sample_types = Vec::with_capacity(p.sample_type.len());
    for st in &p.sample_type {
        let kind = text(st.r#type)?;
        if kind.contains('-') {
            // Pyroscope refuses these ("sample type contains -").
            return Err(PprofError::Malformed("a sample type contains '-'"));
        }
        sample_types.push(SampleType {
            kind: kind.to_string(),
            unit: text(st.unit)?.to_string(),
        });
    }
    let period_kind = match &p.period_type {
        Some(pt) => {
            text(pt.unit)?;
            text(pt.r#type)?.to_string()
        }
        None => String::new(),
    };
    if p.location.iter().any(|l| l.id == 0) {
        return Err(PprofError::Malformed("a location id is 0"));
    }
    if p.function.iter().any(|f| f.id == 0) {
        return Err(PprofError::Malformed("a function id is 0"));
    }
    for f in &p.function {
        text(f.name)?;
        text(f.system_name)?;
        text(f.filename)?;
    }
    for m in &p.mapping {
        text(m.filename)?;
        text(m.build_id)?;
    }
    // Location ids are usually 1..=n: a bitmap then checks references in
    // one pass; sparse ids fall back to a sorted list.
    let mut ids: Vec<u64> = p.location.iter().map(|l| l.id).collect();
    ids.sort_unstable();
    let dense = ids.last().is_none_or(|&max| max as usize == ids.len());
    for sample in &p.sample {
        if sample.value.len() != p.sample_type.len() {
            return Err(PprofError::Malformed(
                "a sample has a different number of values than the profile has sample types",
            ));
        }
        for &id in &sample.location_id {
            let known = if dense {
                id >= 1 && id as usize <= ids.len()
            } else {
                ids.binary_search(&id).is_ok()
            };
            if !known {
                return Err(PprofError::Malformed(
                    "a sample refers to a location that does not exist",
                ));
            }
        }
        for label in &sample.label {
            text(label.key)?;
            text(label.str)?;
        }
    }
    Ok(Checked {
        sample_types: Arc::from(sample_types),
        period_kind,
        time_ns: p.time_nanos,
        duration_ns: p.duration_nanos,
        samples: p.sample.len(),
    })
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

#[cfg(test)]
mod tests;
