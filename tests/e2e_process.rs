//! The `ferro run` process as an operator or a supervisor sees it: the
//! ready file that says where it listens (`--ready-file`), and log output
//! without terminal colours when it goes to a file or a pipe.

mod common;

use common::{Ferro, WAIT, eventually, http_get};
use std::process::{Command, Stdio};

fn otlp_config(grpc: &str) -> String {
    format!(
        r#"
        [telemetry]
        listen = "127.0.0.1:0"
        [receivers.otlp.in]
        grpc = "{grpc}"
        http = "127.0.0.1:0"
        [exporters.blackhole.null]
        [pipelines.traces]
        receivers = ["otlp.in"]
        exporters = ["blackhole.null"]
        "#
    )
}

/// The ready file names the ports ferro bound for port 0, and is rewritten
/// by a reload: a listener whose address the new config names again keeps
/// its port, one left on port 0 gets a new one.
#[test]
fn the_ready_file_names_the_bound_ports_and_follows_reloads() {
    let ferro = Ferro::start(&otlp_config("127.0.0.1:0"));
    let ready = ferro.ready();
    assert_eq!(ready.telemetry, Some(ferro.telemetry));
    assert_eq!(http_get(ferro.telemetry, "/-/ready").0, 200);
    let grpc = ready.receiver("otlp.in", "grpc");
    let http = ready.receiver("otlp.in", "http");
    for addr in [grpc, http] {
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        std::net::TcpStream::connect(addr).expect("ferro listens where it says");
    }

    ferro.reload(&otlp_config(&grpc.to_string()), 1);
    let reloaded = ferro.ready();
    assert_eq!(reloaded.receiver("otlp.in", "grpc"), grpc, "kept");
    let moved = reloaded.receiver("otlp.in", "http");
    assert_ne!(moved, http, "port 0 again: a new port");
    std::net::TcpStream::connect(moved).expect("ferro listens where it says");
    assert_eq!(reloaded.telemetry, Some(ferro.telemetry));
}

/// Text logs carry no ANSI colour codes when stderr is a pipe (`ferro run >
/// file`, a container runtime's log): colour is for terminals only.
#[test]
fn text_logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ferro.toml");
    let ready = dir.path().join("ready.json");
    std::fs::write(&config, otlp_config("127.0.0.1:0")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferro"))
        .args(["run", "--log-format", "text", "-c"])
        .arg(&config)
        .arg("--ready-file")
        .arg(&ready)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("ferro to write its ready file", WAIT, || {
        assert!(child.try_wait().unwrap().is_none(), "ferro exited early");
        ready.exists()
    });
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // What ferro logs from start to stop, levels and fields included.
    for said in ["INFO", "ferro started", "ferro stopped"] {
        assert!(stderr.contains(said), "{said} in {stderr}");
    }
    for (name, text) in [("stderr", &output.stderr), ("stdout", &output.stdout)] {
        assert!(
            !text.windows(2).any(|w| w == b"\x1b["),
            "an escape sequence on {name}: {:?}",
            String::from_utf8_lossy(text)
        );
    }
}
