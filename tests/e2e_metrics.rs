//! Metrics end to end against real peers: node-exporter scraped by ferro and
//! written to a real Prometheus over remote-write, then read back through
//! Prometheus' HTTP API.

mod common;

use common::prom::{PageServer, node_exporter, page_samples, prometheus, query, series};
use common::{Ferro, WAIT, eventually, http_get};
use std::collections::BTreeSet;
use std::time::Duration;

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn scrape_config(job: &str, target: std::net::SocketAddr, extra: &str) -> String {
    format!(
        r#"
        [[receivers.prometheus.in.scrape_configs]]
        job_name = "{job}"
        scrape_interval = "1s"
        scrape_timeout = "900ms"
        static_configs = [{{ targets = ["{target}"] }}]
        {extra}
        "#
    )
}

fn ferro_to(prometheus: std::net::SocketAddr, scrape: &str, exporter_extra: &str) -> Ferro {
    Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        {scrape}
        [processors.batch.b]
        timeout = "100ms"
        [exporters.remote_write.prom]
        endpoint = "http://{prometheus}/api/v1/write"
        batch_send_deadline = "100ms"
        retry = {{ initial_interval = "100ms", max_interval = "500ms" }}
        {exporter_extra}
        [pipelines.metrics]
        receivers = ["prometheus.in"]
        processors = ["batch.b"]
        exporters = ["remote_write.prom"]
        "#
    ))
}

