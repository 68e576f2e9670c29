//! Encoding batches as OTLP export requests, once per batch.

use bytes::{Bytes, BytesMut};
use std::io::Write;

use super::config::Compression;
use crate::signal::Traces;

/// `ExportTraceServiceRequest` bytes: field 1 (`resource_spans`) repeated, the
/// parts still in wire form copied as they came.
pub fn traces_request(traces: &Traces, size_hint: usize) -> Bytes {
    let mut buf = BytesMut::with_capacity(size_hint);
    traces.encode_request(&mut buf);
    buf.freeze()
}

/// Compresses an HTTP body as `Content-Encoding` says.
pub fn compress(body: Bytes, compression: Compression) -> std::io::Result<Bytes> {
    match compression {
        Compression::None => Ok(body),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            encoder.write_all(&body)?;
            Ok(encoder.finish()?.into())
        }
        Compression::Zstd => Ok(zstd::bulk::compress(&body, 1)?.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::traces::tests::sample;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    #[test]
    fn matches_prost_encoding() {
        let traces = sample(2, 2, 3);
        let ours = traces_request(&traces, 0);
        let prost = ExportTraceServiceRequest {
            resource_spans: traces.resource_spans(),
        }
        .encode_to_vec();
        assert_eq!(ours.as_ref(), prost.as_slice());
    }

    #[test]
    fn compressed_bodies_decompress_to_the_original() {
        let body = traces_request(&sample(1, 1, 50), 0);
        let gz = compress(body.clone(), Compression::Gzip).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz.as_ref()), &mut out)
            .unwrap();
        assert_eq!(out, body.as_ref());
        let zs = compress(body.clone(), Compression::Zstd).unwrap();
        assert_eq!(zstd::decode_all(zs.as_ref()).unwrap(), body.as_ref());
    }
}
