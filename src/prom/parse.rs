//! Parsing of the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0.
