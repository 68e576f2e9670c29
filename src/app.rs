//! The `ferro run` process: logging, the self-telemetry server, the topology,
//! and the signals that stop (SIGTERM, SIGINT) or reload (SIGHUP) it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, LogFormat};
use crate::delivery::MemoryLimiter;
use crate::telemetry::{Telemetry, server};
use crate::topology::Lasting;
use crate::topology::Topology;

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

/// Sets up `tracing`: `RUST_LOG` if set, else the config's level.
pub fn init_logging(config_level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(config_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs until SIGTERM or SIGINT; returns the process exit code.
pub async fn run(source: ConfigSource, config: Config) -> ExitCode {
    let started = Instant::now();
    let telemetry = Telemetry::new();
    let limiter = MemoryLimiter::new(config.memory_limit.as_usize());
    // One pod cache and one set of listening sockets per process, like
    // telemetry: they survive reloads.
    let lasting = Lasting::default();

    let mut telemetry_stop = CancellationToken::new();
    let mut telemetry_listen = None;
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
            }
            Err(e) => {
                tracing::error!(listen = %config.telemetry.listen, error = %e, "cannot start the self-telemetry server");
                return ExitCode::FAILURE;
            }
        }
    }

    let summary = config.summary();
    log_redaction(&config);
    let mut topology =
        match Topology::start(config, &telemetry, &limiter, &lasting, Default::default()).await {
            Ok(topology) => topology,
            Err((error, _)) => {
                tracing::error!(%error, "cannot start");
                return ExitCode::FAILURE;
            }
        };
    telemetry.set_ready(true);
    tracing::info!(
        startup_ms = started.elapsed().as_secs_f64() * 1000.0,
        summary,
        "ferro started"
    );

    let (Ok(mut sigterm), Ok(mut sigint), Ok(mut sighup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    let memory_gauge = {
        let telemetry = telemetry.clone();
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                telemetry.memory_in_flight.set(limiter.used() as i64);
            }
        })
    };

    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                let next = match source.load() {
                    Ok(next) => next,
                    Err(errors) => {
                        tracing::error!(errors = %errors, "reload refused: the new config is invalid; still running the old one");
                        continue;
                    }
                };
                if next == topology.config {
                    tracing::info!("reload: the config did not change");
                    continue;
                }
                tracing::info!(summary = next.summary(), "reloading");
                log_redaction(&next);
                telemetry.set_ready(false);
                let wanted_listen = next.telemetry.enabled.then_some(next.telemetry.listen);
                topology = match topology.reload(next, &telemetry, &limiter, &lasting).await {
                    Ok((topology, None)) => {
                        tracing::info!("reload done");
                        topology
                    }
                    Ok((topology, Some(error))) => {
                        tracing::error!(%error, "reload failed; the previous config runs again");
                        topology
                    }
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
                            }
                            Err(e) => tracing::error!(%listen, error = %e, "cannot move the self-telemetry server"),
                        }
                    }
                }
                telemetry.set_ready(true);
            }
        }
    }

    tracing::info!("shutting down: stopping receivers, draining pipelines, flushing exporters");
    telemetry.set_ready(false);
    let stopping = Instant::now();
    // Once the receivers stop, new connections are refused, not queued.
    lasting.listeners.close_all();
    topology.shutdown().await;
    memory_gauge.abort();
    telemetry_stop.cancel();
    tracing::info!(
        shutdown_ms = stopping.elapsed().as_millis() as u64,
        "ferro stopped"
    );
    ExitCode::SUCCESS
}

/// Says which pipelines run without redaction, loudly.
fn log_redaction(config: &crate::config::Config) {
    for pipeline in config.pipelines.iter().filter(|p| !p.redacted) {
        tracing::warn!(
            pipeline = %pipeline.name,
            "redaction is off for this pipeline (redact = false): secrets in its data leave the node"
        );
    }
}
