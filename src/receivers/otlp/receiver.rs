//! The OTLP receiver at work: what its gRPC and HTTP routes share on the way
//! to the pipelines (limits, counters, refusals), and its start.

use super::config::OtlpReceiverConfig;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::config::ComponentId;
use crate::delivery::{MemoryLimiter, PipelineInputs, Ticket};
use crate::net::server::{Protocol, Servers};
use crate::otlp::scan;
use crate::receivers::intake::{Converted, Intake};
pub(super) use crate::receivers::intake::{Origin, RETRY_AFTER, retry_after_secs};
pub use crate::receivers::intake::{Partial, Rejection};
use crate::receivers::{Inputs, RunningReceiver};
use crate::signal::{Signal, SignalData, Traces};
use crate::telemetry::Telemetry;

/// What the gRPC and HTTP servers of one OTLP receiver share: the intake
/// and the receiver's config.
pub(super) struct Shared {
    pub(super) intake: Intake,
    pub(super) config: OtlpReceiverConfig,
}

impl std::ops::Deref for Shared {
    type Target = Intake;

    fn deref(&self) -> &Intake {
        &self.intake
    }
}

impl Shared {
    /// Takes a protobuf-encoded traces request (already size-checked and decompressed).
    pub(super) async fn accept_traces_protobuf(
        &self,
        body: Bytes,
        ticket: Ticket,
        origin: Origin,
    ) -> Result<Option<Partial>, Rejection> {
        let inputs = self.pipelines(&self.inputs.traces, Signal::Traces)?;
        let infos = self.decode(Signal::Traces, || {
            scan::trace_request(&body).map_err(|e| format!("invalid protobuf: {e}"))
        })?;
        let (traces, invalid) = Traces::from_scanned(&body, infos);
        let bytes = if invalid == 0 {
            body.len()
        } else {
            traces.encoded_len()
        };
        self.accept_traces(inputs, traces, bytes, invalid as u64, ticket, origin)
            .await
    }

    /// Takes an OTLP/JSON traces request.
    pub(super) async fn accept_traces_json(
        &self,
        body: Bytes,
        ticket: Ticket,
        origin: Origin,
    ) -> Result<Option<Partial>, Rejection> {
        let inputs = self.pipelines(&self.inputs.traces, Signal::Traces)?;
        let request = self.decode(Signal::Traces, || crate::otlp::json::decode_traces(&body))?;
        let mut resource_spans = request.resource_spans;
        let invalid = drop_invalid_spans(&mut resource_spans);
        let traces = Traces::new(resource_spans);
        let bytes = traces.encoded_len();
        self.accept_traces(inputs, traces, bytes, invalid, ticket, origin)
            .await
    }

    /// Takes a protobuf-encoded metrics request.
    pub(super) async fn accept_metrics_protobuf(
        &self,
        body: Bytes,
        ticket: Ticket,
        origin: Origin,
    ) -> Result<Option<Partial>, Rejection> {
        use prost::Message;
        let inputs = self.pipelines(&self.inputs.metrics, Signal::Metrics)?;
        let request = self.decode(Signal::Metrics, || {
            ExportMetricsServiceRequest::decode(body).map_err(|e| format!("invalid protobuf: {e}"))
        })?;
        self.accept_metrics(inputs, request, ticket, origin).await
    }

    /// Takes an OTLP/JSON metrics request.
    pub(super) async fn accept_metrics_json(
        &self,
        body: Bytes,
        ticket: Ticket,
        origin: Origin,
    ) -> Result<Option<Partial>, Rejection> {
        let inputs = self.pipelines(&self.inputs.metrics, Signal::Metrics)?;
        let request = self.decode(Signal::Metrics, || crate::otlp::json::decode_metrics(&body))?;
        self.accept_metrics(inputs, request, ticket, origin).await
    }

    /// Converts to Prometheus series (Prometheus' own OTLP rules) and hands
    /// them on; data points that cannot be converted are reported back.
    async fn accept_metrics(
        &self,
        inputs: &PipelineInputs<crate::signal::Metrics>,
        request: ExportMetricsServiceRequest,
        ticket: Ticket,
        origin: Origin,
    ) -> Result<Option<Partial>, Rejection> {
        let converted = super::metrics::convert(request);
        let refused = Converted {
            points: converted.rejected_points,
            reasons: &converted.rejections,
            message: converted.error_message,
        };
        self.hand_on(inputs, converted.metrics, refused, ticket, origin)
            .await
    }

