//! Finding the files to tail and what their paths say.
//!
//! The include globs are expanded on every rescan; inotify (through `notify`)
//! only makes the next rescan come sooner and wakes tailers whose file was
//! written, so a lost or overflowed event costs latency, never data.
//!
//! Idle costs nothing that grows with the number of files: inotify tells of
//! ferro's own directory reads too (`IN_OPEN`), and those are ignored, or
//! every rescan would cause the next; tailers of watched files rest until
//! told of a write, and look on their own only every `rescan_interval`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

use super::config::PodLogsConfig;
pub use super::expand::{Expander, Matched};
use crate::signal::{Labels, LabelsBuilder};

/// A file matched by the include globs and not excluded.
pub type Found = Matched;

/// Expands the globs (see [`Expander`]): regular files, symlinks followed,
/// not excluded, each identity once.
pub fn scan(config: &PodLogsConfig, expander: &mut Expander) -> Vec<Found> {
    let mut seen = std::collections::HashSet::new();
    expander
        .expand(&config.include)
        .into_iter()
        .filter(|m| !config.exclude.iter().any(|p| p.matches_path(&m.path)))
        .filter(|m| seen.insert(m.key))
        .collect()
}

/// What kubelet's path `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log` says.
#[derive(Debug, PartialEq, Eq)]
pub struct PodPath<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub uid: &'a str,
    pub container: &'a str,
}

/// Reads the pod, namespace, uid and container from a kubelet log path;
/// `None` for a path of another shape. Namespaces and uids have no `_`, pod
/// names may not either, so the split is unambiguous.
pub fn pod_path(path: &Path) -> Option<PodPath<'_>> {
    let file = path.file_name()?.to_str()?;
    if !file.ends_with(".log") {
        return None;
    }
    let container_dir = path.parent()?;
    let container = container_dir.file_name()?.to_str()?;
    let pod_dir = container_dir.parent()?.file_name()?.to_str()?;
    let mut parts = pod_dir.splitn(3, '_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    if [namespace, pod, uid, container]
        .iter()
        .any(|s| s.is_empty())
        || uid.contains('_')
    {
        return None;
    }
    Some(PodPath {
        namespace,
        pod,
        uid,
        container,
    })
}

/// The label sets of one file's streams: `[stdout, stderr, no stream]`.
pub fn stream_labels(config: &PodLogsConfig, path: &Path) -> [Labels; 3] {
    let mut base = LabelsBuilder::new();
    for (name, value) in &config.labels {
        base.set(name, value);
    }
    match pod_path(path) {
        Some(pod) => {
            base.set("namespace", pod.namespace);
            base.set("pod", pod.pod);
            base.set("container", pod.container);
            if config.pod_uid_label {
                base.set("pod_uid", pod.uid);
            }
        }
        // Loki refuses a stream without labels: a file outside the layout,
        // with no static labels, is told apart by its name.
        None if config.labels.is_empty() => base.set("filename", &path.to_string_lossy()),
        None => {}
    }
    let with_stream = |stream: &str| {
        let mut b = base.clone();
        b.set("stream", stream);
        b.labels()
    };
    [with_stream("stdout"), with_stream("stderr"), base.labels()]
}

/// The directory a glob's fixed part ends in: what to watch for it.
pub fn watch_root(pattern: &str) -> PathBuf {
    let mut root = PathBuf::new();
    for component in Path::new(pattern).components() {
        let text = component.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[']) {
            break;
        }
        root.push(component);
    }
    if root.as_os_str() == pattern {
        // No glob at all: watch the file's directory.
        root.pop();
    }
    root
}

/// Whether the include globs (and not the exclude ones) take `path`.
pub fn included(config: &PodLogsConfig, path: &Path) -> bool {
    config
        .include
        .iter()
        .any(|p| glob::Pattern::new(p).is_ok_and(|p| p.matches_path(path)))
        && !config.exclude.iter().any(|p| p.matches_path(path))
}

