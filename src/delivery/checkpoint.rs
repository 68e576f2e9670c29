//! A receiver's saved progress (pod log positions, the journal cursor):
//! a small file replaced atomically and durably after the exporters
//! acknowledge, so a restart resumes where delivery stood.
//!
//! The new content is written to `<name>.tmp`, synced, renamed over the
//! file, and the directory synced: a crash leaves the previous or the next
//! version, never half of one.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `content`, atomically and durably.
pub fn replace(path: &Path, content: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut file = File::create(&tmp)?;
        file.write_all(content)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // The rename is durable only once the directory is.
    File::open(dir)?.sync_all()
}

/// A receiver's checkpoint at `path`, read with `load` (`Ok(None)`: none
/// yet, a first start), its directory created first (the error names it
/// and `what` the file is). A checkpoint that cannot be used must not keep
/// ferro from starting: it is moved aside (`<path>.corrupt`) for a person
/// to look at, logged, and the receiver starts as on a first start.
pub fn open<T, E: std::fmt::Display>(
    path: &Path,
    what: &str,
    receiver: &crate::config::ComponentId,
    load: impl FnOnce(&Path) -> Result<Option<T>, E>,
) -> io::Result<Option<T>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create {} for {what}: {e}", dir.display()),
            )
        })?;
    }
    Ok(match load(path) {
        Ok(saved) => saved,
        Err(e) => {
            let aside = set_aside(path);
            tracing::error!(%receiver, error = %e, kept = %aside.display(), "{what} unusable; starting as on a first start");
            None
        }
    })
}

/// Moves an unusable checkpoint aside (`<path>.corrupt`); where it went.
fn set_aside(path: &Path) -> std::path::PathBuf {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    let aside = std::path::PathBuf::from(aside);
    let _ = std::fs::rename(path, &aside);
    aside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_leaves_only_the_new_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        replace(&path, b"one").unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state"]);
    }

    #[test]
    fn open_sets_a_damaged_checkpoint_aside_and_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let id = crate::config::ComponentId::new("pod_logs", "x");
        let load = |p: &Path| match std::fs::read(p) {
            Ok(bytes) if bytes == b"good" => Ok(Some(1)),
            Ok(_) => Err("garbage"),
            Err(_) => Ok(None),
        };
        assert_eq!(open(&path, "positions", &id, load).unwrap(), None);
        std::fs::write(&path, b"good").unwrap();
        assert_eq!(open(&path, "positions", &id, load).unwrap(), Some(1));
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(open(&path, "positions", &id, load).unwrap(), None);
        let aside = dir.path().join("sub/state.json.corrupt");
        assert_eq!(std::fs::read(&aside).unwrap(), b"garbage");
        assert!(!path.exists());
    }
}
