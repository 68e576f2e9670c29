//! The pod log receiver end to end: the real ferro binary tails files in a
//! temp dir shaped like `/var/log/pods`; what it delivers is read from the
//! debug exporter's output (every entry, with its stream labels) or counted
//! with the blackhole exporter and ferro's `/metrics`.

mod common;

use common::{Ferro, eventually};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::WAIT;

struct Dirs {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pods");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&root).unwrap();
    Dirs {
        root,
        data,
        _tmp: tmp,
    }
}

/// `<root>/<ns>_<pod>_<uid>/<container>/0.log`, directories made.
fn pod_log(root: &Path, namespace: &str, pod: &str, container: &str) -> PathBuf {
    let dir = root
        .join(format!("{namespace}_{pod}_uid-{pod}"))
        .join(container);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("0.log")
}

fn config(d: &Dirs, exporter: &str, extra: &str) -> String {
    format!(
        r#"
        data_dir = "{data}"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.pod_logs.node]
        include = ["{root}/*/*/*.log"]
        rescan_interval = "100ms"
        {extra}
        {exporter}
        [pipelines.logs]
        receivers = ["pod_logs.node"]
        exporters = ["{exporter_id}"]
        "#,
        data = d.data.display(),
        root = d.root.display(),
        exporter_id = if exporter == "debug" {
            "debug.out"
        } else {
            "blackhole.out"
        },
        exporter = match exporter {
            // One sender, so that batches are printed in the order they came.
            "debug" => {
                "[exporters.debug.out]\nverbosity = \"detailed\"\nqueue = { num_consumers = 1 }"
            }
            _ => "[exporters.blackhole.out]",
        },
    )
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn cri(stream: &str, tag: &str, text: &str) -> String {
    format!("2024-01-01T00:00:00.123456789Z {stream} {tag} {text}\n")
}

fn cri_lines(prefix: &str, range: std::ops::Range<usize>) -> String {
    range
        .map(|i| cri("stdout", "F", &format!("{prefix}{i}")))
        .collect()
}

/// Entries from the debug exporter's output: (stream labels, line).
fn delivered(ferro: &Ferro) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut labels = String::new();
    for line in ferro.stdout() {
        // An entry's structured metadata is printed on its own, deeper line.
        if line.starts_with("      metadata: ") {
            continue;
        }
        if let Some(entry) = line.strip_prefix("    ") {
            let text = entry.split_once(' ').map_or("", |(_, text)| text);
            out.push((labels.clone(), text.to_string()));
        } else if let Some(l) = line.strip_prefix("  ") {
            labels = l.to_string();
        }
    }
    out
}

fn acknowledged(ferro: &Ferro) -> f64 {
    ferro.metric(
        "ferro_pod_logs_acknowledged_entries_total",
        &["component=\"pod_logs.node\""],
    )
}

/// Waits until `n` entries are acknowledged and the positions file says
/// every file under the pods root was acknowledged to its end, so that no
/// more can come; then checks that there were no more than `n`.
fn wait_acknowledged(ferro: &Ferro, d: &Dirs, n: usize) {
    let what = common::told(|| {
        format!(
            "{n} acknowledged entries (have {}), every file acknowledged to its end",
            acknowledged(ferro)
        )
    });
    eventually(what, WAIT, || {
        acknowledged(ferro) >= n as f64 && acknowledged_to_the_end(d)
    });
    assert_eq!(acknowledged(ferro), n as f64, "more than expected");
}

/// Whether the positions file has every `*.log` file under the pods root at
/// an offset equal to its length: all of it read and acknowledged.
fn acknowledged_to_the_end(d: &Dirs) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(text) = std::fs::read(d.data.join("pod_logs/node.positions.json")) else {
        return false;
    };
    let saved: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let files = saved["files"].as_array().unwrap();
    let logs = std::fs::read_dir(&d.root)
        .unwrap()
        .flat_map(|pod| std::fs::read_dir(pod.unwrap().path()).unwrap())
        .flat_map(|container| std::fs::read_dir(container.unwrap().path()).unwrap())
        .map(|file| file.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"));
    logs.into_iter().all(|path| {
        let meta = std::fs::metadata(&path).unwrap();
        files
            .iter()
            .any(|f| f["inode"] == meta.ino() && f["offset"] == meta.len())
    })
}

