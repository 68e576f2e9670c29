//! The journald receiver end to end: real journal files, written by
//! Debian's `systemd-journal-remote` from export-format input the test
//! makes, read by the real ferro binary (through Debian's `journalctl`)
//! and shipped to the Loki stand-in, where every line is checked value for
//! value: labels, timestamp, structured metadata. Then the faults: kill -9
//! and restart, rotation and vacuuming while following, a garbage journal
//! file, a journal directory that is not there yet.

mod common;

use common::loki::{LokiServer, Stored};
use common::{Ferro, WAIT, have};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
const BOOT: &str = "0123456789abcdef0123456789abcdef";
/// When that boot began (2023-11-14), in microseconds since the epoch.
const BOOTED_AT_US: u64 = 1_700_000_000_000_000;

/// Whether journalctl and systemd-journal-remote are here (scripts/test
/// installs them).
fn tools() -> bool {
    have(
        "journalctl",
        common::runs("journalctl", &["--version"]),
        "Debian's systemd package",
    ) && have(
        "systemd-journal-remote",
        Path::new(JOURNAL_REMOTE).exists(),
        "Debian's systemd-journal-remote package",
    )
}

/// One journal entry as the test writes it.
#[derive(Clone)]
struct Entry {
    realtime_us: u64,
    fields: Vec<(&'static str, Vec<u8>)>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// `n` kubelet entries `<prefix><i>`, a microsecond apart, from now.
fn kubelet_lines(prefix: &str, range: std::ops::Range<usize>) -> Vec<Entry> {
    let start = now_us();
    range
        .map(|i| Entry {
            realtime_us: start + i as u64,
            fields: vec![
                ("_HOSTNAME", b"node-a".to_vec()),
                ("_SYSTEMD_UNIT", b"kubelet.service".to_vec()),
                ("PRIORITY", b"6".to_vec()),
                ("MESSAGE", format!("{prefix}{i}").into_bytes()),
            ],
        })
        .collect()
}

/// The export format of `entries` (binary fields for values with a newline).
fn export(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        // One boot, which began at BOOTED_AT_US: the monotonic clock is
        // the time since then, as journald writes it (journalctl orders
        // the entries of one boot by it).
        write!(
            out,
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={BOOT}\n",
            entry.realtime_us,
            entry.realtime_us - BOOTED_AT_US
        )
        .unwrap();
        for (name, value) in &entry.fields {
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
    }
    out
}

/// Appends `entries` to the journal file `file` (created if missing) with
/// systemd-journal-remote, as journald would have written them.
fn write_journal(file: &Path, entries: &[Entry]) {
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", file.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&export(entries))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "systemd-journal-remote failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Dirs {
    _tmp: tempfile::TempDir,
    journal: PathBuf,
    data: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    Dirs {
        journal,
        data: tmp.path().join("data"),
        _tmp: tmp,
    }
}

/// ferro reading `journal` (with `extra` keys) into the Loki stand-in.
fn config(d: &Dirs, loki: &LokiServer, extra: &str) -> String {
    format!(
        r#"
        data_dir = "{data}"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.journald.node]
        directory = "{journal}"
        {extra}
        [processors.batch.b]
        timeout = "50ms"
        [exporters.loki.out]
        endpoint = "{loki}"
        [pipelines.logs]
        receivers = ["journald.node"]
        processors = ["batch.b"]
        exporters = ["loki.out"]
        "#,
        data = d.data.display(),
        journal = d.journal.display(),
        loki = loki.url(),
    )
}

const KUBELET_INFO: &[(&str, &str)] = &[
    ("job", "systemd-journal"),
    ("host", "node-a"),
    ("unit", "kubelet.service"),
    ("level", "info"),
];

/// How often each line of the stream `labels` is stored at the stand-in.
fn stored_counts(loki: &LokiServer, labels: &[(&str, &str)]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for entry in loki.entries("fake", labels) {
        *counts.entry(entry.line).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn journal_entries_arrive_with_unit_host_and_level_labels_and_metadata() {
    if !tools() {
        return;
    }
    let d = dirs();
    let t = now_us();
    let entry = |offset: u64, fields: Vec<(&'static str, &[u8])>| Entry {
        realtime_us: t + offset,
        fields: fields.into_iter().map(|(n, v)| (n, v.to_vec())).collect(),
    };
    write_journal(
        &d.journal.join("system.journal"),
        &[
            entry(
                0,
                vec![
                    ("_HOSTNAME", b"node-a"),
                    ("_SYSTEMD_UNIT", b"kubelet.service"),
                    ("PRIORITY", b"6"),
                    ("_PID", b"1234"),
                    ("SYSLOG_IDENTIFIER", b"kubelet"),
                    ("MESSAGE", b"Started kubelet"),
                ],
            ),
            entry(
                1,
                vec![
                    ("_HOSTNAME", b"node-a"),
                    ("_SYSTEMD_UNIT", b"containerd.service"),
                    ("PRIORITY", b"3"),
                    ("_PID", b"99"),
                    // A binary field: newlines and a byte that is not UTF-8.
                    ("MESSAGE", b"failed to pull image\n  cause: \xff timeout"),
                ],
            ),
            // No MESSAGE: skipped and counted.
            entry(
                2,
                vec![
                    ("_HOSTNAME", b"node-a"),
                    ("_SYSTEMD_UNIT", b"kubelet.service"),
                ],
            ),
            // The kernel: no unit, so no unit label.
            entry(
                3,
                vec![
                    ("_HOSTNAME", b"node-a"),
                    ("_TRANSPORT", b"kernel"),
                    ("SYSLOG_IDENTIFIER", b"kernel"),
                    ("PRIORITY", b"4"),
                    ("MESSAGE", b"Out of memory: Killed process 4242 (java)"),
                ],
            ),
            entry(
                4,
                vec![
                    ("_HOSTNAME", b"node-a"),
                    ("_SYSTEMD_UNIT", b"kubelet.service"),
                    ("PRIORITY", b"7"),
                    ("MESSAGE", b"debug detail"),
                ],
            ),
        ],
    );
    let loki = LokiServer::start().await;
    let mut all = config(
        &d,
        &loki,
        r#"structured_metadata = { pid = "_PID", syslog_identifier = "SYSLOG_IDENTIFIER" }"#,
    );
    // A second receiver of the same journal: only kubelet, warning or worse.
    all.push_str(&format!(
        r#"
        [receivers.journald.filtered]
        directory = "{}"
        units = ["kubelet.service", "containerd.service"]
        priority = "warning"
        job = "filtered"
        [pipelines."logs/filtered"]
        receivers = ["journald.filtered"]
        exporters = ["loki.out"]
        "#,
        d.journal.display()
    ));
    let ferro = Ferro::start(&all);
    loki.wait_for_entries(4 + 1, WAIT).await;
    let ns = |offset: u64| ((t + offset) * 1000) as i64;
    let stored = |line: &str, offset: u64, metadata: &[(&str, &str)]| Stored {
        timestamp_ns: ns(offset),
        line: line.to_string(),
        metadata: metadata
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    };
    assert_eq!(
        loki.entries("fake", KUBELET_INFO),
        vec![stored(
            "Started kubelet",
            0,
            &[("pid", "1234"), ("syslog_identifier", "kubelet")]
        )]
    );
    assert_eq!(
        loki.entries(
            "fake",
            &[
                ("job", "systemd-journal"),
                ("host", "node-a"),
                ("unit", "containerd.service"),
                ("level", "error"),
            ]
        ),
        vec![stored(
            "failed to pull image\n  cause: \u{fffd} timeout",
            1,
            &[("pid", "99")]
        )]
    );
    assert_eq!(
        loki.entries(
            "fake",
            &[
                ("job", "systemd-journal"),
                ("host", "node-a"),
                ("level", "warning")
            ]
        ),
        vec![stored(
            "Out of memory: Killed process 4242 (java)",
            3,
            &[("syslog_identifier", "kernel")]
        )]
    );
    assert_eq!(
        loki.entries(
            "fake",
            &[
                ("job", "systemd-journal"),
                ("host", "node-a"),
                ("unit", "kubelet.service"),
                ("level", "debug")
            ]
        ),
        vec![stored("debug detail", 4, &[])]
    );
    // The filtered receiver: units and priority applied by journalctl.
    assert_eq!(
        loki.entries(
            "fake",
            &[
                ("job", "filtered"),
                ("host", "node-a"),
                ("unit", "containerd.service"),
                ("level", "error"),
            ]
        ),
        vec![stored(
            "failed to pull image\n  cause: \u{fffd} timeout",
            1,
            &[]
        )]
    );
    assert_eq!(loki.with(|r| r.entry_count()), 5, "nothing else arrived");
    let labels = ["component=\"journald.node\""];
    ferro.wait_metric("ferro_journald_acknowledged_entries_total", &labels, |n| {
        n == 4.0
    });
    assert_eq!(
        ferro.metric("ferro_journald_entries_read_total", &labels),
        5.0
    );
    assert_eq!(
        ferro.metric(
            "ferro_journald_entries_skipped_total",
            &[labels[0], "reason=\"no_message\""]
        ),
        1.0
    );
    assert_eq!(
        ferro.metric("ferro_journald_lines_invalid_utf8_total", &labels),
        1.0
    );
    // The saved cursor (written within a second) names the last entry.
    let path = d.data.join("journald/node.cursor");
    let last = format!("t={:x}", t + 4);
    let cursor = std::cell::RefCell::new(String::new());
    let what = common::told(|| {
        format!(
            "the cursor of the last entry ({last}); have {}",
            cursor.borrow()
        )
    });
    common::eventually(what, WAIT, || {
        *cursor.borrow_mut() = std::fs::read_to_string(&path).unwrap_or_default();
        cursor.borrow().contains(&last)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_then_restart_neither_loses_nor_repeats_lines() {
    if !tools() {
        return;
    }
    let d = dirs();
    let file = d.journal.join("system.journal");
    let loki = LokiServer::start().await;
    let cfg = config(&d, &loki, "");
    let total = 20_000;
    let writer = {
        let file = file.clone();
        std::thread::spawn(move || {
            // Written over a few seconds, so that the kill comes mid-stream.
            for chunk in 0..80 {
                write_journal(&file, &kubelet_lines("k", chunk * 250..(chunk + 1) * 250));
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
        })
    };
    let mut first = Ferro::start(&cfg);
    loki.wait_for_entries(3000, WAIT).await;
    // Killed once a cursor is saved, so the restart resumes after it.
    let cursor = d.data.join("journald/node.cursor");
    common::eventually("a saved cursor", WAIT, || cursor.exists());
    first.signal("KILL");
    first.wait_exit(WAIT);
    let stored_before = loki.with(|r| r.entry_count());
    let second = Ferro::start(&cfg);
    writer.join().unwrap();
    loki.wait_for_entries(total, WAIT).await;
    let counts = stored_counts(&loki, KUBELET_INFO);
    assert_eq!(counts.len(), total, "every line arrived");
    assert!(counts.values().all(|&n| n == 1), "no line is stored twice");
    // What the second ferro sent again: at most the batches that were in
    // flight and those acknowledged after the last cursor write. Loki
    // stores each once (the same stream, timestamp and line): the strict
    // stand-in refuses them as out of order, or drops them as duplicates.
    let accepted = second.metric(
        "ferro_receiver_accepted_items_total",
        &["component=\"journald.node\""],
    );
    let resent = accepted as usize - (total - stored_before);
    eprintln!(
        "kill -9 after {stored_before} lines stored: the second ferro sent {resent} again (each stored once)"
    );
    assert!(
        resent < stored_before,
        "the second ferro resumed after the saved cursor, not from the start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_restart_sends_nothing_twice() {
    if !tools() {
        return;
    }
    let d = dirs();
    let file = d.journal.join("system.journal");
    let loki = LokiServer::start().await;
    let cfg = config(&d, &loki, "");
    write_journal(&file, &kubelet_lines("a", 0..2000));
    let mut first = Ferro::start(&cfg);
    loki.wait_for_entries(2000, WAIT).await;
    first.wait_metric(
        "ferro_journald_acknowledged_entries_total",
        &["component=\"journald.node\""],
        |n| n == 2000.0,
    );
    first.signal("TERM");
    assert!(first.wait_exit(WAIT).success());
    // Written while ferro was stopped.
    write_journal(&file, &kubelet_lines("b", 0..500));
    let second = Ferro::start(&cfg);
    loki.wait_for_entries(2500, WAIT).await;
    second.wait_metric(
        "ferro_journald_acknowledged_entries_total",
        &["component=\"journald.node\""],
        |n| n == 500.0,
    );
    assert_eq!(
        second.metric(
            "ferro_receiver_accepted_items_total",
            &["component=\"journald.node\""]
        ),
        500.0,
        "the second ferro read only what was new"
    );
    let counts = stored_counts(&loki, KUBELET_INFO);
    assert_eq!(counts.len(), 2500);
    assert!(counts.values().all(|&n| n == 1));
    assert_eq!(loki.with(|r| r.duplicates), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_and_vacuuming_while_following_lose_nothing() {
    if !tools() {
        return;
    }
    let d = dirs();
    let active = d.journal.join("system.journal");
    let loki = LokiServer::start().await;
    let ferro = Ferro::start(&config(&d, &loki, ""));
    write_journal(&active, &kubelet_lines("one", 0..1000));
    loki.wait_for_entries(1000, WAIT).await;
    // journald's rotation: the active file is archived under a new name,
    // and a new active file is started.
    let archived = d.journal.join("system@0001-0001.journal");
    std::fs::rename(&active, &archived).unwrap();
    write_journal(&active, &kubelet_lines("two", 0..1000));
    loki.wait_for_entries(2000, WAIT).await;
    // Vacuuming: the archived file goes while the active one grows.
    std::fs::remove_file(&archived).unwrap();
    write_journal(&active, &kubelet_lines("three", 0..1000));
    loki.wait_for_entries(3000, WAIT).await;
    let counts = stored_counts(&loki, KUBELET_INFO);
    for prefix in ["one", "two", "three"] {
        for i in 0..1000 {
            assert_eq!(counts.get(&format!("{prefix}{i}")), Some(&1), "{prefix}{i}");
        }
    }
    assert_eq!(counts.len(), 3000);
    ferro.wait_metric(
        "ferro_journald_acknowledged_entries_total",
        &["component=\"journald.node\""],
        |n| n == 3000.0,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_journal_directory_and_a_garbage_file_are_counted_not_fatal() {
    if !tools() {
        return;
    }
    let d = dirs();
    std::fs::remove_dir(&d.journal).unwrap();
    let loki = LokiServer::start().await;
    let ferro = Ferro::start(&config(&d, &loki, ""));
    let labels = ["component=\"journald.node\""];
    // journalctl cannot open the directory: it ends, is counted, and
    // is started again.
    ferro.wait_metric(
        "ferro_journald_reader_restarts_total",
        &[labels[0], "reason=\"exited\""],
        |n| n >= 1.0,
    );
    ferro.wait_for_log("journalctl says", WAIT);
    std::fs::create_dir_all(&d.journal).unwrap();
    // A file with a journal's name and garbage inside, beside a real one.
    let garbage: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(d.journal.join("garbage.journal"), garbage).unwrap();
    write_journal(
        &d.journal.join("system.journal"),
        &kubelet_lines("ok", 0..100),
    );
    loki.wait_for_entries(100, WAIT).await;
    assert_eq!(stored_counts(&loki, KUBELET_INFO).len(), 100);
    let messages = ferro.metric("ferro_journald_journalctl_messages_total", &labels);
    assert!(messages >= 1.0, "journalctl's complaints are counted");
    // ferro is still healthy.
    assert_eq!(
        common::http_get(ferro.telemetry, "/-/ready").0,
        200,
        "ferro is ready"
    );
}
