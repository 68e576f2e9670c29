//! A validating walk over an encoded pprof profile that builds nothing per
//! string, function, location or sample.
//!
//! Wire format: `perftools.profiles.Profile`, field numbers from
//! `proto/proto/perftools/profiles/profile.proto`. The walk refuses exactly
//! what prost's decoder refuses (wire types of known fields, lengths and
//! packed runs within bounds, varints of at most 64 bits, UTF-8 in the string
//! table, groups only on unknown fields and within prost's recursion limit)
//! and then makes the structural checks of [`super::check`] on what the
//! decoded profile would hold, in the same order so a profile with several
//! faults is refused for the same one. Scalars follow proto3's merge rules:
//! the last value of a field wins, and repeated occurrences of `period_type`
//! merge into one.
//!
//! One pass over the bytes gathers counts and extremes (string count, the
//! largest string index a function, mapping or label uses, location count
//! and largest id, the fewest and most values a sample has, the smallest and
//! largest location a sample refers to). When location ids are `1..=n`, as
//! Go and the Pyroscope SDKs write them, those are enough to decide every
//! check; sample types' strings are then read from the start of the string
//! table. Only a profile with sparse location ids, or one already known to be
//! faulty, is walked again, sample by sample, to find the first fault.

use crate::wire::{Reader, WireError};
use std::sync::Arc;

use crate::signal::profiles::SampleType;

use super::Checked;

/// prost's recursion budget for nested messages and groups
/// (`prost::RECURSION_LIMIT`): the top-level fields get it whole.
const RECURSION_LIMIT: u32 = 100;

/// Why bytes are refused: not a `Profile` on the wire (what prost would
/// refuse to decode), or a profile that fails a structural check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    Wire(&'static str),
    Malformed(&'static str),
}

impl From<WireError> for Fault {
    fn from(e: WireError) -> Self {
        Fault::Wire(e.0)
    }
}

const OUT_OF_RANGE: Fault = Fault::Malformed("a string index is out of range");

/// Facts gathered in the first pass.
struct Facts {
    /// `(type, unit)` string indices of each sample type, in order.
    sample_types: Vec<(u64, u64)>,
    /// `period_type`'s `(type, unit)`, when the field occurs.
    period_type: Option<(u64, u64)>,
    strings: u64,
    first_string_empty: bool,
    /// Offset of the first `string_table` entry's key in the profile.
    strings_at: usize,
    /// Largest string index of a function's or mapping's names.
    max_names_index: u64,
    locations: u64,
    max_location_id: u64,
    zero_location_id: bool,
    zero_function_id: bool,
    samples: usize,
    min_values: u64,
    max_values: u64,
    /// Smallest and largest location id a sample refers to; `min_ref` is
    /// `u64::MAX` when no sample refers to one.
    min_ref: u64,
    max_ref: u64,
    max_label_index: u64,
    time_ns: i64,
    duration_ns: i64,
}

impl Default for Facts {
    fn default() -> Self {
        Self {
            sample_types: Vec::new(),
            period_type: None,
            strings: 0,
            first_string_empty: false,
            strings_at: 0,
            max_names_index: 0,
            locations: 0,
            max_location_id: 0,
            zero_location_id: false,
            zero_function_id: false,
            samples: 0,
            min_values: u64::MAX,
            max_values: 0,
            min_ref: u64::MAX,
            max_ref: 0,
            max_label_index: 0,
            time_ns: 0,
            duration_ns: 0,
        }
    }
}

/// Walks an uncompressed profile: what [`super::check`] reports for it.
pub(super) fn profile(buf: &[u8]) -> Result<Checked, Fault> {
    let facts = gather(buf)?;
    if facts.strings == 0 || !facts.first_string_empty {
        return Err(Fault::Malformed("string_table[0] must be the empty string"));
    }
    if facts.sample_types.is_empty() {
        return Err(Fault::Malformed("the profile has no sample types"));
    }
    let strings = Strings::read(buf, &facts)?;
    let text = |i: u64| -> Result<&str, Fault> {
        // An index read as int64 is negative exactly when, as u64, it is
        // 2^63 or more: beyond any table.
        if i < facts.strings {
            Ok(strings.get(i))
        } else {
            Err(OUT_OF_RANGE)
        }
    };
    let mut sample_types = Vec::with_capacity(facts.sample_types.len());
    for &(kind, unit) in &facts.sample_types {
        let kind = text(kind)?;
        if kind.contains('-') {
            // Pyroscope refuses these ("sample type contains -").
            return Err(Fault::Malformed("a sample type contains '-'"));
        }
        sample_types.push(SampleType {
            kind: kind.to_string(),
            unit: text(unit)?.to_string(),
        });
    }
    let period_kind = match facts.period_type {
        Some((kind, unit)) => {
            text(unit)?;
            text(kind)?.to_string()
        }
        None => String::new(),
    };
    if facts.zero_location_id {
        return Err(Fault::Malformed("a location id is 0"));
    }
    if facts.zero_function_id {
        return Err(Fault::Malformed("a function id is 0"));
    }
    if facts.max_names_index >= facts.strings {
        return Err(OUT_OF_RANGE);
    }
    // Dense ids as `check` has always judged them: the largest equals the
    // count (ids are non-zero by now).
    let dense = facts.max_location_id == facts.locations;
    let types = facts.sample_types.len() as u64;
    let all_fine = facts.samples == 0
        || (facts.min_values == types
            && facts.max_values == types
            && (facts.min_ref == u64::MAX
                || (dense && facts.min_ref >= 1 && facts.max_ref <= facts.locations))
            && facts.max_label_index < facts.strings);
    if !all_fine {
        first_sample_fault(buf, &facts, dense)?;
    }
    Ok(Checked {
        sample_types: Arc::from(sample_types),
        period_kind,
        time_ns: facts.time_ns,
        duration_ns: facts.duration_ns,
        samples: facts.samples,
    })
}