fn positions(d: &Dirs) -> serde_json::Value {
    let text = std::fs::read(d.data.join("pod_logs/node.positions.json")).unwrap();
    serde_json::from_slice(&text).unwrap()
}

#[test]
fn cri_and_docker_lines_arrive_once_in_order_with_partials_merged() {
    let d = dirs();
    let web = pod_log(&d.root, "shop", "web-7d9f", "nginx");
    let db = pod_log(&d.root, "shop", "db-0", "postgres");
    let ferro = Ferro::start(&config(&d, "debug", "start_at = \"beginning\""));
    for i in 0..2000 {
        // Every tenth line comes in three pieces, and stderr interleaves.
        let text = if i % 10 == 0 {
            format!(
                "{}{}{}",
                cri("stdout", "P", &format!("web{i} ")),
                cri("stderr", "F", &format!("err{i}")),
                cri("stdout", "P", "middle ")
            ) + &cri("stdout", "F", "end")
        } else {
            cri("stdout", "F", &format!("web{i}"))
        };
        append(&web, &text);
        let docker = if i % 10 == 0 {
            format!(
                "{{\"log\":\"db{i} \",\"stream\":\"stdout\",\"time\":\"2024-01-01T00:00:00Z\"}}\n\
                 {{\"log\":\"tail\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-01T00:00:01Z\"}}\n"
            )
        } else {
            format!(
                "{{\"log\":\"db{i}\\n\",\"stream\":\"stderr\",\"time\":\"2024-01-01T00:00:00Z\"}}\n"
            )
        };
        append(&db, &docker);
    }
    wait_acknowledged(&ferro, &d, 2000 + 200 + 2000);
    let got = delivered(&ferro);
    let mut by_stream: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (labels, line) in got {
        by_stream.entry(labels).or_default().push(line);
    }
    let web_out = r#"{container="nginx", namespace="shop", pod="web-7d9f", pod_uid="uid-web-7d9f", stream="stdout"}"#;
    let web_err = r#"{container="nginx", namespace="shop", pod="web-7d9f", pod_uid="uid-web-7d9f", stream="stderr"}"#;
    let db_out = r#"{container="postgres", namespace="shop", pod="db-0", pod_uid="uid-db-0", stream="stdout"}"#;
    let db_err = r#"{container="postgres", namespace="shop", pod="db-0", pod_uid="uid-db-0", stream="stderr"}"#;
    let want_web: Vec<String> = (0..2000)
        .map(|i| {
            if i % 10 == 0 {
                format!("web{i} middle end")
            } else {
                format!("web{i}")
            }
        })
        .collect();
    assert_eq!(by_stream[web_out], want_web);
    let want_err: Vec<String> = (0..2000).step_by(10).map(|i| format!("err{i}")).collect();
    assert_eq!(by_stream[web_err], want_err);
    let want_db_out: Vec<String> = (0..2000)
        .step_by(10)
        .map(|i| format!("db{i} tail"))
        .collect();
    assert_eq!(by_stream[db_out], want_db_out);
    let want_db_err: Vec<String> = (0..2000)
        .filter(|i| i % 10 != 0)
        .map(|i| format!("db{i}"))
        .collect();
    assert_eq!(by_stream[db_err], want_db_err);
    assert_eq!(by_stream.len(), 4, "{:?}", by_stream.keys());
}

