use super::segment;
use super::*;
use crate::delivery::{AckWaiter, Batch, Outcome, Ticket};
use crate::signal::logs::{Entry, Stream};
use crate::signal::{Labels, Logs};
use crate::testing::eventually;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const MIB: u64 = 1 << 20;

fn settings(max_size: u64) -> DiskSettings {
    DiskSettings {
        max_size,
        fsync: Fsync::Batch,
        fsync_interval: Duration::from_secs(1),
        drop_oldest: false,
    }
}

/// A batch of `n` log lines `tag-0` … with a line of `pad` bytes each.
fn batch(tag: &str, n: usize, pad: usize) -> (Batch<Logs>, AckWaiter) {
    let entries = (0..n)
        .map(|i| Entry::new(i as i64, format!("{tag}-{i} {}", "x".repeat(pad))))
        .collect();
    let logs = Logs {
        streams: vec![Stream {
            labels: Labels::from_pairs([("job", "test")]),
            entries,
        }],
    };
    let (ticket, ack) = Ticket::untracked().with_ack();
    (Batch::new(logs, ticket), ack)
}

fn first_line(batch: &Batch<Logs>) -> String {
    let line = batch.data.streams[0].entries[0].line_str();
    line.split(' ').next().unwrap().to_string()
}

struct Dir {
    data: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        Self {
            data: tempfile::tempdir().unwrap(),
        }
    }

    fn queue_dir(&self) -> PathBuf {
        self.data.path().join("queues/test/logs")
    }

    fn open(&self, settings: DiskSettings) -> (Arc<DiskQueue<Logs>>, DiskMetrics) {
        let metrics = DiskMetrics::default();
        let queue = DiskQueue::open(
            self.data.path(),
            self.queue_dir(),
            settings,
            metrics.clone(),
        )
        .unwrap();
        (queue, metrics)
    }

    fn segments(&self) -> Vec<PathBuf> {
        let mut ids = segment::list(&self.queue_dir()).unwrap();
        ids.sort();
        ids.into_iter()
            .map(|id| segment::path(&self.queue_dir(), id))
            .collect()
    }
}

async fn push(queue: &DiskQueue<Logs>, tag: &str, n: usize, pad: usize) -> Outcome {
    let (b, ack) = batch(tag, n, pad);
    queue.push(b, &CancellationToken::new()).await.ok().unwrap();
    ack.wait().await
}

/// Pops `n` batches, delivering each (dropping it): their first lines.
async fn take(queue: &DiskQueue<Logs>, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..n {
        let b = tokio::time::timeout(crate::testing::WAIT, queue.pop())
            .await
            .expect("a record within the wait")
            .expect("a record");
        got.push(first_line(&b));
    }
    got
}

async fn close(queue: Arc<DiskQueue<Logs>>) {
    queue.close();
    queue.finish().await;
}

fn tags(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}-0")).collect()
}

#[tokio::test]
async fn a_push_is_acknowledged_once_written_and_pops_in_order() {
    let dir = Dir::new();
    let (queue, metrics) = dir.open(settings(64 * MIB));
    for i in 0..5 {
        assert_eq!(
            push(&queue, &format!("b{i}"), 3, 10).await,
            Outcome::Delivered
        );
    }
    assert_eq!(queue.len_items(), 15);
    assert_eq!(metrics.records.get(), 5);
    assert!(
        metrics.fsyncs.get() >= 1,
        "fsync = batch syncs before acknowledging"
    );
    assert_eq!(take(&queue, 5).await, tags("b", 0..5));
    eventually("every record done", || metrics.records.get() == 0).await;
    close(queue).await;
}

#[tokio::test]
async fn tenancy_travels_with_the_record() {
    let dir = Dir::new();
    let (queue, _) = dir.open(settings(64 * MIB));
    let (mut b, _) = batch("t", 1, 0);
    b.tenancy.tenant = Some(http::HeaderValue::from_static("team-a"));
    b.tenancy.org_id = Some(http::HeaderValue::from_static("org-1"));
    queue.push(b, &CancellationToken::new()).await.ok().unwrap();
    let back = queue.pop().await.unwrap();
    assert_eq!(back.tenancy.tenant.unwrap(), "team-a");
    assert_eq!(back.tenancy.org_id.unwrap(), "org-1");
    assert_eq!(back.data.streams[0].entries[0].line_str(), "t-0 ");
    close(queue).await;
}

