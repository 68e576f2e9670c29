"""Sends spans to ferro's Zipkin receiver with the OpenTelemetry Python SDK's
Zipkin exporter, and prints the spans it sent as Zipkin v2 JSON so that the
test can compare what arrives.

usage: send_zipkin.py URL SERVICE [json|proto]

json   opentelemetry-exporter-zipkin-json (v2 JSON)
proto  opentelemetry-exporter-zipkin-proto-http (ListOfSpans protobuf; it
       pins protobuf 3.x, so it runs from a venv of its own)
"""

import json
import sys

from opentelemetry.exporter.zipkin.json.v2 import JsonV2Encoder
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode


def main():
    url, service = sys.argv[1], sys.argv[2]
    protocol = sys.argv[3] if len(sys.argv) > 3 else "json"
    if protocol == "proto":
        from opentelemetry.exporter.zipkin.proto.http import ZipkinExporter
    else:
        from opentelemetry.exporter.zipkin.json import ZipkinExporter
    recorder = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    tracer = provider.get_tracer("ferro.zipkin.e2e", "0.9.1")
    with tracer.start_as_current_span(
        "GET /checkout",
        kind=SpanKind.SERVER,
        attributes={"http.method": "GET", "http.status_code": 200, "cache.hit": True},
    ) as root:
        root.add_event("cart.loaded")
        with tracer.start_as_current_span("SELECT carts", kind=SpanKind.CLIENT) as child:
            child.set_attribute("db.system", "postgresql")
            child.set_status(Status(StatusCode.ERROR, "deadlock detected"))
        with tracer.start_as_current_span("render"):
            pass
    spans = recorder.get_finished_spans()
    exporter = ZipkinExporter(endpoint=url, local_node_ipv4="10.1.2.3", local_node_port=8080)
    if exporter.export(spans) is not SpanExportResult.SUCCESS:
        sys.exit("the Zipkin exporter failed")
    # What the exporter sent, as v2 JSON: the spans over its local endpoint
    # (which took the service name from the spans' resource).
    print(JsonV2Encoder().serialize(spans, exporter.local_node))


if __name__ == "__main__":
    main()
