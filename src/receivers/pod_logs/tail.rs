//! Tailing one file: read in bounded chunks, cut lines, decode them into
//! entries, send batches, and move the file's position as the exporters
//! acknowledge them.
//!
//! Nothing is dropped: when the memory limiter or the pipeline refuses, the
//! same batch is offered again and the file waits (it is the buffer). At most
//! [`MAX_IN_FLIGHT`] batches per file wait for acknowledgement, so memory
//! stays flat however fast the file grows. A position only ever points at a
//! line boundary before which every entry is acknowledged: a restart resumes
//! there and re-sends at most the unacknowledged tail.

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::config::PodLogsConfig;
use super::discover::Wakers;
use super::formats::{Decoded, Decoder, Tally};
use super::multiline::Multiline;
use super::positions::{FINGERPRINT_BYTES, FileKey, Fingerprint, Positions};
use super::reader::LineReader;
use crate::config::ComponentId;
use crate::delivery::PipelineInputs;
use crate::delivery::{Acked, InFlight, MemoryLimiter};
use crate::receivers::acks::AckCounters;
use crate::signal::logs::{Entry, Stream};
use crate::signal::{Labels, Logs, Signal};
use crate::telemetry::Telemetry;

/// Batches per file sent and not yet acknowledged: enough entries to fill a
/// downstream batch stage (8192 by default) so that a busy file is not held
/// to one batch per batch timeout; bounded so that one file cannot take the
/// whole memory limit.
pub const MAX_IN_FLIGHT: usize = 32;
/// Entries in one batch.
pub const MAX_BATCH_ENTRIES: usize = 1000;
/// Bytes (as Loki would see them) in one batch.
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// How often an idle file is looked at without inotify, and a file rotated
/// away while it drains.
pub const POLL: Duration = Duration::from_millis(250);
/// How often an idle file that inotify watches is looked at anyway: its
/// writes wake its tailer at once, and lost events are reported (a queue
/// overflow wakes every tailer); this is only a safety net.
pub const WATCHED_POLL: Duration = Duration::from_secs(60);
/// How long a file rotated away or deleted must stay unchanged before it is
/// let go: the writer may still hold it open for a moment after the rename.
pub const ROTATED_IDLE: Duration = Duration::from_secs(1);
/// Room for a CRI prefix or a Docker envelope beyond `max_line_size`.
const ENVELOPE: usize = 4096;
/// How long a stopping tailer waits for the acknowledgements it is owed.
pub const ACK_DRAIN: Duration = Duration::from_secs(3);

/// What every tailer of one receiver shares.
pub struct Shared {
    pub id: ComponentId,
    pub config: PodLogsConfig,
    pub inputs: PipelineInputs<Logs>,
    pub limiter: Arc<MemoryLimiter>,
    pub counters: Counters,
    pub positions: Mutex<Positions>,
    pub wakers: Arc<Wakers>,
}

/// The receiver's counters, resolved once.
pub struct Counters {
    pub lines: Counter,
    pub bytes: Counter,
    pub truncated: Counter,
    pub malformed: Counter,
    pub invalid_utf8: Counter,
    pub renamed: Counter,
    pub truncated_files: Counter,
    pub files_open: Gauge,
    /// Files whose [`MAX_IN_FLIGHT`] batches all wait for acknowledgement.
    pub files_awaiting_acks: Gauge,
    pub rescans: Counter,
    pub acks: AckCounters,
}

impl Counters {
    pub fn new(telemetry: &Telemetry, id: &ComponentId) -> Self {
        let labels = Telemetry::labels("receiver", id, Signal::Logs);
        let p = &telemetry.pod_logs;
        Self {
            lines: Telemetry::counter(&p.lines_read, &labels),
            bytes: Telemetry::counter(&p.bytes_read, &labels),
            truncated: Telemetry::counter(&p.lines_truncated, &labels),
            malformed: Telemetry::counter(&p.lines_malformed, &labels),
            invalid_utf8: Telemetry::counter(&p.lines_invalid_utf8, &labels),
            renamed: Telemetry::reason_counter(&p.rotations, &labels, "renamed"),
            truncated_files: Telemetry::reason_counter(&p.rotations, &labels, "truncated"),
            files_open: p.files_open.get_or_create(&labels).clone(),
            files_awaiting_acks: p.files_awaiting_acks.get_or_create(&labels).clone(),
            rescans: Telemetry::counter(&p.rescans, &labels),
            acks: AckCounters::new(telemetry, &labels, &p.acknowledged),
        }
    }
}

