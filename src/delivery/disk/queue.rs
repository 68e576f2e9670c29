//! The queue itself: writing records (within `max_size`, synced as
//! `fsync` says), reading them back in order over any damage, and making
//! room (delivered segments deleted, or the oldest dropped).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::keeper::{Read, keep};
use super::record::{self, HEAD_PEEK};
use super::segment::{self, Damage, FIRST_RECORD, Found};
use super::{DiskMetrics, DiskSettings, Fsync, OpenError, cursor};
use crate::delivery::{Batch, PushError, Ticket};
use crate::signal::SignalData;

/// How long a push waits before trying a full disk again.
const DISK_FULL_RETRY: Duration = Duration::from_secs(1);

/// A queue of batches of `T` in a directory of its own.
pub struct DiskQueue<T> {
    pub(super) dir: PathBuf,
    pub(super) settings: DiskSettings,
    writer: Mutex<Writer>,
    reader: tokio::sync::Mutex<Reader>,
    /// Serialises syncs, so pushes waiting on one share it.
    syncing: tokio::sync::Mutex<()>,
    /// Bytes ever appended, and of those how many are synced.
    pub(super) written: AtomicU64,
    pub(super) synced: AtomicU64,
    /// Items written and not yet read: the backlog senders scale to.
    unread_items: AtomicI64,
    pub(super) records: AtomicI64,
    not_empty: Notify,
    pub(super) not_full: Notify,
    closed: AtomicBool,
    pub(super) keeper_stop: CancellationToken,
    keeper: Mutex<Option<JoinHandle<()>>>,
    done: mpsc::UnboundedSender<Read>,
    pub(super) metrics: DiskMetrics,
    /// Held for the queue's life: one process per directory.
    _lock: File,
    _data: PhantomData<fn() -> T>,
}

struct Writer {
    /// Live segments, oldest first; the last is the one written.
    segments: VecDeque<SegmentInfo>,
    file: File,
    /// Bytes of all live segments.
    bytes: u64,
}

#[derive(Clone, Copy, Debug)]
struct SegmentInfo {
    id: u64,
    size: u64,
}

struct Reader {
    segment: u64,
    offset: u64,
    file: Option<File>,
    next_seq: u64,
    /// Segments below this id were written by an earlier run.
    first_new: u64,
}