/// The label sets of a page as Prometheus would store them for `job`/`instance`.
fn page_series(page: &str, job: &str, instance: &str) -> BTreeSet<Vec<(String, String)>> {
    page_samples(page)
        .into_iter()
        .map(|(mut pairs, _)| {
            pairs.push(("job".into(), job.into()));
            pairs.push(("instance".into(), instance.into()));
            pairs.sort();
            pairs
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_exporter_series_arrive_in_prometheus_and_go_stale() {
    let Some(mut node) = node_exporter() else {
        return;
    };
    let Some(prom) = prometheus() else { return };
    let ferro = ferro_to(prom.addr, &scrape_config("node", node.addr, ""), "");
    let instance = node.addr.to_string();

    eventually(
        common::told(|| {
            format!(
                "up{{job=\"node\"}} = 1 in Prometheus; ferro logs:\n{}",
                ferro.logs()
            )
        }),
        WAIT,
        || {
            query(prom.addr, "up{job=\"node\"}")
                .first()
                .is_some_and(|(_, v)| *v == 1.0)
        },
    );
    let scrapes_written = || {
        query(prom.addr, "count_over_time(up{job=\"node\"}[10m])")
            .first()
            .map_or(0.0, |(_, v)| *v)
    };
    let written_before = scrapes_written();
    let before = page_series(&http_get(node.addr, "/metrics").1, "node", &instance);
    // Two more scrapes so that every series of that page has been written.
    eventually("two more scrapes written to Prometheus", WAIT, || {
        scrapes_written() >= written_before + 2.0
    });
    let after = page_series(&http_get(node.addr, "/metrics").1, "node", &instance);
    let stable: BTreeSet<_> = before.intersection(&after).cloned().collect();
    assert!(
        stable.len() > 100,
        "node-exporter exposes hundreds of series"
    );
    let stored: BTreeSet<_> = series(prom.addr, "{job=\"node\"}").into_iter().collect();
    let missing: Vec<_> = stable.difference(&stored).take(5).collect();
    assert!(
        missing.is_empty(),
        "every series node-exporter exposed is in Prometheus; missing e.g. {missing:?}"
    );
    for synthetic in [
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        assert_eq!(
            query(prom.addr, &format!("{synthetic}{{job=\"node\"}}")).len(),
            1,
            "{synthetic} is written"
        );
    }
    let build_info = query(prom.addr, "node_exporter_build_info{job=\"node\"}");
    assert_eq!(build_info[0].1, 1.0, "values arrive as exposed");
    let scraped = query(prom.addr, "scrape_samples_scraped{job=\"node\"}")[0].1;
    assert!(
        (scraped - after.len() as f64).abs() <= after.len() as f64 * 0.05,
        "{scraped} samples per scrape vs {} on the page",
        after.len()
    );
    assert_eq!(
        ferro.metric("ferro_dropped_items_total", &["remote_write.prom"]),
        0.0
    );

    // The target goes away: up turns 0 and its series end (staleness markers).
    node.kill();
    eventually("up = 0 once node-exporter is gone", WAIT, || {
        query(prom.addr, "up{job=\"node\"}")
            .first()
            .is_some_and(|(_, v)| *v == 0.0)
    });
    eventually("the series is stale in Prometheus", WAIT, || {
        query(prom.addr, "node_exporter_build_info{job=\"node\"}").is_empty()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_pages_fail_the_scrape_not_ferro() {
    let target = PageServer::start(TEXT, "ok_metric 1\n").await;
    let many = PageServer::start(
        TEXT,
        &(0..10)
            .map(|i| format!("many{{i=\"{i}\"}} 1\n"))
            .collect::<String>(),
    )
    .await;
    let Some(prom) = prometheus() else { return };
    let scrapes = scrape_config("bad", target.addr, "body_size_limit = \"64KiB\"")
        + &scrape_config("limited", many.addr, "sample_limit = 5");
    let ferro = ferro_to(prom.addr, &scrapes, "");
    // Over sample_limit: the whole scrape fails and none of it is written.
    eventually("up{job=\"limited\"} = 0 in Prometheus", WAIT, || {
        query(prom.addr, "up{job=\"limited\"}")
            .first()
            .is_some_and(|(_, v)| *v == 0.0)
    });
    assert!(
        query(prom.addr, "many").is_empty(),
        "a scrape over sample_limit writes nothing"
    );
    eventually("ok_metric{job=\"bad\"} in Prometheus", WAIT, || {
        query(prom.addr, "ok_metric{job=\"bad\"}").len() == 1
    });

    for (content_type, body, reason) in [
        (TEXT, b"metric_without_value\n".to_vec(), "parse_error"),
        (
            "text/html",
            b"<html><body>login</body></html>".to_vec(),
            "parse_error",
        ),
        (TEXT, vec![0xff, 0x00, 0x13, 0x37, 0xfe], "parse_error"),
        (
            TEXT,
            "big_metric 1\n".repeat(10_000).into_bytes(),
            "body_too_large",
        ),
    ] {
        target.set(content_type, body);
        let reason = format!("reason=\"{reason}\"");
        let failed_before = ferro.metric("ferro_receiver_rejected_requests_total", &[&reason]);
        eventually(
            format!("a bad page fails its scrape and is counted with its reason ({reason})"),
            WAIT,
            || ferro.metric("ferro_receiver_rejected_requests_total", &[&reason]) > failed_before,
        );
        eventually("up{job=\"bad\"} = 0 in Prometheus", WAIT, || {
            query(prom.addr, "up{job=\"bad\"}")
                .first()
                .is_some_and(|(_, v)| *v == 0.0)
        });
    }
    target.set(TEXT, "ok_metric 2\n");
    eventually("ok_metric{job=\"bad\"} = 2 in Prometheus", WAIT, || {
        query(prom.addr, "ok_metric{job=\"bad\"}")
            .first()
            .is_some_and(|(_, v)| *v == 2.0)
    });
    eventually("up{job=\"bad\"} = 1 in Prometheus", WAIT, || {
        query(prom.addr, "up{job=\"bad\"}")
            .first()
            .is_some_and(|(_, v)| *v == 1.0)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_endpoint_down_then_back_loses_nothing_and_keeps_order() {
    // Up from the start, but unreachable until the endpoint listens.
    let Some(prom) = prometheus() else { return };
    let target = PageServer::start(TEXT, "").await;
    // Held, not listened on: the endpoint is down (connections refused)
    // until Prometheus is reached through it.
    let endpoint = common::reserved_port();
    let port = endpoint.local_addr().unwrap().port();
    let ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        {scrape}
        [exporters.remote_write.prom]
        endpoint = "http://127.0.0.1:{port}/api/v1/write"
        batch_send_deadline = "100ms"
        retry = {{ initial_interval = "100ms", max_interval = "300ms" }}
        [pipelines.metrics]
        receivers = ["prometheus.in"]
        exporters = ["remote_write.prom"]
        "#,
        scrape = scrape_config("counting", target.addr, "")
    ));
    // A counter that goes up by one each time it is served, for six
    // seconds of scrapes with no remote-write endpoint at all.
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    for _ in 0..60 {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        target.set(
            TEXT,
            format!("# TYPE served_total counter\nserved_total {n}\n"),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ferro.wait_metric(
        "ferro_exporter_retries_total",
        &["remote_write.prom"],
        |n| n > 0.0,
    );
    eventually("four scrapes while the endpoint is down", WAIT, || {
        target.scrapes.load(std::sync::atomic::Ordering::Relaxed) >= 4
    });
    let scrapes_while_down = target.scrapes.load(std::sync::atomic::Ordering::Relaxed);

    // Prometheus comes up behind that port and receives the backlog, in order.
    let listener = endpoint.listen(1024).unwrap();
    let backend = prom.addr;
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(backend).await?;
                tokio::io::copy_bidirectional(&mut client, &mut server).await
            });
        }
    });
    eventually(
        common::told(|| {
            format!(
                "every scrape made while the endpoint was down to arrive; ferro logs:\n{}",
                ferro.logs()
            )
        }),
        WAIT,
        || {
            query(prom.addr, "count_over_time(up{job=\"counting\"}[10m])")
                .first()
                .is_some_and(|(_, v)| *v >= scrapes_while_down as f64)
        },
    );
    let out_of_order = ferro.metric("ferro_exporter_send_failed_items_total", &["out_of_order"]);
    let dropped = ferro.metric("ferro_dropped_items_total", &["remote_write.prom"]);
    assert_eq!(out_of_order, 0.0, "samples arrive in order");
    assert_eq!(dropped, 0.0, "nothing dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_otlp_metrics_arrive_in_prometheus_by_its_own_translation_rules() {
    let Some(python) = common::python() else {
        return;
    };
    let Some(prom) = prometheus() else { return };
    let ferro = Ferro::start(&format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "127.0.0.1:0"
        http = "127.0.0.1:0"
        [exporters.remote_write.prom]
        endpoint = "http://{}/api/v1/write"
        batch_send_deadline = "100ms"
        [pipelines.metrics]
        receivers = ["otlp.in"]
        exporters = ["remote_write.prom"]
        "#,
        prom.addr
    ));
    for (protocol, endpoint, service) in [
        (
            "grpc",
            format!("http://{}", ferro.grpc.unwrap()),
            "checkout",
        ),
        (
            "http-protobuf",
            format!("http://{}", ferro.http.unwrap()),
            "cart",
        ),
    ] {
        let output = std::process::Command::new(&python)
            .arg(common::python_script("send_metrics.py"))
            .args([
                "--protocol",
                protocol,
                "--endpoint",
                &endpoint,
                "--service",
                service,
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            ferro.logs()
        );
        let job = format!("shop/{service}");
        let value = |promql: String| -> Option<f64> {
            let mut result = None;
            eventually(format!("{promql} in Prometheus"), WAIT, || {
                result = query(prom.addr, &promql).first().map(|(_, v)| *v);
                result.is_some()
            });
            result
        };
        let sel = format!("job=\"{job}\",instance=\"pod-1\"");
        assert_eq!(
            value(format!(
                "http_server_requests_total{{{sel},http_response_status_code=\"200\"}}"
            )),
            Some(7.0),
            "{protocol}: counter with _total; ferro:\n{}",
            ferro.logs()
        );
        assert_eq!(
            value(format!(
                "http_server_requests_total{{{sel},http_response_status_code=\"500\"}}"
            )),
            Some(2.0)
        );
        assert_eq!(
            value(format!("http_server_active_requests{{{sel}}}")),
            Some(3.0),
            "non-monotonic sum → gauge"
        );
        assert_eq!(
            value(format!(
                "http_server_duration_seconds_count{{{sel},http_route=\"/cart\"}}"
            )),
            Some(5.0)
        );
        let sum = value(format!("http_server_duration_seconds_sum{{{sel}}}")).unwrap();
        assert!((sum - 3.443).abs() < 1e-9);
        assert_eq!(
            value(format!(
                "http_server_duration_seconds_bucket{{{sel},le=\"+Inf\"}}"
            )),
            Some(5.0)
        );
        assert_eq!(
            value(format!("room_temperature_celsius{{{sel},room=\"lab\"}}")),
            Some(21.5)
        );
        assert_eq!(
            value(format!("target_info{{{sel},k8s_node_name=\"node-a\"}}")),
            Some(1.0),
            "resource attributes → target_info"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_2_sends_symbols_and_inline_metadata() {
    let target = PageServer::start(
        TEXT,
        "# HELP jobs_done_total Jobs finished.\n# TYPE jobs_done_total counter\njobs_done_total{queue=\"a\"} 4\njobs_done_total{queue=\"b\"} 9\n",
    )
    .await;
    let server = common::prom::Rw2Server::start().await;
    let ferro = ferro_to(
        server.addr,
        &scrape_config("rw2", target.addr, ""),
        "protocol_version = \"2.0\"",
    );
    let arrived = || {
        server
            .received
            .lock()
            .unwrap()
            .series
            .iter()
            .filter(|s| {
                s.labels
                    .contains(&("__name__".into(), "jobs_done_total".into()))
            })
            .count()
            >= 2
    };
    eventually(
        common::told(|| {
            format!(
                "two series of jobs_done_total; ferro logs:\n{}",
                ferro.logs()
            )
        }),
        WAIT,
        arrived,
    );
    let received = server.received.lock().unwrap();
    assert_eq!(received.rejected, 0);
    let common::prom::Rw2Series {
        labels,
        samples,
        kind,
        help,
    } = received
        .series
        .iter()
        .find(|s| s.labels.contains(&("queue".into(), "b".into())))
        .unwrap();
    assert!(labels.contains(&("job".into(), "rw2".into())));
    assert!(labels.contains(&("instance".into(), target.addr.to_string())));
    assert_eq!(samples[0].1, 9.0);
    assert_eq!(*kind, 1, "counter metadata inline");
    assert_eq!(help, "Jobs finished.");
    drop(received);
    assert_eq!(
        ferro.metric("ferro_dropped_items_total", &["remote_write.prom"]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_broken_halfway_writes_nothing() {
    let good: String = (0..20_000)
        .map(|i| format!("half_page{{i=\"{i}\"}} 1\n"))
        .collect();
    let target = PageServer::start(TEXT, &format!("{good}broken{{\n")).await;
    let Some(prom) = prometheus() else { return };
    let ferro = ferro_to(prom.addr, &scrape_config("half", target.addr, ""), "");
    eventually(
        common::told(|| format!("two parse errors counted; ferro logs:\n{}", ferro.logs())),
        WAIT,
        || {
            ferro.metric(
                "ferro_receiver_rejected_requests_total",
                &["reason=\"parse_error\""],
            ) >= 2.0
        },
    );
    eventually("up{job=\"half\"} = 0 in Prometheus", WAIT, || {
        query(prom.addr, "up{job=\"half\"}")
            .first()
            .is_some_and(|(_, v)| *v == 0.0)
    });
    assert!(
        query(prom.addr, "count(half_page)").is_empty(),
        "none of the page before the error is written"
    );
}

/// A reload, then a shutdown: neither writes staleness markers for a
/// target that goes on, so its series go on through the reload without a
/// break (Prometheus does the same); a job the reload removes, and a target
/// the reload removes from a job it keeps, have their series ended with
/// markers, as Prometheus does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_or_a_shutdown_does_not_end_the_series() {
    let target = PageServer::start(TEXT, "queue_depth{queue=\"a\"} 3\n").await;
    let other = PageServer::start(TEXT, "old_depth{queue=\"b\"} 5\n").await;
    let dropped = PageServer::start(TEXT, "dropped_depth{queue=\"c\"} 7\n").await;
    let server = common::prom::Rw2Server::start().await;
    let removed = scrape_config("removed", other.addr, "");
    let one_target = format!("targets = [\"{}\"]", target.addr);
    let two_targets = format!("targets = [\"{}\", \"{}\"]", target.addr, dropped.addr);
    let scrape = format!(
        "{}{removed}",
        scrape_config("reload", target.addr, "").replace(&one_target, &two_targets)
    );
    let mut ferro = ferro_to(server.addr, &scrape, "protocol_version = \"2.0\"");
    let samples = |name: &str| -> Vec<f64> {
        server
            .received
            .lock()
            .unwrap()
            .series
            .iter()
            .filter(|s| s.labels.contains(&("__name__".into(), name.into())))
            .flat_map(|s| s.samples.iter().map(|&(_, v)| v))
            .collect()
    };
    eventually(
        common::told(|| format!("samples of every job; ferro logs:\n{}", ferro.logs())),
        WAIT,
        || {
            samples("queue_depth").len() >= 2
                && !samples("old_depth").is_empty()
                && !samples("dropped_depth").is_empty()
        },
    );
    // Another config: the first job the same less one target, the second
    // gone.
    let config = std::fs::read_to_string(&ferro.config_path).unwrap();
    std::fs::write(
        &ferro.config_path,
        config
            .replace("timeout = \"100ms\"", "timeout = \"150ms\"")
            .replace(&removed, "")
            .replace(&two_targets, &one_target),
    )
    .unwrap();
    ferro.signal("HUP");
    ferro.wait_for_logs("reload done", 1, WAIT);
    let before = samples("queue_depth").len();
    eventually(
        common::told(|| {
            format!(
                "two more samples after the reload; ferro logs:\n{}",
                ferro.logs()
            )
        }),
        WAIT,
        || samples("queue_depth").len() >= before + 2,
    );
    ferro.signal("TERM");
    assert!(ferro.wait_exit(Duration::from_secs(20)).success());
    let values = samples("queue_depth");
    assert!(
        values.iter().all(|v| *v == 3.0),
        "a staleness marker (NaN) was written: {values:?}"
    );
    let values = samples("old_depth");
    assert!(
        values.last().is_some_and(|v| v.is_nan())
            && values[..values.len() - 1].iter().all(|v| *v == 5.0),
        "the removed job's series end with a marker: {values:?}"
    );
    let values = samples("dropped_depth");
    assert!(
        values.last().is_some_and(|v| v.is_nan())
            && values[..values.len() - 1].iter().all(|v| *v == 7.0),
        "the removed target's series end with a marker: {values:?}"
    );
}
