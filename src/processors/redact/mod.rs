//! Sanitize-first redaction: the processor every pipeline runs first unless
//! it says `redact = false`, so that a secret never leaves the node.
//!
//! - Keys: an attribute, label, structured-metadata key or JSON field whose
//!   name is on the deny-list ([`rules::DENY_KEYS`], plus `deny_keys`) keeps
//!   its key and gets the value `[REDACTED]`: replaced, never removed, so the
//!   record's shape stays debuggable. In allow-list mode every key not listed
//!   is treated so.
//! - Values: secrets found by their shape anywhere in log lines, attribute
//!   and label values, span and event names and status messages (JWTs,
//!   bearer and basic credentials, cloud keys, tokens, PEM private keys, card
//!   numbers that pass Luhn, `password=…`-style pairs), and, if asked for,
//!   personal data.
//! - Cost: one Aho-Corasick pass over each region's raw bytes finds the
//!   anchors of every rule at once; a region without one (most of them) is
//!   not decoded, walked or copied. Regexes run only where their anchors are.
//!
//! Counts go to `ferro_redactions_total{processor, signal, rule}`; neither a
//! secret nor anything derived from it is ever logged.

mod config;
mod json;
mod prefilter;
mod processor;
pub mod rules;
mod tokens;

pub use config::{RawRedactConfig, RedactConfig};
pub use processor::*;

#[cfg(test)]
mod tests;
