use super::*;

fn position(path: &str, ino: u64, offset: u64) -> Position {
    Position {
        path: PathBuf::from(path),
        key: FileKey { dev: 2049, ino },
        fingerprint: Fingerprint {
            len: 1024,
            hash: 0xdead_beef_0000_0001 ^ ino,
        },
        offset,
    }
}

#[test]
fn save_then_load_round_trips_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.positions.json");
    assert_eq!(load(&path).unwrap(), None, "no file yet: a first start");
    let all = vec![
        position("/var/log/pods/a_b_c/app/0.log", 11, 123),
        position("/var/log/pods/a_b_c/app/1.log", u64::MAX, u64::MAX),
    ];
    save(&path, &all).unwrap();
    assert_eq!(load(&path).unwrap(), Some(all.clone()));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["node.positions.json"]);
    // Saving again replaces, never appends.
    save(&path, &all[..1]).unwrap();
    assert_eq!(load(&path).unwrap(), Some(all[..1].to_vec()));
}

#[test]
fn the_file_is_readable_json_a_person_can_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json");
    save(&path, &[position("/x/0.log", 5, 77)]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["files"][0]["path"], "/x/0.log");
    assert_eq!(v["files"][0]["inode"], 5);
    assert_eq!(v["files"][0]["offset"], 77);
    assert_eq!(v["files"][0]["fingerprint"], "deadbeef00000004");
}

#[test]
fn a_damaged_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json");
    for bad in [
        &b""[..],
        b"{",
        b"\xff\xfe",
        br#"{"version":2,"files":[]}"#,
        br#"{"version":1,"files":[{"path":"/a","dev":1,"inode":2,"fingerprint":"zz","fingerprint_len":3,"offset":4}]}"#,
        br#"{"version":1,"files":[{"path":"/a"}]}"#,
    ] {
        std::fs::write(&path, bad).unwrap();
        assert!(
            matches!(load(&path), Err(LoadError::Corrupt(..))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn a_crash_between_temp_write_and_rename_leaves_the_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json");
    let old = vec![position("/x/0.log", 5, 10)];
    save(&path, &old).unwrap();
    // What a crash mid-save leaves: a half-written temp file beside it.
    std::fs::write(dir.path().join("p.json.tmp"), b"{\"version\":1,\"fi").unwrap();
    assert_eq!(load(&path).unwrap(), Some(old));
    // The next save overwrites the stale temp file.
    save(&path, &[position("/x/0.log", 5, 20)]).unwrap();
    assert_eq!(load(&path).unwrap().unwrap()[0].offset, 20);
    assert!(!dir.path().join("p.json.tmp").exists());
}

#[test]
fn fingerprints_tell_a_reused_inode_from_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.log");
    std::fs::write(&path, b"first line\n").unwrap();
    let file = File::open(&path).unwrap();
    let short = Fingerprint::read(&file, 11).unwrap();
    assert_eq!(short.len, 11);
    assert!(!short.is_complete());
    // The file grows: the short fingerprint still matches its first bytes.
    std::fs::write(&path, "first line\n".repeat(200)).unwrap();
    assert!(short.matches(&file).unwrap());
    let full = Fingerprint::read(&file, 2200).unwrap();
    assert_eq!(full.len, FINGERPRINT_BYTES);
    assert!(full.is_complete());
    // Other content at the same inode does not match.
    std::fs::write(&path, "other line\n".repeat(200)).unwrap();
    assert!(!full.matches(&file).unwrap());
    assert!(!short.matches(&file).unwrap());
    // Nor does a file now shorter than the fingerprint.
    std::fs::write(&path, b"first").unwrap();
    assert!(!short.matches(&file).unwrap());
    // An empty fingerprint matches anything (nothing was read from it).
    assert!(Fingerprint::read(&file, 0).unwrap().matches(&file).unwrap());
}

#[test]
fn the_table_tracks_changes() {
    let mut table = Positions::default();
    assert_eq!(table.take_changes(), None);
    table.insert(position("/x/0.log", 1, 0));
    assert_eq!(table.take_changes().unwrap().len(), 1);
    assert_eq!(table.take_changes(), None);
    let key = FileKey { dev: 2049, ino: 1 };
    table.set_offset(key, 0);
    assert_eq!(table.take_changes(), None, "no change, no write");
    table.set_offset(key, 50);
    assert_eq!(table.take_changes().unwrap()[0].offset, 50);
    table.set_path(key, Path::new("/x/renamed.log"));
    assert_eq!(
        table.take_changes().unwrap()[0].path,
        PathBuf::from("/x/renamed.log")
    );
    table.set_offset(FileKey { dev: 1, ino: 1 }, 9);
    assert_eq!(table.take_changes(), None, "unknown files are ignored");
    table.remove(&key);
    assert_eq!(table.take_changes(), Some(vec![]));
    assert!(table.is_empty());
}