impl<T: SignalData> DiskQueue<T> {
    /// Opens (or creates) the queue in `dir`, a folder of `data_dir`, and
    /// starts its keeper. What earlier runs left is read first.
    pub fn open(
        data_dir: &Path,
        dir: PathBuf,
        settings: DiskSettings,
        metrics: DiskMetrics,
    ) -> Result<Arc<Self>, OpenError> {
        if !data_dir.is_dir() {
            return Err(OpenError::NoDataDir(data_dir.to_path_buf()));
        }
        let io = |source| OpenError::Io {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(OpenError::InUse(dir)),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let cursor = match cursor::read(&dir) {
            Ok(cursor) => cursor,
            Err(()) => {
                metrics.damaged.cursor.inc();
                tracing::warn!(dir = %dir.display(), "the disk queue's cursor is damaged; reading from the oldest segment (records may be sent twice)");
                None
            }
        };
        let mut segments = VecDeque::new();
        for id in segment::list(&dir).map_err(io)? {
            let path = segment::path(&dir, id);
            if cursor.is_some_and(|(at, _)| id < at) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            // A segment this build cannot read is set aside, never a
            // reason to refuse to start.
            let readable = File::open(&path).and_then(|file| {
                let size = file.metadata()?.len();
                Ok(segment::header_ok(&file)?.then_some(size))
            });
            match readable {
                Ok(Some(size)) => segments.push_back(SegmentInfo { id, size }),
                Ok(None) | Err(_) => {
                    metrics.damaged.unreadable_segment.inc();
                    let aside = path.with_extension("unreadable");
                    tracing::warn!(segment = %path.display(), aside = %aside.display(), error = ?readable.err(), "a disk queue segment of an unknown format, or unreadable; set aside");
                    let _ = std::fs::rename(&path, &aside);
                }
            }
        }
        let start = match (segments.front(), cursor) {
            (Some(first), Some((id, offset))) if first.id == id => offset,
            _ => FIRST_RECORD,
        };
        let (mut records, mut items, mut oldest) = (0i64, 0i64, None);
        for (i, seg) in segments.iter().enumerate() {
            let from = if i == 0 { start } else { FIRST_RECORD };
            // Only figures: a read error here is met again, and counted,
            // when the records are read.
            let _ = File::open(segment::path(&dir, seg.id)).and_then(|file| {
                segment::scan_heads(&file, from, seg.size, HEAD_PEEK, |head| {
                    if let Some((_, n, ms)) = record::parse_head(head) {
                        records += 1;
                        items += n as i64;
                        oldest.get_or_insert(ms);
                    }
                })
            });
        }
        let next_id = segments.back().map_or(1, |s| s.id + 1);
        let file = segment::create(&dir, next_id).map_err(io)?;
        let first = segments.front().map_or(next_id, |s| s.id);
        let bytes = segments.iter().map(|s| s.size).sum::<u64>() + FIRST_RECORD;
        segments.push_back(SegmentInfo {
            id: next_id,
            size: FIRST_RECORD,
        });
        if records > 0 {
            tracing::info!(dir = %dir.display(), records, items, "disk queue opened with records from an earlier run; sending them first");
        }
        metrics.bytes.set(bytes as i64);
        metrics.records.set(records);
        let (done, done_rx) = mpsc::unbounded_channel();
        let queue = Arc::new(Self {
            dir,
            settings,
            writer: Mutex::new(Writer {
                segments,
                file,
                bytes,
            }),
            reader: tokio::sync::Mutex::new(Reader {
                segment: first,
                offset: if first == next_id {
                    FIRST_RECORD
                } else {
                    start
                },
                file: None,
                next_seq: 0,
                first_new: next_id,
            }),
            syncing: tokio::sync::Mutex::new(()),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            unread_items: AtomicI64::new(items),
            records: AtomicI64::new(records),
            not_empty: Notify::new(),
            not_full: Notify::new(),
            closed: AtomicBool::new(false),
            keeper_stop: CancellationToken::new(),
            keeper: Mutex::new(None),
            done,
            metrics,
            _lock: lock,
            _data: PhantomData,
        });
        let keeper = tokio::spawn(keep(
            Arc::downgrade(&queue),
            done_rx,
            (
                first,
                if first == next_id {
                    FIRST_RECORD
                } else {
                    start
                },
            ),
            oldest,
        ));
        *queue.keeper.lock().unwrap() = Some(keeper);
        Ok(queue)
    }

    /// Writes `batch` once there is room (or at once, past `max_size`, when
    /// `force` is cancelled), then drops it: its senders see it accepted.
    /// Gives it back when the queue is closed, or when the disk is full
    /// while `force` is cancelled.
    pub async fn push(&self, batch: Batch<T>, force: &CancellationToken) -> Result<(), Batch<T>> {
        let record = record::encode(&batch);
        loop {
            let notified = self.not_full.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.closed.load(Ordering::Acquire) {
                return Err(batch);
            }
            let forced = force.is_cancelled();
            match self.append(&record, batch.items(), forced) {
                Ok(end) => {
                    self.written(end).await;
                    return Ok(());
                }
                Err(Append::Full) if self.settings.drop_oldest && self.drop_oldest().await => {}
                // Nothing older to drop (only the segment being written):
                // wait, as `block` does, for its records to be delivered.
                Err(Append::Full) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = force.cancelled(), if !forced => {}
                    }
                }
                Err(Append::Failed) => {
                    if forced {
                        return Err(batch);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(DISK_FULL_RETRY) => {}
                        _ = force.cancelled() => {}
                    }
                }
            }
        }
    }

    /// Writes `batch` if it fits now; a full queue or disk gives it back.
    #[allow(clippy::result_large_err)]
    pub async fn try_push(&self, batch: Batch<T>) -> Result<(), PushError<T>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PushError::Closed(batch));
        }
        let record = record::encode(&batch);
        match self.append(&record, batch.items(), false) {
            Ok(end) => {
                self.written(end).await;
                Ok(())
            }
            Err(_) => Err(PushError::Full(batch)),
        }
    }

    /// After a record was appended (the log now `end` bytes long): synced
    /// first with `fsync = "batch"`, then a sender woken.
    async fn written(&self, end: u64) {
        if self.settings.fsync == Fsync::Batch {
            self.sync_to(end).await;
        }
        self.not_empty.notify_one();
    }

    /// Appends one framed record to the segment being written, starting a
    /// new segment first when this one is full. Returns the byte count
    /// appended so far, for [`Self::sync_to`].
    fn append(&self, record: &[u8], items: usize, forced: bool) -> Result<u64, Append> {
        let mut w = self.writer.lock().unwrap();
        // An empty queue takes a record of any size: one large batch must
        // not wedge it.
        let empty = self.records.load(Ordering::Relaxed) <= 0;
        let fits = w.bytes + record.len() as u64 <= self.settings.max_size;
        if !fits && !forced && !empty {
            return Err(Append::Full);
        }
        let active = *w.segments.back().expect("the writing segment");
        if active.size > FIRST_RECORD
            && active.size + record.len() as u64 > self.settings.segment_size()
            && let Err(e) = self.rotate(&mut w)
        {
            self.write_failed(&e);
            return Err(Append::Failed);
        }
        let at = w.segments.back().expect("the writing segment").size;
        if let Err(e) = (&w.file).write_all(record) {
            // A partial record would be read as damage; cut it off.
            let _ = w.file.set_len(at);
            self.write_failed(&e);
            return Err(Append::Failed);
        }
        let active = w.segments.back_mut().expect("the writing segment");
        active.size += record.len() as u64;
        w.bytes += record.len() as u64;
        self.metrics.bytes.set(w.bytes as i64);
        self.metrics.written_bytes.inc_by(record.len() as u64);
        self.records.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .records
            .set(self.records.load(Ordering::Relaxed));
        self.unread_items.fetch_add(items as i64, Ordering::Relaxed);
        Ok(self
            .written
            .fetch_add(record.len() as u64, Ordering::AcqRel)
            + record.len() as u64)
    }

    /// Seals the segment being written (synced unless `fsync = "never"`)
    /// and starts the next.
    fn rotate(&self, w: &mut Writer) -> io::Result<()> {
        if self.settings.fsync != Fsync::Never {
            self.timed_sync(&w.file)?;
        }
        let id = w.segments.back().expect("the writing segment").id + 1;
        w.file = segment::create(&self.dir, id)?;
        w.segments.push_back(SegmentInfo {
            id,
            size: FIRST_RECORD,
        });
        w.bytes += FIRST_RECORD;
        Ok(())
    }

    fn write_failed(&self, e: &io::Error) {
        if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
            self.metrics.disk_full.inc();
            tracing::warn!(dir = %self.dir.display(), "the disk is full: the disk queue takes nothing until there is room");
        } else {
            self.metrics.write_errors.inc();
            tracing::warn!(dir = %self.dir.display(), error = %e, "the disk queue cannot write");
        }
    }

    /// Syncs the log up to `end` bytes appended, or waits for a sync that does.
    async fn sync_to(&self, end: u64) {
        if self.synced.load(Ordering::Acquire) >= end {
            return;
        }
        let _one_at_a_time = self.syncing.lock().await;
        if self.synced.load(Ordering::Acquire) >= end {
            return;
        }
        self.sync_now().await;
    }

    /// Syncs the segment being written; earlier ones were synced when sealed.
    pub(super) async fn sync_now(&self) {
        let (file, target) = {
            let w = self.writer.lock().unwrap();
            (w.file.try_clone(), self.written.load(Ordering::Acquire))
        };
        let Ok(file) = file else { return };
        let metrics = self.metrics.clone();
        let synced = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let result = file.sync_data();
            metrics.fsyncs.inc();
            metrics
                .fsync_seconds
                .inc_by(started.elapsed().as_secs_f64());
            result
        })
        .await;
        match synced {
            Ok(Ok(())) => {
                self.synced.fetch_max(target, Ordering::AcqRel);
            }
            Ok(Err(e)) => self.write_failed(&e),
            Err(_) => {}
        }
    }

    fn timed_sync(&self, file: &File) -> io::Result<()> {
        let started = std::time::Instant::now();
        let result = file.sync_data();
        self.metrics.fsyncs.inc();
        self.metrics
            .fsync_seconds
            .inc_by(started.elapsed().as_secs_f64());
        result
    }

    /// Deletes the oldest segment to make room, counting the items of its
    /// records not yet read as dropped. `false` if only the segment being
    /// written is left.
    async fn drop_oldest(&self) -> bool {
        let mut reader = self.reader.lock().await;
        let mut w = self.writer.lock().unwrap();
        if w.segments.len() < 2 {
            return false;
        }
        let oldest = w.segments.pop_front().expect("two segments");
        w.bytes -= oldest.size;
        self.metrics.bytes.set(w.bytes as i64);
        drop(w);
        let path = segment::path(&self.dir, oldest.id);
        if reader.segment <= oldest.id {
            let from = if reader.segment == oldest.id {
                reader.offset
            } else {
                FIRST_RECORD
            };
            let (mut records, mut items) = (0i64, 0u64);
            if let Ok(file) = File::open(&path) {
                let _ = segment::scan_heads(&file, from, oldest.size, HEAD_PEEK, |head| {
                    if let Some((_, n, _)) = record::parse_head(head) {
                        records += 1;
                        items += n;
                    }
                });
            }
            self.metrics.dropped_oldest.inc_by(items);
            self.unread_items.fetch_sub(items as i64, Ordering::Relaxed);
            self.records.fetch_sub(records, Ordering::Relaxed);
            self.step(&mut reader, oldest.id + 1, FIRST_RECORD);
        }
        let _ = std::fs::remove_file(&path);
        tracing::warn!(dir = %self.dir.display(), segment = oldest.id, "disk queue full: dropped its oldest segment (on_full = \"drop_oldest\")");
        true
    }

    /// The oldest record not yet read, waiting for one; `None` once closed.
    /// Whatever is still unread at close stays on disk for the next start.
    pub async fn pop(&self) -> Option<Batch<T>> {
        loop {
            let notified = self.not_empty.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            {
                let mut reader = self.reader.lock().await;
                if let Some(batch) = self.read_next(&mut reader) {
                    if self.unread_items.load(Ordering::Relaxed) > 0 {
                        // Pass the wake-up on: another sender may be idle.
                        self.not_empty.notify_one();
                    }
                    return Some(batch);
                }
            }
            notified.await;
        }
    }

    /// Reads records until one decodes; `None` at the end of what is written.
    /// Never awaits: a `pop` cancelled in a `select!` loses nothing.
    fn read_next(&self, reader: &mut Reader) -> Option<Batch<T>> {
        loop {
            let (limit, sealed, next_segment) = {
                let w = self.writer.lock().unwrap();
                match w.segments.iter().position(|s| s.id >= reader.segment) {
                    None => return None,
                    Some(i) => {
                        let seg = w.segments[i];
                        if seg.id != reader.segment {
                            // Deleted under the reader (drop_oldest): go on with the next.
                            reader.segment = seg.id;
                            reader.offset = FIRST_RECORD;
                            reader.file = None;
                        }
                        (
                            seg.size,
                            i + 1 < w.segments.len(),
                            w.segments.get(i + 1).map(|s| s.id),
                        )
                    }
                }
            };
            if reader.file.is_none() {
                match File::open(segment::path(&self.dir, reader.segment)) {
                    Ok(file) => reader.file = Some(file),
                    Err(e) => {
                        tracing::warn!(dir = %self.dir.display(), segment = reader.segment, error = %e, "cannot open a disk queue segment; skipped");
                        self.metrics.damaged.unreadable_segment.inc();
                        let next = next_segment?;
                        self.step(reader, next, FIRST_RECORD);
                        continue;
                    }
                }
            }
            let file = reader.file.as_ref().expect("opened above");
            let found = segment::read_at(file, reader.offset, limit).unwrap_or_else(|e| {
                tracing::warn!(dir = %self.dir.display(), segment = reader.segment, error = %e, "cannot read a disk queue segment; skipping the rest of it");
                Found::Damaged {
                    damage: Damage::Truncated,
                    next: limit,
                }
            });
            match found {
                Found::End => {
                    if !sealed {
                        return None;
                    }
                    let next = next_segment.expect("a sealed segment has a successor");
                    self.step(reader, next, FIRST_RECORD);
                }
                Found::Damaged { damage, next } => {
                    self.metrics.damaged.of(damage).inc();
                    self.metrics.damaged_bytes.inc_by(next - reader.offset);
                    tracing::warn!(dir = %self.dir.display(), segment = reader.segment, offset = reader.offset, skipped = next - reader.offset, reason = damage.reason(), "damaged bytes in a disk queue; skipped to the next intact record");
                    let segment = reader.segment;
                    self.step(reader, segment, next);
                }
                Found::Record { payload, next } => {
                    let replayed = reader.segment < reader.first_new;
                    let segment = reader.segment;
                    match record::decode::<T>(payload) {
                        Ok((data, tenancy, items, enqueued_ms)) => {
                            self.unread_items.fetch_sub(items as i64, Ordering::Relaxed);
                            if replayed {
                                self.metrics.replayed.inc();
                            }
                            let (ticket, ack) = Ticket::untracked().with_ack();
                            let seq = reader.next_seq;
                            reader.next_seq += 1;
                            reader.offset = next;
                            let _ = self.done.send(Read {
                                seq,
                                segment,
                                offset: next,
                                enqueued_ms,
                                ack: Some(ack),
                            });
                            let mut batch = Batch::new(data, ticket);
                            batch.tenancy = tenancy;
                            return Some(batch);
                        }
                        Err(items) => {
                            self.metrics.damaged.undecodable.inc();
                            self.records.fetch_sub(1, Ordering::Relaxed);
                            self.unread_items.fetch_sub(items as i64, Ordering::Relaxed);
                            tracing::warn!(dir = %self.dir.display(), segment, "a disk queue record does not decode; skipped");
                            self.step(reader, segment, next);
                        }
                    }
                }
            }
        }
    }

    /// Moves the reader to `offset` of `segment`, telling the keeper.
    fn step(&self, reader: &mut Reader, segment: u64, offset: u64) {
        if segment != reader.segment {
            reader.file = None;
        }
        reader.segment = segment;
        reader.offset = offset;
        let seq = reader.next_seq;
        reader.next_seq += 1;
        let _ = self.done.send(Read {
            seq,
            segment,
            offset,
            enqueued_ms: 0,
            ack: None,
        });
    }

    /// Items written and not yet read.
    pub fn len_items(&self) -> usize {
        self.unread_items.load(Ordering::Relaxed).max(0) as usize
    }

    /// No more pushes or pops; what is unread stays on disk.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.not_empty.notify_waiters();
        self.not_full.notify_waiters();
    }

    /// After [`Self::close`] and once the senders are done: records the
    /// last acknowledgements, syncs, and saves the cursor.
    pub async fn finish(&self) {
        self.keeper_stop.cancel();
        let keeper = self.keeper.lock().unwrap().take();
        if let Some(keeper) = keeper {
            let _ = keeper.await;
        }
        if self.settings.fsync != Fsync::Never {
            let _ = self.timed_sync(&self.writer.lock().unwrap().file);
        }
    }
}

enum Append {
    /// No room under `max_size`.
    Full,
    /// The write failed (a full disk); counted.
    Failed,
}

impl<T> DiskQueue<T> {
    /// Deletes the segments wholly behind `cursor`.
    pub(super) fn release_behind(&self, cursor: (u64, u64)) {
        let mut w = self.writer.lock().unwrap();
        let mut freed = false;
        while let Some(oldest) = w.segments.front().copied() {
            let behind = oldest.id < cursor.0
                || (oldest.id == cursor.0 && cursor.1 >= oldest.size && w.segments.len() > 1);
            if !behind {
                break;
            }
            w.segments.pop_front();
            w.bytes -= oldest.size;
            let _ = std::fs::remove_file(segment::path(&self.dir, oldest.id));
            freed = true;
        }
        if freed {
            self.metrics.bytes.set(w.bytes as i64);
            drop(w);
            self.not_full.notify_waiters();
        }
    }
}
