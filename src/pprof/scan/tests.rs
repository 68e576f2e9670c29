use super::*;
use crate::pprof::PprofError;
use crate::pprof::sample::{Kind, profile as synthetic};
use ferro_proto::perftools::profiles::{Label, Profile, ValueType};
use prost::Message;

/// The check as ferro made it before the walk: a full prost decode, then
/// the structural checks on the structs. The walk must agree with it on
/// every input.
fn reference(plain: &[u8]) -> Result<Checked, PprofError> {
    let p = Profile::decode(plain).map_err(|e| PprofError::Decode(e.to_string()))?;
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

/// Asserts the walk and the reference agree on `plain`: the same profile
/// facts, or both refusing, for the same structural reason when prost
/// decodes it.
fn agree(plain: &[u8]) -> Result<Checked, Fault> {
    let walked = profile(plain);
    match (&walked, reference(plain)) {
        (Ok(a), Ok(b)) => assert_eq!(a, &b, "{plain:02x?}"),
        (Err(Fault::Malformed(a)), Err(PprofError::Malformed(b))) => {
            assert_eq!(*a, b, "{plain:02x?}")
        }
        (Err(Fault::Wire(_)), Err(PprofError::Decode(_))) => {}
        (walked, reference) => {
            panic!("walk: {walked:?}, prost: {reference:?}, bytes: {plain:02x?}")
        }
    }
    walked
}

/// Profiles using every field the walk reads: Go's shapes from
/// `sample.rs`, plus labels, several mappings, comments, sparse location
/// ids and a profile without a period type.
fn corpus() -> Vec<Profile> {
    let mut out = vec![
        synthetic(Kind::Cpu, 12, 15, 1_700_000_000_000_000_000),
        synthetic(Kind::Heap, 10, 12, 5),
        synthetic(Kind::Goroutine, 6, 8, 0),
        synthetic(Kind::Contention, 8, 6, -3),
    ];
    let mut labelled = synthetic(Kind::Cpu, 10, 10, 9);
    let key = labelled.string_table.len() as i64;
    labelled
        .string_table
        .extend(["span_id".into(), "abc".into(), "bytes".into()]);
    for (i, sample) in labelled.sample.iter_mut().enumerate() {
        sample.label.push(Label {
            key,
            str: key + 1,
            num: 0,
            num_unit: 0,
        });
        if i % 2 == 0 {
            sample.label.push(Label {
                key,
                str: 0,
                num: 4096,
                num_unit: key + 2,
            });
        }
    }
    labelled.mapping.push(labelled.mapping[0]);
    labelled.mapping[1].id = 2;
    labelled.comment = vec![key + 1, 0];
    labelled.drop_frames = key;
    labelled.keep_frames = key + 1;
    labelled.default_sample_type = 1;
    out.push(labelled);
    let mut sparse = synthetic(Kind::Heap, 6, 8, 7);
    for location in &mut sparse.location {
        location.id *= 1000;
    }
    for sample in &mut sparse.sample {
        for id in &mut sample.location_id {
            *id *= 1000;
        }
    }
    out.push(sparse);
    let mut no_period = synthetic(Kind::Goroutine, 4, 4, 2);
    no_period.period_type = None;
    out.push(no_period);
    out
}

#[test]
fn realistic_profiles_check_out_as_prost_checks_them() {
    for p in corpus() {
        let checked = agree(&p.encode_to_vec()).unwrap();
        assert_eq!(checked.samples, p.sample.len());
        assert_eq!(checked.sample_types.len(), p.sample_type.len());
    }
    // The load harness's sizes too.
    let big = synthetic(Kind::Cpu, 3000, 2000, 1);
    assert_eq!(agree(&big.encode_to_vec()).unwrap().samples, 2000);
}

#[test]
fn each_structural_fault_is_found_in_the_order_check_reports_it() {
    type Breaker = fn(&mut Profile);
    let cases: &[Breaker] = &[
        |p| p.string_table[0] = "x".into(),
        |p| p.string_table.clear(),
        |p| p.sample_type.clear(),
        |p| p.sample_type[1].unit = -1,
        |p| p.sample_type[0].r#type = 10_000,
        |p| p.period_type.as_mut().unwrap().unit = 10_000,
        |p| p.period_type.as_mut().unwrap().r#type = -5,
        |p| p.location[3].id = 0,
        |p| p.function[2].id = 0,
        |p| p.function[1].filename = 10_000,
        |p| p.function[4].system_name = -1,
        |p| p.mapping[0].build_id = 10_000,
        |p| p.sample[3].value.pop().map_or((), drop),
        |p| p.sample[0].value.push(1),
        |p| p.sample[1].location_id.push(99),
        |p| p.sample[1].location_id.push(0),
        |p| p.location.pop().map_or((), drop),
        |p| {
            // Sparse ids: a reference to an id between them.
            for l in &mut p.location {
                l.id *= 3;
            }
            p.sample[2].location_id.push(4);
        },
        |p| {
            // Duplicate ids that look dense: check has always let them be.
            p.location[1].id = 1;
            p.sample[0].location_id.push(2);
        },
        |p| {
            p.sample[4].label.push(Label {
                key: 10_000,
                ..Label::default()
            })
        },
        |p| {
            p.sample[4].label.push(Label {
                key: 0,
                str: -2,
                ..Label::default()
            })
        },
        |p| {
            let i = p.sample_type[1].r#type as usize;
            p.string_table[i] = "cpu-time".into();
        },
        |p| {
            // Several faults at once: the first in check's order wins.
            p.sample[0].value.push(1);
            p.function[0].id = 0;
            p.sample_type[1].unit = 10_000;
        },
        |p| {
            p.sample[5].label.push(Label {
                key: 10_000,
                ..Label::default()
            });
            p.sample[2].value.clear();
        },
    ];
    for (i, break_it) in cases.iter().enumerate() {
        let mut p = synthetic(Kind::Cpu, 10, 10, 1);
        break_it(&mut p);
        let outcome = agree(&p.encode_to_vec());
        // Only the duplicate-id case checks out (as it always has).
        assert_eq!(outcome.is_ok(), i == 18, "case {i}: {outcome:?}");
    }
}

/// `field` as a length-delimited field holding `bytes`.
fn wrap(field: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

fn varint_field(field: u32, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(field, prost::encoding::WireType::Varint, &mut out);
    prost::encoding::encode_varint(value, &mut out);
    out
}

fn group(field: u32, inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(field, prost::encoding::WireType::StartGroup, &mut out);
    out.extend_from_slice(inner);
    prost::encoding::encode_key(field, prost::encoding::WireType::EndGroup, &mut out);
    out
}

#[test]
fn wire_forms_prost_takes_are_taken_and_merged_as_prost_merges_them() {
    let base = synthetic(Kind::Cpu, 5, 5, 1).encode_to_vec();
    let kinds = |c: Checked| {
        c.sample_types
            .iter()
            .map(|s| s.kind.clone())
            .collect::<Vec<_>>()
    };
    // Unpacked repeated integers, as older encoders write them: a sample
    // with two values and one location, one value at a time.
    let sample = [varint_field(1, 3), varint_field(2, 7), varint_field(2, 70)].concat();
    let unpacked = [base.clone(), wrap(2, &sample)].concat();
    assert_eq!(agree(&unpacked).unwrap().samples, 6);
    // A repeated count split over a packed run and a single value.
    let split = [wrap(2, &[7]), varint_field(2, 70), wrap(1, &[1, 2])].concat();
    assert_eq!(
        agree(&[base.clone(), wrap(2, &split)].concat())
            .unwrap()
            .samples,
        6
    );
    // Unknown fields of every wire type, groups nested within groups
    // included, are skipped.
    let unknown = [
        varint_field(99, 5),
        vec![0xa1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8], // field 100, fixed64
        vec![0xad, 0x06, 1, 2, 3, 4],             // field 101, fixed32
        wrap(102, b"anything"),
        group(
            103,
            &[varint_field(1, 1), group(2, &wrap(4, b"x"))].concat(),
        ),
    ]
    .concat();
    assert!(agree(&[base.clone(), unknown.clone()].concat()).is_ok());
    assert!(agree(&[unknown.clone(), base.clone()].concat()).is_ok());
    // Within a sample (one location, two values) too.
    let sample = [wrap(1, &[1]), unknown.clone(), wrap(2, &[1, 1])].concat();
    assert!(agree(&[base.clone(), wrap(2, &sample)].concat()).is_ok());
    // The last value of a scalar wins; period_type met twice merges (a
    // third sample type: on a profile without samples, which would need a
    // third value).
    let mut p = synthetic(Kind::Cpu, 5, 5, 1);
    p.sample.clear();
    let later = [
        varint_field(9, 42),
        wrap(11, &varint_field(2, 0)),
        wrap(1, &varint_field(1, 1)),
    ]
    .concat();
    let merged = agree(&[p.encode_to_vec(), later].concat()).unwrap();
    assert_eq!((merged.time_ns, merged.period_kind.as_str()), (42, "cpu"));
    assert_eq!(kinds(merged), ["samples", "cpu", "samples"]);
    // A sample type's type given twice: the second counts.
    let twice = wrap(1, &[varint_field(1, 10_000), varint_field(1, 3)].concat());
    assert_eq!(
        kinds(agree(&[p.encode_to_vec(), twice].concat()).unwrap()),
        ["samples", "cpu", "cpu"]
    );
}

#[test]
fn wire_faults_prost_refuses_are_refused() {
    let base = synthetic(Kind::Cpu, 5, 5, 1).encode_to_vec();
    let faults: &[(&str, Vec<u8>)] = &[
        ("truncated", base[..base.len() - 1].to_vec()),
        ("length past the end", b"\x0a\xff\xff\xff\xff\x0f".to_vec()),
        ("sample_type as a varint", varint_field(1, 1)),
        ("time as bytes", wrap(9, b"x")),
        ("a group on a known field", group(2, &[])),
        ("an end group alone", vec![0x0c]),
        ("a group never ended", vec![0x9b, 0x06, 0x08, 0x01]),
        ("a group ended by another tag", vec![0x9b, 0x06, 0x9c, 0x07]),
        ("wire type 6", vec![0x0e]),
        ("field 0", vec![0x00, 0x01]),
        (
            "a key beyond 32 bits",
            vec![0x80, 0x80, 0x80, 0x80, 0x10, 0x00],
        ),
        (
            "an 11-byte varint",
            [vec![0x48], vec![0xff; 10], vec![0x01]].concat(),
        ),
        (
            "a varint's tenth byte above 1",
            [vec![0x48], vec![0xff; 9], vec![0x02]].concat(),
        ),
        (
            "a packed run cut mid-varint",
            wrap(2, &wrap(1, &[0x01, 0x80])),
        ),
        ("a string that is not UTF-8", wrap(6, &[0xc3, 0x28])),
        ("a line as a varint", wrap(4, &varint_field(4, 1))),
    ];
    for (what, bytes) in faults {
        let bytes = [base.clone(), bytes.clone()].concat();
        assert!(
            matches!(agree(&bytes), Err(Fault::Wire(_))),
            "{what} is refused"
        );
    }
    // Overlong but valid varints are taken, as prost takes them.
    let overlong = [base.clone(), vec![0x48, 0x85, 0x80, 0x00]].concat();
    assert_eq!(agree(&overlong).unwrap().time_ns, 5);
}

#[test]
fn groups_nest_as_deep_as_prost_allows_and_no_deeper() {
    let base = synthetic(Kind::Goroutine, 3, 3, 1).encode_to_vec();
    let mut outcomes = Vec::new();
    for depth in [98, 99, 100, 101, 5_000] {
        let mut nested = varint_field(1, 1);
        for _ in 0..depth {
            nested = group(200, &nested);
        }
        // Within the profile itself and within a sample, one level deeper.
        outcomes.push(agree(&[base.clone(), nested.clone()].concat()).is_ok());
        let sample = [wrap(1, &[1]), wrap(2, &[1]), nested.clone()].concat();
        outcomes.push(agree(&[base.clone(), wrap(2, &sample)].concat()).is_ok());
    }
    assert!(outcomes[0] && outcomes[1], "shallow groups are skipped");
    assert!(
        outcomes[2] && !outcomes[3],
        "a sample's fields have one level less"
    );
    assert!(!outcomes[8] && !outcomes[9], "deep ones are refused");
}

/// Random corruptions of realistic profiles: byte changes, small values
/// dropped on ids and indices, insertions, deletions and truncations. The
/// walk must accept exactly what the prost check accepts, with the same
/// facts, and refuse the rest for the same structural reason.
#[test]
fn agrees_with_prost_on_random_mutations() {
    let originals: Vec<Vec<u8>> = corpus().iter().map(|p| p.encode_to_vec()).collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut accepted, mut malformed, mut undecodable) = (0, 0, 0);
    for round in 0..30_000 {
        let mut bytes = originals[round % originals.len()].clone();
        for _ in 0..(1 + next() % 3) {
            let at = (next() as usize) % bytes.len();
            match next() % 6 {
                0 => bytes[at] = next() as u8,
                // Small values land on ids and string indices.
                1 | 2 => bytes[at] = (next() % 8) as u8,
                3 => bytes.truncate(at.max(1)),
                4 => bytes.insert(at, next() as u8),
                _ => {
                    bytes.remove(at);
                }
            }
            if bytes.is_empty() {
                bytes.push(0);
            }
        }
        match agree(&bytes) {
            Ok(_) => accepted += 1,
            Err(Fault::Malformed(_)) => malformed += 1,
            Err(Fault::Wire(_)) => undecodable += 1,
        }
    }
    assert!(
        accepted > 500 && malformed > 500 && undecodable > 500,
        "every outcome was exercised: {accepted} accepted, {malformed} malformed, {undecodable} undecodable"
    );
}

#[test]
fn an_absurd_sample_type_count_costs_a_sort_not_a_square() {
    // 50,000 sample types and strings: the string lookup is one walk.
    let mut p = Profile {
        string_table: vec![String::new()],
        ..Profile::default()
    };
    for i in 0..50_000 {
        p.string_table.push(format!("t{i}"));
        p.sample_type.push(ValueType {
            r#type: i + 1,
            unit: 50_000 - i,
        });
    }
    let started = std::time::Instant::now();
    let checked = agree(&p.encode_to_vec()).unwrap();
    assert_eq!(checked.sample_types[49_999].unit, "t0");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