/// The first pass: every field checked as prost would decode it, the facts
/// the structural checks need gathered on the way.
fn gather(buf: &[u8]) -> Result<Facts, Fault> {
    let mut facts = Facts::default();
    let mut reader = Reader::new(buf);
    let ctx = RECURSION_LIMIT;
    loop {
        let at = reader.pos();
        let Some((field, value)) = reader.field_skipping_groups(ctx)? else {
            break;
        };
        match field {
            1 => {
                let (kind, unit) = value_type(value.message()?, ctx - 1, (0, 0))?;
                facts.sample_types.push((kind, unit));
            }
            2 => sample(value.message()?, ctx - 1, &mut facts)?,
            3 => mapping(value.message()?, ctx - 1, &mut facts)?,
            4 => {
                let id = location(value.message()?, ctx - 1)?;
                facts.locations += 1;
                facts.max_location_id = facts.max_location_id.max(id);
                facts.zero_location_id |= id == 0;
            }
            5 => function(value.message()?, ctx - 1, &mut facts)?,
            6 => {
                let len = value.check_string()?;
                if facts.strings == 0 {
                    facts.first_string_empty = len == 0;
                    facts.strings_at = at;
                }
                facts.strings += 1;
            }
            7 | 8 | 12 | 14 => {
                value.varint()?;
            }
            9 => facts.time_ns = value.varint()? as i64,
            10 => facts.duration_ns = value.varint()? as i64,
            11 => {
                // An optional message met twice merges into the first.
                let merged = value_type(
                    value.message()?,
                    ctx - 1,
                    facts.period_type.unwrap_or((0, 0)),
                )?;
                facts.period_type = Some(merged);
            }
            13 => value.each_varint(|_| {})?,
            _ => {}
        }
    }
    Ok(facts)
}

/// A `ValueType`'s `(type, unit)`, starting from `merged` (what earlier
/// occurrences of the same optional field set).
fn value_type(buf: &[u8], ctx: u32, merged: (u64, u64)) -> Result<(u64, u64), Fault> {
    let (mut kind, mut unit) = merged;
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field_skipping_groups(ctx)? {
        match field {
            1 => kind = value.varint()?,
            2 => unit = value.varint()?,
            _ => {}
        }
    }
    Ok((kind, unit))
}

fn sample(buf: &[u8], ctx: u32, facts: &mut Facts) -> Result<(), Fault> {
    let (mut min_ref, mut max_ref) = (facts.min_ref, facts.max_ref);
    let mut values = 0u64;
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field_skipping_groups(ctx)? {
        match field {
            1 => value.each_varint(|id| {
                min_ref = min_ref.min(id);
                max_ref = max_ref.max(id);
            })?,
            2 => values += value.count_varints()?,
            3 => {
                let (key, text) = label(value.message()?, ctx - 1)?;
                facts.max_label_index = facts.max_label_index.max(key).max(text);
            }
            _ => {}
        }
    }
    facts.samples += 1;
    facts.min_values = facts.min_values.min(values);
    facts.max_values = facts.max_values.max(values);
    (facts.min_ref, facts.max_ref) = (min_ref, max_ref);
    Ok(())
}

/// A `Label`'s `(key, str)` string indices.
fn label(buf: &[u8], ctx: u32) -> Result<(u64, u64), Fault> {
    let (mut key, mut text) = (0, 0);
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field_skipping_groups(ctx)? {
        match field {
            1 => key = value.varint()?,
            2 => text = value.varint()?,
            3 | 4 => {
                value.varint()?;
            }
            _ => {}
        }
    }
    Ok((key, text))
}

fn mapping(buf: &[u8], ctx: u32, facts: &mut Facts) -> Result<(), Fault> {
    let (mut filename, mut build_id) = (0, 0);
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field_skipping_groups(ctx)? {
        match field {
            5 => filename = value.varint()?,
            6 => build_id = value.varint()?,
            1..=4 | 7..=10 => {
                value.varint()?;
            }
            _ => {}
        }
    }
    facts.max_names_index = facts.max_names_index.max(filename).max(build_id);
    Ok(())
}

