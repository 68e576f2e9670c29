use super::*;

#[test]
fn scrape_interval_labels_follow_prometheus_notation() {
    assert_eq!(format_duration(std::time::Duration::from_secs(15)), "15s");
    assert_eq!(format_duration(std::time::Duration::from_secs(90)), "1m30s");
    assert_eq!(
        format_duration(std::time::Duration::from_millis(1500)),
        "1s500ms"
    );
}

#[test]
fn file_sd_reads_json_and_yaml_and_keeps_targets_on_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("a.json");
    let yaml = dir.path().join("b.yml");
    std::fs::write(
        &json,
        r#"[{"targets": ["h1:9100"], "labels": {"team": "a"}}]"#,
    )
    .unwrap();
    std::fs::write(&yaml, "- targets: ['h2:9100']\n  labels:\n    team: b\n").unwrap();
    let mut sd = FileSd::default();
    let pattern = format!("{}/*", dir.path().display());
    assert!(sd.refresh(std::slice::from_ref(&pattern)));
    let mut found: Vec<_> = sd.groups().flat_map(|g| g.targets.clone()).collect();
    found.sort();
    assert_eq!(found, vec!["h1:9100", "h2:9100"]);
    assert!(
        !sd.refresh(std::slice::from_ref(&pattern)),
        "nothing changed"
    );
    // A half-written file keeps its previous groups.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&json, "[{\"targets\": [").unwrap();
    let filetime = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&json)
        .unwrap()
        .set_modified(filetime)
        .unwrap();
    sd.refresh(std::slice::from_ref(&pattern));
    assert_eq!(sd.groups().count(), 2);
    std::fs::remove_file(&yaml).unwrap();
    assert!(sd.refresh(std::slice::from_ref(&pattern)));
    assert_eq!(sd.groups().count(), 1);
}
