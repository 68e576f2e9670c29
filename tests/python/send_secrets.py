"""Sends the redaction corpus to ferro with the OpenTelemetry Python SDK over
OTLP/gRPC: one span per corpus text (as an attribute value, and as the span
name), with secret-named attributes beside it, and one log record per text
(as the body), with a secret-named attribute.

The corpus is tests/fixtures/redaction.json: secrets with their redacted
form, and look-alikes that must pass unchanged.
"""

import argparse
import json
import warnings

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

warnings.simplefilter("ignore", DeprecationWarning)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--corpus", required=True)
    args = parser.parse_args()
    with open(args.corpus) as f:
        corpus = json.load(f)
    texts = [s["input"] for s in corpus["secrets"]] + corpus["look_alikes"]

    resource = Resource.create({"service.name": "redaction-e2e", "db.password": "resource-secret"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=args.endpoint, insecure=True, timeout=10))
    )
    tracer = tracer_provider.get_tracer("redaction")
    for i, text in enumerate(texts):
        with tracer.start_as_current_span(
            text,
            attributes={
                "case": i,
                "msg": text,
                "db.password": "hunter2",
                "http.request.header.authorization": "Basic dXNlcjpwYXNzd29yZA==",
                "user.id": "42",
            },
        ):
            pass
    tracer_provider.shutdown()

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=args.endpoint, insecure=True, timeout=10))
    )
    logger = logger_provider.get_logger("redaction")
    for i, text in enumerate(texts):
        logger.emit(
            LogRecord(
                body=text,
                severity_number=SeverityNumber.INFO,
                attributes={"case": i, "api_key": "abc123"},
            )
        )
    logger_provider.shutdown()
    print(len(texts))


if __name__ == "__main__":
    main()
