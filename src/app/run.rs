//! Running the process: start, reload on SIGHUP, stop on SIGTERM/SIGINT.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::ready_file;
use super::telemetry_server as server;
use crate::delivery::MemoryLimiter;
use crate::net::server::{Budget, Servers};
use crate::plan::Config;
use crate::telemetry::LogFormat;
use crate::telemetry::{Phase, Telemetry};
use crate::topology::{ProcessResources, Topology};

/// Where the config comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    File(PathBuf),
    Embedded,
}

impl ConfigSource {
    pub fn load(&self) -> Result<Config, crate::config::ConfigErrors> {
        match self {
            Self::File(path) => Config::from_file(path),
            Self::Embedded => Config::embedded(),
        }
    }
}

/// Sets up `tracing`: `RUST_LOG` if set, else the config's level. Text
/// logs are coloured only on a terminal: in a file or a pipe (`ferro run >
/// log`, a container runtime's log) escape codes would be noise.
pub fn init_logging(config_level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(config_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs until SIGTERM or SIGINT; returns the process exit code. With
/// `ready_file`, says there where it listens once it is ready and after
/// each reload (see [`ready_file`]).
pub async fn run(source: ConfigSource, config: Config, ready_file: Option<PathBuf>) -> ExitCode {
    let started = Instant::now();
    let telemetry = Telemetry::new();
    let limiter = MemoryLimiter::new(config.memory_limit.as_usize());
    telemetry.watch_memory(limiter.clone());
    // The receivers' connections share what the descriptor limit leaves
    // once the rest of the process is provided for.
    let fds = crate::net::server::raise_fd_limit();
    let budget = Budget::from_fd_limit(fds);
    tracing::debug!(
        fds,
        receiver_connections = budget.limit(),
        "descriptor limit"
    );
    // One pod cache and one set of servers per process, like telemetry:
    // they survive reloads.
    let resources = ProcessResources::new(Servers::new(budget, telemetry.clone()));

    let (Ok(mut sigterm), Ok(mut sigint), Ok(mut sighup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return ExitCode::FAILURE;
    };

    let mut telemetry_stop = CancellationToken::new();
    let mut telemetry_listen = None;
    // The address bound for `telemetry_listen` (the port, for port 0).
    let mut telemetry_addr: Option<SocketAddr> = None;
    if config.telemetry.enabled {
        match server::serve(
            config.telemetry.listen,
            telemetry.clone(),
            telemetry_stop.clone(),
        )
        .await
        {
            Ok((addr, _)) => {
                tracing::info!(%addr, "self-telemetry listening");
                telemetry_listen = Some(config.telemetry.listen);
                telemetry_addr = Some(addr);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the self-telemetry server");
                return ExitCode::FAILURE;
            }
        }
    }

    let summary = config.summary();
    log_redaction(&config);
    let mut topology =
        match Topology::start(config, &telemetry, &limiter, &resources, Default::default()).await {
            Ok(topology) => topology,
            Err((error, _)) => {
                tracing::error!(%error, "cannot start");
                return ExitCode::FAILURE;
            }
        };
    if let Some(path) = &ready_file
        && let Err(e) = ready_file::write(path, telemetry_addr, &topology)
    {
        tracing::error!(path = %path.display(), error = %e, "cannot write the ready file");
        return ExitCode::FAILURE;
    }
    telemetry.set_phase(Phase::Ready);
    tracing::info!(
        startup_ms = started.elapsed().as_secs_f64() * 1000.0,
        summary,
        "ferro started"
    );

    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                tracing::info!("reload requested: checking the config");
                // Read off the runtime, so that a stop need not wait for a
                // large file to be checked.
                let load = {
                    let source = source.clone();
                    tokio::task::spawn_blocking(move || source.load())
                };
                let loaded = tokio::select! {
                    loaded = load => loaded,
                    _ = sigterm.recv() => break,
                    _ = sigint.recv() => break,
                };
                let next = match loaded {
                    Ok(Ok(next)) => next,
                    Ok(Err(errors)) => {
                        tracing::error!(errors = %errors, "reload refused: the new config is invalid; still running the old one");
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reload refused: reading the config failed; still running the old one");
                        continue;
                    }
                };
                if next == topology.config {
                    tracing::info!("reload: the config did not change");
                    continue;
                }
                tracing::info!(summary = next.summary(), "reloading");
                log_redaction(&next);
                telemetry.set_phase(Phase::Reloading);
                let wanted_listen = next.telemetry.enabled.then_some(next.telemetry.listen);
                let failed;
                (topology, failed) = match topology.reload(next, &telemetry, &limiter, &resources).await {
                    Ok(reloaded) => reloaded,
                    Err(error) => {
                        tracing::error!(%error, "reload failed and the previous config could not start again");
                        return ExitCode::FAILURE;
                    }
                };
                let effective_listen = topology.config.telemetry.enabled.then_some(topology.config.telemetry.listen);
                if wanted_listen == effective_listen && effective_listen != telemetry_listen {
                    telemetry_stop.cancel();
                    telemetry_stop = CancellationToken::new();
                    telemetry_listen = None;
                    if let Some(listen) = effective_listen {
                        match server::serve(listen, telemetry.clone(), telemetry_stop.clone()).await {
                            Ok((addr, _)) => {
                                tracing::info!(%addr, "self-telemetry listening");
                                telemetry_listen = Some(listen);
                                telemetry_addr = Some(addr);
                            }
                            Err(e) => tracing::error!(error = %e, "cannot move the self-telemetry server"),
                        }
                    }
                }
                // Rewritten before the reload is said to be done, so that
                // whoever waits for that reads where ferro listens now.
                if let Some(path) = &ready_file
                    && let Err(e) = ready_file::write(path, telemetry_addr, &topology)
                {
                    tracing::error!(path = %path.display(), error = %e, "cannot rewrite the ready file");
                }
                match failed {
                    None => tracing::info!("reload done"),
                    Some(error) => tracing::error!(%error, "reload failed; the previous config runs again"),
                }
                telemetry.set_phase(Phase::Ready);
            }
        }
    }

    tracing::info!(
        timeout_ms = topology.config.shutdown_timeout.get().as_millis() as u64,
        "shutting down: stopping receivers, draining pipelines, flushing exporters (a second signal exits at once)"
    );
    telemetry.set_phase(Phase::Stopping);
    let stopping = Instant::now();
    // Requests in flight finish; new ones and new connections are refused.
    resources.servers.close_all();
    let shutdown = topology.shutdown();
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut shutdown => {}
        _ = sigterm.recv() => exit_now(),
        _ = sigint.recv() => exit_now(),
    }
    // The leader-only work has stopped with the topology: the Lease is
    // released, and another agent takes over at its next try.
    resources.leader.stop().await;
    telemetry_stop.cancel();
    tracing::info!(
        shutdown_ms = stopping.elapsed().as_millis() as u64,
        "ferro stopped"
    );
    ExitCode::SUCCESS
}

/// A second SIGTERM or SIGINT while stopping: what is still queued is lost,
/// on the operator's word.
fn exit_now() -> ! {
    tracing::warn!("second signal while stopping: exiting now; what is still queued is lost");
    std::process::exit(1)
}

/// Says which pipelines run without redaction, loudly.
fn log_redaction(config: &crate::plan::Config) {
    for pipeline in config.pipelines.iter().filter(|p| !p.redacted) {
        tracing::warn!(
            pipeline = %pipeline.name,
            "redaction is off for this pipeline (redact = false): secrets in its data leave the node"
        );
    }
}
