use super::config::{JournaldConfig, RawJournaldConfig, Source};
use super::cursor::Cursor;
use super::entries::Converter;
use super::export::{ExportError, ExportReader};
use super::receiver::{Start, journalctl_args, resume_point};
use crate::config::{ComponentId, Validate};
use crate::signal::Labels;
use std::ffi::OsString;
use std::time::{Duration, SystemTime};

fn config(toml: &str) -> Result<JournaldConfig, Vec<String>> {
    let raw: RawJournaldConfig = toml::from_str(toml).unwrap();
    raw.validate().map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    })
}

/// An entry in the export format: text fields, and binary ones for values
/// with a newline (as journalctl writes them).
fn export_entry(fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        if value.contains(&b'\n') {
            out.extend_from_slice(name.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value);
            out.push(b'\n');
        } else {
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value);
            out.push(b'\n');
        }
    }
    out.push(b'\n');
    out
}

/// Reads `stream` in chunks of `chunk` bytes, returning each entry's
/// wanted fields as text.
fn read_all(
    wanted: &[(&str, usize)],
    stream: &[u8],
    chunk: usize,
) -> Result<Vec<Vec<Option<String>>>, ExportError> {
    let mut reader = ExportReader::new(wanted);
    let mut out = Vec::new();
    for part in stream.chunks(chunk) {
        reader.push(part, |fields| {
            out.push(
                (0..wanted.len())
                    .map(|slot| {
                        fields
                            .get(slot)
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                    })
                    .collect(),
            );
        })?;
    }
    Ok(out)
}

#[test]
fn the_export_format_reads_the_same_at_every_chunk_boundary() {
    let mut stream = export_entry(&[
        ("__CURSOR", b"s=1;i=1"),
        ("__REALTIME_TIMESTAMP", b"1700000000000001"),
        ("_BOOT_ID", b"0123"),
        ("MESSAGE", b"first"),
        ("PRIORITY", b"6"),
    ]);
    stream.extend(export_entry(&[
        ("__CURSOR", b"s=1;i=2"),
        ("MESSAGE", b"two\nlines \xff"),
        ("UNWANTED", b"x\ny"),
    ]));
    stream.extend(export_entry(&[
        ("__CURSOR", b"s=1;i=3"),
        ("PRIORITY", b"3"),
    ]));
    let wanted = [("__CURSOR", 64), ("MESSAGE", 1024), ("PRIORITY", 8)];
    let expected = vec![
        vec![
            Some("s=1;i=1".into()),
            Some("first".into()),
            Some("6".into()),
        ],
        vec![
            Some("s=1;i=2".into()),
            Some("two\nlines \u{fffd}".into()),
            None,
        ],
        vec![Some("s=1;i=3".into()), None, Some("3".into())],
    ];
    for chunk in 1..=stream.len() {
        assert_eq!(
            read_all(&wanted, &stream, chunk).unwrap(),
            expected,
            "chunk {chunk}"
        );
    }
}

#[test]
fn values_are_cut_at_their_cap_and_unwanted_ones_are_not_kept() {
    let long = "x".repeat(10_000);
    let stream = export_entry(&[
        ("MESSAGE", long.as_bytes()),
        ("BIG", format!("{long}\n{long}").as_bytes()),
        ("SHORT", b"ok"),
    ]);
    let mut reader = ExportReader::new(&[("MESSAGE", 100), ("SHORT", 100)]);
    let mut seen = 0;
    for part in stream.chunks(777) {
        reader
            .push(part, |fields| {
                seen += 1;
                assert_eq!(fields.get(0).unwrap(), "x".repeat(100).as_bytes());
                assert!(fields.was_cut(0));
                assert_eq!(fields.get(1).unwrap(), b"ok");
                assert!(!fields.was_cut(1));
            })
            .unwrap();
    }
    assert_eq!(seen, 1);
}

#[test]
fn a_field_given_twice_keeps_its_first_value_and_blank_lines_are_not_entries() {
    let mut stream = b"\n\n".to_vec();
    stream.extend(export_entry(&[("MESSAGE", b"a"), ("MESSAGE", b"b")]));
    let got = read_all(&[("MESSAGE", 10)], &stream, 3).unwrap();
    assert_eq!(got, vec![vec![Some("a".to_string())]]);
}

