//! Expanding the include globs as the `glob` crate does, with every
//! directory's listing kept until the directory changes.
//!
//! A node has a directory per pod and one per container: re-reading them all
//! every `rescan_interval` is what an idle tailer would otherwise spend its
//! time on (an open, two reads and a close per directory, and a stat per
//! file). Here a directory whose modification time is what it was costs one
//! stat, and its files are known by the identity read when it last changed:
//! a file created, removed or renamed in it changes its time.
//!
//! A listing read within [`SETTLE`] of its directory's last change is not
//! trusted (a change in the same clock tick would leave the time as it
//! was): it is read again at the next pass. Patterns with `**` are expanded
//! by the `glob` crate each time.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::positions::FileKey;

/// How long after its last change a directory's listing is trusted.
const SETTLE: Duration = Duration::from_secs(2);

/// A file the globs matched: its path and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub path: PathBuf,
    pub key: FileKey,
}

/// What a directory held when it was last read.
struct Listing {
    /// Device, inode and modification time (s, ns) of the directory.
    stamp: (u64, u64, i64, i64),
    trusted: bool,
    entries: Vec<Entry>,
    /// Whether this pass used it: listings no pass uses are forgotten.
    used: bool,
}

struct Entry {
    name: OsString,
    /// Regular files (symlinks followed) have their identity; directories none.
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Dir,
    File(FileKey),
}

/// One part of a pattern between `/`s.
enum Part {
    Literal(OsString),
    Wildcard(glob::Pattern),
}

/// The expander of one receiver's globs, with its cache of listings.
#[derive(Default)]
pub struct Expander {
    listings: HashMap<PathBuf, Listing>,
}

impl Expander {
    /// The regular files `patterns` match (symlinks followed); a path
    /// matched by two patterns once.
    pub fn expand(&mut self, patterns: &[String]) -> Vec<Matched> {
        let mut out = Vec::new();
        for pattern in patterns {
            match parts(pattern) {
                Some(parts) => self.expand_parts(&parts, &mut out),
                None => expand_uncached(pattern, &mut out),
            }
        }
        self.listings
            .retain(|_, listing| std::mem::take(&mut listing.used));
        out
    }

    fn expand_parts(&mut self, parts: &[Part], out: &mut Vec<Matched>) {
        let Some((last, dirs)) = parts.split_last() else {
            return;
        };
        let mut at = vec![PathBuf::from("/")];
        for part in dirs {
            let mut next = Vec::new();
            for dir in &at {
                match part {
                    Part::Literal(name) => next.push(dir.join(name)),
                    Part::Wildcard(pattern) => {
                        let Some(listing) = self.list(dir) else {
                            continue;
                        };
                        for entry in &listing.entries {
                            if matches!(entry.kind, Kind::Dir) && matches(pattern, &entry.name) {
                                next.push(dir.join(&entry.name));
                            }
                        }
                    }
                }
            }
            at = next;
        }
        for dir in &at {
            let Some(listing) = self.list(dir) else {
                continue;
            };
            for entry in &listing.entries {
                let Kind::File(key) = entry.kind else {
                    continue;
                };
                let hit = match last {
                    Part::Literal(name) => entry.name == *name,
                    Part::Wildcard(pattern) => matches(pattern, &entry.name),
                };
                if hit {
                    out.push(Matched {
                        path: dir.join(&entry.name),
                        key,
                    });
                }
            }
        }
    }

    /// `dir`'s entries: the kept listing while the directory is unchanged,
    /// else read anew. `None` if it is not a readable directory.
    fn list(&mut self, dir: &Path) -> Option<&Listing> {
        let meta = std::fs::metadata(dir).ok()?;
        if !meta.is_dir() {
            return None;
        }
        let stamp = (meta.dev(), meta.ino(), meta.mtime(), meta.mtime_nsec());
        let fresh = self
            .listings
            .get(dir)
            .is_some_and(|l| l.trusted && l.stamp == stamp);
        if !fresh {
            let entries = read(dir)?;
            let changed = meta.modified().ok()?;
            let trusted = SystemTime::now()
                .duration_since(changed)
                .is_ok_and(|age| age >= SETTLE);
            self.listings.insert(
                dir.to_path_buf(),
                Listing {
                    stamp,
                    trusted,
                    entries,
                    used: false,
                },
            );
        }
        let listing = self.listings.get_mut(dir)?;
        listing.used = true;
        Some(listing)
    }
}

