//! One HTTP request of an exporter: sent with a deadline, the answer read up
//! to a bound, transport failures and time-outs classified as retryable.
//!
//! Also the settings the HTTP exporters share ([`settings`]).

mod request;
pub mod settings;

pub use request::*;
pub use settings::{
    ORG_ID, check_header, check_headers_without_tenant, check_timeout, check_url,
    headers_with_tenant, post_request,
};
