//! The settings every HTTP exporter shares, each checked in one place: the
//! endpoint URL, request headers (and the tenant header they must not
//! carry when a tenant is sent per batch), the static tenant, credentials,
//! TLS, the request timeout, queue and retry; and the request they make.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration as StdDuration;

use crate::config::{FieldError, HumanDuration};
use crate::delivery::{QueueConfig, TENANT_RULE, valid_tenant};
use crate::exporters::{RawRetryConfig, RetryConfig};
use crate::net::auth::{BasicAuth, Credentials};
use crate::net::tls::TlsConfig;

/// The settings every HTTP exporter has, as its table writes them: the
/// exporter moves its fields here and checks them with one call, then
/// checks only what is its own.
pub struct RawHttpSettings {
    pub endpoint: String,
    pub headers: BTreeMap<String, String>,
    /// `tenant_id`: the tenant of batches no tenant processor claimed, for
    /// an exporter that sends a tenant per batch.
    pub tenant_id: Option<String>,
    /// `basic_auth`, `bearer_token`, `bearer_token_file`; `None` for an
    /// exporter that takes credentials as headers only.
    pub credentials: Option<(Option<BasicAuth>, Option<String>, Option<PathBuf>)>,
    pub tls: TlsConfig,
    pub timeout: Option<HumanDuration>,
    pub queue: QueueConfig,
    pub retry: RawRetryConfig,
}

/// What differs between exporters in checking [`RawHttpSettings`].
pub struct HttpRules {
    /// The request timeout when `timeout` is not set.
    pub default_timeout: StdDuration,
    /// Where the exporter takes its tenant, if it sends one per batch: an
    /// `X-Scope-OrgID` among its headers is then refused with this hint.
    pub tenant_elsewhere: Option<&'static str>,
}

/// Checked [`RawHttpSettings`].
#[derive(Clone, Debug, PartialEq)]
pub struct HttpSettings {
    pub endpoint: ::http::Uri,
    pub headers: Vec<(::http::HeaderName, ::http::HeaderValue)>,
    /// Sent as `X-Scope-OrgID` with batches that carry no tenant.
    pub tenant_id: Option<::http::HeaderValue>,
    pub credentials: Credentials,
    pub tls: TlsConfig,
    pub timeout: StdDuration,
    pub queue: QueueConfig,
    pub retry: RetryConfig,
}

impl RawHttpSettings {
    /// Checks every setting, recording each mistake under its key; `None`
    /// when the endpoint is not a URL.
    pub fn check(self, rules: &HttpRules, errors: &mut Vec<FieldError>) -> Option<HttpSettings> {
        let endpoint = check_url("endpoint", &self.endpoint, errors);
        let headers = match rules.tenant_elsewhere {
            Some(hint) => check_headers_without_tenant(&self.headers, hint, errors),
            None => {
                let mut headers = Vec::new();
                for (name, value) in &self.headers {
                    check_header(name, value, &mut headers, errors);
                }
                headers
            }
        };
        let tenant_id = self.tenant_id.as_deref().and_then(|tenant| {
            let value = valid_tenant(tenant);
            if value.is_none() {
                errors.push(FieldError::new(
                    "tenant_id",
                    format!("`{tenant}` is not a tenant ID ({TENANT_RULE})"),
                ));
            }
            value
        });
        let credentials = match self.credentials {
            Some((basic_auth, bearer_token, bearer_token_file)) => {
                Credentials::checked(basic_auth, bearer_token, bearer_token_file, "", errors)
            }
            None => Credentials::default(),
        };
        let timeout = check_timeout(self.timeout, rules.default_timeout, errors);
        self.tls.check(errors);
        self.queue.check(errors);
        let retry = self.retry.check(errors);
        Some(HttpSettings {
            endpoint: endpoint?,
            headers,
            tenant_id,
            credentials,
            tls: self.tls,
            timeout,
            queue: self.queue,
            retry,
        })
    }
}