    /// Takes a protobuf-encoded logs request.
    pub(super) async fn accept_logs_protobuf(
        &self,
        body: Bytes,
        ticket: Ticket,
        origin: Origin,
    ) -> Result<Option<Partial>, Rejection> {
        use prost::Message;
        let inputs = self.pipelines(&self.inputs.logs, Signal::Logs)?;
        let request = self.decode(Signal::Logs, || {
            ExportLogsServiceRequest::decode(body).map_err(|e| format!("invalid protobuf: {e}"))
        })?;
        self.accept_logs(inputs, request, ticket, origin).await
    }

    /// Takes an OTLP/JSON logs request.
    pub(super) async fn accept_logs_json(
        &self,
        body: Bytes,
        ticket: Ticket,
        origin: Origin,
    ) -> Result<Option<Partial>, Rejection> {
        let inputs = self.pipelines(&self.inputs.logs, Signal::Logs)?;
        let request = self.decode(Signal::Logs, || crate::otlp::json::decode_logs(&body))?;
        self.accept_logs(inputs, request, ticket, origin).await
    }

    /// Converts to Loki streams (Loki's own OTLP rules) and hands them on;
    /// records that cannot be converted are reported back.
    async fn accept_logs(
        &self,
        inputs: &PipelineInputs<crate::signal::Logs>,
        request: ExportLogsServiceRequest,
        ticket: Ticket,
        origin: Origin,
    ) -> Result<Option<Partial>, Rejection> {
        let converted = super::logs::convert(request, &self.config.logs);
        let refused = Converted {
            points: converted.rejected_records,
            reasons: &converted.rejections,
            message: converted.error_message,
        };
        self.hand_on(inputs, converted.logs, refused, ticket, origin)
            .await
    }
}

/// Removes spans whose ids the OTLP spec calls invalid (wrong length or all
/// zero); returns how many. A backend would refuse the whole request for them.
pub(super) fn drop_invalid_spans(resource_spans: &mut [ResourceSpans]) -> u64 {
    fn valid(id: &[u8], len: usize) -> bool {
        id.len() == len && id.iter().any(|&b| b != 0)
    }
    let mut invalid = 0;
    for rs in resource_spans {
        for ss in &mut rs.scope_spans {
            let before = ss.spans.len();
            ss.spans
                .retain(|s| valid(&s.trace_id, 16) && valid(&s.span_id, 8));
            invalid += (before - ss.spans.len()) as u64;
        }
    }
    invalid
}

pub async fn start(
    id: &ComponentId,
    config: &OtlpReceiverConfig,
    inputs: Inputs,
    limiter: Arc<MemoryLimiter>,
    telemetry: &Arc<Telemetry>,
    servers: &Servers,
) -> std::io::Result<RunningReceiver> {
    let shared = Arc::new(Shared {
        intake: Intake::new(id, config.server.body, inputs, limiter, telemetry),
        config: config.clone(),
    });
    let mut listening = Vec::new();
    let listeners = [
        ("grpc", Protocol::Grpc, config.grpc),
        ("http", Protocol::Http, config.http),
    ];
    for (name, protocol, addr) in listeners {
        let Some(addr) = addr else { continue };
        let routes = match protocol {
            Protocol::Grpc => super::grpc::routes(shared.clone()),
            Protocol::Http => super::http::routes(shared.clone()),
        };
        let attached = servers
            .attach(
                addr,
                protocol,
                config.server.limits,
                &id.to_string(),
                routes,
            )
            .await;
        match attached {
            Ok(attached) => listening.push((name, attached)),
            Err(e) => {
                for (_, attached) in listening {
                    attached.detach(std::time::Duration::ZERO).await;
                }
                return Err(e);
            }
        }
    }
    for (protocol, attached) in &listening {
        tracing::info!(receiver = %id, protocol, addr = %attached.local_addr(), "OTLP receiver listening");
    }
    Ok(RunningReceiver::new(id.clone(), CancellationToken::new(), Vec::new()).listening(listening))
}
