//! Reading a request body whole, as ferro's HTTP receivers do: capped in
//! size both as sent and once decompressed, counted against the memory
//! limit while it arrives, and given up on when it arrives too slowly.
//!
//! The memory is reserved before the bytes are held: by the declared
//! `Content-Length` up front (a request the limit cannot take is refused
//! before any of it is read), else frame by frame. The same ticket then
//! carries the decoded data through the pipeline, so a body is never held
//! outside the limit.
//!
//! The time allowed follows Apache's `mod_reqtimeout`: `timeout` to start,
//! extended by one second for every `min_rate` bytes received, so a large
//! body on a slow link is read while a client trickling bytes is not.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::delivery::{MemoryLimiter, Ticket};

/// Bytes decompressed at a time, and reserved ahead of them.
const INFLATE_STEP: usize = 64 * 1024;

/// How a body must arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyRules {
    /// Largest body, as sent and once decompressed.
    pub max: usize,
    /// Time to read the body's first bytes.
    pub timeout: Duration,
    /// Bytes per second that earn another second.
    pub min_rate: u64,
}

impl BodyRules {
    /// When a body of which `received` bytes arrived, reading since
    /// `started`, has run out of time.
    pub fn deadline(&self, started: Instant, received: usize) -> Instant {
        let earned = received as u64 / self.min_rate.max(1);
        started + self.timeout + Duration::from_secs(earned)
    }
}

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// More than the cap, declared or read.
    TooLarge,
    /// Holding it would pass the memory limit: the client should retry.
    MemoryLimit,
    /// It arrived more slowly than the rules allow.
    TooSlow,
    /// Reading or decompressing failed; the cause.
    Failed(String),
}

/// Reads `body` whole under `rules`, holding its bytes in a ticket of
/// `limiter`: the body and the ticket that accounts for it.
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    rules: &BodyRules,
    limiter: &Arc<MemoryLimiter>,
) -> Result<(Bytes, Ticket), BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > rules.max) {
        return Err(BodyError::TooLarge);
    }
    let mut ticket = limiter
        .try_acquire(declared.unwrap_or(0))
        .ok_or(BodyError::MemoryLimit)?;
    let started = Instant::now();
    let mut body = body;
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
    // One timer for the whole body, armed again only when it fires before
    // the deadline the bytes received have earned.
    let timer = tokio::time::sleep_until(rules.deadline(started, 0));
    tokio::pin!(timer);
    loop {
        let frame = tokio::select! {
            biased;
            frame = body.frame() => frame,
            _ = &mut timer => {
                let earned = rules.deadline(started, buf.len());
                if earned <= Instant::now() {
                    return Err(BodyError::TooSlow);
                }
                timer.as_mut().reset(earned);
                continue;
            }
        };
        let frame = match frame {
            None => break,
            Some(Err(e)) => return Err(BodyError::Failed(e.to_string())),
            Some(Ok(frame)) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = buf.len() + data.len();
        if len > rules.max {
            return Err(BodyError::TooLarge);
        }
        if len > ticket.bytes() && !ticket.try_resize(len) {
            return Err(BodyError::MemoryLimit);
        }
        buf.extend_from_slice(&data);
    }
    // A body shorter than declared gives the rest back.
    ticket.try_resize(buf.len());
    Ok((buf.freeze(), ticket))
}

