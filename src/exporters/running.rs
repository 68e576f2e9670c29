//! An exporter started: for each signal it carries, an [`Outbox`] with its
//! senders running. Which signals and which senders is the one place that
//! matches on the exporter's type.

use std::path::Path;
use std::sync::Arc;
use tokio::time::Instant;

use super::outbox::{Outbox, Site};
use super::sink::LocalSink;
use super::{ExporterConfig, RetryConfig, loki, otlp, pyroscope, remote_write};
use crate::config::ComponentId;
use crate::delivery::disk::OpenError;
use crate::net::http_client::ClientError;
use crate::signal::{PerSignal, SignalData, SignalFamily};
use crate::telemetry::Telemetry;

/// An exporter's outboxes, one per signal it carries.
pub struct Outboxes;

impl SignalFamily for Outboxes {
    type Of<T> = Option<Outbox<T>>;
}

/// An exporter with its queues and senders running.
pub struct RunningExporter {
    pub id: ComponentId,
    pub config: ExporterConfig,
    outboxes: PerSignal<Outboxes>,
}

impl RunningExporter {
    /// Builds the exporter's client, opens its queues and starts its senders.
    pub fn start(
        id: &ComponentId,
        config: &ExporterConfig,
        data_dir: &Path,
        telemetry: &Arc<Telemetry>,
    ) -> Result<Self, ExporterStartError> {
        let site = Site {
            queue: config.queue(),
            data_dir,
            telemetry,
        };
        let mut outboxes = PerSignal::<Outboxes>::default();
        match config {
            ExporterConfig::Otlp(c) => {
                let sender = otlp::OtlpSender::new(c)?;
                outboxes.traces = Some(Outbox::start(id, &site, sender, &c.http.retry)?);
            }
            ExporterConfig::Debug(c) => {
                outboxes = local(id, &site, LocalSink::Print(c.verbosity))?;
            }
            ExporterConfig::Blackhole(_) => {
                outboxes = local(id, &site, LocalSink::Discard)?;
            }
            ExporterConfig::RemoteWrite(c) => {
                let exporter = remote_write::RemoteWrite::new(c)?;
                outboxes.metrics =
                    Some(Outbox::start_with(id, &site, |q, d| exporter.spawn(q, d))?);
            }
            ExporterConfig::Loki(c) => {
                let exporter = loki::Loki::new(c)?;
                outboxes.logs = Some(Outbox::start_with(id, &site, |q, d| exporter.spawn(q, d))?);
            }
            ExporterConfig::Pyroscope(c) => {
                let exporter = pyroscope::Pyroscope::new(c)?;
                outboxes.profiles =
                    Some(Outbox::start_with(id, &site, |q, d| exporter.spawn(q, d))?);
            }
        }
        Ok(Self {
            id: id.clone(),
            config: config.clone(),
            outboxes,
        })
    }

    /// Its outbox for signal `T`, if it carries `T`.
    pub fn outbox<T: SignalData>(&self) -> Option<&Outbox<T>> {
        T::pick(&self.outboxes).as_ref()
    }

    /// Closes the queues, lets the senders finish until `deadline`, then stops
    /// them and counts what was left as dropped for `shutdown`.
    pub async fn shutdown(self, deadline: Instant) {
        async fn shut<T: SignalData>(outbox: Option<Outbox<T>>, deadline: Instant) {
            if let Some(outbox) = outbox {
                outbox.shutdown(deadline).await;
            }
        }
        let PerSignal {
            traces,
            metrics,
            logs,
            profiles,
        } = self.outboxes;
        tokio::join!(
            shut(traces, deadline),
            shut(metrics, deadline),
            shut(logs, deadline),
            shut(profiles, deadline),
        );
    }
}

/// An outbox for every signal, each sending to `sink`.
fn local(
    id: &ComponentId,
    site: &Site<'_>,
    sink: LocalSink,
) -> Result<PerSignal<Outboxes>, OpenError> {
    let retry = RetryConfig::default();
    Ok(PerSignal {
        traces: Some(Outbox::start(id, site, sink, &retry)?),
        metrics: Some(Outbox::start(id, site, sink, &retry)?),
        logs: Some(Outbox::start(id, site, sink, &retry)?),
        profiles: Some(Outbox::start(id, site, sink, &retry)?),
    })
}

/// Why an exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExporterStartError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Queue(#[from] OpenError),
}
