//! The pod log tailer at work: files discovered and tailed, positions
//! recorded once the exporters acknowledge.

use super::config::{PodLogsConfig, StartAt};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::discover::{Found, Wakers, Watcher};
use super::positions::{FileKey, Fingerprint, Position, Positions};
use super::tail::{Control, Counters, Ending, Shared, Start, Tailer};
use crate::config::ComponentId;
use crate::delivery::MemoryLimiter;
use crate::receivers::{Inputs, RunningReceiver};
use crate::telemetry::Telemetry;

/// How often changed positions are written out.
pub(super) const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How long a finished file is remembered, in case the globs find it again.
pub(super) const RETIRED_KEEP: Duration = Duration::from_secs(3600);
/// How often a positions file that cannot be written is warned about.
pub(super) const POSITIONS_WARN_EVERY: Duration = Duration::from_secs(60);
/// Rescans are at least this far apart, however many inotify events come.
pub(super) const MIN_RESCAN_GAP: Duration = Duration::from_millis(50);

/// Where the receiver `name` keeps its positions under `data_dir`.
pub fn positions_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir
        .join("pod_logs")
        .join(format!("{name}.positions.json"))
}

pub async fn start(
    id: &ComponentId,
    config: &PodLogsConfig,
    inputs: Inputs,
    limiter: Arc<MemoryLimiter>,
    telemetry: &Arc<Telemetry>,
    data_dir: &Path,
) -> std::io::Result<RunningReceiver> {
    let stop = CancellationToken::new();
    let Some(inputs) = inputs.logs else {
        return Ok(RunningReceiver::new(id.clone(), stop, Vec::new()));
    };
    let path = positions_path(data_dir, &id.name);
    let saved =
        crate::delivery::checkpoint::open(&path, "positions file", id, super::positions::load)?;
    let shared = Arc::new(Shared {
        id: id.clone(),
        config: config.clone(),
        inputs,
        limiter,
        counters: Counters::new(telemetry, id),
        positions: Mutex::new(Positions::default()),
        wakers: Arc::new(Wakers::default()),
    });
    // Watching starts before start() returns: a file created and renamed
    // right after is still heard of.
    let mut watcher = Watcher::new(shared.wakers.clone());
    watcher.watch(&config.include);
    let manager = Manager {
        watcher,
        shared,
        positions_path: path,
        saved,
        tailers: HashMap::new(),
        retired: HashMap::new(),
        stop: stop.clone(),
        positions_failing: None,
        expander: super::discover::Expander::default(),
    };
    tracing::info!(receiver = %id, include = ?config.include, "pod log receiver started");
    let task = tokio::spawn(manager.run());
    Ok(RunningReceiver::new(id.clone(), stop, vec![task]))
}

pub(super) struct Running {
    path: PathBuf,
    control: Control,
    task: JoinHandle<Ending>,
}

pub(super) struct Manager {
    watcher: Watcher,
    shared: Arc<Shared>,
    positions_path: PathBuf,
    /// The positions file read at start; `None` on a first start.
    saved: Option<Vec<Position>>,
    tailers: HashMap<FileKey, Running>,
    /// Files read to their end and let go: if the globs find one again, it
    /// goes on from where it ended instead of from the start.
    retired: HashMap<FileKey, (Fingerprint, u64, Instant)>,
    stop: CancellationToken,
    /// When writing positions last failed with a warning, while it fails.
    positions_failing: Option<Instant>,
    /// The globs' expander, with its listings of unchanged directories.
    expander: super::discover::Expander,
}