#[test]
fn what_is_not_the_export_format_is_an_error_after_the_entries_before_it() {
    let good = export_entry(&[("MESSAGE", b"kept")]);
    let cases: Vec<(Vec<u8>, ExportError)> = vec![
        (b"lower=case\n".to_vec(), ExportError::BadName),
        (b"NAME WITH SPACE=1\n".to_vec(), ExportError::BadName),
        (
            [b"N".repeat(300), b"=1\n".to_vec()].concat(),
            ExportError::NameTooLong,
        ),
        (
            [
                b"BIN\n".to_vec(),
                2u64.to_le_bytes().to_vec(),
                b"abX".to_vec(),
            ]
            .concat(),
            ExportError::UnterminatedBinary("BIN".into()),
        ),
        (
            [b"BIN\n".to_vec(), u64::MAX.to_le_bytes().to_vec()].concat(),
            ExportError::ValueTooLong(u64::MAX),
        ),
    ];
    for (bad, error) in cases {
        let mut reader = ExportReader::new(&[("MESSAGE", 10)]);
        let mut entries = 0;
        let result = reader.push(&[good.clone(), bad].concat(), |_| entries += 1);
        assert_eq!(result, Err(error));
        assert_eq!(entries, 1);
    }
}

#[test]
fn a_truncated_stream_hands_out_only_whole_entries() {
    let mut stream = export_entry(&[("MESSAGE", b"whole")]);
    stream.extend_from_slice(b"MESSAGE=half");
    let got = read_all(&[("MESSAGE", 10)], &stream, 4).unwrap();
    assert_eq!(got.len(), 1);
}

fn labels_of(converter: &mut Converter) -> Vec<(Labels, Vec<String>)> {
    let taken = converter.pending.take().unwrap();
    taken
        .logs
        .streams
        .into_iter()
        .map(|s| {
            (
                s.labels,
                s.entries.iter().map(|e| e.line_str().to_string()).collect(),
            )
        })
        .collect()
}

fn convert(config: &JournaldConfig, entries: &[Vec<u8>]) -> Converter {
    let mut converter = Converter::new(config);
    let mut reader = ExportReader::new(&converter.wanted());
    for entry in entries {
        reader
            .push(entry, |fields| converter.push(fields, 42))
            .unwrap();
    }
    converter
}

