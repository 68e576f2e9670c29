//! The OTLP receiver at work: what its gRPC and HTTP routes share on the way
//! to the pipelines (limits, counters, refusals), and its start.

use super::config::OtlpReceiverConfig;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prometheus_client::metrics::counter::Counter;
use std::net::IpAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::config::ComponentId;
use crate::delivery::{Batch, MemoryLimiter, Ticket};
use crate::delivery::{PipelineInputs, Refusal};
use crate::net::server::{Protocol, Servers};
use crate::otlp::scan;
use crate::receivers::tenancy::{self, InvalidOrgId};
use crate::receivers::{Inputs, RunningReceiver};
use crate::signal::{Fields, Signal, SignalData, Traces};
use crate::telemetry::{ComponentLabels, Telemetry};

/// How long a refused client is asked to wait.
pub(super) const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Whole seconds for `Retry-After`, rounded up, at least 1.
pub(super) fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// Where a request came from: what processors may key on.
pub(super) struct Origin {
    /// The client's address, for association with the sending pod.
    pub(super) peer: Option<IpAddr>,
    /// The `X-Scope-OrgID` it came with, for tenant processors.
    pub(super) org_id: Option<::http::HeaderValue>,
}

/// Why a request was not taken.
#[derive(Debug)]
pub enum Rejection {
    /// The pipeline or memory is full: retryable.
    Refused(Refusal),
    /// The request itself is wrong: not retryable.
    Invalid {
        reason: &'static str,
        message: String,
    },
    /// No pipeline of this signal takes data from this receiver.
    NoPipeline(Signal),
}

impl From<InvalidOrgId> for Rejection {
    fn from(e: InvalidOrgId) -> Self {
        Rejection::Invalid {
            reason: tenancy::INVALID_TENANT,
            message: e.to_string(),
        }
    }
}

/// What an export answer reports as refused: spans, metric data points or
/// log records.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    pub rejected: i64,
    pub message: String,
}

/// What a conversion could not carry over: how many items, by reason, and
/// the message for the client.
pub(super) struct Converted<'a> {
    points: u64,
    reasons: &'a [(&'static str, u64)],
    message: String,
}

/// State shared by the gRPC and HTTP servers of one receiver.
pub(super) struct Shared {
    pub(super) id: ComponentId,
    pub(super) config: OtlpReceiverConfig,
    inputs: Inputs,
    pub(super) limiter: Arc<MemoryLimiter>,
    pub(super) telemetry: Arc<Telemetry>,
    traces: SignalCounters,
}

pub(super) struct SignalCounters {
    labels: ComponentLabels,
    accepted: Counter,
    invalid_spans: Counter,
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

