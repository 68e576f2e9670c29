//! Reading a request body whole with a cap on its size, both as sent and
//! once decompressed: the body limit of ferro's HTTP receivers.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use std::io::Read;

/// Why a body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// More than the cap, declared or read.
    TooLarge,
    /// Reading or decompressing failed; the cause.
    Failed(String),
}

/// Reads `body` whole, refusing it once it passes `max` bytes (by its
/// `Content-Length` before reading any of it).
pub async fn read_capped(body: Body, headers: &HeaderMap, max: usize) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Failed(e.to_string())),
    }
}

/// The request's `Content-Encoding`, trimmed and lower-cased (`""` when none).
pub fn content_encoding(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Reads all of `decoder`, refusing more than `max` bytes.
pub fn decode_capped(decoder: impl Read, max: usize) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    match decoder.take(max as u64 + 1).read_to_end(&mut out) {
        Ok(_) if out.len() > max => Err(BodyError::TooLarge),
        Ok(_) => Ok(out.into()),
        Err(e) => Err(BodyError::Failed(e.to_string())),
    }
}
