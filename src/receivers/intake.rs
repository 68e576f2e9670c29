//! What a push receiver does with a request once it has it decoded, shared
//! by the OTLP receiver and the receivers that convert other formats to OTLP
//! (Zipkin): check that a pipeline takes the signal, read the tenant
//! header, hand the data on under the memory limit and the pipelines'
//! backpressure, count what was accepted, refused and rejected, and say why
//! in terms the answer can carry (retryable refusals, invalid requests,
//! partial success).

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prometheus_client::metrics::counter::Counter;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::ComponentId;
use crate::delivery::{Batch, MemoryLimiter, PipelineInputs, Refusal, Ticket};
use crate::net::body::{BodyError, BodyRules, content_encoding, decode_capped};
use crate::receivers::Inputs;
use crate::receivers::tenancy::{self, InvalidOrgId};
use crate::signal::{Fields, Signal, SignalData, Traces};
use crate::telemetry::{ComponentLabels, Telemetry};

/// How long a refused client is asked to wait.
pub(crate) const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Whole seconds for `Retry-After`, rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// Where a request came from: what processors may key on.
pub(crate) struct Origin {
    /// The client's address, for association with the sending pod.
    pub(crate) peer: Option<IpAddr>,
    /// The `X-Scope-OrgID` it came with, for tenant processors.
    pub(crate) org_id: Option<::http::HeaderValue>,
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

/// How a refusal is answered: the HTTP status, the gRPC code, the
/// message, and how long to wait before a retry (for `Retry-After`).
pub(crate) struct Answer {
    pub(crate) http: http::StatusCode,
    pub(crate) grpc: i32,
    pub(crate) message: String,
    pub(crate) retry: Option<std::time::Duration>,
}

impl Rejection {
    /// How receiver `id` answers this refusal.
    pub(crate) fn answer(self, id: &ComponentId) -> Answer {
        use http::StatusCode;
        let retryable = |http, grpc, message: &str, wait| Answer {
            http,
            grpc,
            message: message.to_string(),
            retry: Some(wait),
        };
        match self {
            Rejection::Refused(Refusal::MemoryLimit) => retryable(
                StatusCode::TOO_MANY_REQUESTS,
                8,
                "ferro is at its memory limit; retry later",
                RETRY_AFTER,
            ),
            Rejection::Refused(Refusal::PipelineFull) => retryable(
                StatusCode::SERVICE_UNAVAILABLE,
                14,
                "the pipeline is full; retry later",
                RETRY_AFTER,
            ),
            Rejection::Refused(Refusal::ShuttingDown) => retryable(
                StatusCode::SERVICE_UNAVAILABLE,
                14,
                "ferro is shutting down or reloading; retry",
                RETRY_AFTER,
            ),
            Rejection::Refused(Refusal::TenantLimit(wait)) => retryable(
                StatusCode::TOO_MANY_REQUESTS,
                8,
                "the tenant is over its rate limit; retry later",
                wait,
            ),
            Rejection::Invalid { reason, message } => {
                let http = match reason {
                    "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
                    "too_slow" => StatusCode::REQUEST_TIMEOUT,
                    "unsupported_media_type" | "unsupported_encoding" => {
                        StatusCode::UNSUPPORTED_MEDIA_TYPE
                    }
                    "unsupported_api" => StatusCode::NOT_FOUND,
                    _ => StatusCode::BAD_REQUEST,
                };
                Answer {
                    http,
                    grpc: 3,
                    message,
                    retry: None,
                }
            }
            Rejection::NoPipeline(signal) => Answer {
                http: StatusCode::NOT_FOUND,
                grpc: 12,
                message: format!("receiver {id} feeds no {signal} pipeline"),
                retry: None,
            },
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
pub(crate) struct Converted<'a> {
    pub(crate) points: u64,
    pub(crate) reasons: &'a [(&'static str, u64)],
    pub(crate) message: String,
}

/// A receiver's intake: its pipelines, limits and counters.
pub(crate) struct Intake {
    pub(crate) id: ComponentId,
    /// How request bodies are read (size, rate).
    pub(crate) body: BodyRules,
    pub(crate) inputs: Inputs,
    pub(crate) limiter: Arc<MemoryLimiter>,
    pub(crate) telemetry: Arc<Telemetry>,
    traces: SignalCounters,
}

struct SignalCounters {
    labels: ComponentLabels,
    accepted: Counter,
    invalid_spans: Counter,
}

impl Intake {
    /// Hands spans to the pipelines: `invalid` of the request's spans were
    /// left out (answered as partial success).
    pub(crate) async fn accept_traces(
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

    /// Hands what a conversion produced to the pipelines; what it could not
    /// convert is counted by reason and reported back as partial success.
    pub(crate) async fn hand_on<T: Fields>(
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
    pub(crate) fn pipelines<'a, T>(
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
    pub(crate) fn decode<R, E: std::fmt::Display>(
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
    pub(crate) fn feeds(&self, signal: Signal) -> bool {
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
    pub(crate) fn org_id(
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
    pub(crate) fn rejected(&self, signal: Signal, rejection: Rejection) -> Rejection {
        let reason = match &rejection {
            Rejection::Invalid { reason, .. } => reason,
            Rejection::NoPipeline(_) => "no_pipeline",
            Rejection::Refused(r) => r.reason(),
        };
        self.count_rejected(signal, reason);
        rejection
    }

    pub(crate) fn count_rejected(&self, signal: Signal, reason: &'static str) {
        let labels = Telemetry::labels("receiver", &self.id, signal);
        Telemetry::reason_counter(&self.telemetry.rejected_requests, &labels, reason).inc();
    }
}

impl Intake {
    /// The intake of receiver `id`, reading bodies by `body`.
    pub(crate) fn new(
        id: &ComponentId,
        body: BodyRules,
        inputs: Inputs,
        limiter: Arc<MemoryLimiter>,
        telemetry: &Arc<Telemetry>,
    ) -> Intake {
        let labels = Telemetry::labels("receiver", id, Signal::Traces);
        Intake {
            id: id.clone(),
            body,
            inputs,
            limiter,
            telemetry: telemetry.clone(),
            traces: SignalCounters {
                accepted: Telemetry::counter(&telemetry.accepted, &labels),
                invalid_spans: Telemetry::reason_counter(
                    &telemetry.dropped,
                    &labels,
                    "invalid_span",
                ),
                labels,
            },
        }
    }

    /// Takes spans converted to OTLP by another format's receiver; the
    /// ticket holds the request's memory.
    pub(crate) async fn accept_resource_spans(
        &self,
        resource_spans: Vec<ResourceSpans>,
        ticket: Ticket,
        origin: Origin,
    ) -> Result<Option<Partial>, Rejection> {
        let inputs = self.pipelines(&self.inputs.traces, Signal::Traces)?;
        let traces = Traces::new(resource_spans);
        let bytes = traces.encoded_len();
        self.accept_traces(inputs, traces, bytes, 0, ticket, origin)
            .await
    }
}

/// A compression a receiver undoes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    Gzip,
    Zstd,
    /// RFC 1950 (what HTTP clients send as `deflate`).
    Zlib,
}

impl Intake {
    /// Reads a request body under the receiver's limits and undoes its
    /// `Content-Encoding` (one of `accepted`, by name; `hint` says which in
    /// the refusal of another), enforcing the size cap on both the
    /// compressed and the decompressed size; the ticket holds the memory of
    /// what is returned.
    pub(crate) async fn read_body(
        &self,
        body: axum::body::Body,
        headers: &http::HeaderMap,
        accepted: &[(&str, Compression)],
        hint: &str,
    ) -> Result<(bytes::Bytes, Ticket), Rejection> {
        let max = self.body.max;
        let invalid = |reason, message| Rejection::Invalid { reason, message };
        let body_error = |e: BodyError, failed: &'static str| match e {
            BodyError::TooLarge => invalid(
                "too_large",
                format!("request body is larger than max_recv_msg_size ({max} bytes)"),
            ),
            BodyError::MemoryLimit => Rejection::Refused(Refusal::MemoryLimit),
            BodyError::TooSlow => invalid("too_slow", "the request body arrived too slowly".into()),
            BodyError::Failed(e) => invalid(failed, format!("reading the body failed: {e}")),
        };
        let (raw, mut ticket) =
            crate::net::body::read_body(body, headers, &self.body, &self.limiter)
                .await
                .map_err(|e| body_error(e, "truncated"))?;
        let encoding = content_encoding(headers);
        if matches!(encoding.as_str(), "" | "identity") {
            return Ok((raw, ticket));
        }
        let Some((_, compression)) = accepted.iter().find(|(name, _)| *name == encoding) else {
            return Err(invalid(
                "unsupported_encoding",
                format!("Content-Encoding {encoding:?} is not supported ({hint})"),
            ));
        };
        let cursor = std::io::Cursor::new(raw);
        let decoder: Box<dyn std::io::Read> = match compression {
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(cursor)),
            Compression::Zlib => Box::new(flate2::read::ZlibDecoder::new(cursor)),
            Compression::Zstd => match zstd::stream::read::Decoder::new(cursor) {
                Ok(decoder) => Box::new(decoder),
                Err(e) => return Err(invalid("bad_compression", format!("zstd: {e}"))),
            },
        };
        let plain = decode_capped(decoder, max, &mut ticket).map_err(|e| match e {
            BodyError::Failed(e) => invalid(
                "bad_compression",
                format!("the body is not valid {encoding}: {e}"),
            ),
            other => body_error(other, "bad_compression"),
        })?;
        // The compressed bytes are gone: the ticket holds what is kept.
        ticket.try_resize(plain.len());
        Ok((plain, ticket))
    }
}
