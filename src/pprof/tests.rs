use super::sample::{Kind, profile};
use super::*;

fn gz(kind: Kind) -> Bytes {
    encode_gzip(&profile(kind, 50, 200, 1_700_000_000_000_000_000))
}

#[test]
fn gzip_and_plain_profiles_check_out_with_their_sample_types() {
    let plain = profile(Kind::Heap, 20, 30, 5).encode_to_vec();
    let checked = check(&plain, 1 << 20).unwrap();
    let kinds: Vec<&str> = checked
        .sample_types
        .iter()
        .map(|s| s.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "alloc_objects",
            "alloc_space",
            "inuse_objects",
            "inuse_space"
        ]
    );
    assert_eq!(checked.samples, 30);
    assert_eq!(checked.time_ns, 5);
    let cpu = check(&gz(Kind::Cpu), 1 << 20).unwrap();
    assert_eq!(cpu.period_kind, "cpu");
    assert_eq!(cpu.duration_ns, 10_000_000_000);
    assert_eq!(cpu.sample_types[1].unit, "nanoseconds");
}

#[test]
fn type_names_follow_pyroscope() {
    let name = |kind| type_name(&check(&gz(kind), 1 << 20).unwrap());
    assert_eq!(name(Kind::Cpu), Some("process_cpu"));
    assert_eq!(name(Kind::Heap), Some("memory"));
    assert_eq!(name(Kind::Goroutine), Some("goroutine"));
    assert_eq!(name(Kind::Contention), Some("block"));
}

#[test]
fn html_text_garbage_and_truncation_are_refused_with_a_reason() {
    let html = b"<html><head><title>/debug/pprof/</title></head><body>Types of profiles available";
    let e = check(html, 1 << 20).unwrap_err();
    assert!(matches!(e, PprofError::NotPprof(_)), "{e}");
    assert_eq!(e.reason(), "malformed_profile");
    assert!(e.to_string().contains("<html>"), "{e}");
    assert_eq!(check(b"", 100), Err(PprofError::Empty));
    let e = check(&[0xff, 0xff, 0xff, 0x01, 0x02], 100).unwrap_err();
    assert!(matches!(e, PprofError::Decode(_)), "{e}");
    let whole = gz(Kind::Cpu);
    let e = check(&whole[..whole.len() / 2], 1 << 20).unwrap_err();
    assert_eq!(e.reason(), "bad_compression", "{e}");
}

#[test]
fn a_decompression_bomb_stops_at_the_limit() {
    let mut big = profile(Kind::Cpu, 500, 20_000, 1);
    big.comment = vec![0; 1];
    let data = encode_gzip(&big);
    let plain_len = big.encode_to_vec().len();
    assert!(data.len() < plain_len);
    assert_eq!(
        check(&data, plain_len - 1),
        Err(PprofError::TooLarge(plain_len - 1))
    );
    assert!(check(&data, plain_len).is_ok());
}

#[test]
fn structural_faults_are_malformed() {
    let base = profile(Kind::Cpu, 10, 10, 1);
    type Breaker = Box<dyn Fn(&mut PprofProfile)>;
    let cases: Vec<(&str, Breaker)> = vec![
        (
            "string_table[0]",
            Box::new(|p| p.string_table[0] = "x".into()),
        ),
        ("no sample types", Box::new(|p| p.sample_type.clear())),
        (
            "out of range",
            Box::new(|p| p.sample_type[0].r#type = 10_000),
        ),
        ("location id is 0", Box::new(|p| p.location[0].id = 0)),
        ("function id is 0", Box::new(|p| p.function[0].id = 0)),
        ("number of values", Box::new(|p| p.sample[0].value.push(1))),
        (
            "does not exist",
            Box::new(|p| p.sample[0].location_id.push(99)),
        ),
        (
            "contains '-'",
            Box::new(|p| {
                let i = p.sample_type[0].r#type as usize;
                p.string_table[i] = "cpu-time".into();
            }),
        ),
    ];
    for (expected, break_it) in cases {
        let mut p = base.clone();
        break_it(&mut p);
        let e = check(&p.encode_to_vec(), 1 << 20).unwrap_err();
        assert!(e.to_string().contains(expected), "{expected}: {e}");
    }
}
