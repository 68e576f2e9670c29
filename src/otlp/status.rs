//! `google.rpc.Status` and `RetryInfo`: how OTLP servers explain refusals.

use bytes::Bytes;
use ferro_proto::google::rpc;
use prost::Message;
use std::time::Duration;

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// A `google.rpc.Status` with `code` and `message`, plus a `RetryInfo` when
/// the client should wait before retrying.
pub fn encode_status(code: i32, message: &str, retry_after: Option<Duration>) -> Bytes {
    let mut details = Vec::new();
    if let Some(delay) = retry_after {
        let info = rpc::RetryInfo {
            retry_delay: Some(ferro_proto::prost_types::Duration {
                seconds: delay.as_secs() as i64,
                nanos: delay.subsec_nanos() as i32,
            }),
        };
        details.push(ferro_proto::prost_types::Any {
            type_url: RETRY_INFO_TYPE.into(),
            value: info.encode_to_vec(),
        });
    }
    rpc::Status {
        code,
        message: message.into(),
        details,
    }
    .encode_to_vec()
    .into()
}

/// The retry delay in an encoded `google.rpc.Status`, if it carries a `RetryInfo`.
pub fn retry_delay(status_bytes: &[u8]) -> Option<Duration> {
    let status = rpc::Status::decode(status_bytes).ok()?;
    status
        .details
        .iter()
        .find(|any| any.type_url == RETRY_INFO_TYPE)
        .and_then(|any| {
            let info = rpc::RetryInfo::decode(any.value.as_slice()).ok()?;
            let delay = info.retry_delay?;
            Some(Duration::new(
                delay.seconds.max(0) as u64,
                delay.nanos.max(0) as u32,
            ))
        })
}

/// A tonic status with a `RetryInfo` in its details.
pub fn grpc_status(
    code: tonic::Code,
    message: &str,
    retry_after: Option<Duration>,
) -> tonic::Status {
    match retry_after {
        Some(_) => tonic::Status::with_details(
            code,
            message,
            encode_status(code as i32, message, retry_after),
        ),
        None => tonic::Status::new(code, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_info_round_trips() {
        let bytes = encode_status(8, "slow down", Some(Duration::from_millis(1500)));
        assert_eq!(retry_delay(&bytes), Some(Duration::from_millis(1500)));
        let plain = encode_status(14, "busy", None);
        assert_eq!(retry_delay(&plain), None);
        let status = rpc::Status::decode(plain).unwrap();
        assert_eq!((status.code, status.message.as_str()), (14, "busy"));
    }
}
