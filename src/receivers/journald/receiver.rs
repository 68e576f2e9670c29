//! The journald receiver at work: journalctl follows the journal and
//! writes the export format; entries become batches; the cursor is saved
//! once the exporters acknowledge.
//!
//! Nothing is dropped: while memory or the pipelines are full the same
//! batch is offered again and journalctl's output is not read, so its pipe
//! fills and it waits (the journal is the buffer). At most
//! [`MAX_IN_FLIGHT`] batches wait for acknowledgement. The saved cursor
//! only ever names an entry up to which every entry is acknowledged: a
//! restart resumes after it and sends again at most what was in flight.
//!
//! journalctl runs with `--merge`: in follow mode it otherwise shows only
//! the newest boot's entries, and after a reboot the end of the previous
//! boot would be skipped. It ends when the journal cannot be opened (a
//! missing directory) and is started again, after the last entry read,
//! with a backoff; every restart is counted by reason.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use super::config::{JournaldConfig, Source};
use super::cursor::{self, Cursor};
use super::entries::{Converter, Tally};
use super::export::ExportReader;
use crate::config::ComponentId;
use crate::delivery::{Acked, InFlight, MemoryLimiter, PipelineInputs};
use crate::receivers::acks::AckCounters;
use crate::receivers::{Inputs, RunningReceiver};
use crate::signal::{Logs, Signal};
use crate::telemetry::Telemetry;

/// Batches sent and not yet acknowledged.
pub const MAX_IN_FLIGHT: usize = 32;
/// How much of journalctl's output is read at once.
const READ_CHUNK: usize = 64 * 1024;
/// How often an advanced cursor is written out (and a batch that is
/// filling slowly sent).
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// The first wait before journalctl is started again; it doubles up to
/// [`RESTART_MAX`] while runs end without reading anything.
const RESTART_MIN: Duration = Duration::from_millis(500);
const RESTART_MAX: Duration = Duration::from_secs(30);
/// How long a batch that is not full waits for more entries: journalctl
/// writes a few KiB at a time, and a batch per write would be tiny.
const LINGER: Duration = Duration::from_millis(100);
/// How long a stopping receiver waits for the acknowledgements it is owed.
const ACK_DRAIN: Duration = Duration::from_secs(3);
/// How often a cursor that cannot be written is warned about.
const CURSOR_WARN_EVERY: Duration = Duration::from_secs(60);
/// journalctl's standard error lines logged per run (all are counted).
const STDERR_LOGGED: usize = 20;

/// Where journalctl starts reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// After this entry (`--after-cursor`).
    After(Cursor),
    /// At entries from this time on (`--since`), in seconds since the epoch.
    Since(u64),
}

/// journalctl's arguments for `config`, starting at `start`, printing
/// `output_fields`.
pub fn journalctl_args(
    config: &JournaldConfig,
    start: &Start,
    output_fields: &str,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--follow",
        "--merge",
        "--no-tail",
        "--no-pager",
        "--output=export",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    args.push(format!("--output-fields={output_fields}").into());
    match &config.source {
        Source::Root(root) if root != Path::new("/") => args.push(flag("--root=", root)),
        Source::Root(_) => {}
        Source::Directory(dir) => args.push(flag("--directory=", dir)),
    }
    match start {
        Start::After(cursor) => args.push(format!("--after-cursor={}", cursor.as_str()).into()),
        Start::Since(secs) => args.push(format!("--since=@{secs}").into()),
    }
    for unit in &config.units {
        args.push(format!("--unit={unit}").into());
    }
    if let Some(priority) = config.priority {
        args.push(format!("--priority={priority}").into());
    }
    if !config.matches.is_empty() {
        args.push("--".into());
        args.extend(config.matches.iter().map(OsString::from));
    }
    args
}

fn flag(name: &str, path: &Path) -> OsString {
    let mut arg = OsString::from(name);
    arg.push(path);
    arg
}