#[test]
fn sigterm_then_restart_resends_nothing_that_was_acknowledged() {
    let d = dirs();
    let path = pod_log(&d.root, "default", "app", "main");
    append(&path, &cri_lines("old", 0..1000));
    let cfg = config(&d, "blackhole", "start_at = \"end\"");
    let mut ferro = Ferro::start(&cfg);
    // start_at = "end": what was there at the first start is skipped (and
    // the count below finds none of it).
    ferro.wait_metric("ferro_pod_logs_files_open", &[], |n| n == 1.0);
    assert_eq!(acknowledged(&ferro), 0.0);
    append(&path, &cri_lines("a", 0..5000));
    wait_acknowledged(&ferro, &d, 5000);
    ferro.signal("TERM");
    assert!(ferro.wait_exit(WAIT).success());
    let saved = positions(&d);
    assert_eq!(
        saved["files"][0]["offset"],
        std::fs::metadata(&path).unwrap().len()
    );

    append(&path, &cri_lines("b", 0..3000));
    // A file that appeared while ferro was stopped is read from its start.
    let other = pod_log(&d.root, "default", "other", "main");
    append(&other, &cri_lines("c", 0..100));
    let ferro = Ferro::start(&cfg);
    wait_acknowledged(&ferro, &d, 3100);
}

#[test]
fn kill_9_then_restart_loses_nothing() {
    let d = dirs();
    let path = pod_log(&d.root, "default", "app", "main");
    let cfg = config(&d, "debug", "start_at = \"beginning\"");
    let total = 30_000;
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            for chunk in 0..60 {
                append(&path, &cri_lines("k", chunk * 500..(chunk + 1) * 500));
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };
    let mut first = Ferro::start(&cfg);
    eventually("some lines delivered", WAIT, || {
        delivered(&first).len() > 3000
    });
    first.signal("KILL");
    first.wait_exit(WAIT);
    let before = delivered(&first);
    let second = Ferro::start(&cfg);
    writer.join().unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let distinct = std::cell::Cell::new(0);
    let what = common::told(|| {
        format!(
            "every line, at least once (have {} of {total}; the second ferro read {} lines, has {} files open, acknowledged {})",
            distinct.get(),
            second.metric("ferro_pod_logs_lines_read_total", &[]),
            second.metric("ferro_pod_logs_files_open", &[]),
            acknowledged(&second),
        )
    });
    eventually(what, WAIT, || {
        seen.clear();
        for (_, line) in before.iter().chain(&delivered(&second)) {
            *seen.entry(line.clone()).or_default() += 1;
        }
        distinct.set(seen.len());
        seen.len() == total
    });
    let twice = seen.values().filter(|&&n| n > 1).count();
    assert!(seen.values().all(|&n| n <= 2));
    // At most the unacknowledged tail is sent again: the batches in flight
    // and what was acknowledged since the last positions write (1s).
    eprintln!("{twice} lines sent twice after kill -9");
    assert!(twice < total, "{twice} duplicates");
}

#[test]
fn rotation_under_load_rename_and_copytruncate_lose_nothing() {
    let d = dirs();
    let renamed = pod_log(&d.root, "default", "renamed", "main");
    let truncated = pod_log(&d.root, "default", "truncated", "main");
    let ferro = Ferro::start(&config(&d, "debug", "start_at = \"beginning\""));

    // kubelet: rename then create, 20 times, while writing.
    let mut file = std::fs::File::create(&renamed).unwrap();
    for generation in 0..20 {
        for i in 0..1000 {
            file.write_all(cri("stdout", "F", &format!("r{generation}-{i}")).as_bytes())
                .unwrap();
            if i == 900 {
                std::fs::rename(
                    &renamed,
                    renamed.with_extension(format!("log.{generation}")),
                )
                .unwrap();
            }
        }
        file = std::fs::File::create(&renamed).unwrap();
    }

    // logrotate copytruncate, 10 times: the writer waits for the tailer to
    // catch up before each rotation (what is written between copy and
    // truncate is lost by copytruncate itself) and writes on at once after.
    let mut written = 20_000;
    for round in 0..10 {
        append(&truncated, &cri_lines(&format!("t{round}-"), 0..1500));
        written += 1500;
        let what = common::told(|| {
            format!(
                "the tailer to catch up in round {round}: {} of {written} acknowledged, {} lines read, {} files open",
                acknowledged(&ferro),
                ferro.metric("ferro_pod_logs_lines_read_total", &[]),
                ferro.metric("ferro_pod_logs_files_open", &[]),
            )
        });
        eventually(what, WAIT, || acknowledged(&ferro) >= written as f64);
        std::fs::copy(&truncated, truncated.with_extension(format!("log.{round}"))).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&truncated)
            .unwrap()
            .set_len(0)
            .unwrap();
    }
    wait_acknowledged(&ferro, &d, written);

    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut order: HashMap<String, Vec<usize>> = HashMap::new();
    for (_, line) in delivered(&ferro) {
        *seen.entry(line.clone()).or_default() += 1;
        let (generation, i) = line.split_once('-').unwrap();
        order
            .entry(generation.to_string())
            .or_default()
            .push(i.parse().unwrap());
    }
    assert_eq!(seen.len(), written);
    assert!(seen.values().all(|&n| n == 1), "a line came twice");
    for (generation, numbers) in order {
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{generation} out of order"
        );
    }
    assert_eq!(
        ferro.metric("ferro_pod_logs_rotations_total", &["reason=\"renamed\""]),
        20.0
    );
    eventually("10 truncations counted", WAIT, || {
        ferro.metric("ferro_pod_logs_rotations_total", &["reason=\"truncated\""]) == 10.0
    });
}