    async fn accept_traces(
        &self,
        inputs: &PipelineInputs<Traces>,
        traces: Traces,
        bytes: usize,
        invalid: u64,
        ticket: Ticket,
        origin: Origin,
    ) -> Result<Option<Partial>, Rejection> {
        let items = traces.item_count() as u64;
        let partial = (invalid > 0).then(|| {
            self.traces.invalid_spans.inc_by(invalid);
            Partial {
                rejected: invalid as i64,
                message: format!(
                    "{invalid} span(s) rejected: trace_id must be 16 bytes and span_id 8 bytes, not all zero"
                ),
            }
        });
        if items == 0 {
            return Ok(partial);
        }
        let mut batch = Batch::with_size(traces, bytes, ticket).with_peer(origin.peer);
        batch.tenancy.org_id = origin.org_id;
        match inputs.admit_and_send(batch).await {
            Ok(()) => {
                self.traces.accepted.inc_by(items);
                Ok(partial)
            }
            Err(refusal) => {
                Telemetry::reason_counter(
                    &self.telemetry.refused,
                    &self.traces.labels,
                    refusal.reason(),
                )
                .inc_by(items);
                Err(Rejection::Refused(refusal))
            }
        }
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

    /// Hands what a conversion produced to the pipelines; what it could not
    /// convert is counted by reason and reported back as partial success.
    async fn hand_on<T: Fields>(
        &self,
        inputs: &PipelineInputs<T>,
        data: T,
        refused: Converted<'_>,
        ticket: Ticket,
        origin: Origin,
    ) -> Result<Option<Partial>, Rejection> {
        let labels = Telemetry::labels("receiver", &self.id, T::SIGNAL);
        for (reason, count) in refused.reasons {
            Telemetry::reason_counter(&self.telemetry.dropped, &labels, reason).inc_by(*count);
        }
        let partial = (refused.points > 0).then_some(Partial {
            rejected: refused.points as i64,
            message: refused.message,
        });
        let items = data.item_count() as u64;
        if items == 0 {
            return Ok(partial);
        }
        let bytes = data.encoded_len();
        let mut batch = Batch::with_size(data, bytes, ticket).with_peer(origin.peer);
        batch.tenancy.org_id = origin.org_id;
        match inputs.admit_and_send(batch).await {
            Ok(()) => {
                Telemetry::counter(&self.telemetry.accepted, &labels).inc_by(items);
                Ok(partial)
            }
            Err(refusal) => {
                Telemetry::reason_counter(&self.telemetry.refused, &labels, refusal.reason())
                    .inc_by(items);
                Err(Rejection::Refused(refusal))
            }
        }
    }

    /// The pipelines of `signal` this receiver feeds, or a counted
    /// refusal when it feeds none.
    fn pipelines<'a, T>(
        &self,
        inputs: &'a Option<PipelineInputs<T>>,
        signal: Signal,
    ) -> Result<&'a PipelineInputs<T>, Rejection> {
        inputs
            .as_ref()
            .ok_or_else(|| self.rejected(signal, Rejection::NoPipeline(signal)))
    }

    /// Decodes a request whose bytes `ticket` already holds; one that does
    /// not decode is counted and refused as malformed (and its memory
    /// released with the ticket).
    fn decode<R, E: std::fmt::Display>(
        &self,
        signal: Signal,
        decode: impl FnOnce() -> Result<R, E>,
    ) -> Result<R, Rejection> {
        decode().map_err(|e| {
            self.rejected(
                signal,
                Rejection::Invalid {
                    reason: "malformed",
                    message: e.to_string(),
                },
            )
        })
    }

    /// Whether this receiver feeds a pipeline of `signal`.
    pub(super) fn feeds(&self, signal: Signal) -> bool {
        match signal {
            Signal::Traces => self.inputs.traces.is_some(),
            Signal::Metrics => self.inputs.metrics.is_some(),
            Signal::Logs => self.inputs.logs.is_some(),
            Signal::Profiles => false,
        }
    }

    /// The tenant a request of `signal` names in `header`, where a tenant
    /// processor of its pipelines reads it (`source = "header"`); without
    /// one the header means nothing here and is not looked at.
    pub(super) fn org_id(
        &self,
        signal: Signal,
        header: Option<&[u8]>,
    ) -> Result<Option<::http::HeaderValue>, Rejection> {
        let reads = match signal {
            Signal::Traces => self
                .inputs
                .traces
                .as_ref()
                .map(PipelineInputs::reads_org_id),
            Signal::Metrics => self
                .inputs
                .metrics
                .as_ref()
                .map(PipelineInputs::reads_org_id),
            Signal::Logs => self.inputs.logs.as_ref().map(PipelineInputs::reads_org_id),
            Signal::Profiles => None,
        };
        if reads != Some(true) {
            return Ok(None);
        }
        tenancy::org_id(header).map_err(|invalid| self.rejected(signal, Rejection::from(invalid)))
    }

    /// Counts a rejected request and passes the rejection on.
    pub(super) fn rejected(&self, signal: Signal, rejection: Rejection) -> Rejection {
        let reason = match &rejection {
            Rejection::Invalid { reason, .. } => reason,
            Rejection::NoPipeline(_) => "no_pipeline",
            Rejection::Refused(r) => r.reason(),
        };
        self.count_rejected(signal, reason);
        rejection
    }

    pub(super) fn count_rejected(&self, signal: Signal, reason: &'static str) {
        let labels = Telemetry::labels("receiver", &self.id, signal);
        Telemetry::reason_counter(&self.telemetry.rejected_requests, &labels, reason).inc();
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

/// Attaches the receiver's routes to the servers on its addresses.
pub async fn start(
    id: &ComponentId,
    config: &OtlpReceiverConfig,
    inputs: Inputs,
    limiter: Arc<MemoryLimiter>,
    telemetry: &Arc<Telemetry>,
    servers: &Servers,
) -> std::io::Result<RunningReceiver> {
    let labels = Telemetry::labels("receiver", id, Signal::Traces);
    let shared = Arc::new(Shared {
        id: id.clone(),
        config: config.clone(),
        inputs,
        limiter,
        telemetry: telemetry.clone(),
        traces: SignalCounters {
            accepted: Telemetry::counter(&telemetry.accepted, &labels),
            invalid_spans: Telemetry::reason_counter(&telemetry.dropped, &labels, "invalid_span"),
            labels,
        },
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