/// The manager's side of a running tailer.
pub struct Control {
    /// Set when the include globs no longer find the file (renamed away or
    /// deleted): the tailer reads it to its end and lets it go.
    pub unmatched: Arc<AtomicBool>,
    pub wake: Arc<Notify>,
}

/// How a tailer ended.
#[derive(Debug)]
pub enum Ending {
    /// The file was read to its end and let go; every entry is acknowledged.
    Done {
        key: FileKey,
        fingerprint: Fingerprint,
        offset: u64,
    },
    /// The receiver stopped; the position holds what was acknowledged.
    Stopped,
    /// Reading failed; the position holds what was acknowledged.
    Failed,
}

/// Where a new tailer starts.
pub struct Start {
    pub path: PathBuf,
    pub file: File,
    pub key: FileKey,
    pub fingerprint: Fingerprint,
    pub offset: u64,
}

/// Entries waiting to be sent, per stream: stdout, stderr, none.
#[derive(Default)]
struct Pending {
    streams: [Vec<Entry>; 3],
    entries: usize,
    bytes: usize,
}

impl Pending {
    fn push(&mut self, decoded: Decoded, filename: &str) {
        let mut metadata = Vec::with_capacity(1 + usize::from(decoded.truncated));
        metadata.push(("filename".to_string(), filename.to_string()));
        if decoded.truncated {
            metadata.push(("truncated".to_string(), "true".to_string()));
        }
        self.bytes += decoded.text.len() + filename.len() + 40;
        self.entries += 1;
        self.streams[decoded.stream.map_or(2, |s| s as usize)].push(Entry {
            timestamp_ns: decoded.timestamp_ns,
            line: Bytes::from(decoded.text.into_bytes()),
            metadata,
        });
    }

    fn is_full(&self) -> bool {
        self.entries >= MAX_BATCH_ENTRIES || self.bytes >= MAX_BATCH_BYTES
    }

    fn take(&mut self, labels: &[Labels; 3]) -> Logs {
        let streams = self
            .streams
            .iter_mut()
            .zip(labels)
            .filter(|(entries, _)| !entries.is_empty())
            .map(|(entries, labels)| Stream {
                labels: labels.clone(),
                entries: std::mem::take(entries),
            })
            .collect();
        self.entries = 0;
        self.bytes = 0;
        Logs::new(streams)
    }
}

pub struct Tailer {
    shared: Arc<Shared>,
    file: File,
    key: FileKey,
    fingerprint: Fingerprint,
    filename: String,
    labels: [Labels; 3],
    reader: LineReader,
    decoder: Decoder,
    multiline: Option<Multiline>,
    scratch: Vec<Decoded>,
    pending: Pending,
    /// Batches sent, each with the offset its acknowledgement makes safe.
    in_flight: InFlight<u64>,
    /// The position the last sent batch will set once acknowledged.
    sent_offset: u64,
    deleted: bool,
    unmatched: Arc<AtomicBool>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    reported: Tally,
}

impl Tailer {
    pub fn new(
        shared: Arc<Shared>,
        start: Start,
        labels: [Labels; 3],
        stop: CancellationToken,
    ) -> (Self, Control) {
        let config = &shared.config;
        let control = Control {
            unmatched: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(Notify::new()),
        };
        let tailer = Self {
            file: start.file,
            key: start.key,
            fingerprint: start.fingerprint,
            filename: start.path.to_string_lossy().into_owned(),
            labels,
            reader: LineReader::new(start.offset, config.max_line_size + ENVELOPE),
            decoder: Decoder::new(config.format, config.max_line_size),
            multiline: config
                .multiline
                .clone()
                .map(|m| Multiline::new(m, config.max_line_size)),
            scratch: Vec::new(),
            pending: Pending::default(),
            in_flight: InFlight::default(),
            sent_offset: start.offset,
            deleted: false,
            unmatched: control.unmatched.clone(),
            wake: control.wake.clone(),
            stop,
            reported: Tally::default(),
            shared,
        };
        (tailer, control)
    }