/// Parses an exporter's `http://` or `https://` URL, or records why not.
pub fn check_url(field: &str, text: &str, errors: &mut Vec<FieldError>) -> Option<::http::Uri> {
    match text.parse::<::http::Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() =>
        {
            Some(uri)
        }
        _ => {
            errors.push(FieldError::new(
                field,
                format!("`{text}` is not an http:// or https:// URL with a host"),
            ));
            None
        }
    }
}

/// Adds one configured request header, or records why it cannot be sent.
pub fn check_header(
    name: &str,
    value: &str,
    headers: &mut Vec<(::http::HeaderName, ::http::HeaderValue)>,
    errors: &mut Vec<FieldError>,
) {
    match (
        ::http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
        ::http::HeaderValue::from_str(value),
    ) {
        (Ok(n), Ok(v)) => headers.push((n, v)),
        _ => errors.push(FieldError::new(
            format!("headers.{name}"),
            "is not a valid header name and value",
        )),
    }
}

/// The configured `headers` of an exporter that sends a tenant, refusing an
/// `X-Scope-OrgID` among them with `hint` (where to set the tenant instead).
pub fn check_headers_without_tenant(
    configured: &std::collections::BTreeMap<String, String>,
    hint: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<(::http::HeaderName, ::http::HeaderValue)> {
    let mut headers = Vec::new();
    for (name, value) in configured {
        if name.eq_ignore_ascii_case("x-scope-orgid") {
            errors.push(FieldError::new(format!("headers.{name}"), hint));
            continue;
        }
        check_header(name, value, &mut headers, errors);
    }
    headers
}

/// An exporter's request `timeout`, `default` when not set, or records why it is 0.
pub fn check_timeout(
    timeout: Option<HumanDuration>,
    default: StdDuration,
    errors: &mut Vec<FieldError>,
) -> StdDuration {
    let timeout = timeout.map_or(default, |d| d.get());
    if timeout.is_zero() {
        errors.push(FieldError::new("timeout", "must be more than 0"));
    }
    timeout
}

/// A POST to `url` as ferro (`User-Agent`) of `content_type`, with the
/// configured `headers`, the batch's `tenant` (see [`headers_with_tenant`])
/// and the `Authorization` of the exporter's credentials.
pub fn post_request<U>(
    url: U,
    content_type: &str,
    headers: &[(::http::HeaderName, ::http::HeaderValue)],
    tenant: Option<&::http::HeaderValue>,
    authorization: Option<&::http::HeaderValue>,
) -> ::http::request::Builder
where
    ::http::Uri: TryFrom<U>,
    <::http::Uri as TryFrom<U>>::Error: Into<::http::Error>,
{
    let mut request = ::http::Request::post(url)
        .header(::http::header::CONTENT_TYPE, content_type)
        .header(
            ::http::header::USER_AGENT,
            concat!("ferro/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers_with_tenant(headers, tenant) {
        request = request.header(name, value);
    }
    if let Some(auth) = authorization {
        request = request.header(::http::header::AUTHORIZATION, auth);
    }
    request
}

/// `X-Scope-OrgID`, as the header a batch's tenant goes out in.
pub static ORG_ID: ::http::HeaderName = ::http::HeaderName::from_static("x-scope-orgid");

/// An exporter's configured headers, with a batch's tenant as
/// `X-Scope-OrgID` in place of a configured one (the static tenant is the
/// fallback for batches no tenant processor has claimed).
pub fn headers_with_tenant<'a>(
    configured: &'a [(::http::HeaderName, ::http::HeaderValue)],
    tenant: Option<&'a ::http::HeaderValue>,
) -> impl Iterator<Item = (&'a ::http::HeaderName, &'a ::http::HeaderValue)> {
    configured
        .iter()
        .filter(move |(name, _)| tenant.is_none() || *name != ORG_ID)
        .map(|(name, value)| (name, value))
        .chain(tenant.map(|tenant| (&ORG_ID, tenant)))
}