/// The request's `Content-Encoding`, trimmed and lower-cased (`""` when none).
pub fn content_encoding(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Reads all of `decoder`, refusing more than `max` bytes, and growing
/// `ticket` ahead of what it holds. The caller shrinks the ticket to what
/// it keeps once the compressed bytes are gone.
pub fn decode_capped(
    mut decoder: impl Read,
    max: usize,
    ticket: &mut Ticket,
) -> Result<Bytes, BodyError> {
    let base = ticket.bytes();
    let mut out = Vec::new();
    loop {
        let want = out.len() + INFLATE_STEP;
        if !ticket.try_resize(base + want.min(max + 1)) {
            return Err(BodyError::MemoryLimit);
        }
        out.reserve(INFLATE_STEP);
        let read = (&mut decoder)
            .take((max + 1 - out.len()) as u64)
            .take(INFLATE_STEP as u64)
            .read_to_end(&mut out)
            .map_err(|e| BodyError::Failed(e.to_string()))?;
        if out.len() > max {
            return Err(BodyError::TooLarge);
        }
        if read == 0 {
            break;
        }
    }
    ticket.try_resize(base + out.len());
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn rules(max: usize) -> BodyRules {
        BodyRules {
            max,
            timeout: Duration::from_secs(1),
            min_rate: 1000,
        }
    }

    fn length(len: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, len.into());
        headers
    }

    #[tokio::test]
    async fn a_body_is_held_under_the_memory_limit() {
        let limiter = MemoryLimiter::new(1000);
        let (body, ticket) = read_body(
            Body::from(vec![7u8; 600]),
            &length(600),
            &rules(4096),
            &limiter,
        )
        .await
        .unwrap();
        assert_eq!(
            (body.len(), ticket.bytes(), limiter.used()),
            (600, 600, 600)
        );
        // A second declared body that does not fit is refused before it is read.
        let refused = read_body(
            Body::from(vec![7u8; 500]),
            &length(500),
            &rules(4096),
            &limiter,
        )
        .await;
        assert_eq!(refused.err(), Some(BodyError::MemoryLimit));
        // So is one without a length, once what arrived passes the limit.
        let refused = read_body(
            Body::from(vec![7u8; 500]),
            &HeaderMap::new(),
            &rules(4096),
            &limiter,
        )
        .await;
        assert_eq!(refused.err(), Some(BodyError::MemoryLimit));
        assert_eq!(limiter.used(), 600, "a refusal holds nothing");
        drop(ticket);
        assert_eq!(limiter.used(), 0);
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_refused_as_declared_or_as_read() {
        let limiter = MemoryLimiter::new(1 << 20);
        for headers in [length(5000), HeaderMap::new()] {
            let result = read_body(
                Body::from(vec![0u8; 5000]),
                &headers,
                &rules(4096),
                &limiter,
            )
            .await;
            assert_eq!(result.err(), Some(BodyError::TooLarge));
        }
        assert_eq!(limiter.used(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_runs_out_of_time_and_a_steady_one_does_not() {
        let limiter = MemoryLimiter::new(1 << 20);
        // A body whose chunks of `chunks` bytes arrive `gap` apart.
        let send = |chunks: Vec<usize>, gap: Duration| {
            let stream =
                futures_util::stream::unfold(chunks.into_iter(), move |mut rest| async move {
                    let n = rest.next()?;
                    tokio::time::sleep(gap).await;
                    Some((Ok::<_, std::io::Error>(Bytes::from(vec![1u8; n])), rest))
                });
            Body::from_stream(stream)
        };
        // 1000 B/s earns a second per 1000 bytes: 1500 bytes every 0.9 s
        // keep ahead of the deadline, however long the body.
        let steady = send(vec![1500; 14], Duration::from_millis(900));
        let (body, _ticket) = read_body(steady, &HeaderMap::new(), &rules(1 << 20), &limiter)
            .await
            .unwrap();
        assert_eq!(body.len(), 21_000);
        // 10 bytes every 900 ms earn nothing: out of time after the first second.
        let trickle = send(vec![10; 100], Duration::from_millis(900));
        let result = read_body(trickle, &HeaderMap::new(), &rules(1 << 20), &limiter).await;
        assert_eq!(result.err(), Some(BodyError::TooSlow));
    }

    #[test]
    fn decompression_is_capped_and_counted() {
        let limiter = MemoryLimiter::new(1 << 20);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&vec![b'a'; 300_000]).unwrap();
        let compressed = gz.finish().unwrap();
        let mut ticket = limiter.try_acquire(compressed.len()).unwrap();
        let plain = decode_capped(
            flate2::read::GzDecoder::new(&compressed[..]),
            400_000,
            &mut ticket,
        )
        .unwrap();
        assert_eq!(plain.len(), 300_000);
        assert_eq!(ticket.bytes(), compressed.len() + 300_000);
        let mut ticket = limiter.try_acquire(0).unwrap();
        let capped = decode_capped(
            flate2::read::GzDecoder::new(&compressed[..]),
            100_000,
            &mut ticket,
        );
        assert_eq!(capped.err(), Some(BodyError::TooLarge));
        let small = MemoryLimiter::new(200_000);
        let mut ticket = small.try_acquire(0).unwrap();
        let refused = decode_capped(
            flate2::read::GzDecoder::new(&compressed[..]),
            400_000,
            &mut ticket,
        );
        assert_eq!(refused.err(), Some(BodyError::MemoryLimit));
    }
}
