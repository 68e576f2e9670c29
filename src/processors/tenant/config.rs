use serde::Deserialize;
use std::collections::BTreeMap;

use crate::config::{ByteSize, FieldError, HumanDuration, Validate};
use crate::delivery::{TENANT_RULE, valid_tenant};

/// Where a record's tenant comes from, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawSource {
    Static,
    Label,
    Header,
}

/// `[processors.tenant.NAME]` as written.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RawTenantConfig {
    /// `static` (one tenant for everything), `label` (a label or resource
    /// attribute of each record) or `header` (the `X-Scope-OrgID` the push
    /// request came with).
    source: Option<RawSource>,
    /// With `source = "static"`: the tenant of every record.
    tenant: Option<String>,
    /// With `source = "label"`: the label naming the tenant on metrics, logs
    /// and profiles (`namespace`, `k8s_namespace_name`).
    label: Option<String>,
    /// With `source = "label"`: the resource attribute naming the tenant on
    /// traces (`k8s.namespace.name`); `label` if not set.
    attribute: Option<String>,
    /// The tenant of records whose label or header is missing.
    default_tenant: Option<String>,
    /// Tenants tracked with limits and counters of their own; the records of
    /// others share one `__overflow__` account, so that a flood of tenant
    /// names cannot grow memory or the counters' label sets.
    max_tenants: Option<usize>,
    /// How long a series or stream stays active after its last record, and a
    /// tenant tracked after its last record.
    active_expiry: Option<HumanDuration>,
    /// Over its rate limit, a tenant's pushes (OTLP) are refused with a
    /// retryable answer (HTTP 429 / gRPC RESOURCE_EXHAUSTED with Retry-After)
    /// instead of dropped.
    refuse: Option<bool>,
    /// Limits of every tenant.
    limits: RawLimits,
    /// Per tenant: the limits that differ from `limits`.
    overrides: BTreeMap<String, RawLimits>,
}

/// One tenant's limits as written; 0 turns a limit off.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct RawLimits {
    /// Records (spans, samples, log entries) per second, on average.
    records_per_second: Option<u64>,
    /// Records a tenant may send at once after a quiet spell; default twice
    /// `records_per_second`.
    records_burst: Option<u64>,
    /// Encoded bytes per second, on average.
    bytes_per_second: Option<ByteSize>,
    /// Bytes at once after a quiet spell; default twice `bytes_per_second`.
    bytes_burst: Option<ByteSize>,
    /// Metrics: series with a sample within `active_expiry`.
    max_active_series: Option<u64>,
    /// Logs: streams with an entry within `active_expiry`.
    max_active_streams: Option<u64>,
    /// Metrics and logs: labels of one series or stream.
    max_labels_per_series: Option<u64>,
    /// Metrics and logs: bytes of one label value.
    max_label_value_length: Option<u64>,
}

/// A rate with its burst, as a token bucket's refill and size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// One tenant's checked limits; `None` is no limit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    pub records: Option<Rate>,
    pub bytes: Option<Rate>,
    pub max_active_series: Option<usize>,
    pub max_active_streams: Option<usize>,
    pub max_labels_per_series: Option<usize>,
    pub max_label_value_length: Option<usize>,
}

impl Limits {
    pub fn has_rate(&self) -> bool {
        self.records.is_some() || self.bytes.is_some()
    }
}

/// Where a record's tenant comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Static(http::HeaderValue),
    Label {
        /// Metrics, logs and profiles.
        label: String,
        /// Traces.
        attribute: String,
    },
    Header,
}

/// A checked tenant processor.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantConfig {
    pub source: Source,
    pub default_tenant: http::HeaderValue,
    pub max_tenants: usize,
    pub active_expiry: std::time::Duration,
    pub refuse: bool,
    pub limits: Limits,
    pub overrides: BTreeMap<String, Limits>,
}

/// The tenant of records that name none, unless `default_tenant` says otherwise.
pub const DEFAULT_TENANT: &str = "anonymous";

