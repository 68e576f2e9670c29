//! Sending OTLP trace requests over gRPC or HTTP and reading their
//! partial-success answers.

use super::config::{Compression, OtlpExporterConfig, Protocol};
use bytes::Bytes;
use http::uri::PathAndQuery;
use http_body_util::Full;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

use crate::delivery::Batch;
use crate::exporters::{ExportError, Sent, Sink};
use crate::net::http_client::ClientError;
use crate::net::http_client::{self, HttpClient, Versions};
use crate::otlp::codec::RawCodec;
use crate::otlp::{self as wire, status};
use crate::signal::Traces;

/// Largest response body read from an OTLP/HTTP server.
pub(super) const MAX_RESPONSE_BYTES: usize = 4 << 20;

pub struct OtlpSender {
    config: OtlpExporterConfig,
    transport: Transport,
}

pub(super) enum Transport {
    Grpc(Channel),
    Http(Box<HttpClient>),
}

impl OtlpSender {
    pub fn new(config: &OtlpExporterConfig) -> Result<Self, ClientError> {
        let transport = match config.protocol {
            Protocol::Grpc => {
                let connector = http_client::connector(&config.http.tls, Versions::Http2Only)?;
                let endpoint = Endpoint::from_shared(config.http.endpoint.to_string())
                    .map_err(|e| ClientError::Endpoint(format!("endpoint: {e}")))?
                    .timeout(config.http.timeout)
                    .connect_timeout(Duration::from_secs(10))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(30))
                    .keep_alive_while_idle(false)
                    .user_agent(concat!("ferro/", env!("CARGO_PKG_VERSION")))
                    .map_err(|e| ClientError::Endpoint(format!("user agent: {e}")))?;
                Transport::Grpc(endpoint.connect_with_connector_lazy(connector))
            }
            Protocol::Http => Transport::Http(Box::new(http_client::client(&config.http.tls)?)),
        };
        Ok(Self {
            config: config.clone(),
            transport,
        })
    }
}

impl Sink<Traces> for OtlpSender {
    async fn send(&self, batch: &Batch<Traces>) -> Result<Sent, ExportError> {
        let body = super::encode::traces_request(&batch.data, batch.bytes);
        let tenant = batch.tenancy.tenant.as_ref();
        let response = match &self.transport {
            Transport::Grpc(channel) => {
                self.grpc(channel, wire::TRACE_EXPORT_PATH, body, tenant)
                    .await?
            }
            Transport::Http(client) => {
                self.http(client, &self.config.traces_url, body, tenant)
                    .await?
            }
        };
        if response.is_empty() {
            return Ok(Sent::default());
        }
        let response = ExportTraceServiceResponse::decode(response).map_err(|e| {
            ExportError::permanent("bad_response", format!("undecodable OTLP response: {e}"))
        })?;
        Ok(match response.partial_success {
            Some(partial) if partial.rejected_spans > 0 => Sent {
                rejected_items: partial.rejected_spans as u64,
                rejected_message: partial.error_message,
            },
            _ => Sent::default(),
        })
    }
}

impl OtlpSender {
    async fn grpc(
        &self,
        channel: &Channel,
        path: &'static str,
        body: Bytes,
        tenant: Option<&http::HeaderValue>,
    ) -> Result<Bytes, ExportError> {
        let mut grpc = tonic::client::Grpc::new(channel.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        grpc = match self.config.compression {
            Compression::Gzip => grpc.send_compressed(CompressionEncoding::Gzip),
            Compression::Zstd => grpc.send_compressed(CompressionEncoding::Zstd),
            Compression::None => grpc,
        };
        grpc.ready().await.map_err(|e| {
            ExportError::retryable("transport", format!("gRPC channel not ready: {e}"))
        })?;
        let mut request = tonic::Request::new(body);
        request.set_timeout(self.config.http.timeout);
        for (name, value) in
            crate::exporters::headers_with_tenant(&self.config.http.headers, tenant)
        {
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes()),
                tonic::metadata::MetadataValue::try_from(value.as_bytes()),
            ) {
                request.metadata_mut().insert(key, value);
            }
        }
        match grpc
            .unary(request, PathAndQuery::from_static(path), RawCodec)
            .await
        {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => Err(grpc_error(&status)),
        }
    }

    async fn http(
        &self,
        client: &HttpClient,
        url: &http::Uri,
        body: Bytes,
        tenant: Option<&http::HeaderValue>,
    ) -> Result<Bytes, ExportError> {
        let body = super::encode::compress(body, self.config.compression)
            .map_err(|e| ExportError::permanent("encode", format!("compressing the body: {e}")))?;
        let mut request = crate::exporters::post_request(
            url.clone(),
            wire::CONTENT_TYPE_PROTOBUF,
            &self.config.http.headers,
            tenant,
            None,
        );
        match self.config.compression {
            Compression::Gzip => request = request.header(http::header::CONTENT_ENCODING, "gzip"),
            Compression::Zstd => request = request.header(http::header::CONTENT_ENCODING, "zstd"),
            Compression::None => {}
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| ExportError::permanent("encode", format!("building the request: {e}")))?;
        let answer =
            crate::exporters::http::send(client, request, self.config.http.timeout).await?;
        let (status, retry_after) = (answer.status, answer.retry_after());
        if status.is_success() {
            return Ok(answer.body);
        }
        let body = answer.body;
        let message = http_error_message(&body);
        let text = format!("POST {url}: HTTP {}: {message}", status.as_u16());
        Err(match status.as_u16() {
            429 => ExportError::retryable("http_429", text).after(retry_after),
            502 => ExportError::retryable("http_502", text).after(retry_after),
            503 => ExportError::retryable("http_503", text).after(retry_after),
            504 => ExportError::retryable("http_504", text).after(retry_after),
            400..=499 => ExportError::permanent("http_4xx", text),
            _ => ExportError::permanent("http_5xx", text),
        })
    }
}

/// The OTLP spec's retryable gRPC codes; RESOURCE_EXHAUSTED only when the
/// server says when to come back.
pub(super) fn grpc_error(status: &tonic::Status) -> ExportError {
    use tonic::Code;
    let retry_after = status::retry_delay(status.details());
    let text = format!("gRPC {:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable => ExportError::retryable("grpc_unavailable", text).after(retry_after),
        Code::ResourceExhausted if retry_after.is_some() => {
            ExportError::retryable("grpc_resource_exhausted", text).after(retry_after)
        }
        Code::Cancelled | Code::Aborted | Code::OutOfRange | Code::DataLoss => {
            ExportError::retryable("grpc_retryable", text).after(retry_after)
        }
        Code::DeadlineExceeded => ExportError::retryable("timeout", text),
        _ => ExportError::permanent("grpc_permanent", text),
    }
}

/// The message of a `google.rpc.Status` body, or the body as text.
pub(super) fn http_error_message(body: &[u8]) -> String {
    if let Ok(status) = ferro_proto::google::rpc::Status::decode(body)
        && !status.message.is_empty()
    {
        return status.message;
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    text.trim().to_string()
}
