//! A recording OTLP server standing in for Tempo: gRPC (tonic, the generated
//! TraceService) and HTTP (`POST /v1/traces`, protobuf, gzip/zstd), answering
//! as an OTLP server does. It can be switched to refuse with the retryable
//! answers (gRPC UNAVAILABLE, HTTP 503) or to answer slowly.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::codec::CompressionEncoding;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Accept,
    /// gRPC UNAVAILABLE / HTTP 503 with Retry-After: 1.
    Unavailable,
    /// Answer after this long.
    Slow(Duration),
    /// gRPC INVALID_ARGUMENT / HTTP 400: a permanent refusal.
    BadRequest,
}

#[derive(Default)]
pub struct Recorded {
    pub requests: Vec<ExportTraceServiceRequest>,
    /// `(header name, value)` of every request, for header checks.
    pub headers: Vec<Vec<(String, String)>>,
    pub refused: usize,
}

pub struct Sink {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    state: Arc<SinkState>,
}

struct SinkState {
    recorded: Mutex<Recorded>,
    mode: Mutex<Mode>,
}

impl SinkState {
    async fn handle(
        &self,
        request: ExportTraceServiceRequest,
        headers: Vec<(String, String)>,
    ) -> Result<(), Mode> {
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Unavailable | Mode::BadRequest => {
                self.recorded.lock().unwrap().refused += 1;
                return Err(mode);
            }
            Mode::Slow(delay) => tokio::time::sleep(delay).await,
            Mode::Accept => {}
        }
        let mut recorded = self.recorded.lock().unwrap();
        recorded.requests.push(request);
        recorded.headers.push(headers);
        Ok(())
    }
}

struct Grpc(Arc<SinkState>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request
            .metadata()
            .iter()
            .filter_map(|kv| match kv {
                tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                    Some((k.to_string(), v.to_str().unwrap_or("").to_string()))
                }
                _ => None,
            })
            .collect();
        match self.0.handle(request.into_inner(), headers).await {
            Ok(()) => Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            })),
            Err(Mode::BadRequest) => Err(tonic::Status::invalid_argument("sink refuses this data")),
            Err(_) => Err(tonic::Status::unavailable("sink is down")),
        }
    }
}

async fn http_traces(
    State(state): State<Arc<SinkState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let body = match headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
    {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body.as_ref())
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        Some("zstd") => zstd::decode_all(body.as_ref()).unwrap(),
        _ => body.to_vec(),
    };
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/x-protobuf"
    );
    let request = match ExportTraceServiceRequest::decode(body.as_slice()) {
        Ok(r) => r,
        Err(_) => return (StatusCode::BAD_REQUEST, HeaderMap::new(), Vec::new()),
    };
    let pairs = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let mut out = HeaderMap::new();
    out.insert("content-type", "application/x-protobuf".parse().unwrap());
    match state.handle(request, pairs).await {
        Ok(()) => (
            StatusCode::OK,
            out,
            ExportTraceServiceResponse {
                partial_success: None,
            }
            .encode_to_vec(),
        ),
        Err(Mode::BadRequest) => (
            StatusCode::BAD_REQUEST,
            out,
            b"sink refuses this data".to_vec(),
        ),
        Err(_) => {
            out.insert("retry-after", "1".parse().unwrap());
            (StatusCode::SERVICE_UNAVAILABLE, out, Vec::new())
        }
    }
}

impl Sink {
    /// Starts on ports of its own.
    pub async fn start() -> Sink {
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(grpc).await
    }

    /// Starts with gRPC on `grpc_listener` (a port the test held before:
    /// see `common::reserved_port`) and HTTP on a port of its own.
    pub async fn start_on(grpc_listener: tokio::net::TcpListener) -> Sink {
        let state = Arc::new(SinkState {
            recorded: Mutex::default(),
            mode: Mutex::new(Mode::Accept),
        });
        let grpc = grpc_listener.local_addr().unwrap();
        let service = TraceServiceServer::new(Grpc(state.clone()))
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(64 << 20);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc_listener)),
        );
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = http_listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(http_traces))
            .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(http_listener, app).await.unwrap() });
        Sink { grpc, http, state }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn with<R>(&self, f: impl FnOnce(&Recorded) -> R) -> R {
        f(&self.state.recorded.lock().unwrap())
    }

    /// Every span received, with its resource and scope, in arrival order.
    pub fn spans(&self) -> Vec<FlatSpan> {
        self.with(|r| {
            r.requests
                .iter()
                .flat_map(|req| flatten(&req.resource_spans))
                .collect()
        })
    }

    pub fn span_count(&self) -> usize {
        self.with(|r| {
            r.requests
                .iter()
                .map(|req| flatten(&req.resource_spans).len())
                .sum()
        })
    }

    /// Waits until at least `n` spans arrived (panics after `timeout`);
    /// returns how many have.
    pub async fn wait_for_spans(&self, n: usize, timeout: Duration) -> usize {
        let what = super::told(|| format!("{n} spans at the sink (have {})", self.span_count()));
        super::eventually_async(what, timeout, || self.span_count() >= n).await;
        self.span_count()
    }
}

/// A span with the resource and scope it came with: what must arrive unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct FlatSpan {
    pub resource: Option<opentelemetry_proto::tonic::resource::v1::Resource>,
    pub resource_schema_url: String,
    pub scope: Option<opentelemetry_proto::tonic::common::v1::InstrumentationScope>,
    pub scope_schema_url: String,
    pub span: Span,
}

pub fn flatten(
    resource_spans: &[opentelemetry_proto::tonic::trace::v1::ResourceSpans],
) -> Vec<FlatSpan> {
    let mut out = Vec::new();
    for rs in resource_spans {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                out.push(FlatSpan {
                    resource: rs.resource.clone(),
                    resource_schema_url: rs.schema_url.clone(),
                    scope: ss.scope.clone(),
                    scope_schema_url: ss.schema_url.clone(),
                    span: span.clone(),
                });
            }
        }
    }
    out
}

/// A self-signed certificate for `localhost` and 127.0.0.1, as PEM files in `dir`.
pub struct TestCert {
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl TestCert {
    pub fn new(dir: &std::path::Path) -> TestCert {
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let cert_file = dir.join("cert.pem");
        let key_file = dir.join("key.pem");
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        TestCert {
            cert_file,
            key_file,
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }
}

impl TestCert {
    /// Serves `app` over TLS with this certificate on a port of 127.0.0.1
    /// (ALPN h2 and http/1.1); the address.
    pub async fn serve(&self, app: axum::Router) -> std::net::SocketAddr {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        addr
    }
}

impl Sink {
    /// Starts gRPC and HTTP on one TLS port (ALPN h2 and http/1.1).
    pub async fn start_tls(cert: &TestCert) -> Sink {
        let state = Arc::new(SinkState {
            recorded: Mutex::default(),
            mode: Mutex::new(Mode::Accept),
        });
        let grpc_routes = tonic::service::Routes::new(
            TraceServiceServer::new(Grpc(state.clone()))
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd),
        )
        .into_axum_router();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(http_traces))
            .with_state(state.clone())
            .merge(grpc_routes);
        let addr = cert.serve(app).await;
        Sink {
            grpc: addr,
            http: addr,
            state,
        }
    }
}