impl TenantConfig {
    /// The limits of `tenant`: its override, else the defaults.
    pub fn limits_of(&self, tenant: &str) -> &Limits {
        self.overrides.get(tenant).unwrap_or(&self.limits)
    }

    /// Whether any tenant has a rate limit (what a refusal is about).
    pub fn has_rate(&self) -> bool {
        self.limits.has_rate() || self.overrides.values().any(Limits::has_rate)
    }
}

impl Validate for RawTenantConfig {
    type Valid = TenantConfig;

    fn validate(self) -> Result<TenantConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let only_with = |field: &str, set: bool, source: &str, errors: &mut Vec<FieldError>| {
            if set {
                errors.push(FieldError::new(
                    field,
                    format!("is used only with source = \"{source}\""),
                ));
            }
        };
        let source = match self.source {
            None => {
                errors.push(FieldError::new(
                    "source",
                    "say where the tenant comes from: \"static\", \"label\" or \"header\"",
                ));
                None
            }
            Some(RawSource::Static) => {
                only_with("label", self.label.is_some(), "label", &mut errors);
                only_with("attribute", self.attribute.is_some(), "label", &mut errors);
                match &self.tenant {
                    None => {
                        errors.push(FieldError::new(
                            "tenant",
                            "source = \"static\" needs the tenant's name",
                        ));
                        None
                    }
                    Some(name) => tenant_id("tenant", name, &mut errors).map(Source::Static),
                }
            }
            Some(RawSource::Label) => {
                only_with("tenant", self.tenant.is_some(), "static", &mut errors);
                match self.label.as_deref() {
                    None | Some("") => {
                        errors.push(FieldError::new(
                            "label",
                            "source = \"label\" needs the label that names the tenant, e.g. \"namespace\"",
                        ));
                        None
                    }
                    Some(label) => {
                        if self.attribute.as_deref() == Some("") {
                            errors.push(FieldError::new("attribute", "must not be empty"));
                        }
                        Some(Source::Label {
                            label: label.to_string(),
                            attribute: self.attribute.unwrap_or_else(|| label.to_string()),
                        })
                    }
                }
            }
            Some(RawSource::Header) => {
                only_with("tenant", self.tenant.is_some(), "static", &mut errors);
                only_with("label", self.label.is_some(), "label", &mut errors);
                only_with("attribute", self.attribute.is_some(), "label", &mut errors);
                Some(Source::Header)
            }
        };
        let default_tenant = tenant_id(
            "default_tenant",
            self.default_tenant.as_deref().unwrap_or(DEFAULT_TENANT),
            &mut errors,
        );
        let max_tenants = self.max_tenants.unwrap_or(500);
        if max_tenants == 0 {
            errors.push(FieldError::new("max_tenants", "must be at least 1"));
        }
        let active_expiry = self
            .active_expiry
            .unwrap_or(HumanDuration::from_secs(600))
            .get();
        if active_expiry < std::time::Duration::from_secs(1) {
            errors.push(FieldError::new("active_expiry", "must be at least 1s"));
        }
        let limits = self.limits.check("limits", None, &mut errors);
        let mut overrides = BTreeMap::new();
        for (tenant, raw) in &self.overrides {
            let at = format!("overrides.{tenant}");
            if valid_tenant(tenant).is_none() {
                errors.push(FieldError::new(
                    at.clone(),
                    format!("`{tenant}` is not a tenant ID ({TENANT_RULE})"),
                ));
                continue;
            }
            let merged = raw.over(&self.limits);
            overrides.insert(tenant.clone(), merged.check(&at, Some(raw), &mut errors));
        }
        let refuse = self.refuse.unwrap_or(false);
        let config = match (source, default_tenant) {
            (Some(source), Some(default_tenant)) if errors.is_empty() => TenantConfig {
                source,
                default_tenant,
                max_tenants,
                active_expiry,
                refuse,
                limits,
                overrides,
            },
            _ => return Err(errors),
        };
        if refuse && !config.has_rate() {
            return Err(vec![FieldError::new(
                "refuse",
                "refuses pushes over a rate limit, but no tenant has records_per_second or bytes_per_second",
            )]);
        }
        Ok(config)
    }
}

