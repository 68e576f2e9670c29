//! Encoding batches as OTLP export requests, once per batch.

use bytes::{Bytes, BytesMut};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use std::io::Write;

use super::config::Compression;

/// `ExportTraceServiceRequest` bytes, written from borrowed data: field 1
/// (`resource_spans`) repeated, exactly as prost would encode the message.
pub fn traces_request(resource_spans: &[ResourceSpans], size_hint: usize) -> Bytes {
    let mut buf = BytesMut::with_capacity(size_hint);
    for rs in resource_spans {
        prost::encoding::message::encode(1, rs, &mut buf);
    }
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
        let ours = traces_request(&traces.resource_spans, 0);
        let prost = ExportTraceServiceRequest {
            resource_spans: traces.resource_spans.clone(),
        }
        .encode_to_vec();
        assert_eq!(ours.as_ref(), prost.as_slice());
    }

    #[test]
    fn compressed_bodies_decompress_to_the_original() {
        let body = traces_request(&sample(1, 1, 50).resource_spans, 0);
        let gz = compress(body.clone(), Compression::Gzip).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz.as_ref()), &mut out)
            .unwrap();
        assert_eq!(out, body.as_ref());
        let zs = compress(body.clone(), Compression::Zstd).unwrap();
        assert_eq!(zstd::decode_all(zs.as_ref()).unwrap(), body.as_ref());
    }
}