/// The receiver's counters, resolved once.
struct Counters {
    entries: Counter,
    bytes: Counter,
    no_message: Counter,
    malformed: Counter,
    truncated: Counter,
    invalid_utf8: Counter,
    restarted_exited: Counter,
    restarted_spawn_failed: Counter,
    restarted_malformed: Counter,
    journalctl_messages: Counter,
    acks: AckCounters,
    acknowledged_timestamp: Gauge<f64, AtomicU64>,
    awaiting_acks: Gauge,
}

impl Counters {
    fn new(telemetry: &Telemetry, id: &ComponentId) -> Self {
        let labels = Telemetry::labels("receiver", id, Signal::Logs);
        let j = &telemetry.journald;
        Self {
            entries: Telemetry::counter(&j.entries_read, &labels),
            bytes: Telemetry::counter(&j.bytes_read, &labels),
            no_message: Telemetry::reason_counter(&j.entries_skipped, &labels, "no_message"),
            malformed: Telemetry::reason_counter(&j.entries_skipped, &labels, "malformed"),
            truncated: Telemetry::counter(&j.lines_truncated, &labels),
            invalid_utf8: Telemetry::counter(&j.lines_invalid_utf8, &labels),
            restarted_exited: Telemetry::reason_counter(&j.reader_restarts, &labels, "exited"),
            restarted_spawn_failed: Telemetry::reason_counter(
                &j.reader_restarts,
                &labels,
                "spawn_failed",
            ),
            restarted_malformed: Telemetry::reason_counter(
                &j.reader_restarts,
                &labels,
                "malformed",
            ),
            journalctl_messages: Telemetry::counter(&j.journalctl_messages, &labels),
            acks: AckCounters::new(telemetry, &labels, &j.acknowledged),
            acknowledged_timestamp: j.acknowledged_timestamp.get_or_create(&labels).clone(),
            awaiting_acks: j.awaiting_acks.get_or_create(&labels).clone(),
        }
    }

    fn add(&self, tally: Tally) {
        self.entries.inc_by(tally.read);
        self.no_message.inc_by(tally.no_message);
        self.truncated.inc_by(tally.truncated);
        self.invalid_utf8.inc_by(tally.invalid_utf8);
    }
}

pub async fn start(
    id: &ComponentId,
    config: &JournaldConfig,
    inputs: Inputs,
    limiter: Arc<MemoryLimiter>,
    telemetry: &Arc<Telemetry>,
    data_dir: &Path,
) -> std::io::Result<RunningReceiver> {
    let stop = CancellationToken::new();
    let Some(inputs) = inputs.logs else {
        return Ok(RunningReceiver::new(id.clone(), stop, Vec::new()));
    };
    let path = cursor::cursor_path(data_dir, &id.name);
    let saved = crate::delivery::checkpoint::open(&path, "journal cursor", id, cursor::load)?;
    let resume = resume_point(id, config, saved, SystemTime::now());
    let reader = Reader {
        id: id.clone(),
        counters: Counters::new(telemetry, id),
        converter: Converter::new(config),
        config: config.clone(),
        inputs,
        limiter,
        cursor_path: path,
        resume,
        acked: None,
        acked_dirty: false,
        in_flight: InFlight::default(),
        cursor_failing: None,
        stop: stop.clone(),
    };
    tracing::info!(receiver = %id, source = ?config.source, "journald receiver started");
    let task = tokio::spawn(reader.run());
    Ok(RunningReceiver::new(id.clone(), stop, vec![task]))
}

/// Where the first journalctl starts: after the saved cursor, unless that
/// is older than `max_age` (ferro was stopped a long time) or there is none.
pub fn resume_point(
    id: &ComponentId,
    config: &JournaldConfig,
    saved: Option<Cursor>,
    now: SystemTime,
) -> Start {
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let oldest = now_secs.saturating_sub(config.max_age.as_secs());
    match saved {
        Some(cursor)
            if cursor
                .realtime_us()
                .is_none_or(|us| us / 1_000_000 >= oldest) =>
        {
            Start::After(cursor)
        }
        Some(_) => {
            tracing::info!(receiver = %id, max_age = ?config.max_age, "the saved journal cursor is older than max_age; starting max_age back");
            Start::Since(oldest)
        }
        None => Start::Since(oldest),
    }
}