fn tenant_id(field: &str, name: &str, errors: &mut Vec<FieldError>) -> Option<http::HeaderValue> {
    let id = valid_tenant(name);
    if id.is_none() {
        errors.push(FieldError::new(
            field,
            format!("`{name}` is not a tenant ID ({TENANT_RULE})"),
        ));
    }
    id
}

impl RawLimits {
    /// These limits with every field not set here taken from `defaults`.
    fn over(&self, defaults: &RawLimits) -> RawLimits {
        RawLimits {
            records_per_second: self.records_per_second.or(defaults.records_per_second),
            // A burst follows its own rate unless set: an override that raises
            // the rate must not keep the default's burst.
            records_burst: self.records_burst.or(if self.records_per_second.is_some() {
                None
            } else {
                defaults.records_burst
            }),
            bytes_per_second: self.bytes_per_second.or(defaults.bytes_per_second),
            bytes_burst: self.bytes_burst.or(if self.bytes_per_second.is_some() {
                None
            } else {
                defaults.bytes_burst
            }),
            max_active_series: self.max_active_series.or(defaults.max_active_series),
            max_active_streams: self.max_active_streams.or(defaults.max_active_streams),
            max_labels_per_series: self
                .max_labels_per_series
                .or(defaults.max_labels_per_series),
            max_label_value_length: self
                .max_label_value_length
                .or(defaults.max_label_value_length),
        }
    }

    /// Checks the limits, reporting under `at`; `written` is what the
    /// override itself set, so that an error inherited from `limits` is
    /// reported once, there.
    fn check(&self, at: &str, written: Option<&RawLimits>, errors: &mut Vec<FieldError>) -> Limits {
        // An override's error is reported only if the override wrote a
        // field involved; one it inherited is reported once, under `limits`.
        let report = |set: fn(&RawLimits) -> bool| written.is_none_or(set);
        let records = rate(
            self.records_per_second.map(|r| r as f64),
            self.records_burst.map(|b| b as f64),
            (
                &format!("{at}.records_burst"),
                report(|w| w.records_burst.is_some() || w.records_per_second.is_some()),
            ),
            "records_per_second",
            errors,
        );
        let bytes = rate(
            self.bytes_per_second.map(|r| r.get() as f64),
            self.bytes_burst.map(|b| b.get() as f64),
            (
                &format!("{at}.bytes_burst"),
                report(|w| w.bytes_burst.is_some() || w.bytes_per_second.is_some()),
            ),
            "bytes_per_second",
            errors,
        );
        let limit = |value: Option<u64>| {
            value
                .filter(|&v| v > 0)
                .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
        };
        Limits {
            records,
            bytes,
            max_active_series: limit(self.max_active_series),
            max_active_streams: limit(self.max_active_streams),
            max_labels_per_series: limit(self.max_labels_per_series),
            max_label_value_length: limit(self.max_label_value_length),
        }
    }
}

/// A rate and its burst; a burst without a rate, or one below a whole
/// record (or byte), is an error reported at `burst_at` if `report`.
fn rate(
    per_second: Option<f64>,
    burst: Option<f64>,
    (burst_at, report): (&str, bool),
    rate_name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Rate> {
    match (per_second.filter(|&r| r > 0.0), burst) {
        (None, Some(b)) if b > 0.0 => {
            if report {
                errors.push(FieldError::new(
                    burst_at,
                    format!("a burst needs {rate_name} as well"),
                ));
            }
            None
        }
        (None, _) => None,
        (Some(r), None) => Some(Rate {
            per_second: r,
            burst: 2.0 * r,
        }),
        (Some(r), Some(b)) if b < 1.0 => {
            if report {
                errors.push(FieldError::new(
                    burst_at,
                    "must be at least 1, or nothing would ever pass",
                ));
            }
            Some(Rate {
                per_second: r,
                burst: 2.0 * r,
            })
        }
        (Some(r), Some(b)) => Some(Rate {
            per_second: r,
            burst: b,
        }),
    }
}
