"""Sends metrics to ferro with the OpenTelemetry Python SDK's OTLP exporter
(gRPC or HTTP/protobuf), cumulative temporality, and prints what it recorded
as JSON so the test can look for it in Prometheus."""

import argparse
import json

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http-protobuf"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", default="checkout")
    args = parser.parse_args()

    if args.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=args.endpoint, insecure=True, timeout=10)
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=args.endpoint + "/v1/metrics", timeout=10)

    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create(
            {"service.name": args.service, "service.namespace": "shop", "service.instance.id": "pod-1", "k8s.node.name": "node-a"}
        ),
        metric_readers=[reader],
    )
    meter = provider.get_meter("ferro.e2e")

    requests = meter.create_counter("http.server.requests", unit="1", description="Requests served.")
    in_flight = meter.create_up_down_counter("http.server.active_requests", unit="{request}")
    duration = meter.create_histogram("http.server.duration", unit="s", description="Request latency.")
    temperature = meter.create_gauge("room.temperature", unit="Cel")

    for code, n in (("200", 7), ("500", 2)):
        requests.add(n, {"http.response.status_code": code})
    in_flight.add(5)
    in_flight.add(-2)
    for seconds in (0.003, 0.02, 0.02, 0.4, 3.0):
        duration.record(seconds, {"http.route": "/cart"})
    temperature.set(21.5, {"room": "lab"})

    if not provider.force_flush(timeout_millis=10_000):
        raise SystemExit("force_flush failed")
    provider.shutdown()
    print(json.dumps({"requests": {"200": 7, "500": 2}, "in_flight": 3, "duration_count": 5, "duration_sum": 3.443, "temperature": 21.5}))


if __name__ == "__main__":
    main()