#[test]
fn garbage_and_a_10mib_line_are_passed_on_and_memory_stays_flat() {
    let d = dirs();
    let path = pod_log(&d.root, "default", "noisy", "main");
    let mut bytes = cri("stdout", "F", "first").into_bytes();
    // Binary garbage, newlines included.
    let mut rng = fastrand::Rng::with_seed(1);
    bytes.extend((0..200_000).map(|_| rng.u8(..)));
    bytes.push(b'\n');
    // A CRI line cut short, a wrong stream, invalid UTF-8.
    bytes.extend_from_slice(b"2024-01-01T00:00:00Z stdout\n2024-01-01T00:00:00Z stdin F x\n");
    bytes.extend_from_slice(b"2024-01-01T00:00:00Z stdout F \xff\xfe\n");
    bytes.extend_from_slice(cri("stdout", "F", "garbage done").as_bytes());
    std::fs::write(&path, &bytes).unwrap();

    let ferro = Ferro::start(&config(&d, "debug", "start_at = \"beginning\""));
    let arrived = |line: &str| delivered(&ferro).iter().any(|(_, l)| l == line);
    eventually("the line after the garbage", WAIT, || {
        arrived("garbage done")
    });
    let got = delivered(&ferro);
    assert_eq!(got[0].1, "first");
    let metric = |name: &str| ferro.metric(name, &["component=\"pod_logs.node\""]);
    assert!(metric("ferro_pod_logs_lines_malformed_total") >= 2.0);
    assert!(metric("ferro_pod_logs_lines_invalid_utf8_total") >= 2.0);

    // A 10 MiB line is cut to max_line_size without ever being held whole.
    let before = ferro.rss_bytes();
    append(&path, &cri("stdout", "F", &"x".repeat(10 << 20)));
    append(&path, &cri("stdout", "F", "last"));
    eventually("the line after the long one", WAIT, || arrived("last"));
    let got = delivered(&ferro);
    let long = got.iter().find(|(_, l)| l.starts_with("xxxx")).unwrap();
    assert_eq!(long.1.len(), 256 * 1024, "cut to max_line_size");
    assert_eq!(metric("ferro_pod_logs_lines_truncated_total"), 1.0);
    let after = ferro.rss_bytes();
    eprintln!(
        "RSS before the 10 MiB line {} KiB, after {} KiB",
        before / 1024,
        after / 1024
    );
    assert!(
        after < before + (6 << 20),
        "RSS grew from {before} to {after}"
    );
}

