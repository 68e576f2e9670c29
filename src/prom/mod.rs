//! The Prometheus data model's moving parts shared by the components that
//! speak it: the text exposition and OpenMetrics parser, and relabelling.

pub mod parse;
pub mod relabel;
