//! Per-tenant limits: finds each record's tenant, holds every tenant to its
//! limits, and cuts batches by tenant so that exporters send each under its
//! own `X-Scope-OrgID`.
//!
//! - The tenant: one for everything (`static`), a label or resource attribute
//!   of each group of records (`label`: a series, a stream, a trace resource),
//!   or the `X-Scope-OrgID` the push request came with (`header`); records
//!   that name none get `default_tenant`.
//! - Limits, per tenant with per-tenant overrides: records/s and bytes/s
//!   ([`bucket`]), active series (metrics) and streams (logs) within
//!   `active_expiry` ([`active`]), labels per series and label value length.
//!   A group over a limit is dropped whole and counted in
//!   `ferro_tenant_dropped_items{processor,signal,tenant,reason}` and
//!   `ferro_dropped_items`; the acknowledgement of the data reports the loss,
//!   as for any counted drop.
//! - Bounded: at most `max_tenants` tenants are tracked (plus those with an
//!   override); the records of any other share the `__overflow__` account,
//!   though they still go out under their own tenant. A tenant idle for
//!   `active_expiry`, with no active series and nothing owed, is forgotten.
//! - Refusing instead of dropping (`refuse = true`): the OTLP receiver asks
//!   [`TenantLimiter::admit`] before it accepts a request, and answers a
//!   tenant over its rate with a retryable refusal (HTTP 429 / gRPC
//!   RESOURCE_EXHAUSTED, with Retry-After). What it admitted is charged here
//!   but never dropped for rate; series and label limits still drop, since a
//!   retry could not pass them either.

mod active;
mod bucket;
mod config;
mod processor;

pub use config::{DEFAULT_TENANT, Limits, Rate, RawTenantConfig, Source, TenantConfig};
pub use processor::*;

#[cfg(test)]
mod tests;