/// A `Location`'s id.
fn location(buf: &[u8], ctx: u32) -> Result<u64, Fault> {
    let mut id = 0;
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field_skipping_groups(ctx)? {
        match field {
            1 => id = value.varint()?,
            2 | 3 | 5 => {
                value.varint()?;
            }
            4 => line(value.message()?, ctx - 1)?,
            _ => {}
        }
    }
    Ok(id)
}

fn line(buf: &[u8], ctx: u32) -> Result<(), Fault> {
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field_skipping_groups(ctx)? {
        if (1..=3).contains(&field) {
            value.varint()?;
        }
    }
    Ok(())
}

fn function(buf: &[u8], ctx: u32, facts: &mut Facts) -> Result<(), Fault> {
    let (mut id, mut names) = (0, [0u64; 3]);
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field_skipping_groups(ctx)? {
        match field {
            1 => id = value.varint()?,
            2..=4 => names[field as usize - 2] = value.varint()?,
            5 => {
                value.varint()?;
            }
            _ => {}
        }
    }
    facts.zero_function_id |= id == 0;
    let most = names.into_iter().max().unwrap_or(0);
    facts.max_names_index = facts.max_names_index.max(most);
    Ok(())
}

/// The strings the checks read (sample types' and the period type's), taken
/// from the string table in one walk that stops at the last one needed.
struct Strings<'a> {
    /// Wanted indices, sorted and distinct, and their text.
    indices: Vec<u64>,
    texts: Vec<&'a str>,
}

impl<'a> Strings<'a> {
    fn read(buf: &'a [u8], facts: &Facts) -> Result<Self, Fault> {
        let mut indices: Vec<u64> = facts
            .sample_types
            .iter()
            .flat_map(|&(kind, unit)| [kind, unit])
            .chain(facts.period_type.map(|(kind, _)| kind))
            .filter(|&i| i < facts.strings)
            .collect();
        indices.sort_unstable();
        indices.dedup();
        let mut texts = Vec::with_capacity(indices.len());
        let mut reader = Reader::starting_at(buf, facts.strings_at);
        let mut index = 0u64;
        while texts.len() < indices.len() {
            // The first pass counted `facts.strings` entries from here, and
            // every wanted index is below that.
            let Some((field, value)) = reader.field_skipping_groups(RECURSION_LIMIT)? else {
                return Err(Fault::Wire("the string table ended early"));
            };
            if field != 6 {
                continue;
            }
            if indices[texts.len()] == index {
                texts.push(value.string()?);
            }
            index += 1;
        }
        Ok(Self { indices, texts })
    }

    /// The text at `index`, which [`Strings::read`] was asked for.
    fn get(&self, index: u64) -> &'a str {
        self.indices
            .binary_search(&index)
            .map_or("", |at| self.texts[at])
    }
}

/// The second pass, for profiles the first pass's facts cannot clear: each
/// sample checked in order, as `check` always has, for the first fault.
#[cold]
fn first_sample_fault(buf: &[u8], facts: &Facts, dense: bool) -> Result<(), Fault> {
    let ids = if dense {
        Vec::new()
    } else {
        // Sparse ids need the set; it is no larger than the location count,
        // which the profile's size bounds.
        let mut ids = Vec::with_capacity(usize::try_from(facts.locations).unwrap_or(0));
        let mut reader = Reader::new(buf);
        while let Some((field, value)) = reader.field_skipping_groups(RECURSION_LIMIT)? {
            if field == 4 {
                ids.push(location(value.message()?, RECURSION_LIMIT - 1)?);
            }
        }
        ids.sort_unstable();
        ids
    };
    let known = |id: u64| {
        if dense {
            id >= 1 && id <= facts.locations
        } else {
            ids.binary_search(&id).is_ok()
        }
    };
    let types = facts.sample_types.len() as u64;
    let mut reader = Reader::new(buf);
    while let Some((field, value)) = reader.field_skipping_groups(RECURSION_LIMIT)? {
        if field != 2 {
            continue;
        }
        let mut one = Facts::default();
        sample(value.message()?, RECURSION_LIMIT - 1, &mut one)?;
        if one.max_values != types {
            return Err(Fault::Malformed(
                "a sample has a different number of values than the profile has sample types",
            ));
        }
        if one.min_ref != u64::MAX {
            let mut unknown = false;
            let mut samples = Reader::new(value.message()?);
            while let Some((field, value)) = samples.field_skipping_groups(RECURSION_LIMIT - 1)? {
                if field == 1 {
                    value.each_varint(|id| unknown |= !known(id))?;
                }
            }
            if unknown {
                return Err(Fault::Malformed(
                    "a sample refers to a location that does not exist",
                ));
            }
        }
        if one.max_label_index >= facts.strings {
            return Err(OUT_OF_RANGE);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