    pub async fn run(mut self) -> Ending {
        self.shared.counters.files_open.inc();
        let ending = self.tail().await;
        if !matches!(ending, Ending::Done { .. }) {
            // Whatever is owed is recorded if it comes soon; the rest is
            // read again at the next start.
            let deadline = tokio::time::Instant::now() + ACK_DRAIN;
            while let Some(acked) = self.in_flight.next_until(deadline).await {
                self.acknowledged(acked);
            }
        }
        self.report();
        self.shared.counters.files_open.dec();
        ending
    }

    async fn tail(&mut self) -> Ending {
        let mut idle_since: Option<Instant> = None;
        let mut rotation_counted = false;
        loop {
            if self.stop.is_cancelled() {
                return Ending::Stopped;
            }
            self.collect_acks();
            if self.in_flight.len() >= MAX_IN_FLIGHT {
                let awaiting = &self.shared.counters.files_awaiting_acks;
                awaiting.inc();
                let outcome = tokio::select! {
                    biased;
                    _ = self.stop.cancelled() => None,
                    acked = self.in_flight.next() => Some(acked),
                };
                awaiting.dec();
                match outcome {
                    Some(acked) => self.acknowledged(acked),
                    None => return Ending::Stopped,
                }
                continue;
            }
            self.decode_buffered();
            if self.pending.is_full() {
                if !self.send().await {
                    return Ending::Stopped;
                }
                continue;
            }
            let before = self.reader.read_offset();
            let read = self.reader.fill(&self.file);
            // Every read is checked after the fact: bytes read at the old
            // offset of a file truncated and written again meanwhile
            // (copytruncate) are taken back, never passed on.
            match read.and_then(|n| Ok((n, self.check()?))) {
                Ok((_, true)) => {
                    self.reader.unread_to(before);
                    if !self.restart_truncated().await {
                        return Ending::Stopped;
                    }
                    continue;
                }
                Ok((0, false)) => {}
                Ok((n, false)) => {
                    self.shared.counters.bytes.inc_by(n as u64);
                    idle_since = None;
                    if !self.fingerprint.is_complete() {
                        // The fingerprint covers what was read.
                        self.refresh_fingerprint();
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(receiver = %self.shared.id, file = %self.filename, error = %e, "cannot read; will find the file again at the next rescan");
                    return Ending::Failed;
                }
            }

            // At the end of the file for now.
            if let Some(multiline) = &mut self.multiline {
                multiline.flush_expired(Instant::now(), &mut self.scratch);
                for decoded in self.scratch.drain(..) {
                    self.pending.push(decoded, &self.filename);
                }
            }
            if !self.send().await {
                return Ending::Stopped;
            }
            self.reader.shrink();
            let gone = self.deleted || self.unmatched.load(Ordering::Acquire);
            if gone {
                if !rotation_counted {
                    rotation_counted = true;
                    if !self.deleted {
                        self.shared.counters.renamed.inc();
                    }
                }
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= ROTATED_IDLE {
                    return self.finish().await;
                }
            }
            // A watched file's writes wake the tailer; it looks on its own
            // only as a safety net, or often while a rotated file drains.
            let watched = self.shared.wakers.watching.load(Ordering::Acquire);
            let mut wait = if gone || !watched { POLL } else { WATCHED_POLL };
            if let Some(deadline) = self.multiline.as_ref().and_then(Multiline::deadline) {
                wait = wait.min(deadline.saturating_duration_since(Instant::now()));
            }
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => return Ending::Stopped,
                acked = self.in_flight.next() => {
                    self.acknowledged(acked);
                    continue;
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Cuts the lines already read into entries, until the batch is full.
    fn decode_buffered(&mut self) {
        let now_ns = now_ns();
        let now = Instant::now();
        let mut lines = 0u64;
        while !self.pending.is_full() {
            let Some(line) = self.reader.next_line() else {
                break;
            };
            lines += 1;
            let raw = self.reader.raw(line);
            let Some(decoded) = self.decoder.push(raw, now_ns) else {
                continue;
            };
            match &mut self.multiline {
                Some(multiline) => multiline.push(decoded, now, &mut self.scratch),
                None => self.scratch.push(decoded),
            }
            for decoded in self.scratch.drain(..) {
                self.pending.push(decoded, &self.filename);
            }
        }
        self.shared.counters.lines.inc_by(lines);
        self.report();
    }

    /// Ends everything still open: the last line without `\n`, partial lines,
    /// joined entries. For a file that is done or was truncated.
    fn flush_open(&mut self) {
        let now_ns = now_ns();
        while let Some(line) = self.reader.next_line().or_else(|| self.reader.take_rest()) {
            self.shared.counters.lines.inc();
            let raw = self.reader.raw(line);
            if let Some(decoded) = self.decoder.push(raw, now_ns) {
                self.scratch.push(decoded);
            }
        }
        self.scratch.extend(self.decoder.flush());
        let mut joined = Vec::new();
        match &mut self.multiline {
            Some(multiline) => {
                for decoded in self.scratch.drain(..) {
                    multiline.push(decoded, Instant::now(), &mut joined);
                }
                multiline.flush(&mut joined);
            }
            None => joined.append(&mut self.scratch),
        }
        for decoded in joined {
            self.pending.push(decoded, &self.filename);
        }
    }

    /// The offset a restart may resume at: after the last line handed out,
    /// and before any entry still being put together.
    fn safe_offset(&self) -> u64 {
        let mut offset = self.reader.consumed();
        if let Some(start) = self.decoder.pending_start() {
            offset = offset.min(start);
        }
        if let Some(start) = self.multiline.as_ref().and_then(Multiline::pending_start) {
            offset = offset.min(start);
        }
        offset
    }

    /// Sends what is pending, waiting (never dropping) while memory or the
    /// pipeline is full. False if the receiver stopped first.
    async fn send(&mut self) -> bool {
        let offset = self.safe_offset().max(self.sent_offset);
        if self.pending.entries == 0 {
            if offset > self.sent_offset {
                // Lines that made no entry yet moved the position: it
                // advances with the batch before it, or now.
                match self.in_flight.newest_progress() {
                    Some(last) => *last = offset,
                    None => self
                        .shared
                        .positions
                        .lock()
                        .unwrap()
                        .set_offset(self.key, offset),
                }
                self.sent_offset = offset;
            }
            return true;
        }
        let entries = self.pending.entries as u64;
        let bytes = self.pending.bytes;
        let logs = self.pending.take(&self.labels);
        let acks = &self.shared.counters.acks;
        let refused = |refusal| acks.refused(refusal, entries);
        let sent = self.shared.inputs.send_patiently(
            &self.shared.limiter,
            logs,
            bytes,
            &self.stop,
            refused,
        );
        let Some(ack) = sent.await else {
            return false;
        };
        self.shared.counters.acks.accepted(entries);
        self.in_flight.push(ack, offset, entries);
        self.sent_offset = offset;
        true
    }

    fn collect_acks(&mut self) {
        while let Some(acked) = self.in_flight.try_next() {
            self.acknowledged(acked);
        }
    }

    /// The oldest batch in flight is finished: its offset becomes the
    /// position, unless a shutdown interrupted its delivery (or an earlier
    /// batch's): then the position stays, and the next start reads those
    /// lines again.
    fn acknowledged(&mut self, acked: Acked<u64>) {
        // A drop moves the position on too, or the same lines would be
        // dropped again after every restart.
        self.shared
            .counters
            .acks
            .acknowledged(acked.outcome, acked.items);
        if let Some(offset) = acked.progress {
            self.shared
                .positions
                .lock()
                .unwrap()
                .set_offset(self.key, offset);
        }
    }

    async fn all_acknowledged(&mut self) -> bool {
        while !self.in_flight.is_empty() {
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => return false,
                acked = self.in_flight.next() => self.acknowledged(acked),
            }
        }
        true
    }

    /// Looks at the open file: deleted? truncated (smaller than what was
    /// read, or other first bytes)? Returns true when it was truncated.
    fn check(&mut self) -> std::io::Result<bool> {
        let meta = self.file.metadata()?;
        self.deleted = meta.nlink() == 0;
        let size = meta.len();
        Ok(size < self.reader.read_offset() || !self.fingerprint.matches(&self.file)?)
    }

    /// Takes the fingerprint again over the bytes read so far (up to its size).
    fn refresh_fingerprint(&mut self) {
        let len = self.reader.read_offset().min(FINGERPRINT_BYTES);
        if let Ok(fingerprint) = Fingerprint::read_len(&self.file, len)
            && fingerprint != self.fingerprint
        {
            self.fingerprint = fingerprint;
            self.shared
                .positions
                .lock()
                .unwrap()
                .set_fingerprint(self.key, fingerprint);
        }
    }

    /// copytruncate: what was read is passed on, then reading starts again
    /// at the beginning of the same file.
    async fn restart_truncated(&mut self) -> bool {
        self.shared.counters.truncated_files.inc();
        tracing::info!(receiver = %self.shared.id, file = %self.filename, "file truncated in place; reading it again from the start");
        self.flush_open();
        if !self.send().await || !self.all_acknowledged().await {
            return false;
        }
        self.reader.reset(0);
        self.sent_offset = 0;
        // Nothing of the new content is read yet.
        self.fingerprint = Fingerprint::read_len(&self.file, 0).unwrap_or_default();
        let mut positions = self.shared.positions.lock().unwrap();
        positions.set_offset(self.key, 0);
        positions.set_fingerprint(self.key, self.fingerprint);
        true
    }

    /// The file is gone from the globs and idle: the rest is sent, every
    /// acknowledgement awaited, and the file let go.
    async fn finish(&mut self) -> Ending {
        self.flush_open();
        if !self.send().await || !self.all_acknowledged().await {
            return Ending::Stopped;
        }
        let offset = self.reader.consumed();
        self.shared.positions.lock().unwrap().remove(&self.key);
        tracing::debug!(receiver = %self.shared.id, file = %self.filename, offset, "file done");
        Ending::Done {
            key: self.key,
            fingerprint: self.fingerprint,
            offset,
        }
    }

    /// Moves what the decoder and joiner counted to the counters.
    fn report(&mut self) {
        let mut tally = self.decoder.tally;
        if let Some(multiline) = &self.multiline {
            tally.truncated += multiline.truncated;
        }
        let c = &self.shared.counters;
        c.truncated
            .inc_by(tally.truncated - self.reported.truncated);
        c.malformed
            .inc_by(tally.malformed - self.reported.malformed);
        c.invalid_utf8
            .inc_by(tally.invalid_utf8 - self.reported.invalid_utf8);
        self.reported = tally;
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Where to start in a file found at the very first start with `start_at =
/// "end"`: after its last complete line, so that a line being written is
/// read whole.
pub fn end_offset(file: &File, size: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let from = size.saturating_sub(super::reader::CHUNK as u64);
    let mut buf = vec![0; (size - from) as usize];
    if file.read_exact_at(&mut buf, from).is_err() {
        return size;
    }
    match memchr::memrchr(b'\n', &buf) {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => size,
    }
}

/// Registers a tailer's wake-up under its path, for inotify.
pub fn register_wake(wakers: &Wakers, path: &std::path::Path, wake: &Arc<Notify>) {
    wakers
        .files
        .lock()
        .unwrap()
        .insert(path.to_path_buf(), wake.clone());
}
