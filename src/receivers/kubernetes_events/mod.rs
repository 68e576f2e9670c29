//! `receivers.kubernetes_events` (being built, not yet a receiver type):
//! the cluster's Kubernetes events as log lines, shipped by the leader
//! (`[kubernetes.leader]`).
//!
//! - [`line`]: one event as one line, in Alloy's
//!   `loki.source.kubernetes_events` format (logfmt or JSON).

pub mod line;
