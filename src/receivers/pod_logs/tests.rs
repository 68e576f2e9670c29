//! The receiver in process, fed by files in a temp dir shaped like
//! `/var/log/pods` and read through a pipeline channel the test controls:
//! acknowledging, holding or dropping each batch.

use std::io::Write;
use std::time::Duration;
use tokio::sync::mpsc;

use super::*;
use crate::config::ComponentId;
use crate::config::Validate;
use crate::delivery::MemoryLimiter;
use crate::delivery::PipelineInputs;
use crate::delivery::{Batch, Outcome};
use crate::receivers::Inputs;
use crate::receivers::RunningReceiver;
use crate::receivers::pod_logs::positions::FileKey;
use crate::receivers::pod_logs::positions::Fingerprint;
use crate::receivers::pod_logs::positions::Position;
use crate::signal::{Labels, Logs};
use crate::telemetry::Telemetry;
use crate::testing::{eventually, eventually_with};
use std::fs::File;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

const WAIT: Duration = Duration::from_secs(10);

fn config(root: &Path, extra: &str) -> PodLogsConfig {
    let start_at = if extra.contains("start_at") {
        ""
    } else {
        "start_at = \"beginning\""
    };
    let text = format!(
        r#"
        include = ["{}/*/*/*.log"]
        rescan_interval = "50ms"
        {start_at}
        {extra}
        "#,
        root.display()
    );
    toml::from_str::<RawPodLogsConfig>(&text)
        .unwrap()
        .validate()
        .unwrap()
}

/// `<root>/<ns>_<pod>_<uid>/<container>/0.log`, directories made.
fn pod_log(root: &Path, pod: &str) -> PathBuf {
    let dir = root.join(format!("default_{pod}_uid-{pod}")).join("app");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("0.log")
}

fn cri(text: &str) -> String {
    format!("2024-01-01T00:00:00.000000001Z stdout F {text}\n")
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn lines(prefix: &str, range: std::ops::Range<usize>) -> String {
    range.map(|i| cri(&format!("{prefix}{i}"))).collect()
}

#[derive(Debug, Clone)]
struct Got {
    labels: Labels,
    line: String,
    timestamp_ns: i64,
    metadata: Vec<(String, String)>,
}

fn entries(logs: &Logs) -> Vec<Got> {
    logs.streams
        .iter()
        .flat_map(|s| {
            s.entries.iter().map(|e| Got {
                labels: s.labels.clone(),
                line: e.line_str().to_string(),
                timestamp_ns: e.timestamp_ns,
                metadata: e.metadata.clone(),
            })
        })
        .collect()
}

struct Harness {
    running: Option<RunningReceiver>,
    rx: mpsc::Receiver<Batch<Logs>>,
    telemetry: Arc<Telemetry>,
    data_dir: PathBuf,
}

impl Harness {
    async fn start(config: &PodLogsConfig, data_dir: &Path) -> Self {
        Self::start_with(config, data_dir, 64, MemoryLimiter::new(1 << 30)).await
    }

    async fn start_with(
        config: &PodLogsConfig,
        data_dir: &Path,
        capacity: usize,
        limiter: Arc<MemoryLimiter>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        let telemetry = Telemetry::new();
        let inputs = Inputs {
            logs: Some(PipelineInputs::new(vec![tx], Duration::from_millis(20))),
            ..Inputs::default()
        };
        let running = start(
            &ComponentId::new("pod_logs", "test"),
            config,
            inputs,
            limiter,
            &telemetry,
            data_dir,
        )
        .await
        .unwrap();
        Self {
            running: Some(running),
            rx,
            telemetry,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Receives and acknowledges batches until `n` entries came.
    async fn take(&mut self, n: usize) -> Vec<Got> {
        let mut got = Vec::new();
        while got.len() < n {
            let batch = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("only {} of {n} entries came: {}", got.len(), summary(&got))
                })
                .expect("the receiver is running");
            got.extend(entries(&batch.data));
        }
        assert_eq!(
            got.len(),
            n,
            "more entries than expected: {:?}",
            texts(&got)
        );
        got
    }

    /// Receives `n` batches without finishing them.
    async fn hold(&mut self, n: usize) -> Vec<Batch<Logs>> {
        let mut held = Vec::new();
        while held.len() < n {
            held.push(
                tokio::time::timeout(WAIT, self.rx.recv())
                    .await
                    .unwrap_or_else(|_| panic!("only {} of {n} batches came", held.len()))
                    .unwrap(),
            );
        }
        held
    }

    /// Appends a marker line to `path` and takes the next entry: the marker,
    /// and nothing before it. The tailer reads a file in order, so whatever
    /// else it would send from `path` would come first.
    async fn nothing_before_a_marker(&mut self, path: &Path) {
        append(path, &cri("marker"));
        let got = self.take(1).await;
        assert_eq!(texts(&got), vec!["marker"], "unexpected entries");
    }

    async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop_taking(Duration::from_secs(10)).await;
            running
                .finish(tokio::time::Instant::now() + Duration::from_secs(10))
                .await;
        }
    }

    fn metric(&self, name: &str, label: &str) -> f64 {
        self.telemetry
            .encode()
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn positions(&self) -> Vec<Position> {
        positions::load(&positions_path(&self.data_dir, "test"))
            .unwrap()
            .unwrap_or_default()
    }

    /// Waits until the positions file says `path` is acknowledged up to `offset`.
    async fn wait_position(&self, path: &Path, offset: u64) {
        let what = format!("{} acknowledged up to {offset}", path.display());
        eventually_with(&what, || {
            let all = self.positions();
            match all.iter().find(|p| p.path == path).map(|p| p.offset) {
                Some(at) if at == offset => Ok(()),
                at => Err(format!("its position is {at:?}: {all:?}")),
            }
        })
        .await;
    }
}

