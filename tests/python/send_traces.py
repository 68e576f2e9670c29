"""Sends spans to ferro with the OpenTelemetry Python SDK, and writes what it
sent as an encoded ExportTraceServiceRequest so the test can compare.

--protocol grpc           the SDK's OTLP/gRPC exporter
--protocol http-protobuf  the SDK's OTLP/HTTP exporter
--protocol http-json      the SDK's OTLP encoder, rendered as OTLP/JSON
                          (protobuf JSON mapping with hex trace and span ids)
"""

import argparse
import base64
import json
import sys
import urllib.request

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

ID_KEYS = {"traceId", "spanId", "parentSpanId"}


def make_spans(count, service):
    recorder = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": service, "deployment.environment": "test", "host.cores": 2}
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    tracer = provider.get_tracer("ferro.e2e", "1.2.3", schema_url="https://opentelemetry.io/schemas/1.21.0")
    other = provider.get_tracer("ferro.e2e.other")
    made = 0
    previous = None
    while made < count:
        with tracer.start_as_current_span(
            f"GET /orders/{made}",
            kind=SpanKind.SERVER,
            attributes={
                "http.method": "GET",
                "http.status_code": 200 + made % 5,
                "ratio": 0.25 * made,
                "cache.hit": made % 2 == 0,
                "tags": ["a", "b", "c"],
                "ints": [1, 2, 3],
            },
            links=[Link(previous, {"link.kind": "follows"})] if previous else [],
        ) as root:
            root.add_event("cache.lookup", {"key": f"order-{made}", "bytes": 512})
            made += 1
            previous = root.get_span_context()
            if made < count:
                with other.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT) as child:
                    child.set_attribute("db.system", "postgresql")
                    child.set_status(Status(StatusCode.ERROR, "deadlock detected"))
                    child.add_event("exception", {"exception.type": "Deadlock"})
                    made += 1
    provider.shutdown()
    return list(recorder.get_finished_spans())


def hex_ids(value):
    if isinstance(value, dict):
        return {
            k: (base64.b64decode(v).hex() if k in ID_KEYS and isinstance(v, str) else hex_ids(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [hex_ids(v) for v in value]
    return value


def send(spans, protocol, endpoint, chunk):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=10)
    elif protocol == "http-protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint + "/v1/traces", timeout=10)
    else:
        exporter = None
    for start in range(0, len(spans), chunk):
        part = spans[start : start + chunk]
        if exporter is not None:
            result = exporter.export(part)
            if result != SpanExportResult.SUCCESS:
                sys.exit(f"export of spans {start}..{start + len(part)} failed: {result}")
        else:
            body = json.dumps(hex_ids(MessageToDict(encode_spans(part)))).encode()
            request = urllib.request.Request(
                endpoint + "/v1/traces",
                data=body,
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status != 200:
                    sys.exit(f"HTTP {response.status}")
                answer = json.loads(response.read() or b"{}")
                if answer.get("partialSuccess", {}).get("rejectedSpans"):
                    sys.exit(f"partial success: {answer}")
    if exporter is not None:
        exporter.shutdown()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http-protobuf", "http-json"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--spans", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=40)
    parser.add_argument("--service", default="checkout")
    parser.add_argument("--expected", required=True, help="file for the encoded request of every span sent")
    args = parser.parse_args()
    spans = make_spans(args.spans, args.service)
    with open(args.expected, "wb") as f:
        f.write(encode_spans(spans).SerializeToString())
    send(spans, args.protocol, args.endpoint, args.chunk)
    print(f"sent {len(spans)} spans over {args.protocol}")


if __name__ == "__main__":
    main()