/// How one run of journalctl ended.
enum Run {
    /// The receiver is stopping.
    Stopped,
    /// journalctl ended or could not run; `read` says whether it read an entry.
    Ended { read: bool },
}

struct Reader {
    id: ComponentId,
    config: JournaldConfig,
    inputs: PipelineInputs<Logs>,
    limiter: Arc<MemoryLimiter>,
    counters: Counters,
    converter: Converter,
    cursor_path: PathBuf,
    /// Where the next journalctl starts: after the last entry read.
    resume: Start,
    /// The cursor up to which everything is acknowledged.
    acked: Option<Cursor>,
    acked_dirty: bool,
    /// Batches sent, each with the cursor of its last entry.
    in_flight: InFlight<Option<Cursor>>,
    /// When writing the cursor last failed with a warning, while it fails.
    cursor_failing: Option<Instant>,
    stop: CancellationToken,
}

impl Reader {
    async fn run(mut self) {
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = RESTART_MIN;
        loop {
            match self.follow(&mut flush).await {
                Run::Stopped => break,
                Run::Ended { read } => {
                    if read {
                        backoff = RESTART_MIN;
                    }
                    let until = tokio::time::Instant::now() + backoff;
                    if !self.wait_until(until, &mut flush).await {
                        break;
                    }
                    backoff = (backoff * 2).min(RESTART_MAX);
                }
            }
        }
        // Whatever is owed is recorded if it comes soon; the rest is read
        // again at the next start.
        let deadline = tokio::time::Instant::now() + ACK_DRAIN;
        while let Some(acked) = self.in_flight.next_until(deadline).await {
            self.acknowledged(acked);
        }
        self.save_cursor().await;
        tracing::info!(receiver = %self.id, "journald receiver stopped");
    }