/// How many lines came per prefix (the text before the first `-`).
fn summary(got: &[Got]) -> String {
    let mut by = std::collections::BTreeMap::new();
    for g in got {
        *by.entry(g.line.split('-').next().unwrap_or(""))
            .or_insert(0) += 1;
    }
    format!("{by:?}")
}

fn texts(got: &[Got]) -> Vec<&str> {
    got.iter().map(|g| g.line.as_str()).collect()
}

fn expected(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cri_and_docker_files_merge_partials_and_carry_pod_labels() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let cri_path = pod_log(&root, "web");
    let docker_path = pod_log(&root, "db");
    std::fs::write(
        &cri_path,
        "2024-01-01T00:00:00Z stdout P hello \n\
         2024-01-01T00:00:01Z stderr F oops\n\
         2024-01-01T00:00:02Z stdout F world\n",
    )
    .unwrap();
    std::fs::write(
        &docker_path,
        concat!(
            r#"{"log":"part a ","stream":"stdout","time":"2024-01-01T00:00:00Z"}"#,
            "\n",
            r#"{"log":"part b\n","stream":"stdout","time":"2024-01-01T00:00:01Z"}"#,
            "\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut h = Harness::start(&config(&root, "labels = { cluster = \"c1\" }"), &data).await;
    let mut got = h.take(3).await;
    got.sort_by(|a, b| a.line.cmp(&b.line));
    assert_eq!(texts(&got), vec!["hello world", "oops", "part a part b"]);
    let hello = &got[0];
    assert_eq!(
        hello.labels,
        Labels::from_pairs([
            ("cluster", "c1"),
            ("namespace", "default"),
            ("pod", "web"),
            ("pod_uid", "uid-web"),
            ("container", "app"),
            ("stream", "stdout"),
        ])
    );
    assert_eq!(hello.timestamp_ns, 1_704_067_200_000_000_000);
    assert_eq!(
        hello.metadata,
        vec![("filename".to_string(), cri_path.display().to_string())]
    );
    assert_eq!(got[1].labels.get("stream"), Some("stderr"));
    assert_eq!(got[2].labels.get("pod"), Some("db"));
    assert_eq!(h.metric("ferro_pod_logs_lines_read_total", ""), 5.0);
    assert_eq!(h.metric("ferro_pod_logs_files_open", ""), 2.0);
    h.stop().await;
    assert_eq!(h.metric("ferro_pod_logs_files_open", ""), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_arrives_once_in_order_while_the_file_grows() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let path = pod_log(&root, "web");
    std::fs::write(&path, "").unwrap();
    let mut h = Harness::start(&config(&root, ""), &dir.path().join("data")).await;
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            for chunk in 0..40 {
                // Writes that end mid-line: the reader waits for the rest.
                let text = lines("line-", chunk * 500..(chunk + 1) * 500);
                let (a, b) = text.split_at(text.len() / 3);
                append(&path, a);
                append(&path, b);
            }
        })
    };
    let got = h.take(20_000).await;
    writer.join().unwrap();
    assert_eq!(texts(&got), expected("line-", 0..20_000));
    h.wait_position(&path, size(&path)).await;
    assert_eq!(
        h.metric("ferro_pod_logs_acknowledged_entries_total", "delivered"),
        20_000.0
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_move_only_when_acknowledged_and_past_dropped_batches() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let path = pod_log(&root, "web");
    std::fs::write(&path, lines("a", 0..10)).unwrap();
    let mut h = Harness::start(&config(&root, ""), &dir.path().join("data")).await;
    let held = h.hold(1).await;
    assert_eq!(held[0].items(), 10);
    // A later marker: another file's line, acknowledged, and its position
    // written after the batch above was held.
    let other = pod_log(&root, "other");
    std::fs::write(&other, lines("o", 0..1)).unwrap();
    h.take(1).await;
    h.wait_position(&other, size(&other)).await;
    let offset = |path: &Path| {
        h.positions()
            .iter()
            .find(|p| p.path == path)
            .map(|p| p.offset)
    };
    assert_eq!(offset(&path), Some(0), "nothing acknowledged yet");
    drop(held);
    h.wait_position(&path, size(&path)).await;

    // An exporter gave up on the next batch: the position moves on (or the
    // lines would be dropped again after every restart), and it is counted.
    append(&path, &lines("b", 0..5));
    let held = h.hold(1).await;
    held.into_iter().for_each(|b| b.drop_with(Outcome::Dropped));
    h.wait_position(&path, size(&path)).await;
    assert_eq!(
        h.metric("ferro_pod_logs_acknowledged_entries_total", "dropped"),
        5.0
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resends_only_the_unacknowledged_tail() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let data = dir.path().join("data");
    let path = pod_log(&root, "web");
    std::fs::write(&path, lines("x", 0..3000)).unwrap();
    let cfg = config(&root, "");
    let mut h = Harness::start(&cfg, &data).await;
    let mut held = h.hold(2).await;
    let first = entries(&held.remove(0).data);
    assert_eq!(texts(&first), expected("x", 0..first.len()));
    // The first batch is acknowledged; the second is still in flight when
    // ferro stops.
    h.wait_position(&path, lines("x", 0..first.len()).len() as u64)
        .await;
    h.stop().await;
    drop(held);

    let mut h = Harness::start(&cfg, &data).await;
    let again = h.take(3000 - first.len()).await;
    assert_eq!(texts(&again), expected("x", first.len()..3000));
    h.nothing_before_a_marker(&path).await;
    h.stop().await;
}

/// A shutdown that gives up on a batch (its backend down at the deadline)
/// interrupts it: the position stays before it, and before every batch
/// after it, so the next start reads those lines again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_delivery_is_read_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let data = dir.path().join("data");
    let path = pod_log(&root, "web");
    std::fs::write(&path, lines("x", 0..3000)).unwrap();
    let cfg = config(&root, "");
    let mut h = Harness::start(&cfg, &data).await;
    let mut held = h.hold(3).await;
    let first = held.remove(0);
    let delivered = first.items();
    drop(first);
    h.wait_position(&path, lines("x", 0..delivered).len() as u64)
        .await;
    // The second is interrupted, the third then delivered: neither moves
    // the position past the second.
    let second = held.remove(0);
    second.drop_with(Outcome::Interrupted);
    drop(held);
    h.stop().await;
    let mut h = Harness::start(&cfg, &data).await;
    let again = h.take(3000 - delivered).await;
    assert_eq!(texts(&again), expected("x", delivered..3000));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_batches_per_file_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let path = pod_log(&root, "web");
    let total = 50_000;
    std::fs::write(&path, lines("x", 0..total)).unwrap();
    let mut h = Harness::start(&config(&root, ""), &dir.path().join("data")).await;
    let held = h.hold(tail::MAX_IN_FLIGHT).await;
    assert!(held.iter().all(|b| b.items() == tail::MAX_BATCH_ENTRIES));
    // Nothing is acknowledged: the tailer stops, having read no further
    // than the batch it is filling.
    eventually("the tailer waits for acknowledgements", || {
        h.metric("ferro_pod_logs_files_awaiting_acks", "") == 1.0
    })
    .await;
    assert!(h.rx.try_recv().is_err(), "a batch past the in-flight bound");
    let read = h.metric("ferro_pod_logs_lines_read_total", "") as usize;
    let limit = (tail::MAX_IN_FLIGHT + 1) * tail::MAX_BATCH_ENTRIES;
    assert!(read <= limit, "read {read} lines ahead");
    let first: usize = held.iter().map(|b| b.items()).sum();
    drop(held);
    let rest = h.take(total - first).await;
    assert_eq!(rest.last().unwrap().line, format!("x{}", total - 1));
    eventually("the tailer reads again", || {
        h.metric("ferro_pod_logs_files_awaiting_acks", "") == 0.0
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pipeline_or_memory_limit_waits_and_loses_nothing() {
    // A channel of one batch; then memory for about one batch.
    for (limit, reason) in [(1 << 30, "pipeline_full"), (128 * 1024, "memory_limit")] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pods");
        let path = pod_log(&root, "web");
        std::fs::write(&path, lines("x", 0..5000)).unwrap();
        let limiter = MemoryLimiter::new(limit);
        let mut h = Harness::start_with(
            &config(&root, ""),
            &dir.path().join("data"),
            1,
            limiter.clone(),
        )
        .await;
        eventually(&format!("a refusal for {reason}"), || {
            h.metric("ferro_receiver_refused_items_total", reason) > 0.0
        })
        .await;
        let got = h.take(5000).await;
        assert_eq!(texts(&got), expected("x", 0..5000));
        h.wait_position(&path, size(&path)).await;
        assert_eq!(limiter.used(), 0);
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_create_rotation_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let path = pod_log(&root, "web");
    let mut h = Harness::start(&config(&root, ""), &dir.path().join("data")).await;
    let mut want = Vec::new();
    let mut file = std::fs::File::create(&path).unwrap();
    for generation in 0..8 {
        let prefix = format!("g{generation}-");
        file.write_all(lines(&prefix, 0..300).as_bytes()).unwrap();
        // kubelet renames; the runtime writes a little more to the renamed
        // file before it reopens the path.
        std::fs::rename(&path, path.with_extension(format!("log.{generation}"))).unwrap();
        file.write_all(lines(&prefix, 300..350).as_bytes()).unwrap();
        file = std::fs::File::create(&path).unwrap();
        want.extend(expected(&prefix, 0..350));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let got = h.take(want.len()).await;
    for generation in 0..8 {
        let prefix = format!("g{generation}-");
        let of_generation: Vec<&str> = texts(&got)
            .into_iter()
            .filter(|l| l.starts_with(&prefix))
            .collect();
        assert_eq!(of_generation, expected(&prefix, 0..350), "in order, once");
    }
    // Rotated files are let go once read to their end.
    eventually("the rotated files closed, only the live one open", || {
        h.metric("ferro_pod_logs_files_open", "") == 1.0
    })
    .await;
    // Their tailers are reaped at the next rescans; the live file's tailer
    // still hears of writes then (it is woken, not left to its once-a-minute
    // look), and nothing more came from any of them.
    let rescans = h.metric("ferro_pod_logs_rescans_total", "");
    eventually("two more rescans", || {
        h.metric("ferro_pod_logs_rescans_total", "") >= rescans + 2.0
    })
    .await;
    h.nothing_before_a_marker(&path).await;
    assert_eq!(h.metric("ferro_pod_logs_rotations_total", "renamed"), 8.0);
    h.stop().await;
    assert_eq!(h.positions().len(), 1, "only the live file is remembered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_reads_the_file_again_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let path = pod_log(&root, "web");
    std::fs::write(&path, "").unwrap();
    let mut h = Harness::start(&config(&root, ""), &dir.path().join("data")).await;
    for round in 0..5 {
        let prefix = format!("r{round}-");
        append(&path, &lines(&prefix, 0..200));
        let got = h.take(200).await;
        assert_eq!(texts(&got), expected(&prefix, 0..200));
        h.wait_position(&path, size(&path)).await;
        // logrotate copies, then truncates in place; the writer goes on at
        // once and writes past the old size before the tailer looks.
        std::fs::copy(&path, path.with_extension(format!("log.{round}"))).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&path, &lines(&format!("after{round}-"), 0..400));
        let got = h.take(400).await;
        assert_eq!(texts(&got), expected(&format!("after{round}-"), 0..400));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
    }
    // The marker is read from the start of the truncated file: the last
    // truncation was seen, and nothing else came.
    h.nothing_before_a_marker(&path).await;
    assert_eq!(
        h.metric("ferro_pod_logs_rotations_total", "truncated"),
        10.0
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_inode_is_a_new_file_and_the_same_file_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let data = dir.path().join("data");
    let reused = pod_log(&root, "new");
    let same = pod_log(&root, "old");
    std::fs::write(&reused, lines("n", 0..20)).unwrap();
    std::fs::write(&same, lines("o", 0..20)).unwrap();
    let key = |p: &Path| FileKey::of(&std::fs::metadata(p).unwrap());
    let fingerprint = |p: &Path| {
        let file = File::open(p).unwrap();
        Fingerprint::read(&file, size(p)).unwrap()
    };
    // As if ferro had read a deleted file to offset 500 and the inode had
    // been given to `reused`, whose first bytes differ.
    let ten = lines("o", 0..10).len() as u64;
    std::fs::create_dir_all(data.join("pod_logs")).unwrap();
    positions::save(
        &positions_path(&data, "test"),
        &[
            Position {
                path: PathBuf::from("/gone/0.log"),
                key: key(&reused),
                fingerprint: Fingerprint {
                    len: 1024,
                    hash: 12345,
                },
                offset: 500,
            },
            Position {
                path: same.clone(),
                key: key(&same),
                fingerprint: fingerprint(&same),
                offset: ten,
            },
        ],
    )
    .unwrap();
    let mut h = Harness::start(&config(&root, "start_at = \"end\""), &data).await;
    let mut got = texts(&h.take(30).await)
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    got.sort();
    let mut want = expected("n", 0..20);
    want.extend(expected("o", 10..20));
    want.sort();
    assert_eq!(got, want);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_at_applies_only_to_files_found_at_the_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let data = dir.path().join("data");
    let old = pod_log(&root, "old");
    // The last line is being written: it is read whole once it ends.
    std::fs::write(
        &old,
        format!(
            "{}2024-01-01T00:00:00Z stdout F hal",
            lines("history", 0..100)
        ),
    )
    .unwrap();
    let cfg = config(&root, "start_at = \"end\"");
    let mut h = Harness::start(&cfg, &data).await;
    // Once the file is open (at its end: at the start of the line being
    // written), the line ended now is the marker: the history before it is
    // skipped, so it comes first and alone.
    eventually("the file opened", || {
        h.metric("ferro_pod_logs_files_open", "") == 1.0
    })
    .await;
    append(&old, "f-line\n");
    assert_eq!(texts(&h.take(1).await), vec!["half-line"]);
    // A file that appears while running is read from its start.
    let new = pod_log(&root, "new");
    std::fs::write(&new, lines("new", 0..3)).unwrap();
    assert_eq!(texts(&h.take(3).await), expected("new", 0..3));
    h.wait_position(&new, size(&new)).await;
    h.stop().await;

    // So is one that appeared while ferro was stopped, and the others go on.
    let later = pod_log(&root, "later");
    std::fs::write(&later, lines("later", 0..2)).unwrap();
    append(&old, &lines("more", 0..2));
    let mut h = Harness::start(&cfg, &data).await;
    let mut got: Vec<String> = texts(&h.take(4).await)
        .into_iter()
        .map(str::to_string)
        .collect();
    got.sort();
    assert_eq!(got, vec!["later0", "later1", "more0", "more1"]);
    h.stop().await;

    // start_at = "beginning" on a first start reads the history.
    let mut h = Harness::start(&config(&root, ""), &dir.path().join("data2")).await;
    h.take(100 + 1 + 2 + 3 + 2).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rotated_while_ferro_was_stopped_is_read_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let data = dir.path().join("data");
    let path = pod_log(&root, "web");
    std::fs::write(&path, lines("a", 0..10)).unwrap();
    let cfg = config(&root, "");
    let mut h = Harness::start(&cfg, &data).await;
    h.take(10).await;
    h.wait_position(&path, size(&path)).await;
    h.stop().await;
    append(&path, &lines("a", 10..20));
    std::fs::rename(&path, path.with_extension("log.20240101-000000")).unwrap();
    std::fs::write(&path, lines("b", 0..5)).unwrap();
    let mut h = Harness::start(&cfg, &data).await;
    let mut got: Vec<String> = texts(&h.take(15).await)
        .into_iter()
        .map(str::to_string)
        .collect();
    got.sort();
    let mut want = expected("a", 10..20);
    want.extend(expected("b", 0..5));
    want.sort();
    assert_eq!(got, want);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_file_is_read_to_its_end_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let path = pod_log(&root, "web");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(lines("a", 0..10).as_bytes()).unwrap();
    let mut h = Harness::start(&config(&root, ""), &dir.path().join("data")).await;
    h.take(10).await;
    std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap()).unwrap();
    // The container still writes a last line through its open descriptor.
    file.write_all(lines("a", 10..11).as_bytes()).unwrap();
    assert_eq!(texts(&h.take(1).await), vec!["a10"]);
    eventually("the deleted file closed and forgotten", || {
        h.metric("ferro_pod_logs_files_open", "") == 0.0 && h.positions().is_empty()
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lines_are_cut_marked_and_the_next_lines_are_intact() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let path = pod_log(&root, "web");
    let mut text = cri("before");
    text.push_str(&cri(&"y".repeat(10 << 20)));
    text.push_str(&cri("after"));
    std::fs::write(&path, text).unwrap();
    let plain = root.join("plain.log");
    let mut text = "p".repeat(3 << 20);
    text.push_str("\nshort\n");
    std::fs::write(&plain, text).unwrap();
    let mut cfg = config(&root, "max_line_size = \"1KiB\"");
    cfg.include.push(plain.display().to_string());
    let mut h = Harness::start(&cfg, &dir.path().join("data")).await;
    let mut got = h.take(5).await;
    got.sort_by(|a, b| (a.line.len(), &a.line).cmp(&(b.line.len(), &b.line)));
    assert_eq!(texts(&got[..3]), vec!["after", "short", "before"]);
    for long in &got[3..] {
        assert_eq!(long.line.len(), 1024);
        assert!(long.metadata.contains(&("truncated".into(), "true".into())));
    }
    // A file outside the layout is told apart by its name.
    let short = got.iter().find(|g| g.line == "short").unwrap();
    assert_eq!(
        short.labels,
        Labels::from_pairs([("filename", plain.to_str().unwrap())])
    );
    assert_eq!(h.metric("ferro_pod_logs_lines_truncated_total", ""), 2.0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiline_joins_stack_traces_and_flushes_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let path = pod_log(&root, "web");
    let cfg = config(
        &root,
        r#"multiline = { start = '^\d{4}-', timeout = "200ms", max_lines = 3 }"#,
    );
    let mut h = Harness::start(&cfg, &dir.path().join("data")).await;
    let mut text = String::new();
    for line in [
        "2024-01-01 ERROR boom",
        "java.lang.RuntimeException: boom",
        "\tat A.b(A.java:1)",
        "2024-01-01 INFO next",
        "  continued",
        "  one more",
        "  over max_lines",
        "2024-01-01 last",
    ] {
        text.push_str(&cri(line));
    }
    std::fs::write(&path, text).unwrap();
    let got = h.take(4).await;
    assert_eq!(
        texts(&got),
        vec![
            "2024-01-01 ERROR boom\njava.lang.RuntimeException: boom\n\tat A.b(A.java:1)",
            "2024-01-01 INFO next\n  continued\n  one more",
            "  over max_lines",
            "2024-01-01 last",
        ]
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_keeps_what_is_acknowledged_and_loses_no_open_entry() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pods");
    let data = dir.path().join("data");
    let path = pod_log(&root, "web");
    // A partial line whose end is not written yet when ferro stops.
    std::fs::write(
        &path,
        format!(
            "{}2024-01-01T00:00:00Z stdout P first half, \n",
            lines("a", 0..3)
        ),
    )
    .unwrap();
    let cfg = config(&root, "");
    let mut h = Harness::start(&cfg, &data).await;
    h.take(3).await;
    h.wait_position(&path, lines("a", 0..3).len() as u64).await;
    h.stop().await;
    append(&path, "2024-01-01T00:00:01Z stdout F second half\n");
    let mut h = Harness::start(&cfg, &data).await;
    assert_eq!(texts(&h.take(1).await), vec!["first half, second half"]);
    h.stop().await;
}

#[test]
fn the_config_section_loads_with_defaults_and_reports_every_mistake() {
    use crate::plan::Config;
    let config = Config::from_str(
        r#"
        [receivers.pod_logs.node]
        [exporters.debug.out]
        [pipelines.logs]
        receivers = ["pod_logs.node"]
        exporters = ["debug.out"]
        "#,
        "test.toml",
    )
    .unwrap();
    let Some(crate::receivers::ReceiverConfig::PodLogs(c)) =
        config.receivers.get(&ComponentId::new("pod_logs", "node"))
    else {
        panic!("a pod_logs receiver");
    };
    assert_eq!(c.include, vec!["/var/log/pods/*/*/*.log"]);
    assert_eq!(
        (c.format, c.start_at, c.max_line_size, c.pod_uid_label),
        (FormatName::Auto, StartAt::End, 256 * 1024, true)
    );
    assert_eq!(c.rescan_interval, Duration::from_secs(5));
    assert!(c.multiline.is_none());

    let errors = Config::from_str(
        r#"
        [receivers.pod_logs.node]
        include = ["relative/*.log", "/a/[.log"]
        exclude = ["/b/[.log"]
        format = "syslog"
        "#,
        "test.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(errors.contains("pod_logs.node.format"), "{errors}");
    let errors = Config::from_str(
        r#"
        [receivers.pod_logs.node]
        include = ["relative/*.log", "/a/[.log"]
        exclude = ["/b/[.log"]
        rescan_interval = "1ms"
        max_line_size = "32MiB"
        labels = { "bad-name" = "x" }
        multiline = { start = "(", max_lines = 1 }
        colour = "blue"
        [exporters.debug.out]
        [pipelines.logs]
        receivers = ["pod_logs.node"]
        exporters = ["debug.out"]
        [pipelines.traces]
        receivers = ["pod_logs.node"]
        exporters = ["debug.out"]
        "#,
        "test.toml",
    )
    .unwrap_err()
    .to_string();
    for needle in [
        "include.0: must be an absolute path",
        "include.1: not a glob",
        "exclude.0: not a glob",
        "rescan_interval: must be at least 10ms",
        "max_line_size: must be between 64B and 16MiB",
        "labels.bad-name: not a label name",
        "multiline.start: not a regex",
        "multiline.max_lines: must be at least 2",
        "colour: unknown field",
    ] {
        assert!(errors.contains(needle), "{needle} in {errors}");
    }
}

#[test]
fn kubelet_paths_give_pod_labels_and_others_do_not() {
    let path =
        Path::new("/var/log/pods/kube-system_coredns-5d78c9869d-x2x4l_0b5e-41/coredns/3.log");
    assert_eq!(
        discover::pod_path(path),
        Some(discover::PodPath {
            namespace: "kube-system",
            pod: "coredns-5d78c9869d-x2x4l",
            uid: "0b5e-41",
            container: "coredns",
        })
    );
    for other in [
        "/var/log/syslog",
        "/var/log/pods/no-underscores/app/0.log",
        "/var/log/pods/ns__uid/app/0.log",
        "/var/log/pods/ns_pod_uid/app/0.log.20240101-000000",
        "/var/log/pods/ns_pod_u_i_d/app/0.log",
        "0.log",
    ] {
        assert_eq!(discover::pod_path(Path::new(other)), None, "{other}");
    }
    let mut cfg = config(Path::new("/r"), "pod_uid_label = false");
    let [out, err, none] = discover::stream_labels(&cfg, path);
    assert_eq!(
        out.to_string(),
        r#"{container="coredns", namespace="kube-system", pod="coredns-5d78c9869d-x2x4l", stream="stdout"}"#
    );
    assert_eq!(err.get("stream"), Some("stderr"));
    assert_eq!(none.get("stream"), None);
    cfg.labels.insert("job".into(), "node-logs".into());
    let [out, _, none] = discover::stream_labels(&cfg, Path::new("/var/log/app.log"));
    assert_eq!(out.to_string(), r#"{job="node-logs", stream="stdout"}"#);
    assert_eq!(none.to_string(), r#"{job="node-logs"}"#);
    assert_eq!(
        discover::watch_root("/var/log/pods/*/*/*.log"),
        PathBuf::from("/var/log/pods")
    );
    assert_eq!(
        discover::watch_root("/var/log/app.log"),
        PathBuf::from("/var/log")
    );
}

#[test]
fn the_reader_cuts_lines_and_keeps_only_head_and_tail_of_long_ones() {
    use reader::{Line, LineReader, TAIL};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let long = format!("{}{}", "h".repeat(100), "m".repeat(300_000));
    let tail_text = "t".repeat(TAIL);
    std::fs::write(&path, format!("one\n{long}{tail_text}\ntwo\nthree")).unwrap();
    let file = File::open(&path).unwrap();
    let mut reader = LineReader::new(0, 100);
    let mut got = Vec::new();
    let mut max_buffered = 0;
    loop {
        while let Some(line) = reader.next_line() {
            let raw = reader.raw(line);
            got.push((
                String::from_utf8_lossy(raw.head).into_owned(),
                raw.tail.len(),
                raw.cut,
                raw.start,
            ));
        }
        max_buffered = max_buffered.max(reader.buffered());
        if reader.fill(&file).unwrap() == 0 {
            break;
        }
    }
    assert_eq!(got[0], ("one".into(), 0, false, 0));
    assert_eq!(got[1].0, "h".repeat(100));
    assert_eq!((got[1].1, got[1].2, got[1].3), (TAIL, true, 4));
    assert_eq!(got[2].0, "two");
    assert_eq!(got.len(), 3, "`three` waits for its newline");
    // One chunk, plus the head and tail of the long line: never the line.
    assert!(
        max_buffered <= reader::CHUNK + 2 * (100 + TAIL),
        "{max_buffered}"
    );
    assert_eq!(reader.consumed(), (4 + long.len() + TAIL + 1 + 4) as u64);
    // The file ends for good: the last line is handed out without `\n`.
    let rest = reader.take_rest().unwrap();
    assert!(matches!(rest, Line::InBuffer { .. }));
    assert_eq!(reader.raw(rest).head, b"three");
    assert!(reader.take_rest().is_none());
    // What was read after an offset can be taken back before it is cut.
    let mut reader = LineReader::new(0, 100);
    reader.fill(&file).unwrap();
    reader.unread_to(2);
    assert_eq!(reader.read_offset(), 2);
    assert!(reader.next_line().is_none());
}