#[tokio::test]
async fn what_was_not_delivered_is_read_again_after_a_restart() {
    let dir = Dir::new();
    let (queue, _) = dir.open(settings(64 * MIB));
    for i in 0..6 {
        push(&queue, &format!("r{i}"), 2, 100).await;
    }
    // Two delivered; one interrupted by the shutdown; three never read.
    assert_eq!(take(&queue, 2).await, tags("r", 0..2));
    let interrupted = queue.pop().await.unwrap();
    interrupted.drop_with(Outcome::Interrupted);
    close(queue).await;

    let (queue, metrics) = dir.open(settings(64 * MIB));
    assert_eq!(metrics.records.get(), 4);
    assert_eq!(queue.len_items(), 8);
    assert_eq!(take(&queue, 4).await, tags("r", 2..6));
    assert_eq!(metrics.replayed.get(), 4);
    close(queue).await;
}

#[tokio::test]
async fn a_crash_loses_nothing_written() {
    // No close, no finish: the queue is dropped as a kill -9 would leave
    // its files (the keeper may have saved the cursor, or not).
    let dir = Dir::new();
    let (queue, _) = dir.open(DiskSettings {
        fsync: Fsync::Never,
        ..settings(64 * MIB)
    });
    for i in 0..20 {
        push(&queue, &format!("c{i}"), 5, 50).await;
    }
    drop(queue);
    let dir_again = &dir;
    let reopened = loop {
        // The keeper lets go of the directory lock when it sees the queue gone.
        match DiskQueue::<Logs>::open(
            dir_again.data.path(),
            dir_again.queue_dir(),
            settings(64 * MIB),
            DiskMetrics::default(),
        ) {
            Ok(queue) => break queue,
            Err(OpenError::InUse(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(take(&reopened, 20).await, tags("c", 0..20));
    close(reopened).await;
}

#[tokio::test]
async fn delivered_segments_are_deleted() {
    let dir = Dir::new();
    // 1MiB queue: 64KiB segments.
    let (queue, metrics) = dir.open(settings(MIB));
    for i in 0..40 {
        push(&queue, &format!("d{i}"), 4, 1000).await;
    }
    assert!(dir.segments().len() > 2, "{:?}", dir.segments());
    assert_eq!(take(&queue, 40).await, tags("d", 0..40));
    eventually("only the segment being written is left", || {
        dir.segments().len() == 1
    })
    .await;
    eventually("bytes count only that segment", || {
        metrics.bytes.get() < 64 << 10
    })
    .await;
    close(queue).await;
    let (queue, metrics) = dir.open(settings(MIB));
    assert_eq!(metrics.records.get(), 0);
    assert_eq!(queue.len_items(), 0);
    close(queue).await;
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_holds_the_push_until_a_segment_is_delivered() {
    let dir = Dir::new();
    let (queue, _) = dir.open(settings(MIB));
    let mut pushed = 0;
    // Fill it: pushes that return at once.
    loop {
        let (b, _) = batch(&format!("f{pushed}"), 4, 1000);
        let attempt = tokio::time::timeout(
            Duration::from_millis(100),
            queue.push(b, &CancellationToken::new()),
        )
        .await;
        if attempt.is_err() {
            break;
        }
        pushed += 1;
        assert!(pushed < 1000, "the queue never filled");
    }
    let size: u64 = dir
        .segments()
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!(size <= MIB, "{size} bytes on disk");
    // Delivering the oldest segment's records makes room.
    let waiting = {
        let queue = queue.clone();
        tokio::spawn(async move { push(&queue, "late", 1, 10).await })
    };
    let mut taken = take(&queue, pushed).await;
    assert_eq!(waiting.await.unwrap(), Outcome::Delivered);
    taken.extend(take(&queue, 1).await);
    let mut want = tags("f", 0..pushed);
    want.push("late-0".into());
    assert_eq!(taken, want);
    close(queue).await;
}

#[tokio::test]
async fn drop_oldest_makes_room_and_counts_what_it_dropped() {
    let dir = Dir::new();
    let (queue, metrics) = dir.open(DiskSettings {
        drop_oldest: true,
        ..settings(MIB)
    });
    for i in 0..300 {
        assert_eq!(
            push(&queue, &format!("o{i}"), 4, 1000).await,
            Outcome::Delivered
        );
    }
    let size: u64 = dir
        .segments()
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!(size <= MIB + (64 << 10), "{size} bytes on disk");
    let dropped = metrics.dropped_oldest.get() as usize;
    assert!(dropped > 0);
    let left = 300 - dropped / 4;
    let got = take(&queue, left).await;
    assert_eq!(
        got,
        tags("o", 300 - left..300),
        "the newest are kept, in order"
    );
    close(queue).await;
}

#[tokio::test]
async fn damage_in_the_files_skips_only_the_damaged_records() {
    let dir = Dir::new();
    let (queue, _) = dir.open(settings(MIB));
    for i in 0..60 {
        push(&queue, &format!("z{i}"), 2, 1500).await;
    }
    close(queue).await;
    let segments = dir.segments();
    assert!(segments.len() >= 3, "{segments:?}");
    let open = |p: &PathBuf| OpenOptions::new().write(true).open(p).unwrap();
    // A flipped byte in the first segment, a zeroed block in the second,
    // the third cut off mid-record.
    open(&segments[0]).write_all_at(b"!", 3000).unwrap();
    open(&segments[1]).write_all_at(&[0; 4096], 8000).unwrap();
    let len = segments[2].metadata().unwrap().len();
    open(&segments[2]).set_len(len - 100).unwrap();

    let (queue, metrics) = dir.open(settings(MIB));
    let mut got = Vec::new();
    while let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(500), queue.pop()).await {
        got.push(first_line(&b));
    }
    let lost = 60 - got.len();
    assert!((3..=8).contains(&lost), "lost {lost} records: {got:?}");
    let mut sorted = got.clone();
    sorted.sort_by_key(|t| t[1..t.find('-').unwrap()].parse::<usize>().unwrap());
    assert_eq!(got, sorted, "in order");
    assert!(metrics.damaged.checksum.get() >= 2);
    assert_eq!(metrics.damaged.truncated.get(), 1);
    assert!(metrics.damaged_bytes.get() > 4096);
    close(queue).await;
}

#[tokio::test]
async fn a_deleted_segment_an_unknown_format_and_a_damaged_cursor_still_start() {
    let dir = Dir::new();
    let (queue, _) = dir.open(settings(MIB));
    for i in 0..100 {
        push(&queue, &format!("s{i}"), 2, 1500).await;
    }
    close(queue).await;
    let segments = dir.segments();
    assert!(segments.len() >= 4, "{segments:?}");
    std::fs::remove_file(&segments[1]).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&segments[2])
        .unwrap()
        .write_all_at(b"FERROQ\x09\x00", 0)
        .unwrap();
    std::fs::write(dir.queue_dir().join("cursor"), b"garbage").unwrap();

    let (queue, metrics) = dir.open(settings(MIB));
    assert_eq!(metrics.damaged.cursor.get(), 1);
    assert_eq!(metrics.damaged.unreadable_segment.get(), 1);
    assert!(
        dir.queue_dir()
            .join(
                segments[2]
                    .with_extension("unreadable")
                    .file_name()
                    .unwrap()
            )
            .exists(),
        "set aside, not deleted"
    );
    let mut got = Vec::new();
    while let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(500), queue.pop()).await {
        got.push(first_line(&b));
    }
    // Two segments' records are gone, the rest arrive in order.
    assert!(got.len() >= 50 && got.len() < 100, "{}", got.len());
    assert_eq!(got[0], "s0-0");
    assert_eq!(got.last().unwrap(), "s99-0");
    close(queue).await;
}

#[tokio::test]
async fn one_process_per_directory_and_a_missing_data_dir_is_an_error() {
    let dir = Dir::new();
    let (queue, _) = dir.open(settings(MIB));
    let second = DiskQueue::<Logs>::open(
        dir.data.path(),
        dir.queue_dir(),
        settings(MIB),
        DiskMetrics::default(),
    );
    assert!(matches!(second, Err(OpenError::InUse(_))));
    close(queue).await;
    let missing = dir.data.path().join("nope");
    let err = DiskQueue::<Logs>::open(
        &missing,
        missing.join("queues/x"),
        settings(MIB),
        DiskMetrics::default(),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn a_closed_queue_gives_pushes_back_and_ends_pops() {
    let dir = Dir::new();
    let (queue, _) = dir.open(settings(MIB));
    queue.close();
    let (b, _) = batch("late", 1, 0);
    assert!(queue.push(b, &CancellationToken::new()).await.is_err());
    assert!(queue.pop().await.is_none());
    queue.finish().await;
}

/// A tmpfs of `size` mounted on a temp dir, unmounted when dropped; `None`
/// (the test is skipped) where this process may not mount one.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Self { dir });
        }
        assert!(
            std::env::var("FERRO_TESTS_REQUIRE_ALL").as_deref() != Ok("1"),
            "mounting a tmpfs failed (the test needs root) and FERRO_TESTS_REQUIRE_ALL=1"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        None
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_holds_pushes_and_writing_resumes_once_there_is_room() {
    let Some(disk) = SmallDisk::mount("1m") else {
        return;
    };
    let metrics = DiskMetrics::default();
    // 4MiB allowed, on a disk of 1MiB: the disk fills first.
    let queue = DiskQueue::<Logs>::open(
        disk.dir.path(),
        disk.dir.path().join("queues/test/logs"),
        settings(4 * MIB),
        metrics.clone(),
    )
    .unwrap();
    let mut pushed = 0;
    let blocked = loop {
        let queue2 = queue.clone();
        let tag = format!("n{pushed}");
        let push = tokio::spawn(async move { push(&queue2, &tag, 4, 1000).await });
        eventually("the push, or a write that finds the disk full", || {
            push.is_finished() || metrics.disk_full.get() > 0
        })
        .await;
        if metrics.disk_full.get() > 0 {
            break push;
        }
        assert_eq!(push.await.unwrap(), Outcome::Delivered);
        pushed += 1;
        assert!(pushed < 1000, "the disk never filled");
    };
    assert!(metrics.disk_full.get() > 0);
    assert!(!blocked.is_finished(), "the push waits for room");
    // Delivering makes room; the held push is written, nothing is lost.
    let mut got = take(&queue, pushed).await;
    assert_eq!(blocked.await.unwrap(), Outcome::Delivered);
    got.extend(take(&queue, 1).await);
    assert_eq!(got, tags("n", 0..pushed + 1));
    close(queue).await;
}

#[tokio::test]
async fn a_record_larger_than_the_queue_waits_for_it_to_empty_then_goes_in() {
    let dir = Dir::new();
    let (queue, _) = dir.open(settings(MIB));
    assert_eq!(push(&queue, "small", 1, 10).await, Outcome::Delivered);
    let large = {
        let queue = queue.clone();
        // 2,000 lines of 1,000 bytes: about 2MB, twice `max_size`.
        tokio::spawn(async move { push(&queue, "large", 2000, 1000).await })
    };
    assert_eq!(take(&queue, 1).await, ["small-0"]);
    assert_eq!(large.await.unwrap(), Outcome::Delivered);
    assert_eq!(take(&queue, 1).await, ["large-0"]);
    close(queue).await;
}

#[tokio::test]
async fn a_read_only_data_dir_is_a_clear_error() {
    let Some(disk) = SmallDisk::mount("1m,ro") else {
        return;
    };
    let err = DiskQueue::<Logs>::open(
        disk.dir.path(),
        disk.dir.path().join("queues/test/logs"),
        settings(MIB),
        DiskMetrics::default(),
    )
    .err()
    .unwrap();
    let text = err.to_string();
    assert!(text.contains("queues/test/logs"), "{text}");
    assert!(text.contains("Read-only file system"), "{text}");
}
