use super::*;

const NOW: i64 = 42;

/// An entry as the tests compare it: (stream, timestamp, text, truncated).
type Row = (Option<&'static str>, i64, String, bool);

/// Feeds whole lines (without `\n`) and returns the entries, as (stream, ts, text, truncated).
fn decode(format: FormatName, max: usize, lines: &[&[u8]]) -> (Vec<Row>, Decoder) {
    let mut decoder = Decoder::new(format, max);
    let mut out = Vec::new();
    let mut offset = 0u64;
    for line in lines {
        if let Some(d) = decoder.push(RawLine::whole(line, offset), NOW) {
            out.push((
                d.stream.map(StdStream::as_str),
                d.timestamp_ns,
                d.text,
                d.truncated,
            ));
        }
        offset += line.len() as u64 + 1;
    }
    (out, decoder)
}

fn texts(entries: &[Row]) -> Vec<&str> {
    entries.iter().map(|e| e.2.as_str()).collect()
}

#[test]
fn rfc3339_timestamps() {
    let cases: &[(&str, Option<i64>)] = &[
        ("1970-01-01T00:00:00Z", Some(0)),
        (
            "2016-10-06T00:17:09.669794202Z",
            Some(1_475_713_029_669_794_202),
        ),
        ("2016-10-06T00:17:09.5Z", Some(1_475_713_029_500_000_000)),
        // More than nanoseconds: the rest is ignored.
        (
            "2016-10-06T00:17:09.1234567891Z",
            Some(1_475_713_029_123_456_789),
        ),
        (
            "2024-02-29T23:59:59.999999999+02:00",
            Some(1_709_243_999_999_999_999),
        ),
        ("2000-02-29T22:00:00-02:00", Some(951_868_800_000_000_000)),
        ("1969-12-31T23:59:59.5Z", Some(-500_000_000)),
        ("2016-10-06 00:17:09Z", Some(1_475_713_029_000_000_000)),
        ("2016-10-06T00:17:09", None),
        ("2016-10-06T00:17:09.Z", None),
        ("2016-13-06T00:17:09Z", None),
        ("2016-10-06T24:17:09Z", None),
        ("2016-10-06T00:17:09+0200", None),
        ("2016-1a-06T00:17:09Z", None),
        ("not a time at all, no", None),
        ("", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_rfc3339(text.as_bytes()), *want, "{text}");
    }
}

#[test]
fn cri_full_lines_and_partials_merged_per_stream() {
    let (entries, decoder) = decode(
        FormatName::Cri,
        1024,
        &[
            b"2016-10-06T00:17:09.669794202Z stdout F hello world",
            b"2016-10-06T00:17:10Z stdout P part one, ",
            b"2016-10-06T00:17:11Z stderr F an error meanwhile",
            b"2016-10-06T00:17:12Z stdout P part two, ",
            b"2016-10-06T00:17:13Z stdout F end",
            b"2016-10-06T00:17:14Z stderr F ",
            b"2016-10-06T00:17:15Z stderr F",
            b"2016-10-06T00:17:16Z stdout F:x tagged  with  spaces ",
        ],
    );
    assert_eq!(
        entries,
        vec![
            (
                Some("stdout"),
                1_475_713_029_669_794_202,
                "hello world".into(),
                false
            ),
            (
                Some("stderr"),
                1_475_713_031_000_000_000,
                "an error meanwhile".into(),
                false
            ),
            // The first piece's time.
            (
                Some("stdout"),
                1_475_713_030_000_000_000,
                "part one, part two, end".into(),
                false
            ),
            (Some("stderr"), 1_475_713_034_000_000_000, "".into(), false),
            (Some("stderr"), 1_475_713_035_000_000_000, "".into(), false),
            (
                Some("stdout"),
                1_475_713_036_000_000_000,
                "tagged  with  spaces ".into(),
                false
            ),
        ]
    );
    assert_eq!(decoder.tally, Tally::default());
    assert_eq!(decoder.pending_start(), None);
}

#[test]
fn pending_partials_hold_the_resume_offset_back() {
    let mut decoder = Decoder::new(FormatName::Cri, 1024);
    let p = b"2016-10-06T00:17:10Z stdout P a";
    assert!(decoder.push(RawLine::whole(p, 100), NOW).is_none());
    assert_eq!(decoder.pending_start(), Some(100));
    let e = b"2016-10-06T00:17:10Z stderr P b";
    assert!(decoder.push(RawLine::whole(e, 200), NOW).is_none());
    assert_eq!(decoder.pending_start(), Some(100));
    let f = b"2016-10-06T00:17:11Z stdout F c";
    let d = decoder.push(RawLine::whole(f, 300), NOW).unwrap();
    assert_eq!((d.text.as_str(), d.start), ("ac", 100));
    assert_eq!(decoder.pending_start(), Some(200));
    // The file ends: the open piece is passed on, not lost.
    let flushed = decoder.flush();
    assert_eq!(flushed.len(), 1);
    assert_eq!((flushed[0].text.as_str(), flushed[0].start), ("b", 200));
    assert_eq!(decoder.pending_start(), None);
}

#[test]
fn malformed_lines_in_a_cri_file_pass_as_plain_text_and_are_counted() {
    let (entries, decoder) = decode(
        FormatName::Cri,
        1024,
        &[
            b"2016-10-06T00:17:09Z stdout F ok",
            b"garbage without a timestamp",
            b"2016-10-06T00:17:09Z stdin F wrong stream",
            b"2016-10-06T00:17:09Z stdout X wrong tag",
            b"2016-10-06T00:17:09Z",
            b"",
        ],
    );
    assert_eq!(
        texts(&entries),
        vec![
            "ok",
            "garbage without a timestamp",
            "2016-10-06T00:17:09Z stdin F wrong stream",
            "2016-10-06T00:17:09Z stdout X wrong tag",
            "2016-10-06T00:17:09Z",
            ""
        ]
    );
    assert!(entries[1..].iter().all(|e| e.0.is_none() && e.1 == NOW));
    assert_eq!(decoder.tally.malformed, 5);
}

#[test]
fn docker_lines_partials_and_escapes() {
    let (entries, decoder) = decode(
        FormatName::Docker,
        1024,
        &[
            br#"{"log":"hello\n","stream":"stdout","time":"2016-10-06T00:17:09.669794202Z"}"#,
            br#"{"log":"long line part 1 ","stream":"stdout","time":"2016-10-06T00:17:10Z"}"#,
            br#"{"log":"err \"quoted\" \u00e9\ud83d\ude00\t\n","stream":"stderr","attrs":{"tag":"x"},"time":"2016-10-06T00:17:11Z"}"#,
            br#"{"log":"part 2\n","stream":"stdout","time":"2016-10-06T00:17:12Z"}"#,
            br#"{"log":"\n","stream":"stdout","time":"2016-10-06T00:17:13Z"}"#,
            br#"{"stream":"stdout","log":"keys in any order\n","time":"2016-10-06T00:17:14Z"}"#,
        ],
    );
    assert_eq!(
        entries,
        vec![
            (
                Some("stdout"),
                1_475_713_029_669_794_202,
                "hello".into(),
                false
            ),
            (
                Some("stderr"),
                1_475_713_031_000_000_000,
                "err \"quoted\" é😀\t".into(),
                false
            ),
            (
                Some("stdout"),
                1_475_713_030_000_000_000,
                "long line part 1 part 2".into(),
                false
            ),
            (Some("stdout"), 1_475_713_033_000_000_000, "".into(), false),
            (
                Some("stdout"),
                1_475_713_034_000_000_000,
                "keys in any order".into(),
                false
            ),
        ]
    );
    assert_eq!(decoder.tally, Tally::default());
}

#[test]
fn malformed_docker_lines_pass_as_plain_text() {
    let (entries, decoder) = decode(
        FormatName::Docker,
        1024,
        &[
            br#"{"log":"ok\n","stream":"stdout","time":"2016-10-06T00:17:09Z"}"#,
            br#"{"log":"cut off","stream":"std"#,
            br#"{"log":"no time\n","stream":"stdout"}"#,
            br#"{"log":"bad time\n","stream":"stdout","time":"yesterday"}"#,
            b"plain words",
        ],
    );
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[1].2, r#"{"log":"cut off","stream":"std"#);
    assert!(entries[1..].iter().all(|e| e.0.is_none() && e.1 == NOW));
    assert_eq!(decoder.tally.malformed, 4);
}

#[test]
fn auto_detects_per_file_from_the_first_line() {
    let cri: &[&[u8]] = &[b"2016-10-06T00:17:09Z stdout F a"];
    let docker: &[&[u8]] = &[br#"{"log":"a\n","stream":"stderr","time":"2016-10-06T00:17:09Z"}"#];
    let json_app: &[&[u8]] = &[br#"{"level":"info","msg":"a"}"#];
    let plain: &[&[u8]] = &[b"a plain line\r"];
    for (lines, format, stream, text) in [
        (cri, FormatName::Cri, Some("stdout"), "a"),
        (docker, FormatName::Docker, Some("stderr"), "a"),
        (
            json_app,
            FormatName::Plain,
            None,
            r#"{"level":"info","msg":"a"}"#,
        ),
        (plain, FormatName::Plain, None, "a plain line"),
    ] {
        let (entries, decoder) = decode(FormatName::Auto, 1024, lines);
        assert_eq!(decoder.format(), Some(format));
        assert_eq!(entries[0].0, stream);
        assert_eq!(entries[0].2, text);
        assert_eq!(decoder.tally, Tally::default());
    }
}

#[test]
fn invalid_utf8_is_replaced_and_counted() {
    let (entries, decoder) = decode(
        FormatName::Cri,
        1024,
        &[
            b"2016-10-06T00:17:09Z stdout F bad \xff\xfe bytes",
            b"\xc3\x28 plain garbage",
        ],
    );
    assert_eq!(entries[0].2, "bad \u{fffd}\u{fffd} bytes");
    assert_eq!(entries[1].2, "\u{fffd}( plain garbage");
    assert_eq!(decoder.tally.invalid_utf8, 2);
    assert_eq!(decoder.tally.malformed, 1);
}

#[test]
fn a_character_split_across_cri_pieces_is_joined_not_replaced() {
    // "é" is c3 a9; the runtime may split a line between the two bytes.
    let (entries, decoder) = decode(
        FormatName::Cri,
        1024,
        &[
            b"2016-10-06T00:17:09Z stdout P caf\xc3",
            b"2016-10-06T00:17:09Z stdout F \xa9!",
        ],
    );
    assert_eq!(texts(&entries), vec!["café!"]);
    assert_eq!(decoder.tally.invalid_utf8, 0);
}

#[test]
fn long_entries_are_cut_on_a_character_boundary_and_marked() {
    let long = format!("2016-10-06T00:17:09Z stdout F {}", "é".repeat(100));
    let (entries, decoder) = decode(FormatName::Cri, 101, &[long.as_bytes()]);
    assert_eq!(entries[0].2, "é".repeat(50));
    assert!(entries[0].3);
    assert_eq!(decoder.tally.truncated, 1);

    // Merged pieces are capped as they arrive, not after.
    let piece = format!("2016-10-06T00:17:09Z stdout P {}", "x".repeat(80));
    let end = format!("2016-10-06T00:17:09Z stdout F {}", "y".repeat(80));
    let lines: Vec<&[u8]> = vec![piece.as_bytes(), piece.as_bytes(), end.as_bytes()];
    let (entries, decoder) = decode(FormatName::Cri, 100, &lines);
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].2,
        format!("{}{}", "x".repeat(80), "x".repeat(20))
    );
    assert!(entries[0].3);
    assert_eq!(decoder.tally.truncated, 1);
}

#[test]
fn a_cut_docker_line_keeps_its_stream_and_time_from_the_tail() {
    let text = "z".repeat(5000);
    let line =
        format!(r#"{{"log":"\u00e9{text}\n","stream":"stderr","time":"2016-10-06T00:17:09Z"}}"#);
    let bytes = line.as_bytes();
    let raw = RawLine {
        head: &bytes[..200],
        tail: &bytes[bytes.len() - 100..],
        cut: true,
        start: 7,
    };
    let mut decoder = Decoder::new(FormatName::Auto, 150);
    let d = decoder.push(raw, NOW).unwrap();
    assert_eq!(decoder.format(), Some(FormatName::Docker));
    assert_eq!(d.stream, Some(StdStream::Stderr));
    assert_eq!(d.timestamp_ns, 1_475_713_029_000_000_000);
    assert!(d.text.starts_with("éz"));
    assert!(d.text.len() <= 150);
    assert!(d.truncated);
    assert_eq!(d.start, 7);

    // Without the final \n it is a piece to be continued.
    let line = format!(r#"{{"log":"{text}","stream":"stdout","time":"2016-10-06T00:17:09Z"}}"#);
    let bytes = line.as_bytes();
    let raw = RawLine {
        head: &bytes[..200],
        tail: &bytes[bytes.len() - 100..],
        cut: true,
        start: 0,
    };
    assert!(decoder.push(raw, NOW).is_none());
    let end = br#"{"log":"end\n","stream":"stdout","time":"2016-10-06T00:17:10Z"}"#;
    let d = decoder.push(RawLine::whole(end, 300), NOW).unwrap();
    assert!(d.truncated);
    assert_eq!(d.text.len(), 150);
}

#[test]
fn json_string_prefixes() {
    assert_eq!(
        unescape_json_prefix(br#"a\"b\\c\/d" rest"#),
        (br#"a"b\c/d"#.to_vec(), true)
    );
    assert_eq!(
        unescape_json_prefix(br#"\u00e9\ud83d\ude00\ud83d"#),
        ("é😀\u{fffd}".as_bytes().to_vec(), false)
    );
    // An escape cut by the end of the input is left out.
    assert_eq!(unescape_json_prefix(br#"ab\u00"#), (b"ab".to_vec(), false));
    assert_eq!(unescape_json_prefix(br#"ab\"#), (b"ab".to_vec(), false));
    assert_eq!(
        unescape_json_prefix(br#"a\qb"#),
        (br#"a\qb"#.to_vec(), false)
    );
}

#[test]
fn binary_garbage_never_panics_and_every_line_comes_out() {
    let mut rng = fastrand::Rng::with_seed(7);
    for format in [
        FormatName::Auto,
        FormatName::Cri,
        FormatName::Docker,
        FormatName::Plain,
    ] {
        let mut decoder = Decoder::new(format, 64);
        let mut out = 0;
        let mut lines = 0;
        for i in 0..5000u64 {
            let len = rng.usize(0..200);
            let mut line: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            // Sometimes a plausible prefix, to reach the deeper paths.
            let prefix: &[u8] = match i % 4 {
                0 => b"2016-10-06T00:17:09Z stdout P ",
                1 => br#"{"log":""#,
                _ => b"",
            };
            line.splice(0..0, prefix.iter().copied());
            line.retain(|&b| b != b'\n');
            let cut = rng.bool();
            let raw = if cut && line.len() > 10 {
                RawLine {
                    head: &line[..line.len() / 2],
                    tail: &line[line.len() / 2..],
                    cut: true,
                    start: i,
                }
            } else {
                RawLine::whole(&line, i)
            };
            lines += 1;
            if let Some(d) = decoder.push(raw, NOW) {
                assert!(d.text.len() <= 64);
                out += 1;
            }
        }
        out += decoder.flush().len();
        assert!(out > 0 && out <= lines, "{format:?}: {out} of {lines}");
    }
}