#[test]
fn entries_become_streams_by_unit_host_and_level() {
    let config = config(r#"labels = { cluster = "c1" }"#).unwrap();
    let entry = |unit: &str, priority: &str, message: &str| {
        export_entry(&[
            ("__CURSOR", b"s=1;i=9"),
            ("__REALTIME_TIMESTAMP", b"1700000000000001"),
            ("_HOSTNAME", b"node-a"),
            ("_SYSTEMD_UNIT", unit.as_bytes()),
            ("PRIORITY", priority.as_bytes()),
            ("MESSAGE", message.as_bytes()),
        ])
    };
    let mut converter = convert(
        &config,
        &[
            entry("kubelet.service", "6", "a"),
            entry("kubelet.service", "3", "b"),
            entry("kubelet.service", "6", "c"),
            entry("containerd.service", "9", "d"),
        ],
    );
    assert_eq!(
        converter.pending.cursor.as_ref().map(Cursor::as_str),
        Some("s=1;i=9")
    );
    let streams = labels_of(&mut converter);
    let expect = |pairs: &[(&str, &str)], lines: &[&str]| {
        (
            Labels::from_pairs(pairs.iter().copied()),
            lines.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
        )
    };
    let base = [
        ("job", "systemd-journal"),
        ("cluster", "c1"),
        ("host", "node-a"),
    ];
    assert_eq!(
        streams,
        vec![
            expect(
                &[&base[..], &[("unit", "kubelet.service"), ("level", "info")]].concat(),
                &["a", "c"]
            ),
            expect(
                &[
                    &base[..],
                    &[("unit", "kubelet.service"), ("level", "error")]
                ]
                .concat(),
                &["b"]
            ),
            // A priority out of range gives no level.
            expect(
                &[&base[..], &[("unit", "containerd.service")]].concat(),
                &["d"]
            ),
        ]
    );
}

#[test]
fn timestamps_metadata_truncation_and_bad_text_are_carried_and_counted() {
    let config = config(
        r#"
max_line_size = "64B"
structured_metadata = { pid = "_PID", identifier = "SYSLOG_IDENTIFIER" }
"#,
    )
    .unwrap();
    let long = "y".repeat(100);
    let mut converter = convert(
        &config,
        &[
            export_entry(&[
                ("__REALTIME_TIMESTAMP", b"1700000000000001"),
                ("_PID", b"42"),
                ("MESSAGE", long.as_bytes()),
            ]),
            export_entry(&[
                ("SYSLOG_IDENTIFIER", b"kernel"),
                ("MESSAGE", b"bad \xff\n byte"),
            ]),
            export_entry(&[("__REALTIME_TIMESTAMP", b"garbage"), ("_PID", b"7")]),
        ],
    );
    assert_eq!(converter.tally.read, 3);
    assert_eq!(converter.tally.no_message, 1);
    assert_eq!(converter.tally.truncated, 1);
    assert_eq!(converter.tally.invalid_utf8, 1);
    let taken = converter.pending.take().unwrap();
    let entries: Vec<_> = taken
        .logs
        .streams
        .iter()
        .flat_map(|s| s.entries.clone())
        .collect();
    assert_eq!(entries[0].timestamp_ns, 1_700_000_000_000_001_000);
    assert_eq!(entries[0].line_str(), "y".repeat(64));
    assert_eq!(
        entries[0].metadata,
        vec![
            ("pid".to_string(), "42".to_string()),
            ("truncated".to_string(), "true".to_string())
        ]
    );
    // No timestamp: the time it was read.
    assert_eq!(entries[1].timestamp_ns, 42);
    assert_eq!(entries[1].line_str(), "bad \u{fffd}\n byte");
    assert_eq!(
        entries[1].metadata,
        vec![("identifier".to_string(), "kernel".to_string())]
    );
}

#[test]
fn a_full_batch_says_so() {
    let config = config("").unwrap();
    let entries: Vec<Vec<u8>> = (0..super::entries::MAX_BATCH_ENTRIES)
        .map(|i| export_entry(&[("MESSAGE", format!("m{i}").as_bytes())]))
        .collect();
    let mut converter = convert(&config, &entries);
    assert!(converter.pending.is_full());
    let taken = converter.pending.take().unwrap();
    assert_eq!(taken.entries as usize, super::entries::MAX_BATCH_ENTRIES);
    assert!(converter.pending.take().is_none());
}

fn args(config: &JournaldConfig, start: &Start) -> Vec<String> {
    journalctl_args(config, start, "MESSAGE,PRIORITY")
        .into_iter()
        .map(|a: OsString| a.into_string().unwrap())
        .collect()
}

#[test]
fn journalctl_is_asked_for_the_source_start_and_filters() {
    let c = config(
        r#"
root_path = "/host"
units = ["kubelet.service", "containerd.service"]
matches = ["_TRANSPORT=kernel", "+", "SYSLOG_IDENTIFIER=sshd"]
priority = "warning"
"#,
    )
    .unwrap();
    let cursor = Cursor::parse("s=ab;i=1;t=5").unwrap();
    assert_eq!(
        args(&c, &Start::After(cursor)),
        [
            "--follow",
            "--merge",
            "--no-tail",
            "--no-pager",
            "--output=export",
            "--output-fields=MESSAGE,PRIORITY",
            "--root=/host",
            "--after-cursor=s=ab;i=1;t=5",
            "--unit=kubelet.service",
            "--unit=containerd.service",
            "--priority=4",
            "--",
            "_TRANSPORT=kernel",
            "+",
            "SYSLOG_IDENTIFIER=sshd",
        ]
    );
    let c = config(r#"directory = "/var/log/journal/x""#).unwrap();
    assert_eq!(
        args(&c, &Start::Since(1700)),
        [
            "--follow",
            "--merge",
            "--no-tail",
            "--no-pager",
            "--output=export",
            "--output-fields=MESSAGE,PRIORITY",
            "--directory=/var/log/journal/x",
            "--since=@1700",
        ]
    );
    // This system's journal: no --root.
    let c = config("").unwrap();
    assert!(
        !args(&c, &Start::Since(0))
            .iter()
            .any(|a| a.starts_with("--root"))
    );
    assert_eq!(c.source, Source::Root("/".into()));
}

#[test]
fn a_saved_cursor_is_resumed_unless_older_than_max_age() {
    let id = ComponentId::new("journald", "node");
    let c = config(r#"max_age = "1h""#).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100_000);
    let recent = Cursor::parse(&format!("s=1;i=2;t={:x}", 99_000u64 * 1_000_000)).unwrap();
    let old = Cursor::parse(&format!("s=1;i=2;t={:x}", 90_000u64 * 1_000_000)).unwrap();
    assert_eq!(
        resume_point(&id, &c, Some(recent.clone()), now),
        Start::After(recent)
    );
    assert_eq!(resume_point(&id, &c, Some(old), now), Start::Since(96_400));
    assert_eq!(resume_point(&id, &c, None, now), Start::Since(96_400));
}

#[test]
fn config_errors_name_their_key() {
    let errors = config(
        r#"
root_path = "/host"
directory = "/x"
units = ["", "-x"]
matches = ["lower=1", "NOEQUALS"]
priority = "loud"
max_age = "0s"
job = ""
field_labels = { "bad-name" = "_SYSTEMD_UNIT", unit = "lower", level = "PRIORITY" }
structured_metadata = { pid = "_pid" }
labels = { unit = "x" }
max_line_size = "1B"
"#,
    )
    .unwrap_err();
    let joined = errors.join("\n");
    for key in [
        "directory",
        "units.0",
        "units.1",
        "matches.0",
        "matches.1",
        "priority",
        "max_age",
        "job",
        "field_labels.bad-name",
        "field_labels.unit",
        "field_labels.level",
        "structured_metadata.pid",
        "labels.unit",
        "max_line_size",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(&format!("{key}:"))),
            "no error for {key} in:\n{joined}"
        );
    }
}

#[test]
fn priorities_by_name_or_number_and_defaults() {
    assert_eq!(config(r#"priority = "err""#).unwrap().priority, Some(3));
    assert_eq!(config(r#"priority = "debug""#).unwrap().priority, Some(7));
    assert_eq!(config(r#"priority = "2""#).unwrap().priority, Some(2));
    let c = config("").unwrap();
    assert_eq!(c.priority, None);
    assert_eq!(c.job, "systemd-journal");
    assert_eq!(c.max_age, Duration::from_secs(7 * 3600));
    assert_eq!(
        c.field_labels.into_iter().collect::<Vec<_>>(),
        [
            ("host".to_string(), "_HOSTNAME".to_string()),
            ("unit".to_string(), "_SYSTEMD_UNIT".to_string())
        ]
    );
}

/// A stand-in journalctl: the first run prints two entries and then
/// something that is not the export format, and stays (as a follow
/// does); a run after entry 2 prints entry 3, then an entry whose cursor
/// comes before a bad field; a run after that one prints entry 5. Each
/// run writes its arguments to `runs/<n>`.
fn fake_journalctl(dir: &std::path::Path) -> std::path::PathBuf {
    let script = dir.join("journalctl");
    let runs = dir.join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
n=$(ls {runs} | wc -l)
printf '%s\n' "$@" > {runs}/$n
entry() {{ printf '__CURSOR=s=ab;i=%s;t=%x\n__REALTIME_TIMESTAMP=%s\nMESSAGE=m%s\n\n' "$1" "$2" "$2" "$1"; }}
case "$*" in
  *--after-cursor=s=ab\;i=4*) entry 5 1700000000000005 ;;
  *--after-cursor=*) entry 3 1700000000000003; printf '__CURSOR=s=ab;i=4;t=%x\nbad name=1\n' 1700000000000004 ;;
  *) entry 1 1700000000000001; entry 2 1700000000000002; printf 'not the export format\n' ;;
esac
exec sleep 30
"#,
            runs = runs.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[tokio::test]
async fn malformed_output_restarts_journalctl_after_the_last_entry_read() {
    use crate::delivery::{Batch, MemoryLimiter, PipelineInputs};
    use crate::receivers::Inputs;
    use crate::signal::Logs;
    use crate::telemetry::Telemetry;
    use crate::testing::eventually;

    let dir = tempfile::tempdir().unwrap();
    let journalctl = fake_journalctl(dir.path());
    let config = config(&format!(
        r#"journalctl_path = "{}"
max_age = "1h""#,
        journalctl.display()
    ))
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch<Logs>>(16);
    let telemetry = Telemetry::new();
    let inputs = Inputs {
        logs: Some(PipelineInputs::new(vec![tx], Duration::from_millis(20))),
        ..Inputs::default()
    };
    let id = ComponentId::new("journald", "test");
    let data = dir.path().join("data");
    let running = super::start(
        &id,
        &config,
        inputs,
        MemoryLimiter::new(1 << 30),
        &telemetry,
        &data,
    )
    .await
    .unwrap();
    let mut lines = Vec::new();
    while lines.len() < 4 {
        let batch = tokio::time::timeout(crate::testing::WAIT, rx.recv())
            .await
            .expect("four entries")
            .unwrap();
        for stream in &batch.data.streams {
            lines.extend(stream.entries.iter().map(|e| e.line_str().to_string()));
        }
        // Dropping the batch acknowledges it as delivered.
    }
    assert_eq!(
        lines,
        ["m1", "m2", "m3", "m5"],
        "each entry once, in order; the bad one skipped"
    );
    let page = telemetry.encode();
    let labels = r#"kind="receiver",component="journald.test",signal="logs""#;
    for expected in [
        format!(r#"ferro_journald_reader_restarts_total{{{labels},reason="malformed"}} 2"#),
        format!(r#"ferro_journald_entries_skipped_total{{{labels},reason="malformed"}} 1"#),
    ] {
        assert!(page.contains(&expected), "{expected} in {page}");
    }
    let runs = |n: usize| std::fs::read_to_string(dir.path().join("runs").join(n.to_string()));
    let first = runs(0).unwrap();
    assert!(first.lines().any(|a| a.starts_with("--since=@")), "{first}");
    for (run, after) in [(1, 2u64), (2, 4)] {
        let args = runs(run).unwrap();
        let want = format!(
            "--after-cursor=s=ab;i={after};t={:x}",
            1_700_000_000_000_000u64 + after
        );
        assert!(
            args.lines().any(|a| a == want),
            "run {run} starts after entry {after}: {args}"
        );
    }
    // Stopping saves the cursor of the last acknowledged entry.
    running.stop_taking(Duration::from_secs(1)).await;
    running
        .finish(tokio::time::Instant::now() + Duration::from_secs(10))
        .await;
    let path = super::cursor_path(&data, "test");
    eventually("the saved cursor", || {
        std::fs::read_to_string(&path)
            .is_ok_and(|c| c.trim() == format!("s=ab;i=5;t={:x}", 1_700_000_000_000_005u64))
    })
    .await;
}

#[test]
fn a_label_value_is_cut_to_what_loki_takes_even_when_read_for_metadata_too() {
    let config = config(r#"structured_metadata = { hostname = "_HOSTNAME" }"#).unwrap();
    let long = "h".repeat(5000);
    let mut converter = convert(
        &config,
        &[export_entry(&[
            ("_HOSTNAME", long.as_bytes()),
            ("MESSAGE", b"m"),
        ])],
    );
    let taken = converter.pending.take().unwrap();
    let stream = &taken.logs.streams[0];
    assert_eq!(stream.labels.get("host").unwrap().len(), 2048);
    assert_eq!(stream.entries[0].metadata[0].1.len(), 5000);
}
