"""Sends logs to ferro with the OpenTelemetry Python SDK: a LoggerProvider
with a BatchLogRecordProcessor and the OTLP log exporter (gRPC or
HTTP/protobuf). Records come from Python's `logging` through the SDK's
handler (some inside a span, so they carry trace and span ids) and from the
logs API directly (a map body). Prints, as JSON, the records it sent as ferro
should turn them into Loki entries.
"""

import argparse
import json
import logging
import warnings

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

# The SDK's logging handler is deprecated in favour of a contrib package;
# it is still what most applications use.
warnings.simplefilter("ignore", DeprecationWarning)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http-protobuf"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", default="checkout")
    parser.add_argument("--records", type=int, default=20, help="records through logging, besides the API ones")
    args = parser.parse_args()

    if args.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        exporter = OTLPLogExporter(endpoint=args.endpoint, insecure=True, timeout=10)
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        exporter = OTLPLogExporter(endpoint=args.endpoint + "/v1/logs", timeout=10)

    resource = Resource.create(
        {
            "service.name": args.service,
            "service.namespace": "shop",
            "service.instance.id": f"{args.service}-1",
            "deployment.environment": "e2e",
            "k8s.pod.name": f"{args.service}-7d9f",
            "host.name": "node-a",
        }
    )
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=200, max_export_batch_size=8))

    logger = logging.getLogger("ferro.e2e")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
    tracer = TracerProvider(resource=resource).get_tracer("ferro.e2e")

    levels = [
        (logging.DEBUG, "debug", "DEBUG"),
        (logging.INFO, "info", "INFO"),
        (logging.WARNING, "warn", "WARN"),
        (logging.ERROR, "error", "ERROR"),
        (logging.CRITICAL, "fatal", "FATAL"),
    ]
    sent = []
    for i in range(args.records):
        level, detected, text = levels[i % len(levels)]
        line = f"{args.service} order {i} handled in {i * 3} ms"
        expected = {"line": line, "detected_level": detected, "severity_text": text, "attributes": {"order_id": str(i)}}
        if i % 4 == 0:
            with tracer.start_as_current_span(f"order {i}") as span:
                context = span.get_span_context()
                logger.log(level, line, extra={"order.id": str(i)})
                expected["trace_id"] = format(context.trace_id, "032x")
                expected["span_id"] = format(context.span_id, "016x")
        else:
            logger.log(level, line, extra={"order.id": str(i)})
        sent.append(expected)

    api = provider.get_logger("ferro.e2e.api", "2.1.0")
    api.emit(
        LogRecord(
            severity_number=SeverityNumber.WARN2,
            body={"event": "cart.abandoned", "items": 3, "note": "a<b", "service": args.service},
            attributes={"cart.value": 12.5, "user": {"id": "u-7", "tier": "gold"}},
        )
    )
    sent.append(
        {
            "line": '{"event":"cart.abandoned","items":3,"note":"a\\u003cb","service":"%s"}' % args.service,
            "detected_level": "warn",
            "attributes": {"cart_value": "12.5", "user_id": "u-7", "user_tier": "gold", "scope_name": "ferro.e2e.api", "scope_version": "2.1.0"},
        }
    )

    if not provider.force_flush(timeout_millis=10_000):
        raise SystemExit("force_flush failed")
    provider.shutdown()
    print(json.dumps(sent))


if __name__ == "__main__":
    main()
