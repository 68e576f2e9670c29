//! Throughput of the Prometheus text and OpenMetrics parser, in samples per
//! second: a synthetic node-exporter-like page of 100,000 lines, a
//! cAdvisor-shaped page of 50,000 series (`pages/cadvisor.rs`), and the
//! real pages under `tests/fixtures/prom/`.
//!
//! `cargo bench --bench prom_parse`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferro::prom::parse::{Entry, Format, Parser};
use std::fmt::Write;
use std::hint::black_box;
use std::time::Duration;

#[path = "pages/cadvisor.rs"]
mod cadvisor;

const NODE_EXPORTER: &[u8] = include_bytes!("../tests/fixtures/prom/node_exporter.txt");
const PROMETHEUS: &[u8] = include_bytes!("../tests/fixtures/prom/prometheus.txt");
const PYTHON_CLIENT_OM: &[u8] =
    include_bytes!("../tests/fixtures/prom/python_client_openmetrics.txt");

/// A page shaped like node exporter's on a large machine: per-CPU and
/// per-device counters with one to three labels, histograms, bare gauges,
/// and a HELP and TYPE line per family. `lines` lines in all.
fn synthetic_page(lines: usize, format: Format) -> Vec<u8> {
    let om = format == Format::OpenMetrics;
    let modes = [
        "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
    ];
    let buckets = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "+Inf",
    ];
    let mut page = String::new();
    let mut written = 0;
    let mut family = 0;
    while written < lines {
        let name = format!("node_family_{family}");
        let _ = writeln!(page, "# HELP {name} A family of the synthetic page.");
        match family % 4 {
            0 => {
                let _ = writeln!(page, "# TYPE {name} counter");
                for cpu in 0..64 {
                    for mode in modes {
                        let value = 1_000_000.0 / f64::from(cpu + 1) + 0.37;
                        let _ = writeln!(
                            page,
                            "{name}_total{{cpu=\"{cpu}\",mode=\"{mode}\"}} {value}"
                        );
                    }
                }
                written += 2 + 64 * modes.len();
            }
            1 => {
                let _ = writeln!(page, "# TYPE {name} gauge");
                for device in 0..32 {
                    let _ = writeln!(
                        page,
                        "{name}{{device=\"/dev/nvme{device}n1\",fstype=\"ext4\",mountpoint=\"/var/lib/{device}\"}} {}",
                        5.36870912e+11 + f64::from(device)
                    );
                }
                written += 2 + 32;
            }
            2 => {
                let _ = writeln!(page, "# TYPE {name} histogram");
                for handler in ["/metrics", "/api/v1/query", "/-/ready"] {
                    for (count, le) in buckets.iter().enumerate() {
                        let _ = write!(
                            page,
                            "{name}_bucket{{handler=\"{handler}\",le=\"{le}\"}} {}",
                            count * 17
                        );
                        if om && count == 3 {
                            page.push_str(" # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 0.043 1700000000.123");
                        }
                        page.push('\n');
                    }
                    let _ = writeln!(page, "{name}_sum{{handler=\"{handler}\"}} 3.1415e-02");
                    let _ = writeln!(page, "{name}_count{{handler=\"{handler}\"}} 153");
                }
                written += 2 + 3 * (buckets.len() + 2);
            }
            _ => {
                let _ = writeln!(page, "# TYPE {name} gauge");
                let _ = writeln!(page, "{name} 1.6e+09");
                written += 3;
            }
        }
        family += 1;
    }
    if om {
        page.push_str("# EOF\n");
    }
    page.into_bytes()
}

/// Reads every entry, as a scrape would; returns the samples seen.
fn parse_all(body: &[u8], format: Format) -> usize {
    let mut parser = Parser::new(body, format);
    let mut samples = 0;
    let mut sum = 0.0;
    while let Some(entry) = parser.next() {
        if let Entry::Sample(sample) = entry.expect("the page is valid") {
            samples += 1;
            sum += sample.value + sample.labels.len() as f64;
        }
    }
    black_box(sum);
    samples
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("prom parse");
    group.measurement_time(Duration::from_secs(5));
    let synthetic = synthetic_page(100_000, Format::Text004);
    let synthetic_om = synthetic_page(100_000, Format::OpenMetrics);
    let (cadvisor, _) = cadvisor::page(50_000, 1_700_000_000_000);
    let pages: [(&str, &[u8], Format); 6] = [
        ("synthetic 100k lines, 0.0.4", &synthetic, Format::Text004),
        (
            "synthetic 100k lines, OpenMetrics",
            &synthetic_om,
            Format::OpenMetrics,
        ),
        (
            "cAdvisor-shaped 50k series, 0.0.4",
            cadvisor.as_bytes(),
            Format::Text004,
        ),
        (
            "node_exporter fixture, 0.0.4",
            NODE_EXPORTER,
            Format::Text004,
        ),
        ("prometheus fixture, 0.0.4", PROMETHEUS, Format::Text004),
        (
            "python client fixture, OpenMetrics",
            PYTHON_CLIENT_OM,
            Format::OpenMetrics,
        ),
    ];
    for (name, body, format) in pages {
        let samples = parse_all(body, format);
        group.throughput(Throughput::Elements(samples as u64));
        group.bench_function(name, |b| b.iter(|| parse_all(black_box(body), format)));
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
