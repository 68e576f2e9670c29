use super::sample::{Kind, profile};
use super::*;
use bytes::Bytes;
use ferro_proto::perftools::profiles::Profile as PprofProfile;
use prost::Message;

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
    assert_eq!(name(Kind::Contention), Some("mutex"));
}

#[test]
fn a_sample_type_config_names_profiles_as_pyroscope_ingest_does() {
    let checked = |kind| check(&gz(kind), 1 << 20).unwrap();
    // pyroscope-go's configs for its mutex and block profiles.
    let mutex = |st: &str| match st {
        "contentions" => Some("mutex_count"),
        "delay" => Some("mutex_duration"),
        _ => None,
    };
    let block = |st: &str| match st {
        "contentions" => Some("block_count"),
        "delay" => Some("block_duration"),
        _ => None,
    };
    assert_eq!(
        type_name_displayed(&checked(Kind::Contention), mutex),
        Some("mutex")
    );
    assert_eq!(
        type_name_displayed(&checked(Kind::Contention), block),
        Some("block")
    );
    // Without display names the types speak for themselves, or not at all.
    let none = |_: &str| None;
    assert_eq!(
        type_name_displayed(&checked(Kind::Cpu), none),
        Some("process_cpu")
    );
    assert_eq!(
        type_name_displayed(&checked(Kind::Heap), none),
        Some("memory")
    );
    assert_eq!(type_name_displayed(&checked(Kind::Contention), none), None);
    let goroutines = |st: &str| (st == "goroutine").then_some("goroutines");
    assert_eq!(
        type_name_displayed(&checked(Kind::Goroutine), goroutines),
        Some("goroutines")
    );
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

/// The one-shot inflate agrees with flate2's streaming gzip reader on what
/// it accepts and what comes out, whatever the header carries and whatever
/// the trailer's size hint says.
#[test]
fn gunzip_agrees_with_the_streaming_reader() {
    use std::io::{Read, Write};
    let reference = |data: &[u8]| {
        let mut out = Vec::new();
        flate2::bufread::GzDecoder::new(data)
            .read_to_end(&mut out)
            .ok()
            .map(|_| out)
    };
    let mut rng = fastrand::Rng::with_seed(7);
    for size in [0usize, 1, 100, 40_000, 70_000, 300_000] {
        let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8 ^ rng.u8(0..4)).collect();
        let plain_gz = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&plain).unwrap();
            gz.finish().unwrap()
        };
        let headers_gz = {
            let mut gz = flate2::GzBuilder::new()
                .filename("profile.pb")
                .comment("from a test")
                .extra(vec![1, 2, 3])
                .write(Vec::new(), flate2::Compression::default());
            gz.write_all(&plain).unwrap();
            gz.finish().unwrap()
        };
        for data in [plain_gz, headers_gz] {
            let mut out = Vec::new();
            gunzip(&data, 1 << 20, &mut out).unwrap();
            assert_eq!(out, plain, "size {size}");
            // A lying size hint only costs a reallocation...
            let mut lying = data.clone();
            let n = lying.len();
            lying[n - 4..].copy_from_slice(&7u32.to_le_bytes());
            assert_eq!(
                gunzip(&lying, 1 << 20, &mut Vec::new()),
                Err(PprofError::Gzip("size mismatch".into()))
            );
            assert_eq!(reference(&lying), None, "flate2 refuses it too");
            // ...a wrong CRC or a cut anywhere is refused as flate2 does.
            let mut bad_crc = data.clone();
            bad_crc[n - 8] ^= 1;
            assert!(gunzip(&bad_crc, 1 << 20, &mut Vec::new()).is_err());
            assert_eq!(reference(&bad_crc), None);
            for cut in [1, 5, 9, n / 2, n - 8, n - 1] {
                let mut out = Vec::new();
                let ours = gunzip(&data[..cut], 1 << 20, &mut out);
                assert!(ours.is_err(), "size {size}, cut at {cut}");
                assert!(
                    reference(&data[..cut]).is_none_or(|o| o != plain) || size == 0,
                    "size {size}, cut at {cut}"
                );
            }
            if size > 0 {
                assert_eq!(
                    gunzip(&data, size - 1, &mut Vec::new()),
                    Err(PprofError::TooLarge(size - 1))
                );
            }
        }
    }
    assert!(
        gunzip(
            &[0x1f, 0x8b, 8, 0xe0, 0, 0, 0, 0, 0, 3],
            100,
            &mut Vec::new()
        )
        .is_err()
    );
}