/// Renames inotify reported, kept until the next rescan: a file renamed out
/// of the globs before any rescan saw it is still found this way.
const MAX_RENAMES: usize = 10_000;

/// Who wants to hear of changes: the receiver (rescan) and each tailer (by path).
#[derive(Default)]
pub struct Wakers {
    pub rescan: Notify,
    pub files: Mutex<HashMap<PathBuf, Arc<Notify>>>,
    /// `(from, to)` of renames since the last rescan.
    pub renamed: Mutex<Vec<(PathBuf, PathBuf)>>,
    /// Whether inotify watches every include root: tailers then rest until
    /// told of a write, looking on their own only as a safety net.
    pub watching: AtomicBool,
}

impl Wakers {
    /// Wakes every tailer: inotify lost events (its queue overflowed).
    fn wake_all(&self) {
        for wake in self.files.lock().unwrap().values() {
            wake.notify_one();
        }
    }
}

/// The inotify watcher: a hint, never relied on.
pub struct Watcher {
    inner: Option<notify::RecommendedWatcher>,
    watched: Vec<PathBuf>,
    /// Roots that could not be watched (missing, or inotify refused).
    failed: usize,
    wakers: Arc<Wakers>,
}

impl Watcher {
    pub fn new(wakers: Arc<Wakers>) -> Self {
        let shared = wakers.clone();
        let inner = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            use notify::EventKind;
            use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
            let event = match event {
                Ok(event) if !event.need_rescan() => event,
                // An overflow or error: events were lost. A rescan finds
                // new files, and every tailer looks at its file.
                _ => {
                    wakers.rescan.notify_one();
                    wakers.wake_all();
                    return;
                }
            };
            match event.kind {
                // ferro's own reads: a rescan opening directories, a
                // tailer checking its file. Rescanning for them would
                // rescan forever.
                EventKind::Access(AccessKind::Open(_) | AccessKind::Read)
                | EventKind::Access(AccessKind::Close(AccessMode::Read)) => return,
                // A write or a closed writer: only that file's tailer cares.
                EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_))
                | EventKind::Access(_) => {}
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                    if let [from, to] = &event.paths[..] {
                        let mut renamed = wakers.renamed.lock().unwrap();
                        if renamed.len() < MAX_RENAMES {
                            renamed.push((from.clone(), to.clone()));
                        }
                    }
                    wakers.rescan.notify_one();
                }
                // Created, removed, renamed: what the globs match changed.
                _ => wakers.rescan.notify_one(),
            }
            let files = wakers.files.lock().unwrap();
            for path in &event.paths {
                if let Some(wake) = files.get(path) {
                    wake.notify_one();
                }
            }
        });
        let inner = match inner {
            Ok(inner) => Some(inner),
            Err(e) => {
                tracing::warn!(error = %e, "inotify is not available; finding changes by polling only");
                None
            }
        };
        Self {
            inner,
            watched: Vec::new(),
            failed: 0,
            wakers: shared,
        }
    }

    /// Watches the roots of `patterns` that exist and are not watched yet.
    pub fn watch(&mut self, patterns: &[String]) {
        use notify::Watcher as _;
        let Some(inner) = &mut self.inner else { return };
        let mut failed = 0;
        for pattern in patterns {
            let root = watch_root(pattern);
            if self.watched.contains(&root) {
                continue;
            }
            if !root.is_dir() {
                failed += 1;
                continue;
            }
            match inner.watch(&root, notify::RecursiveMode::Recursive) {
                Ok(()) => self.watched.push(root),
                Err(e) => {
                    tracing::warn!(root = %root.display(), error = %e, "cannot watch; finding changes by polling only");
                    self.watched.push(root);
                    self.failed += 1;
                }
            }
        }
        let watching = failed == 0 && self.failed == 0;
        self.wakers.watching.store(watching, Ordering::Release);
    }
}