#[test]
fn the_positions_file_is_always_whole_while_it_is_rewritten() {
    let d = dirs();
    let path = pod_log(&d.root, "default", "app", "main");
    let ferro = Ferro::start(&config(&d, "blackhole", "start_at = \"beginning\""));
    let file = d.data.join("pod_logs/node.positions.json");
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut reads = 0;
    let mut i = 0;
    while Instant::now() < deadline {
        append(&path, &cri_lines("p", i..i + 200));
        i += 200;
        if let Ok(text) = std::fs::read(&file) {
            let v: serde_json::Value = serde_json::from_slice(&text)
                .unwrap_or_else(|e| panic!("a torn positions file: {e}"));
            assert_eq!(v["version"], 1);
            reads += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(reads > 100);
    wait_acknowledged(&ferro, &d, i);
    let leftovers: Vec<_> = std::fs::read_dir(d.data.join("pod_logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(leftovers, vec!["node.positions.json"]);
}

/// The whole node logs path: CRI files → the tailer → the Loki exporter →
/// the Loki stand-in (which enforces Loki's label and ordering rules), with
/// Loki answering 503 for a while: nothing is lost, order per stream holds,
/// and the tailer's positions only move once Loki took the lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cri_files_reach_loki_in_order_through_an_outage() {
    let d = dirs();
    let loki = common::loki::LokiServer::start().await;
    loki.set_mode(common::loki::Mode::Unavailable);
    let file = pod_log(&d.root, "shop", "web-7d9f", "nginx");
    let ferro = Ferro::start(&format!(
        r#"
        data_dir = "{data}"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.pod_logs.node]
        include = ["{root}/*/*/*.log"]
        rescan_interval = "100ms"
        start_at = "beginning"
        [exporters.loki.out]
        endpoint = "{url}"
        batch_wait = "100ms"
        retry = {{ initial_interval = "100ms", max_interval = "500ms" }}
        [pipelines.logs]
        receivers = ["pod_logs.node"]
        exporters = ["loki.out"]
        "#,
        data = d.data.display(),
        root = d.root.display(),
        url = loki.url(),
    ));
    let mut text = String::new();
    for i in 0..3000 {
        if i % 7 == 0 {
            // A partial line merged with the next piece.
            text.push_str(&cri("stdout", "P", &format!("line{i} part-a ")));
            text.push_str(&cri("stdout", "F", "part-b"));
        } else {
            text.push_str(&cri("stdout", "F", &format!("line{i}")));
        }
    }
    append(&file, &text);
    // Every entry was read and taken in, and Loki refused a push of them.
    ferro.wait_metric(
        "ferro_receiver_accepted_items_total",
        &["component=\"pod_logs.node\""],
        |n| n >= 3000.0,
    );
    ferro.wait_metric("ferro_exporter_retries_total", &["loki.out"], |n| n >= 1.0);
    assert_eq!(loki.with(|r| r.entry_count()), 0, "Loki is down");
    assert_eq!(
        acknowledged(&ferro),
        0.0,
        "nothing acknowledged while Loki refuses"
    );
    loki.set_mode(common::loki::Mode::Accept);
    assert_eq!(
        loki.wait_for_entries(3000, WAIT).await,
        3000,
        "{}",
        ferro.logs()
    );
    let (keys, lines): (Vec<String>, Vec<String>) = loki.with(|r| {
        let keys = r.streams.keys().map(|k| format!("{k:?}")).collect();
        let lines = r
            .streams
            .values()
            .flatten()
            .map(|e| e.line.clone())
            .collect();
        (keys, lines)
    });
    assert_eq!(keys.len(), 1, "one stream: {keys:?}");
    for label in [
        "namespace",
        "shop",
        "pod",
        "web-7d9f",
        "container",
        "nginx",
        "stream",
        "stdout",
    ] {
        assert!(keys[0].contains(&format!("{label:?}")), "{keys:?}");
    }
    let want: Vec<String> = (0..3000)
        .map(|i| {
            if i % 7 == 0 {
                format!("line{i} part-a part-b")
            } else {
                format!("line{i}")
            }
        })
        .collect();
    assert_eq!(lines.len(), want.len());
    let first_difference = lines.iter().zip(&want).position(|(a, b)| a != b);
    assert_eq!(
        first_difference, None,
        "every line once, in order, partials merged"
    );
    loki.with(|r| assert!(r.errors.is_empty(), "Loki refused nothing: {:?}", r.errors));
    eventually("positions to follow Loki's acknowledgements", WAIT, || {
        acknowledged(&ferro) == 3000.0
    });
}