impl Manager {
    async fn run(mut self) {
        self.first_scan();
        let mut rescan = tokio::time::interval(self.shared.config.rescan_interval);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rescan.reset();
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let wakers = self.shared.wakers.clone();
        let mut last_scan = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => break,
                _ = flush.tick() => {
                    self.flush_positions().await;
                    continue;
                }
                _ = rescan.tick() => {}
                _ = wakers.rescan.notified() => {
                    let gap = MIN_RESCAN_GAP.saturating_sub(last_scan.elapsed());
                    if !gap.is_zero() {
                        tokio::time::sleep(gap).await;
                    }
                }
            }
            last_scan = Instant::now();
            self.shared.counters.rescans.inc();
            self.reap().await;
            self.watcher.watch(&self.shared.config.include);
            self.scan();
        }
        for running in self.tailers.values() {
            running.control.wake.notify_one();
        }
        for (_, running) in self.tailers.drain() {
            let _ = running.task.await;
        }
        let all = self.shared.positions.lock().unwrap().snapshot();
        let path = self.positions_path.clone();
        match tokio::task::spawn_blocking(move || super::positions::save(&path, &all)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(receiver = %self.shared.id, error = %e, "cannot write positions")
            }
            Err(e) => {
                tracing::error!(receiver = %self.shared.id, error = %e, "cannot write positions")
            }
        }
        tracing::info!(receiver = %self.shared.id, "pod log receiver stopped");
    }

    async fn flush_positions(&mut self) {
        let Some(all) = self.shared.positions.lock().unwrap().take_changes() else {
            return;
        };
        let path = self.positions_path.clone();
        let result = tokio::task::spawn_blocking(move || super::positions::save(&path, &all)).await;
        let result = result
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match (result, self.positions_failing.take()) {
            (Ok(()), None) => {}
            (Ok(()), Some(_)) => {
                tracing::info!(receiver = %self.shared.id, path = %self.positions_path.display(), "positions written again");
            }
            (Err(error), failing) => {
                // Said when it starts failing, then once a minute.
                let warned = failing.filter(|at| at.elapsed() < POSITIONS_WARN_EVERY);
                if warned.is_none() {
                    tracing::warn!(receiver = %self.shared.id, path = %self.positions_path.display(), %error, "cannot write positions; trying again every second (a restart re-sends from the last positions written)");
                }
                self.positions_failing = Some(warned.unwrap_or_else(Instant::now));
                // Written again at the next tick.
                self.shared.positions.lock().unwrap().mark_dirty();
            }
        }
    }

    /// Collects tailers that ended; a finished file is remembered for a while.
    async fn reap(&mut self) {
        let ended: Vec<FileKey> = self
            .tailers
            .iter()
            .filter(|(_, r)| r.task.is_finished())
            .map(|(k, _)| *k)
            .collect();
        for key in ended {
            let Some(running) = self.tailers.remove(&key) else {
                continue;
            };
            // Only its own waker: after a rename rotation, the tailer of the
            // new file at the same path has registered there, and without it
            // that tailer hears of no write and looks only once a minute.
            {
                let mut files = self.shared.wakers.files.lock().unwrap();
                if files
                    .get(&running.path)
                    .is_some_and(|wake| Arc::ptr_eq(wake, &running.control.wake))
                {
                    files.remove(&running.path);
                }
            }
            if let Ok(Ending::Done {
                key,
                fingerprint,
                offset,
            }) = running.task.await
            {
                self.retired
                    .insert(key, (fingerprint, offset, Instant::now()));
            }
        }
        self.retired
            .retain(|_, (_, _, at)| at.elapsed() < RETIRED_KEEP);
    }

    /// The first look: files in the positions file resume where they were
    /// acknowledged; a file renamed while ferro was down is found by its
    /// inode beside its old path and read to its end.
    fn first_scan(&mut self) {
        let first_start = self.saved.is_none();
        let mut saved: HashMap<FileKey, Position> = self
            .saved
            .take()
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.key, p))
            .collect();
        let start_at = self.shared.config.start_at;
        for found in super::discover::scan(&self.shared.config, &mut self.expander) {
            let resume = saved.remove(&found.key);
            self.open(&found.path, &found.path, found.key, false, |file, size| {
                if let Some(position) = &resume {
                    if position.fingerprint.matches(file).unwrap_or(false) {
                        return position.offset;
                    }
                    // The inode now belongs to another file.
                    return 0;
                }
                match (first_start, start_at) {
                    (true, StartAt::End) => super::tail::end_offset(file, size),
                    _ => 0,
                }
            });
        }
        let mut gone = 0;
        for (key, position) in saved {
            match find_renamed(&position) {
                Some(path) => {
                    tracing::info!(receiver = %self.shared.id, from = %position.path.display(), to = %path.display(), "reading a file rotated while ferro was stopped to its end");
                    self.open(&position.path, &path, key, true, |_, _| position.offset);
                }
                None => gone += 1,
            }
        }
        if gone > 0 {
            tracing::info!(receiver = %self.shared.id, files = gone, "files in the positions file are gone");
        }
        // The positions file now says what this start decided.
        self.shared.positions.lock().unwrap().mark_dirty();
    }

    /// Expands the globs again: new files start at 0 (or where a finished
    /// file ended); files no longer found are read to their end and let go.
    fn scan(&mut self) {
        let found = super::discover::scan(&self.shared.config, &mut self.expander);
        let mut seen = std::collections::HashSet::with_capacity(found.len());
        for Found { path, key, .. } in found {
            seen.insert(key);
            if let Some(running) = self.tailers.get(&key) {
                running.control.unmatched.store(false, Ordering::Release);
                if running.path != path {
                    self.shared.positions.lock().unwrap().set_path(key, &path);
                }
                continue;
            }
            // A tailer that failed left its acknowledged offset behind; a
            // finished file is remembered; anything else is new.
            let known = self.shared.positions.lock().unwrap().get(&key).cloned();
            let retired = self.retired.remove(&key);
            self.open(&path, &path, key, false, |file, _| {
                if let Some(p) = known
                    && p.fingerprint.matches(file).unwrap_or(false)
                {
                    return p.offset;
                }
                match retired {
                    Some((fingerprint, offset, _))
                        if fingerprint.matches(file).unwrap_or(false) =>
                    {
                        offset
                    }
                    _ => 0,
                }
            });
        }
        let renamed = std::mem::take(&mut *self.shared.wakers.renamed.lock().unwrap());
        for (from, to) in renamed {
            if !super::discover::included(&self.shared.config, &from) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&to) else {
                continue;
            };
            let key = FileKey::of(&meta);
            if !meta.is_file() || seen.contains(&key) || self.tailers.contains_key(&key) {
                continue;
            }
            // Created and renamed away between two rescans: read it all.
            self.open(&from, &to, key, true, |_, _| 0);
        }
        for (key, running) in &self.tailers {
            if !seen.contains(key) && !running.control.unmatched.swap(true, Ordering::AcqRel) {
                running.control.wake.notify_one();
            }
        }
    }

    /// Opens `path` (which must still be `key`) and starts its tailer at the
    /// offset `start_at` picks. `name` is the path the globs knew it by: what
    /// its labels and `filename` come from.
    fn open(
        &mut self,
        name: &Path,
        path: &Path,
        key: FileKey,
        unmatched: bool,
        start_at: impl FnOnce(&File, u64) -> u64,
    ) {
        let opened = File::open(path).and_then(|file| {
            let meta = file.metadata()?;
            Ok((file, meta))
        });
        let (file, meta) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                tracing::debug!(receiver = %self.shared.id, file = %path.display(), error = %e, "cannot open; trying again at the next rescan");
                return;
            }
        };
        if FileKey::of(&meta) != key {
            // Replaced between the scan and the open: the next scan sees it.
            return;
        }
        let size = meta.len();
        let mut offset = start_at(&file, size);
        if offset > size {
            // Truncated while ferro was stopped.
            self.shared.counters.truncated_files.inc();
            offset = 0;
        }
        let fingerprint = Fingerprint::read(&file, size).unwrap_or_default();
        self.shared.positions.lock().unwrap().insert(Position {
            path: name.to_path_buf(),
            key,
            fingerprint,
            offset,
        });
        let labels = super::discover::stream_labels(&self.shared.config, name);
        let (tailer, control) = Tailer::new(
            self.shared.clone(),
            Start {
                path: name.to_path_buf(),
                file,
                key,
                fingerprint,
                offset,
            },
            labels,
            self.stop.child_token(),
        );
        control.unmatched.store(unmatched, Ordering::Release);
        super::tail::register_wake(&self.shared.wakers, path, &control.wake);
        tracing::debug!(receiver = %self.shared.id, file = %path.display(), offset, "tailing");
        let task = tokio::spawn(tailer.run());
        self.tailers.insert(
            key,
            Running {
                path: path.to_path_buf(),
                control,
                task,
            },
        );
    }
}

/// A file rotated while ferro was stopped: the same inode and first bytes,
/// renamed within its directory (kubelet's `0.log` → `0.log.20240101-120000`).
pub(super) fn find_renamed(position: &Position) -> Option<PathBuf> {
    let dir = position.path.parent()?;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || FileKey::of(&meta) != position.key {
            continue;
        }
        let file = File::open(&path).ok()?;
        return position
            .fingerprint
            .matches(&file)
            .unwrap_or(false)
            .then_some(path);
    }
    None
}
