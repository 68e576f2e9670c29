//! OTLP metrics → Prometheus series, following Prometheus' own OTLP
//! translation (the `prometheus/otlptranslator` rules).
