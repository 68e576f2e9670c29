//! A scrape job's client and the GET of one target: the body capped before
//! and after gzip and held under a memory ticket, the failure classified,
//! and the target's health kept in ferro's own metrics.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::Arc;

use crate::delivery::{MemoryLimiter, Ticket};
use crate::net::auth::Credentials;
use crate::net::body::{BodyError, decode_capped};
use crate::net::http_client::{self, HttpClient};
use crate::net::tls::TlsConfig;
use crate::telemetry::{ComponentLabels, TargetLabels, TargetReasonLabels, Telemetry};

/// A scrape job with what its scrapes send with: the client over its TLS
/// settings and the `Authorization` header of its credentials.
pub struct Job<C> {
    pub config: C,
    pub client: HttpClient,
    pub authorization: crate::net::auth::Authorization,
    /// Set by discovery while the job has more targets than its
    /// `target_limit`: its targets then fail without being scraped, as in
    /// Prometheus.
    pub over_target_limit: std::sync::atomic::AtomicBool,
}

impl<C> Job<C> {
    /// A job over `config`, whose `tls` and `credentials` give its client and header.
    pub fn new(config: C, tls: &TlsConfig, credentials: &Credentials) -> std::io::Result<Self> {
        let (client, authorization) =
            http_client::authorized(tls, credentials).map_err(std::io::Error::other)?;
        Ok(Self {
            config,
            client,
            authorization,
            over_target_limit: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Sends `request` as a GET of `url` with ferro's `User-Agent` and the
    /// job's `Authorization`; the response's headers and its body, at most
    /// `limit` bytes both as sent and once gunzipped, held in a ticket of
    /// `limiter` as it arrives (a body the memory limit cannot take fails
    /// the scrape rather than grow the process).
    pub async fn get(
        &self,
        request: http::request::Builder,
        url: &str,
        limit: usize,
        limiter: &Arc<MemoryLimiter>,
    ) -> Result<(http::HeaderMap, Bytes, Ticket), FetchError> {
        let mut request = request.header(
            http::header::USER_AGENT,
            concat!("ferro/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(auth) = &self.authorization.current() {
            request = request.header(http::header::AUTHORIZATION, auth);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| FetchError::Connect {
                refused: false,
                message: e.to_string(),
            })?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| FetchError::connect(url, &e))?;
        if response.status() != http::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let (parts, mut body) = response.into_parts();
        let gzip = parts
            .headers
            .get(http::header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        // Read frame by frame into one buffer sized from Content-Length: a
        // large body is held once, not once as frames and again when joined.
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(FetchError::TooLarge(limit));
        }
        let mut ticket = limiter
            .try_acquire(declared.unwrap_or(0))
            .ok_or(FetchError::MemoryLimit)?;
        let mut raw = Vec::with_capacity(declared.unwrap_or(64 * 1024).min(limit));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| FetchError::Body(format!("reading the body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                let len = raw.len() + data.len();
                if len > limit {
                    return Err(FetchError::TooLarge(limit));
                }
                if len > ticket.bytes() && !ticket.try_resize(len) {
                    return Err(FetchError::MemoryLimit);
                }
                raw.extend_from_slice(&data);
            }
        }
        ticket.try_resize(raw.len());
        if !gzip {
            return Ok((parts.headers, raw.into(), ticket));
        }
        // gzip as transport encoding (asked for by the Prometheus receiver,
        // or added by a proxy in front of a pprof endpoint).
        let plain = decode_capped(
            flate2::read::GzDecoder::new(raw.as_slice()),
            limit,
            &mut ticket,
        )
        .map_err(|e| match e {
            BodyError::TooLarge => FetchError::TooLarge(limit),
            BodyError::MemoryLimit => FetchError::MemoryLimit,
            BodyError::TooSlow | BodyError::Failed(_) => {
                FetchError::Body(format!("the body is not valid gzip: {e:?}"))
            }
        })?;
        ticket.try_resize(plain.len());
        Ok((parts.headers, plain, ticket))
    }
}

/// How often a target that keeps failing for the same reason is logged again.
const LOG_AGAIN: std::time::Duration = std::time::Duration::from_secs(300);

/// A target's health as its scrapes find it: `ferro_scrape_target_*`, the
/// failures counted by reason, and a log line when it starts failing (and
/// every few minutes while it goes on), and when it recovers. Its series go
/// when it is dropped: when the target goes away.
pub struct TargetHealth {
    telemetry: Arc<Telemetry>,
    labels: TargetLabels,
    receiver: ComponentLabels,
    /// The reason it is failing for, since when it was last logged, and
    /// the failures since then.
    failing: Option<(&'static str, std::time::Instant, u64)>,
}

impl TargetHealth {
    pub fn new(
        telemetry: &Arc<Telemetry>,
        receiver: ComponentLabels,
        job: &str,
        target: &str,
    ) -> Self {
        Self {
            telemetry: telemetry.clone(),
            labels: TargetLabels {
                component: receiver.component.clone(),
                job: job.to_string(),
                target: target.to_string(),
            },
            receiver,
            failing: None,
        }
    }

    /// A scrape that succeeded after `took`.
    pub fn succeeded(&mut self, took: std::time::Duration) {
        let scrapes = &self.telemetry.scrapes;
        scrapes.up.get_or_create(&self.labels).set(1);
        scrapes
            .duration
            .get_or_create(&self.labels)
            .set(took.as_secs_f64());
        if let Some((reason, _, _)) = self.failing.take() {
            scrapes.last_error.remove(&self.error_labels(reason));
            tracing::info!(receiver = %self.labels.component, job = %self.labels.job, target = %self.labels.target, "scrape succeeds again");
        }
    }

    /// A scrape that failed for `reason` after `took`.
    pub fn failed(
        &mut self,
        reason: &'static str,
        error: &dyn std::fmt::Display,
        took: std::time::Duration,
    ) {
        let scrapes = &self.telemetry.scrapes;
        scrapes.up.get_or_create(&self.labels).set(0);
        scrapes
            .duration
            .get_or_create(&self.labels)
            .set(took.as_secs_f64());
        Telemetry::reason_counter(&self.telemetry.rejected_requests, &self.receiver, reason).inc();
        let log = match &mut self.failing {
            Some((was, logged, failures)) if *was == reason => {
                *failures += 1;
                (logged.elapsed() >= LOG_AGAIN).then_some(*failures)
            }
            previous => {
                if let Some((was, _, _)) = previous.take() {
                    scrapes.last_error.remove(&self.error_labels(was));
                }
                Some(1)
            }
        };
        scrapes
            .last_error
            .get_or_create(&self.error_labels(reason))
            .set(1);
        if let Some(failures) = log {
            tracing::warn!(receiver = %self.labels.component, job = %self.labels.job, target = %self.labels.target, reason, failures, %error, "scrape failed");
            self.failing = Some((reason, std::time::Instant::now(), 0));
        }
    }

    fn error_labels(&self, reason: &'static str) -> TargetReasonLabels {
        TargetReasonLabels {
            component: self.labels.component.clone(),
            job: self.labels.job.clone(),
            target: self.labels.target.clone(),
            reason,
        }
    }
}

impl Drop for TargetHealth {
    fn drop(&mut self) {
        let scrapes = &self.telemetry.scrapes;
        scrapes.up.remove(&self.labels);
        scrapes.duration.remove(&self.labels);
        if let Some((reason, _, _)) = self.failing {
            scrapes.last_error.remove(&self.error_labels(reason));
        }
    }
}

/// Why a GET of a target brought no body.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No answer: the connection could not be made or broke.
    #[error("{message}")]
    Connect { refused: bool, message: String },
    #[error("server returned HTTP status {0}")]
    Status(u16),
    #[error("body larger than body_size_limit ({0} bytes)")]
    TooLarge(usize),
    #[error("holding the body would pass memory_limit")]
    MemoryLimit,
    /// The body broke off or could not be decoded.
    #[error("{0}")]
    Body(String),
}

impl FetchError {
    /// A failed request, told apart by whether the target refused the
    /// connection (nothing listens: the commonest `up = 0`).
    fn connect(url: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut source = Some(error);
        let mut refused = false;
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
            }
            source = e.source();
        }
        Self::Connect {
            refused,
            message: format!("GET {url}: {}", crate::net::error_chain(error)),
        }
    }

    /// The reason label, as Prometheus tells scrape failures apart.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Connect { refused: true, .. } => "connection_refused",
            Self::Connect { refused: false, .. } => "connection_failed",
            Self::Status(_) => "http_status",
            Self::TooLarge(_) => "body_too_large",
            Self::MemoryLimit => "memory_limit",
            Self::Body(_) => "body_failed",
        }
    }
}