    /// Between two runs: acknowledgements and cursor writes go on. False
    /// if the receiver stopped.
    async fn wait_until(
        &mut self,
        until: tokio::time::Instant,
        flush: &mut tokio::time::Interval,
    ) -> bool {
        loop {
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => return false,
                acked = self.in_flight.next() => self.acknowledged(acked),
                _ = flush.tick() => self.save_cursor().await,
                _ = tokio::time::sleep_until(until) => return true,
            }
        }
    }

    /// One run of journalctl, until it ends or the receiver stops.
    async fn follow(&mut self, flush: &mut tokio::time::Interval) -> Run {
        let args = journalctl_args(&self.config, &self.resume, &self.converter.output_fields());
        let mut child = match spawn(&self.config.journalctl_path, &args) {
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(receiver = %self.id, journalctl = %self.config.journalctl_path.display(), error = %e, "cannot run journalctl; trying again");
                self.counters.restarted_spawn_failed.inc();
                return Run::Ended { read: false };
            }
        };
        tracing::debug!(receiver = %self.id, ?args, "journalctl started");
        let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            self.counters.restarted_spawn_failed.inc();
            return Run::Ended { read: false };
        };
        let messages = tokio::spawn(log_stderr(
            self.id.clone(),
            stderr,
            self.counters.journalctl_messages.clone(),
        ));
        let mut reader = ExportReader::new(&self.converter.wanted());
        let mut buf = vec![0; READ_CHUNK];
        let mut read_any = false;
        // When the batch being filled goes even if not full.
        let mut linger: Option<tokio::time::Instant> = None;
        let run = loop {
            self.collect_acks();
            if self.in_flight.len() >= MAX_IN_FLIGHT {
                self.counters.awaiting_acks.set(1);
                let outcome = tokio::select! {
                    biased;
                    _ = self.stop.cancelled() => None,
                    acked = self.in_flight.next() => Some(acked),
                };
                self.counters.awaiting_acks.set(0);
                match outcome {
                    Some(acked) => self.acknowledged(acked),
                    None => break Run::Stopped,
                }
                continue;
            }
            let read = tokio::select! {
                biased;
                _ = self.stop.cancelled() => break Run::Stopped,
                acked = self.in_flight.next() => {
                    self.acknowledged(acked);
                    continue;
                }
                _ = flush.tick() => {
                    self.save_cursor().await;
                    continue;
                }
                _ = sleep_until(linger) => {
                    linger = None;
                    if !self.send().await {
                        break Run::Stopped;
                    }
                    continue;
                }
                read = stdout.read(&mut buf) => read,
            };
            let n = match read {
                Ok(0) => {
                    let status = child.wait().await;
                    tracing::warn!(receiver = %self.id, status = ?status.ok(), "journalctl ended; starting it again after the last entry read");
                    self.counters.restarted_exited.inc();
                    break Run::Ended { read: read_any };
                }
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(receiver = %self.id, error = %e, "cannot read journalctl's output; starting it again");
                    self.counters.restarted_exited.inc();
                    break Run::Ended { read: read_any };
                }
            };
            self.counters.bytes.inc_by(n as u64);
            let now_ns = now_ns();
            let converter = &mut self.converter;
            let parsed = reader.push(&buf[..n], |fields| converter.push(fields, now_ns));
            let tally = std::mem::take(&mut self.converter.tally);
            // Only whole entries count as progress: a run that fails at the
            // same place again and again backs off.
            read_any |= tally.read > 0;
            self.counters.add(tally);
            if let Err(e) = parsed {
                // An entry whose cursor was read before the bad field is
                // skipped (counted), or the next run would stop at it again.
                match reader.current_cursor().and_then(Cursor::parse) {
                    Some(cursor) => {
                        tracing::warn!(receiver = %self.id, error = %e, cursor = %cursor.as_str(), "a journal entry is not in the export format; skipping it and starting journalctl again after it");
                        self.counters.malformed.inc();
                        self.converter.pending.cursor = Some(cursor);
                        read_any = true;
                    }
                    None => {
                        tracing::warn!(receiver = %self.id, error = %e, "journalctl's output is not the export format; starting it again after the last entry read");
                    }
                }
                self.counters.restarted_malformed.inc();
                break Run::Ended { read: read_any };
            }
            // Sent when full, or a little after the first entry came.
            if self.converter.pending.is_full() {
                linger = None;
                if !self.send().await {
                    break Run::Stopped;
                }
            } else if linger.is_none() && self.converter.pending.cursor.is_some() {
                linger = Some(tokio::time::Instant::now() + LINGER);
            }
        };
        // Entries read so far are whole: they go (a stop leaves them to
        // the next start, after the saved cursor).
        if matches!(run, Run::Ended { .. }) && !self.send().await {
            return Run::Stopped;
        }
        drop(child);
        match run {
            // Its last words (why it ended) are on their way.
            Run::Ended { .. } => {
                let _ = tokio::time::timeout(Duration::from_secs(1), messages).await;
            }
            Run::Stopped => messages.abort(),
        }
        run
    }

    /// Sends the entries gathered, waiting (never dropping) while memory or
    /// the pipelines are full. False if the receiver stopped first.
    async fn send(&mut self) -> bool {
        let cursor = self.converter.pending.cursor.take();
        if let Some(cursor) = &cursor {
            self.resume = Start::After(cursor.clone());
        }
        let Some(taken) = self.converter.pending.take() else {
            // Entries that made no line (no MESSAGE) moved the cursor: it
            // advances with the batch before them, or now.
            if let Some(cursor) = cursor {
                let interrupted = self.in_flight.interrupted();
                match self.in_flight.newest_progress() {
                    Some(last) => *last = Some(cursor),
                    None if !interrupted => self.set_acked(cursor),
                    None => {}
                }
            }
            return true;
        };
        let acks = &self.counters.acks;
        let entries = taken.entries;
        let refused = |refusal| acks.refused(refusal, entries);
        let sent =
            self.inputs
                .send_patiently(&self.limiter, taken.logs, taken.bytes, &self.stop, refused);
        let Some(ack) = sent.await else {
            return false;
        };
        self.counters.acks.accepted(entries);
        self.in_flight.push(ack, cursor, entries);
        true
    }

    fn collect_acks(&mut self) {
        while let Some(acked) = self.in_flight.try_next() {
            self.acknowledged(acked);
        }
    }

    /// The oldest batch in flight is finished: its cursor becomes the saved
    /// one, unless a shutdown interrupted its delivery (or an earlier
    /// batch's): then the cursor stays, and the next start reads those
    /// entries again.
    fn acknowledged(&mut self, acked: Acked<Option<Cursor>>) {
        // A drop moves the cursor on too, or the same entries would be
        // dropped again after every restart.
        self.counters.acks.acknowledged(acked.outcome, acked.items);
        if let Some(Some(cursor)) = acked.progress {
            self.set_acked(cursor);
        }
    }

    fn set_acked(&mut self, cursor: Cursor) {
        if let Some(us) = cursor.realtime_us() {
            self.counters
                .acknowledged_timestamp
                .set(us as f64 / 1_000_000.0);
        }
        self.acked = Some(cursor);
        self.acked_dirty = true;
    }

    /// Writes the acknowledged cursor if it moved.
    async fn save_cursor(&mut self) {
        if !self.acked_dirty {
            return;
        }
        let Some(cursor) = self.acked.clone() else {
            return;
        };
        let path = self.cursor_path.clone();
        let result = tokio::task::spawn_blocking(move || cursor::save(&path, &cursor)).await;
        let result = result
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match (result, self.cursor_failing.take()) {
            (Ok(()), None) => self.acked_dirty = false,
            (Ok(()), Some(_)) => {
                self.acked_dirty = false;
                tracing::info!(receiver = %self.id, path = %self.cursor_path.display(), "journal cursor written again");
            }
            (Err(error), failing) => {
                // Said when it starts failing, then once a minute; written
                // again at the next tick.
                let warned = failing.filter(|at| at.elapsed() < CURSOR_WARN_EVERY);
                if warned.is_none() {
                    tracing::warn!(receiver = %self.id, path = %self.cursor_path.display(), %error, "cannot write the journal cursor; trying again every second (a restart re-sends from the last cursor written)");
                }
                self.cursor_failing = Some(warned.unwrap_or_else(Instant::now));
            }
        }
    }
}