/// Reads `dir`: its subdirectories and regular files, symlinks followed.
fn read(dir: &Path) -> Option<Vec<Entry>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let kind = if kind.is_dir() {
            Kind::Dir
        } else if kind.is_file() || kind.is_symlink() {
            // Only a changed directory gets here: a stat per file is paid
            // when the files change, not at every pass.
            match std::fs::metadata(entry.path()) {
                Ok(meta) if meta.is_dir() => Kind::Dir,
                Ok(meta) if meta.is_file() => Kind::File(FileKey::of(&meta)),
                _ => continue,
            }
        } else {
            continue;
        };
        entries.push(Entry {
            name: entry.file_name(),
            kind,
        });
    }
    Some(entries)
}

/// An absolute pattern cut at its `/`s, or `None` for a pattern this
/// module leaves to the `glob` crate (`**`, or a part that is no pattern).
fn parts(pattern: &str) -> Option<Vec<Part>> {
    let path = Path::new(pattern);
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(name) => {
                let text = name.to_str()?;
                if text == "**" {
                    return None;
                }
                if text.contains(['*', '?', '[']) {
                    parts.push(Part::Wildcard(glob::Pattern::new(text).ok()?));
                } else {
                    parts.push(Part::Literal(name.to_os_string()));
                }
            }
            _ => return None,
        }
    }
    Some(parts)
}

fn matches(pattern: &glob::Pattern, name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|name| pattern.matches(name))
}

/// What the `glob` crate finds for `pattern`: regular files, symlinks
/// followed.
fn expand_uncached(pattern: &str, out: &mut Vec<Matched>) {
    let Ok(paths) = glob::glob(pattern) else {
        return;
    };
    for path in paths.flatten() {
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.is_file()
        {
            out.push(Matched {
                key: FileKey::of(&meta),
                path,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_glob(pattern: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        expand_uncached(pattern, &mut out);
        let mut paths: Vec<PathBuf> = out.into_iter().map(|m| m.path).collect();
        paths.sort();
        paths
    }

    fn paths(matched: Vec<Matched>) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = matched.into_iter().map(|m| m.path).collect();
        paths.sort();
        paths
    }

    #[test]
    fn finds_what_the_glob_crate_finds() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (pod, container, file) in [
            ("ns_a_1", "app", "0.log"),
            ("ns_a_1", "app", "1.log"),
            ("ns_a_1", "side", "0.log"),
            ("ns_b_2", "app", "0.log.20240101"),
            ("ns_b_2", "app", ".hidden.log"),
        ] {
            let d = root.join(pod).join(container);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(file), "x\n").unwrap();
        }
        std::fs::create_dir_all(root.join("ns_c_3/app/0.log")).unwrap(); // a directory named like a file
        std::os::unix::fs::symlink(
            root.join("ns_a_1/app/0.log"),
            root.join("ns_b_2/app/link.log"),
        )
        .unwrap();
        let mut expander = Expander::default();
        for pattern in [
            format!("{}/*/*/*.log", root.display()),
            format!("{}/*/app/0.log", root.display()),
            format!("{}/ns_?_[12]/*/*", root.display()),
            format!("{}/ns_a_1/app/1.log", root.display()),
            format!("{}/**/*.log", root.display()),
        ] {
            assert_eq!(
                paths(expander.expand(std::slice::from_ref(&pattern))),
                by_glob(&pattern),
                "{pattern}"
            );
        }
    }

    #[test]
    fn an_unchanged_directory_is_not_read_again_and_a_changed_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().join("pods");
        let app = pods.join("ns_a_1/app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("0.log"), "x\n").unwrap();
        let pattern = [format!("{}/*/*/*.log", pods.display())];
        let mut expander = Expander::default();
        assert_eq!(expander.expand(&pattern).len(), 1);
        // As if the directories had settled: their listings are kept, and
        // one kept listing altered shows that it, not the directory, is read.
        for listing in expander.listings.values_mut() {
            listing.trusted = true;
        }
        expander.listings.get_mut(&app).unwrap().entries.clear();
        assert!(
            expander.expand(&pattern).is_empty(),
            "the kept listing is used"
        );
        // A new file changes its directory's time: that one is read again.
        std::fs::write(app.join("1.log"), "y\n").unwrap();
        let found = paths(expander.expand(&pattern));
        assert_eq!(found, vec![app.join("0.log"), app.join("1.log")]);
        // Listings of directories gone are forgotten.
        std::fs::remove_dir_all(pods.join("ns_a_1")).unwrap();
        assert!(expander.expand(&pattern).is_empty());
        assert_eq!(
            expander.listings.len(),
            1,
            "only the pods directory is kept"
        );
    }
}
