"""Sends one export of about 5 MiB (one span with a large attribute) with
the OpenTelemetry SDK's OTLP/gRPC exporter, and prints the result
(SUCCESS or FAILURE). The exporter retries the answers the OTLP spec calls
retryable, until its timeout; the test counts the attempts ferro saw."""

import argparse

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

parser = argparse.ArgumentParser()
parser.add_argument("--endpoint", required=True)
args = parser.parse_args()

recorder = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "oversized"}))
provider.add_span_processor(SimpleSpanProcessor(recorder))
tracer = provider.get_tracer("ferro.e2e")
with tracer.start_as_current_span("big", attributes={"blob": "x" * (5 << 20)}):
    pass
provider.shutdown()

exporter = OTLPSpanExporter(endpoint=args.endpoint, insecure=True, timeout=10)
print(exporter.export(recorder.get_finished_spans()).name)