/// Starts journalctl with its output piped to ferro. It is killed when
/// ferro lets go of it, and when ferro dies (the parent-death signal).
fn spawn(program: &Path, args: &[OsString]) -> std::io::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let parent = std::process::id();
    // SAFETY: between fork and exec only async-signal-safe calls are made
    // (prctl, getppid), and nothing is allocated (errors are errno values).
    unsafe {
        command.pre_exec(move || {
            // A ferro killed with SIGKILL takes journalctl along, instead
            // of leaving it blocked on a follow until the next entry.
            // (The signal follows the thread that forked: tokio's worker
            // threads live as long as the runtime.)
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                // ferro ended before journalctl started (no allocation here).
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Logs and counts what journalctl writes to its standard error (a corrupt
/// or unsupported journal file it skips, a directory it cannot open).
async fn log_stderr(id: ComponentId, stderr: tokio::process::ChildStderr, counter: Counter) {
    let mut stderr = tokio::io::BufReader::new(stderr);
    let mut line = Vec::new();
    let mut logged = 0;
    loop {
        line.clear();
        // A line is cut at 1 KiB; the rest of it reads as further lines.
        match (&mut stderr).take(1024).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        counter.inc();
        if logged < STDERR_LOGGED {
            logged += 1;
            let message = String::from_utf8_lossy(&line);
            tracing::warn!(receiver = %id, journalctl = %message.trim_end(), "journalctl says");
        }
    }
}

/// Sleeps until `deadline`; forever if there is none.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
