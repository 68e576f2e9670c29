//! Prometheus relabelling (`relabel_configs`, `metric_relabel_configs`).
