//! Receivers: where telemetry enters ferro. Each hands what it accepts to its
//! pipelines through [`Outputs`], and refuses with its protocol's retryable
//! answer when they are full.

pub mod discovery;
pub mod otlp;
pub mod pod_logs;
pub mod pprof;
pub mod prometheus;
pub mod scrape;
pub mod tenancy;

use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::ComponentId;
use crate::config::document::{Document, Value};
use crate::signal::{Logs, Metrics, Profiles, Signal, Traces};
use crate::topology::fanout::PipelineInputs;

/// A validated `[receivers.TYPE.NAME]` section.
#[derive(Clone, Debug, PartialEq)]
pub enum ReceiverConfig {
    Otlp(otlp::OtlpReceiverConfig),
    Prometheus(prometheus::PrometheusConfig),
    PodLogs(pod_logs::PodLogsConfig),
    Pprof(pprof::PprofConfig),
}

impl ReceiverConfig {
    /// Reads a `[receivers.TYPE.NAME]` table; `None` for an unknown type.
    pub fn parse<'a>(
        type_name: &str,
        doc: &mut Document<'a>,
        path: &str,
        value: Value<'a>,
    ) -> Option<Option<Self>> {
        match type_name {
            "prometheus" => Some(
                doc.section::<prometheus::RawPrometheusConfig>(path, value)
                    .map(Self::Prometheus),
            ),
            "otlp" => Some(
                doc.section::<otlp::RawOtlpReceiverConfig>(path, value)
                    .map(Self::Otlp),
            ),
            "pprof" => Some(
                doc.section::<pprof::RawPprofConfig>(path, value)
                    .map(Self::Pprof),
            ),
            "pod_logs" => Some(
                doc.section::<pod_logs::RawPodLogsConfig>(path, value)
                    .map(Self::PodLogs),
            ),
            _ => None,
        }
    }

    /// Whether the receiver reads the process's pod cache.
    pub fn uses_pod_cache(&self) -> bool {
        match self {
            Self::Prometheus(c) => c.uses_pod_cache(),
            Self::Pprof(c) => c.uses_pod_cache(),
            Self::Otlp(_) | Self::PodLogs(_) => false,
        }
    }

    /// The signals this receiver can feed into pipelines today.
    pub fn signals(&self) -> &'static [Signal] {
        match self {
            Self::Otlp(_) => &[Signal::Traces, Signal::Metrics, Signal::Logs],
            Self::Prometheus(_) => &[Signal::Metrics],
            Self::PodLogs(_) => &[Signal::Logs],
            Self::Pprof(_) => &[Signal::Profiles],
        }
    }
}

/// The pipelines a receiver feeds, per signal; `None` where no pipeline of
/// that signal lists the receiver.
#[derive(Clone, Default)]
pub struct Outputs {
    pub traces: Option<PipelineInputs<Traces>>,
    pub metrics: Option<PipelineInputs<Metrics>>,
    pub logs: Option<PipelineInputs<Logs>>,
    pub profiles: Option<PipelineInputs<Profiles>>,
}

/// A receiver that is listening.
pub struct RunningReceiver {
    pub id: ComponentId,
    /// What it listens on, by name (`grpc`, `http`).
    pub addrs: Vec<(&'static str, SocketAddr)>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    on_reload: Option<ReloadHook>,
}

/// What a receiver does, given its successor's config, before a reload stops
/// it.
pub type ReloadHook = Box<dyn Fn(Option<&ReceiverConfig>) + Send + Sync>;

impl RunningReceiver {
    pub fn new(
        id: ComponentId,
        addrs: Vec<(&'static str, SocketAddr)>,
        stop: CancellationToken,
        tasks: Vec<JoinHandle<()>>,
    ) -> Self {
        Self {
            id,
            addrs,
            stop,
            tasks,
            on_reload: None,
        }
    }

    /// This receiver with what it must do before a reload stops it (see
    /// [`Self::before_reload`]).
    pub fn with_reload_hook(mut self, hook: ReloadHook) -> Self {
        self.on_reload = Some(hook);
        self
    }

    /// Before a reload stops this receiver: tells it what `next` (the same
    /// receiver in the next config, if any) will run, so that a scrape
    /// receiver marks stale the series of the targets the next config
    /// drops, and only those.
    pub fn before_reload(&self, next: Option<&ReceiverConfig>) {
        if let Some(hook) = &self.on_reload {
            hook(next);
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to `grace`.
    pub async fn stop(self, grace: Duration) {
        self.stop.cancel();
        let mut tasks = self.tasks;
        let done = tokio::time::timeout(grace, async {
            for task in &mut tasks {
                let _ = task.await;
            }
        })
        .await;
        if done.is_err() {
            tracing::warn!(receiver = %self.id, "in-flight requests did not finish in time; closing");
            for task in tasks {
                task.abort();
            }
        }
    }
}

/// Serves `app` on `listener` until `stop`, with each peer's address for
/// `ConnectInfo` and no body limit of axum's (handlers cap bodies as they
/// read and decompress them): the bound address and the server's task.
pub fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    server: &'static str,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let bound = listener.local_addr()?;
    let app = app.layer(axum::extract::DefaultBodyLimit::disable());
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
        {
            tracing::error!(error = %e, "{server} server failed");
        }
    });
    Ok((bound, task))
}
